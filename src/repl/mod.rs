//! Replica-set membership: the config, who is primary (through openraft), heartbeats
//! and the topology that hello reports.
//!
//! - [`config`]: the config document, parsed and validated as mongod does.
//! - [`raft`]: the openraft adapter (store, state machine, RPCs as OP_MSG commands).
//! - [`transport`]: the one door to other members.
//! - [`heartbeat`]: `replSetHeartbeat` to every other member, every heartbeatIntervalMillis.
//!
//! The Raft leader is the primary. Priority-0 and hidden members stay Raft voters (their
//! `votes` count as in mongod) but have elections switched off on their own node, so they
//! never become primary; replSetFreeze and replSetStepDown switch them off for a while.

mod codec;
pub mod config;
mod elections;
mod heartbeat;
mod lifecycle;
mod log_store;
mod membership;
mod network;
pub mod oplog;
mod positions;
pub mod raft;
pub mod self_initiate;
mod state_machine;
mod status;
mod step_down;
pub mod takeover;
mod topology;
pub mod transport;
mod write_path;

use crate::catalog::{Catalog, CatalogError};
use crate::clock::LogicalClock;
use crate::error::{Code, CommandError, CommandResult};
use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use config::{MemberConfig, ReplSetConfig};
use openraft::{BasicNode, ServerState as RaftRole};
use parking_lot::{Mutex, RwLock};
use raft::{Applied, ApplyOutcome, Raft, RaftSettings, ReplEntry, ReplOp, Store};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use takeover::PRIORITY_TAKEOVER_FIELD;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use transport::Transport;

pub use heartbeat::HeartbeatReply;
pub use status::{HelloView, MemberView, StatusView};

const NODE_FILE: &str = "ferrod-repl-node.json";

/// This node's Raft identity, saved when its Raft starts.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedNode {
    node_id: u64,
    settings: RaftSettings,
}

/// mongod's member states (`myState`, `state`) and their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Startup = 0,
    Primary = 1,
    Secondary = 2,
    Down = 8,
    Removed = 10,
}

impl MemberState {
    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn name(self) -> &'static str {
        match self {
            MemberState::Startup => "STARTUP",
            MemberState::Primary => "PRIMARY",
            MemberState::Secondary => "SECONDARY",
            MemberState::Down => "(not reachable/healthy)",
            MemberState::Removed => "REMOVED",
        }
    }

    pub fn from_code(code: i32) -> MemberState {
        match code {
            1 => MemberState::Primary,
            2 => MemberState::Secondary,
            10 => MemberState::Removed,
            0 => MemberState::Startup,
            _ => MemberState::Down,
        }
    }
}

/// What heartbeats have learned about one other member.
#[derive(Debug, Clone, Default)]
pub struct MemberHealth {
    pub host: String,
    pub healthy: bool,
    pub state: i32,
    pub last_heartbeat: Option<bson::DateTime>,
    pub ping_ms: i64,
    pub config_version: i64,
    pub config_term: i64,
    pub optime: Option<Document>,
    pub optime_date: Option<bson::DateTime>,
    pub up_since: Option<Instant>,
    /// When a heartbeat to it last succeeded.
    pub last_ok: Option<Instant>,
    pub message: String,
}

/// What replication needs of the server around it: given by the composition root
/// (`commands::repl_host`), so that `repl` sees neither the server state nor the commands.
pub trait ReplHost: Send + Sync {
    /// Cancelled when the server starts shutting down.
    fn shutdown(&self) -> &CancellationToken;
    fn clock(&self) -> &Arc<LogicalClock>;
    /// The port actually listened on.
    fn port(&self) -> u16;
    fn host_name(&self) -> &str;
    /// `host:port` as this server reports itself.
    fn host_and_port(&self) -> String;
    fn bind_ip_all(&self) -> bool;
    fn bind_ip(&self) -> &[String];
    /// `--initialMembers`: the set this node initiates itself.
    fn initial_members(&self) -> &[String];
    /// When the process started (the member's `uptime`).
    fn started(&self) -> Instant;
    /// Whether this server runs with `--replSet`.
    fn is_repl_member(&self) -> bool;
    /// The local catalog (the self-initiated root user is created only while it has none).
    fn catalog(&self) -> &Arc<dyn Catalog>;
    /// Server parameters (key rotation, the periodic no-op).
    fn params(&self) -> &crate::params::Parameters;
    /// The current `topologyVersion`.
    fn topology_version(&self) -> Document;
    /// Creates the first user (`root` on admin) as a local client's createUser would.
    fn create_first_user(self: Arc<Self>, user: String, password: String) -> FirstUserFuture;
}

