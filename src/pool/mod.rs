//! Outgoing connection pools: named pools (mongod's `NetworkInterfaceTL-ReplNetwork` for
//! replica-set traffic), each holding one pool per remote host.
//!
//! Each host pool is a task that owns its connections and counters (see [`host`]); the
//! rest of the server talks to it over channels: checkouts on one, check-ins, drops and
//! finished connects on another that the task always serves first. A checked-out
//! [`PooledConnection`] goes back to its pool when dropped. Dropping a host's connections
//! bumps the pool's generation; connections of an older generation are closed whenever
//! they are seen.

pub mod connection;
mod host;
pub mod host_and_port;
pub mod stats;
#[cfg(test)]
mod tests;

pub use connection::{Connection, ConnectionSetup, Connector, SetupFuture, Transport};
pub use host_and_port::HostAndPort;
pub use stats::Snapshot;

use crate::error::{Code, CommandError};
use crate::params::{self, Parameters};
use crate::wire::OpMsg;
use bson::Document;
use host::{CheckoutRequest, Event, HostHandle};
use parking_lot::{Mutex, RwLock};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// The pool replica-set heartbeats and replication use, named as mongod names it.
pub const REPL_POOL: &str = "NetworkInterfaceTL-ReplNetwork";

/// Why a checkout or a pooled command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Could not connect (refused, unresolvable, handshake refused).
    #[error("{0}")]
    HostUnreachable(String),
    /// The peer refused the connection's login (keyFile authentication).
    #[error("{0}")]
    AuthenticationFailed(String),
    /// The connection broke while in use.
    #[error("{0}")]
    Network(String),
    /// A connect, health check or command took longer than allowed.
    #[error("{0}")]
    Timeout(String),
    /// No connection became free within the checkout time limit.
    #[error("{0}")]
    CheckoutTimeout(String),
    /// The request was queued when the host's connections were dropped.
    #[error("{0}")]
    Dropped(String),
    /// The host pool went away (host timeout) before serving the request; retried.
    #[error("host pool shut down")]
    Gone,
}

impl PoolError {
    pub fn code(&self) -> Code {
        match self {
            PoolError::HostUnreachable(_) | PoolError::Network(_) | PoolError::Gone => {
                Code::HostUnreachable
            }
            PoolError::AuthenticationFailed(_) => Code::AuthenticationFailed,
            PoolError::Timeout(_) => Code::NetworkTimeout,
            PoolError::CheckoutTimeout(_) => Code::NetworkInterfaceExceededTimeLimit,
            PoolError::Dropped(_) => Code::PooledConnectionsDropped,
        }
    }
}

impl From<PoolError> for CommandError {
    fn from(e: PoolError) -> CommandError {
        CommandError::new(e.code(), e.to_string())
    }
}

/// The SPEC section 6 parameters as the pools read them: plain atomics refreshed by
/// setParameter, so the pool tasks never take the parameter lock.
#[derive(Debug)]
pub struct Settings {
    min_size: AtomicU64,
    max_size: AtomicU64,
    max_connecting: AtomicU64,
    host_timeout_ms: AtomicU64,
    refresh_requirement_ms: AtomicU64,
    refresh_timeout_ms: AtomicU64,
}

/// One consistent reading of [`Settings`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub min_size: usize,
    pub max_size: usize,
    pub max_connecting: usize,
    pub host_timeout: Duration,
    pub refresh_requirement: Duration,
    pub refresh_timeout: Duration,
}

impl Settings {
    fn from_params(p: &Parameters) -> Settings {
        let s = Settings {
            min_size: AtomicU64::new(0),
            max_size: AtomicU64::new(0),
            max_connecting: AtomicU64::new(0),
            host_timeout_ms: AtomicU64::new(0),
            refresh_requirement_ms: AtomicU64::new(0),
            refresh_timeout_ms: AtomicU64::new(0),
        };
        s.update(p);
        s
    }

    fn update(&self, p: &Parameters) {
        let get = |name| p.get_i64(name).max(0) as u64;
        self.min_size
            .store(get(params::POOL_MIN_SIZE), Ordering::Relaxed);
        self.max_size
            .store(get(params::POOL_MAX_SIZE).max(1), Ordering::Relaxed);
        self.max_connecting
            .store(get(params::POOL_MAX_CONNECTING).max(1), Ordering::Relaxed);
        self.host_timeout_ms
            .store(get(params::POOL_HOST_TIMEOUT_MS), Ordering::Relaxed);
        self.refresh_requirement_ms
            .store(get(params::POOL_REFRESH_REQUIREMENT_MS), Ordering::Relaxed);
        self.refresh_timeout_ms
            .store(get(params::POOL_REFRESH_TIMEOUT_MS), Ordering::Relaxed);
    }