pub type FirstUserFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;

/// Commands hold the server state behind an `Arc`.
impl<T: ReplHost + ?Sized> ReplHost for Arc<T> {
    fn shutdown(&self) -> &CancellationToken {
        (**self).shutdown()
    }
    fn clock(&self) -> &Arc<LogicalClock> {
        (**self).clock()
    }
    fn port(&self) -> u16 {
        (**self).port()
    }
    fn host_name(&self) -> &str {
        (**self).host_name()
    }
    fn host_and_port(&self) -> String {
        (**self).host_and_port()
    }
    fn bind_ip_all(&self) -> bool {
        (**self).bind_ip_all()
    }
    fn bind_ip(&self) -> &[String] {
        (**self).bind_ip()
    }
    fn initial_members(&self) -> &[String] {
        (**self).initial_members()
    }
    fn started(&self) -> Instant {
        (**self).started()
    }
    fn is_repl_member(&self) -> bool {
        (**self).is_repl_member()
    }
    fn catalog(&self) -> &Arc<dyn Catalog> {
        (**self).catalog()
    }
    fn params(&self) -> &crate::params::Parameters {
        (**self).params()
    }
    fn topology_version(&self) -> Document {
        (**self).topology_version()
    }
    fn create_first_user(self: Arc<Self>, user: String, password: String) -> FirstUserFuture {
        (*self).clone().create_first_user(user, password)
    }
}

/// The replica-set side of a server started with `--replSet`.
pub struct ReplCoordinator {
    pub set_name: String,
    pub transport: Arc<dyn Transport>,
    store: Arc<Store>,
    /// Where this node's Raft id and settings are kept across restarts.
    node_file: Option<PathBuf>,
    applied: watch::Receiver<Applied>,
    /// This node's Raft and the settings it runs with, once started.
    raft: RwLock<Option<(Raft, RaftSettings)>>,
    /// Serializes starting and restarting Raft.
    raft_start: tokio::sync::Mutex<()>,
    /// `topologyVersion.processId`.
    pub process_id: ObjectId,
    topology_counter: watch::Sender<i64>,
    health: Mutex<HashMap<u64, MemberHealth>>,
    heartbeat_received: Mutex<HashMap<String, bson::DateTime>>,
    /// Elections are off here until then (replSetFreeze, replSetStepDown).
    no_elect_until: Mutex<Option<Instant>>,
    stepping_down: AtomicBool,
    /// Serializes initiate and reconfig.
    config_change: tokio::sync::Mutex<()>,
    elect_enabled: Mutex<Option<bool>>,
    last_summary: Mutex<Option<TopologySummary>>,
    /// The term this node last became leader in, and when.
    leader_since: Mutex<Option<(u64, Instant)>>,
    elections: elections::Elections,
    /// What each follower has applied (the write concern waits on it).
    positions: Arc<positions::AppliedPositions>,
}

/// The member a stepping-down primary asks to take over.
struct Successor {
    host: String,
    /// The last log index it holds, as this primary knows.
    matched: u64,
    caught_up: bool,
}

/// Topology facts whose change bumps `topologyVersion.counter`.
#[derive(Debug, Clone, PartialEq)]
struct TopologySummary {
    state: MemberState,
    primary: Option<String>,
    config_version: i64,
    term: u64,
}

fn not_writable_primary(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::NotWritablePrimary, msg)
}

/// mongod's error for write-concern waiters when the primary steps down.
fn primary_stepped_down() -> CommandError {
    CommandError::new(
        Code::PrimarySteppedDown,
        "Primary stepped down while waiting for replication",
    )
}

/// mongod's error for an object above BSONObjMaxInternalSize.
fn entry_too_large(size: usize) -> CommandError {
    CommandError::new(
        Code::BSONObjectTooLarge,
        format!(
            "BSONObj size: {size} (0x{size:X}) is invalid. Size must be between 0 and {}(16MB)",
            raft::MAX_ENTRY_SIZE
        ),
    )
}

/// The one place openraft's refusals of a write or membership change become mongod's
/// errors: a client never sees openraft's own text (it is logged).
fn raft_error<E: std::fmt::Display>(e: openraft::error::RaftError<u64, E>) -> CommandError {
    tracing::debug!(target: "REPL", id = 7_000_040, ctx = "ReplCoord", error = %e, "Raft refused a write");
    match e {
        // ForwardToLeader, or a membership change this node can no longer make: either
        // way, it is not (or no longer) the primary.
        openraft::error::RaftError::APIError(_) => not_writable_primary("not primary"),
        openraft::error::RaftError::Fatal(_) => CommandError::new(
            Code::InterruptedDueToReplStateChange,
            "operation was interrupted",
        ),
    }
}

/// The electionId mongod derives from a term: max timestamp, then the term big-endian.
/// Identifies one applied (config version, Raft membership) pair.
pub type MembershipKey = (Option<i64>, Option<openraft::LogId<u64>>);

fn membership_key(applied: &Applied) -> MembershipKey {
    (
        applied.config.as_ref().map(|c| c.version),
        *applied.membership.log_id(),
    )
}

pub fn election_id(term: u64) -> ObjectId {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    bytes[4..].copy_from_slice(&term.to_be_bytes());
    ObjectId::from_bytes(bytes)
}

impl ReplCoordinator {
    /// The coordinator for `--replSet set_name`, keeping its Raft state under `dbpath`
    /// (None: in memory only) and reaching other members through `transport`;
    /// `process_id` is the process's `topologyVersion.processId`.
    pub fn new(
        set_name: String,
        dbpath: Option<&Path>,
        transport: Arc<dyn Transport>,
        clock: Arc<LogicalClock>,
        process_id: ObjectId,
    ) -> std::io::Result<Arc<ReplCoordinator>> {
        let (store, applied) = Store::open(dbpath, clock)?;
        let (topology_counter, _) = watch::channel(0);
        Ok(Arc::new(ReplCoordinator {
            set_name,
            transport,
            store,
            node_file: dbpath.map(|d| d.join(NODE_FILE)),
            applied,
            raft: RwLock::new(None),
            raft_start: tokio::sync::Mutex::new(()),
            process_id,
            topology_counter,
            health: Mutex::new(HashMap::new()),
            heartbeat_received: Mutex::new(HashMap::new()),
            no_elect_until: Mutex::new(None),
            stepping_down: AtomicBool::new(false),
            config_change: tokio::sync::Mutex::new(()),
            elect_enabled: Mutex::new(None),
            last_summary: Mutex::new(None),
            leader_since: Mutex::new(None),
            elections: elections::Elections::default(),
            positions: Arc::default(),
        }))
    }

    /// Starts the background tasks: heartbeats and the topology watcher.
    pub fn start<H: ReplHost + 'static>(self: &Arc<Self>, server: &Arc<H>) {
        let server: Arc<dyn ReplHost> = server.clone();
        let server = &server;
        // A member that was part of a set rejoins it with its saved Raft state.
        if let Some(saved) = self.saved_node() {
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.raft_for(saved.node_id, saved.settings).await {
                    tracing::error!(target: "REPL", id = 21405, ctx = "ReplCoord", error = %e, "Cannot restore replica set state");
                }
            });
        }
        heartbeat::spawn(self.clone(), server.clone());
        tokio::spawn(self.clone().primary_housekeeping(server.clone()));
        tokio::spawn(takeover::run(self.clone(), server.clone()));
        if !server.initial_members().is_empty() {
            let members = server.initial_members().to_vec();
            tokio::spawn(self_initiate::run(self.clone(), server.clone(), members));
        }
        let me = self.clone();
        let server = server.clone();
        tokio::spawn(async move { me.watch_topology(server).await });
    }

    /// Makes the catalog the replicated state machine (before [`Self::start`]).
    pub fn attach_catalog(&self, catalog: Arc<dyn Catalog>) -> Result<(), CatalogError> {
        self.store.attach_catalog(catalog)
    }

    pub fn config(&self) -> Option<ReplSetConfig> {
        self.applied.borrow().config.clone()
    }

    /// The hosts the applied config and the applied Raft membership name, with a key
    /// that changes when either does. Raft keeps replicating to a removed member until
    /// the membership change after its config, so traffic to a host ends only once both
    /// have let it go.
    pub fn named_hosts(&self) -> (MembershipKey, BTreeSet<String>) {
        let applied = self.applied.borrow();
        let mut hosts: BTreeSet<String> = applied
            .config
            .iter()
            .flat_map(|c| c.members.iter().map(|m| m.host.clone()))
            .collect();
        hosts.extend(
            applied
                .membership
                .membership()
                .nodes()
                .map(|(_, n)| n.addr.clone()),
        );
        (membership_key(&applied), hosts)
    }

    /// Waits until the applied config or Raft membership differs from `seen`.
    pub async fn wait_membership_change(&self, seen: &MembershipKey) {
        let mut applied = self.applied.clone();
        if applied
            .wait_for(|a| membership_key(a) != *seen)
            .await
            .is_err()
        {
            // The state machine is gone (shutting down): nothing will change again.
            std::future::pending::<()>().await;
        }
    }

    fn applied(&self) -> Applied {
        self.applied.borrow().clone()
    }

    pub fn topology_counter(&self) -> i64 {
        *self.topology_counter.borrow()
    }

    /// Waits until the topology counter differs from `seen` or `max_wait` passes.
    pub async fn wait_topology_change(&self, seen: i64, max_wait: Duration) {
        let mut rx = self.topology_counter.subscribe();
        let _ = tokio::time::timeout(max_wait, rx.wait_for(|c| *c != seen)).await;
    }

    /// Whether `host` (as written in a config) is this server.
    pub fn is_self(&self, server: &dyn ReplHost, host: &str) -> bool {
        names_self(
            host,
            server.port(),
            server.host_name(),
            server.bind_ip_all(),
            server.bind_ip(),
        )
    }

    pub fn self_member(
        &self,
        server: &dyn ReplHost,
        config: &ReplSetConfig,
    ) -> Option<MemberConfig> {
        config
            .members
            .iter()
            .find(|m| self.is_self(server, &m.host))
            .cloned()
    }

    pub(crate) fn set_health(&self, id: u64, h: MemberHealth) {
        self.health.lock().insert(id, h);
    }

    pub(crate) fn get_health(&self, id: u64) -> Option<MemberHealth> {
        self.health.lock().get(&id).cloned()
    }

    pub(crate) fn forget_health(&self, keep: &BTreeSet<u64>) {
        self.health.lock().retain(|id, _| keep.contains(id));
    }
}