    pub fn limits(&self) -> Limits {
        let ms = |a: &AtomicU64| Duration::from_millis(a.load(Ordering::Relaxed));
        Limits {
            min_size: self.min_size.load(Ordering::Relaxed) as usize,
            max_size: self.max_size.load(Ordering::Relaxed) as usize,
            max_connecting: self.max_connecting.load(Ordering::Relaxed) as usize,
            host_timeout: ms(&self.host_timeout_ms),
            refresh_requirement: ms(&self.refresh_requirement_ms),
            refresh_timeout: ms(&self.refresh_timeout_ms),
        }
    }
}

/// What dropping one host's connections did, summed over pools and hosts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DropCounts {
    /// Idle connections closed at once.
    pub closed_now: usize,
    /// Checked-out connections that will be closed when returned.
    pub close_on_return: usize,
    /// Queued checkouts failed with PooledConnectionsDropped.
    pub waiters_failed: usize,
    /// Connects in flight whose result will be discarded.
    pub connecting_discarded: usize,
}

impl std::ops::AddAssign for DropCounts {
    fn add_assign(&mut self, o: DropCounts) {
        self.closed_now += o.closed_now;
        self.close_on_return += o.close_on_return;
        self.waiters_failed += o.waiters_failed;
        self.connecting_discarded += o.connecting_discarded;
    }
}

/// Everything a host pool task needs from its owner.
pub(crate) struct Shared {
    pub settings: Settings,
    pub setup: RwLock<Option<Arc<dyn ConnectionSetup>>>,
    /// `host:port` of this server, sent in the handshake as `hostInfo`.
    pub my_host: RwLock<String>,
    /// Opens the transport of each new connection.
    pub connector: Connector,
    next_pool_id: AtomicU64,
}

/// One named pool: the host pools in it.
pub(crate) struct NamedPool {
    pub name: Arc<str>,
    pub hosts: Mutex<HashMap<HostAndPort, HostHandle>>,
}

impl NamedPool {
    /// Forgets a host pool that has shut down (only if it is still the same one).
    pub fn forget(&self, host: &HostAndPort, id: u64) {
        let mut hosts = self.hosts.lock();
        if hosts.get(host).is_some_and(|h| h.id == id) {
            hosts.remove(host);
        }
    }
}

/// Per-pool and per-host counters at one moment, as connPoolStats shows them.
#[derive(Debug, Default, Clone)]
pub struct StatsReport {
    pub total: Snapshot,
    /// Named pools by name; each with its totals and its hosts sorted by `host:port`.
    pub pools: Vec<PoolStats>,
}

impl StatsReport {
    /// Every host over all named pools, sorted by `host:port`: with one named pool (the
    /// usual case) its own list, borrowed rather than copied.
    pub fn hosts(&self) -> Cow<'_, [(Arc<str>, Snapshot)]> {
        match self.pools.as_slice() {
            [] => Cow::Borrowed(&[]),
            [only] => Cow::Borrowed(&only.hosts),
            several => {
                let mut by_host: BTreeMap<Arc<str>, Snapshot> = BTreeMap::new();
                for pool in several {
                    for (host, snapshot) in &pool.hosts {
                        *by_host.entry(host.clone()).or_default() += *snapshot;
                    }
                }
                Cow::Owned(by_host.into_iter().collect())
            }
        }
    }
}

/// One named pool in a [`StatsReport`].
#[derive(Debug, Default, Clone)]
pub struct PoolStats {
    pub name: Arc<str>,
    pub total: Snapshot,
    pub hosts: Vec<(Arc<str>, Snapshot)>,
}

/// All outgoing pools of this server.
pub struct PoolManager {
    shared: Arc<Shared>,
    pools: RwLock<BTreeMap<String, Arc<NamedPool>>>,
}

impl PoolManager {
    pub fn new(params: &Parameters) -> PoolManager {
        Self::with_connector(params, connection::tcp_connector())
    }

    /// A manager whose connections run over what `connector` opens (unit tests).
    pub(crate) fn with_connector(params: &Parameters, connector: Connector) -> PoolManager {
        PoolManager {
            shared: Arc::new(Shared {
                settings: Settings::from_params(params),
                setup: RwLock::new(None),
                my_host: RwLock::new(String::new()),
                connector,
                next_pool_id: AtomicU64::new(1),
            }),
            pools: RwLock::new(BTreeMap::new()),
        }
    }

    /// Re-reads the pool parameters (after setParameter).
    pub fn apply_settings(&self, params: &Parameters) {
        self.shared.settings.update(params);
    }