/// mongod's NotPrimaryError category: the errors after which a driver checks the server
/// again, unless the error's `topologyVersion` shows it knows of nothing newer.
fn is_not_primary_error(code: i32) -> bool {
    [
        Code::NotWritablePrimary,
        Code::NotPrimaryNoSecondaryOk,
        Code::NotPrimaryOrSecondary,
        Code::InterruptedDueToReplStateChange,
        Code::PrimarySteppedDown,
    ]
    .iter()
    .any(|c| c.number() == code)
}

/// Adds the current `topologyVersion` to a reply whose error, or write concern error, is a
/// state change, as a set member's mongod does (a standalone's never change state).
pub fn stamp_state_change_error(server: &dyn ReplHost, reply: &mut Document) {
    if !server.is_repl_member() || reply.contains_key("topologyVersion") {
        return;
    }
    let code = reply.get_i32("code").ok().or_else(|| {
        reply
            .get_document("writeConcernError")
            .ok()
            .and_then(|wce| wce.get_i32("code").ok())
    });
    if code.is_some_and(is_not_primary_error) {
        reply.insert("topologyVersion", server.topology_version());
    }
}

pub fn not_yet_initialized() -> CommandError {
    CommandError::new(
        Code::NotYetInitialized,
        "no replset config has been received",
    )
}

fn removed_error() -> CommandError {
    CommandError::new(
        Code::InvalidReplicaSetConfig,
        "Our replica set config is invalid or we are not a member of it",
    )
}

/// A reconfig's new config, which must keep the set's name.
fn parse_for_reconfig(current: &ReplSetConfig, doc: &Document) -> CommandResult<ReplSetConfig> {
    let config = ReplSetConfig::parse(doc)?;
    if config.set_name != current.set_name {
        return Err(incompatible(format!(
            "New and old configurations differ in replica set name; old was {}, and new is {}",
            current.set_name, config.set_name
        )));
    }
    Ok(config)
}

fn incompatible(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::NewReplicaSetConfigurationIncompatible, msg)
}

pub fn inconsistent_set_name(ours: &str, theirs: &str) -> CommandError {
    CommandError::new(
        Code::InconsistentReplicaSetNames,
        format!("Our set name of {ours} does not match name {theirs} reported by remote node"),
    )
}

/// The error for a replication command on a server started without `--replSet`.
pub fn no_replication() -> CommandError {
    CommandError::new(Code::NoReplicationEnabled, "not running with --replSet")
}

/// Whether a config's `host` names the server listening on `port` as `host_name`
/// and `bind_ip` (read with the one host:port parser; no port means 27017).
pub fn names_self(
    host: &str,
    port: u16,
    host_name: &str,
    bind_ip_all: bool,
    bind_ip: &[String],
) -> bool {
    let Ok(target) = crate::pool::HostAndPort::parse_or_default(host, crate::config::DEFAULT_PORT)
    else {
        return false;
    };
    if target.port() != port {
        return false;
    }
    let name = target.host();
    if name == "localhost" || name.eq_ignore_ascii_case(host_name) {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() || ip.is_unspecified() => true,
        Ok(ip) => bind_ip_all || bind_ip.iter().any(|b| b.parse::<IpAddr>().ok() == Some(ip)),
        Err(_) => false,
    }
}