    pub fn limits(&self) -> Limits {
        self.shared.settings.limits()
    }

    /// Installs the step run after hello on every new connection (keyFile auth).
    pub fn set_connection_setup(&self, setup: Option<Arc<dyn ConnectionSetup>>) {
        *self.shared.setup.write() = setup;
    }

    /// Sets the `host:port` this server reports in its handshakes.
    pub fn set_my_host(&self, host_and_port: String) {
        *self.shared.my_host.write() = host_and_port;
    }

    fn named(&self, name: &str) -> Arc<NamedPool> {
        if let Some(pool) = self.pools.read().get(name) {
            return pool.clone();
        }
        self.pools
            .write()
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(NamedPool {
                    name: name.into(),
                    hosts: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    /// Checks out a connection to `host` from the named pool, waiting at most `timeout`.
    pub async fn checkout(
        &self,
        pool: &str,
        host: &HostAndPort,
        timeout: Duration,
    ) -> Result<PooledConnection, PoolError> {
        let named = self.named(pool);
        let deadline = tokio::time::Instant::now() + timeout;
        // A host pool may shut down (host timeout) between lookup and request; then a
        // fresh one is made. Bounded: each retry follows a real shutdown.
        for _ in 0..8 {
            let handle = {
                let mut hosts = named.hosts.lock();
                // Looked up by reference first: the key is cloned only for a new pool.
                match hosts.get(host) {
                    Some(handle) => handle.clone(),
                    None => {
                        let id = self.shared.next_pool_id.fetch_add(1, Ordering::Relaxed);
                        let handle = host::spawn(id, host.clone(), &named, self.shared.clone());
                        hosts.insert(host.clone(), handle.clone());
                        handle
                    }
                }
            };
            let (reply, receive) = oneshot::channel();
            if handle.checkouts.send(CheckoutRequest { reply }).is_err() {
                named.forget(host, handle.id);
                continue;
            }
            match tokio::time::timeout_at(deadline, receive).await {
                Ok(Ok(Err(PoolError::Gone)) | Err(_)) => {
                    named.forget(host, handle.id);
                }
                Ok(Ok(result)) => return result,
                Err(_) => {
                    return Err(PoolError::CheckoutTimeout(format!(
                        "Couldn't get a connection within the time limit of {}ms",
                        timeout.as_millis()
                    )))
                }
            }
        }
        Err(PoolError::HostUnreachable(format!(
            "connection pool for {host} kept shutting down"
        )))
    }

    /// Checks out a connection, runs one command on it and returns it: the call
    /// heartbeats and other one-off requests need. `command` must carry `$db`.
    pub async fn run_command(
        &self,
        pool: &str,
        host: &HostAndPort,
        command: Document,
        timeout: Duration,
    ) -> Result<Document, PoolError> {
        self.run_message(pool, host, OpMsg::from_body(command), timeout)
            .await
    }

    /// Like [`Self::run_command`], for a message with document sequences too.
    pub async fn run_message(
        &self,
        pool: &str,
        host: &HostAndPort,
        message: OpMsg,
        timeout: Duration,
    ) -> Result<Document, PoolError> {
        let started = tokio::time::Instant::now();
        let mut conn = self.checkout(pool, host, timeout).await?;
        let left = timeout.saturating_sub(started.elapsed());
        conn.run_message(message, left).await
    }

    /// Drops this server's pooled connections to `hosts` in every named pool, as
    /// dropConnections does, and logs one line saying what was dropped. `context` is
    /// the log context of the caller (e.g. `conn12`).
    pub async fn drop_connections(&self, hosts: &[HostAndPort], context: &str) -> DropCounts {
        let mut replies = Vec::new();
        let pools: Vec<Arc<NamedPool>> = self.pools.read().values().cloned().collect();
        let mut affected_pools = Vec::new();
        for named in &pools {
            let map = named.hosts.lock();
            for host in hosts {
                if let Some(handle) = map.get(host) {
                    let (reply, receive) = oneshot::channel();
                    let event = Event::Drop {
                        reply: Some(reply),
                        reason: "dropConnections",
                    };
                    if handle.events.send(event).is_ok() {
                        replies.push(receive);
                        if !affected_pools.contains(&named.name) {
                            affected_pools.push(named.name.clone());
                        }
                    }
                }
            }
        }
        let mut total = DropCounts::default();
        for receive in replies {
            // A pool that shut down meanwhile had nothing left to drop.
            if let Ok(counts) = receive.await {
                total += counts;
            }
        }
        let host_list: Vec<String> = hosts.iter().map(ToString::to_string).collect();
        let pool_list: Vec<&str> = affected_pools.iter().map(|p| &**p).collect();
        tracing::info!(target: "CONNPOOL", id = 22572, ctx = context,
            hostAndPort = ?host_list, pools = ?pool_list,
            closedNow = total.closed_now as i64,
            closeOnReturn = total.close_on_return as i64,
            waitingRequestsFailed = total.waiters_failed as i64,
            connectingDiscarded = total.connecting_discarded as i64,
            "Dropping all pooled connections");
        total
    }

    /// Waits until the host pool has handled everything sent to it so far (check-ins of
    /// connections dropped before this call included) and published its counters.
    pub async fn sync(&self, pool: &str, host: &HostAndPort) {
        let events = self
            .pools
            .read()
            .get(pool)
            .and_then(|named| named.hosts.lock().get(host).map(|h| h.events.clone()));
        if let Some(events) = events {
            let (reply, receive) = oneshot::channel();
            if events.send(Event::Sync(reply)).is_ok() {
                let _ = receive.await;
            }
        }
    }

    /// Counters of every host pool that has created a connection. Reads each host's
    /// atomic counters under the named pool's map lock (no message to any pool task);
    /// host names come preformatted from the handles.
    pub fn stats(&self) -> StatsReport {
        let mut report = StatsReport::default();
        let named: Vec<Arc<NamedPool>> = self.pools.read().values().cloned().collect();
        for named in named {
            let mut hosts: Vec<(Arc<str>, Snapshot)> = {
                let map = named.hosts.lock();
                let mut hosts = Vec::with_capacity(map.len());
                for handle in map.values() {
                    let snapshot = handle.counters.snapshot();
                    if snapshot.created > 0 {
                        hosts.push((handle.label.clone(), snapshot));
                    }
                }
                hosts
            };
            if hosts.is_empty() {
                continue;
            }
            hosts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let mut total = Snapshot::default();
            for (_, snapshot) in &hosts {
                total += *snapshot;
            }
            report.total += total;
            report.pools.push(PoolStats {
                name: named.name.clone(),
                total,
                hosts,
            });
        }
        report
    }

    /// The totals of [`PoolManager::stats`] alone (serverStatus), without building the
    /// per-host lists.
    pub fn totals(&self) -> Snapshot {
        let mut total = Snapshot::default();
        for named in self.pools.read().values() {
            for handle in named.hosts.lock().values() {
                let snapshot = handle.counters.snapshot();
                if snapshot.created > 0 {
                    total += snapshot;
                }
            }
        }
        total
    }

    /// Checkouts queued for a connection, over all host pools, as last published.
    pub fn queued_checkouts(&self) -> u64 {
        self.pools
            .read()
            .values()
            .map(|p| {
                p.hosts
                    .lock()
                    .values()
                    .map(|h| h.counters.queued())
                    .sum::<u64>()
            })
            .sum()
    }

    /// How many host pools exist (running tasks), over all named pools.
    pub fn host_pool_count(&self) -> usize {
        self.pools
            .read()
            .values()
            .map(|p| p.hosts.lock().len())
            .sum()
    }
}

/// A checked-out connection. Goes back to its pool when dropped; what happened to it
/// (a network error, a timeout) travels with it.
pub struct PooledConnection {
    conn: Option<Connection>,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    outcome: host::Outcome,
}

impl PooledConnection {
    /// Runs a command on the connection. A network error or a timeout marks the
    /// connection so the pool closes it on return (and, for a network error, drops
    /// the host's pool).
    pub async fn run_command(
        &mut self,
        command: Document,
        timeout: Duration,
    ) -> Result<Document, PoolError> {
        self.run_message(OpMsg::from_body(command), timeout).await
    }

    /// Like [`Self::run_command`], for a message with document sequences too.
    pub async fn run_message(
        &mut self,
        message: OpMsg,
        timeout: Duration,
    ) -> Result<Document, PoolError> {
        let conn = self.conn.as_mut().expect("connection present until drop");
        let result = conn.run_message(message, timeout).await;
        match &result {
            Err(PoolError::Timeout(_)) => self.outcome = host::Outcome::TimedOut,
            Err(_) => self.outcome = host::Outcome::NetworkError,
            Ok(_) => conn.idle_since = tokio::time::Instant::now(),
        }
        result
    }

    pub fn host(&self) -> &HostAndPort {
        self.conn.as_ref().expect("connection present").host()
    }

    pub fn generation(&self) -> u64 {
        self.conn.as_ref().expect("connection present").generation
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // If the pool is gone the connection simply closes here.
            let _ = self.events.send(Event::CheckIn {
                conn,
                outcome: self.outcome,
            });
        }
    }
}
