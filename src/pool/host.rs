//! The task behind one host's pool. It alone owns the idle connections, the queue of
//! waiting checkouts and the generation; everything reaches it as a message.

use super::stats::HostCounters;
use super::{Connection, DropCounts, HostAndPort, NamedPool, PoolError, PooledConnection, Shared};
use bson::doc;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
// tokio's clock (the same as std's unless a test pauses it), so that the pool's timers
// run on a paused clock in unit tests.
use tokio::time::Instant;

/// The longest the task sleeps between looks at its timers, so that parameters changed
/// at runtime take effect soon.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// What happened to a checked-out connection while it was out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Fine,
    /// Broken: close it and drop the host's pool.
    NetworkError,
    /// A reply may still be on its way: close it, keep the pool.
    TimedOut,
}

/// Messages the task serves before any checkout.
pub(crate) enum Event {
    CheckIn {
        conn: Connection,
        outcome: Outcome,
    },
    Drop {
        reply: Option<oneshot::Sender<DropCounts>>,
        reason: &'static str,
    },
    Connected {
        generation: u64,
        result: Result<Connection, PoolError>,
    },
    Checked {
        generation: u64,
        result: Result<Connection, PoolError>,
    },
    /// Answered once every event sent before it has been handled and published.
    Sync(oneshot::Sender<()>),
}

pub(crate) struct CheckoutRequest {
    pub reply: oneshot::Sender<Result<PooledConnection, PoolError>>,
}

/// How the rest of the server reaches a host pool task.
#[derive(Clone)]
pub(crate) struct HostHandle {
    pub id: u64,
    /// `host:port` as connPoolStats prints it, formatted once.
    pub label: Arc<str>,
    pub checkouts: mpsc::UnboundedSender<CheckoutRequest>,
    pub events: mpsc::UnboundedSender<Event>,
    pub counters: Arc<HostCounters>,
}

struct HostPool {
    id: u64,
    host: HostAndPort,
    /// The named pool this host pool belongs to, for log lines.
    pool_name: Arc<str>,
    named: Weak<NamedPool>,
    shared: Arc<Shared>,
    counters: Arc<HostCounters>,
    events_tx: mpsc::UnboundedSender<Event>,
    generation: u64,
    /// Idle connections, most recently used last.
    available: Vec<Connection>,
    in_use: usize,
    /// Connects of the current generation still under way.
    connecting: usize,
    /// Health checks of the current generation still under way.
    checking: usize,
    waiters: VecDeque<CheckoutRequest>,
    /// Whether to keep MinSize connections open. Off after a drop or a failed connect,
    /// until the next checkout asks for this host again.
    keep_min: bool,
    last_active: Instant,
}

pub(crate) fn spawn(
    id: u64,
    host: HostAndPort,
    named: &Arc<NamedPool>,
    shared: Arc<Shared>,
) -> HostHandle {
    let (checkouts, checkout_rx) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    let counters = Arc::new(HostCounters::default());
    let label: Arc<str> = host.to_string().into();
    let pool = HostPool {
        id,
        host,
        pool_name: named.name.clone(),
        named: Arc::downgrade(named),
        shared,
        counters: counters.clone(),
        events_tx: events.clone(),
        generation: 0,
        available: Vec::new(),
        in_use: 0,
        connecting: 0,
        checking: 0,
        waiters: VecDeque::new(),
        keep_min: true,
        last_active: Instant::now(),
    };
    tokio::spawn(pool.run(checkout_rx, events_rx));
    HostHandle {
        id,
        label,
        checkouts,
        events,
        counters,
    }
}

impl HostPool {
    async fn run(
        mut self,
        mut checkout_rx: mpsc::UnboundedReceiver<CheckoutRequest>,
        mut events_rx: mpsc::UnboundedReceiver<Event>,
    ) {
        loop {
            self.serve_waiters();
            self.publish();
            let wake = self.next_wake();
            tokio::select! {
                // Check-ins, drops and finished connects first: a drop must not wait
                // behind a flood of checkouts, and a returned connection should serve
                // the oldest waiter.
                biased;
                Some(event) = events_rx.recv() => self.handle(event),
                request = checkout_rx.recv() => match request {
                    Some(request) => {
                        self.last_active = Instant::now();
                        self.keep_min = true;
                        self.waiters.push_back(request);
                    }
                    // The manager is gone: nothing can reach this pool any more.
                    None => return,
                },
                _ = tokio::time::sleep_until(wake) => {
                    if self.maintain() {
                        self.shut_down(checkout_rx);
                        return;
                    }
                }
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::CheckIn { mut conn, outcome } => {
                self.in_use -= 1;
                self.last_active = Instant::now();
                if conn.generation != self.generation {
                    return; // dropped while out: closed here
                }
                match outcome {
                    Outcome::Fine => {
                        conn.idle_since = Instant::now();
                        self.available.push(conn);
                    }
                    Outcome::TimedOut => {}
                    Outcome::NetworkError => {
                        drop(conn);
                        let counts = self.drop_all();
                        tracing::info!(target: "CONNPOOL", id = 22572, ctx = &*self.pool_name,
                            hostAndPort = %self.host, reason = "network error on a returned connection",
                            closedNow = counts.closed_now as i64,
                            closeOnReturn = counts.close_on_return as i64,
                            waitingRequestsFailed = counts.waiters_failed as i64,
                            "Dropping all pooled connections");
                    }
                }
            }
            Event::Sync(reply) => {
                self.serve_waiters();
                self.publish();
                let _ = reply.send(());
            }
            Event::Drop { reply, reason } => {
                // The idle connections leave the pool now; their sockets are closed by
                // a task of their own right after, so neither the caller nor this task
                // waits for the closes (each is a deregistration and a close call).
                let idle = std::mem::take(&mut self.available);
                let mut counts = self.drop_all();
                counts.closed_now = idle.len();
                // Published before answering, so the caller's next stats see the drop.
                self.publish();
                tracing::debug!(target: "CONNPOOL", ctx = &*self.pool_name, hostAndPort = %self.host,
                    reason, "Dropped host pool");
                // Spawned before the answer: tokio runs the task woken last first on
                // this worker, so the caller (woken by the answer) goes ahead of the
                // closes and replies to its client before they run.
                if !idle.is_empty() {
                    tokio::spawn(async move { drop(idle) });
                }
                if let Some(reply) = reply {
                    let _ = reply.send(counts);
                }
            }
            Event::Connected { generation, result } => {
                if generation != self.generation {
                    return; // started before a drop: discarded
                }
                self.connecting -= 1;
                match result {
                    Ok(mut conn) => {
                        conn.generation = generation;
                        conn.idle_since = Instant::now();
                        self.available.push(conn);
                    }
                    Err(e) => {
                        // Like mongod: a failed connect fails everyone waiting, and the
                        // pool stops reconnecting until asked again.
                        self.keep_min = false;
                        for waiter in self.waiters.drain(..) {
                            let _ = waiter.reply.send(Err(e.clone()));
                        }
                    }
                }
            }
            Event::Checked { generation, result } => {
                if generation != self.generation {
                    return;
                }
                self.checking -= 1;
                match result {
                    Ok(mut conn) => {
                        self.counters.add_refreshed();
                        conn.idle_since = Instant::now();
                        self.available.push(conn);
                    }
                    Err(PoolError::Timeout(_)) => {}
                    Err(e) => {
                        let counts = self.drop_all();
                        tracing::info!(target: "CONNPOOL", id = 22572, ctx = &*self.pool_name,
                            hostAndPort = %self.host, reason = %e,
                            closedNow = counts.closed_now as i64,
                            closeOnReturn = counts.close_on_return as i64,
                            waitingRequestsFailed = counts.waiters_failed as i64,
                            "Dropping all pooled connections");
                    }
                }
            }
        }
    }

    /// The drop of SPEC section 4: new generation, idle connections closed now,
    /// checked-out ones closed on return, waiters failed, connects in flight discarded.
    fn drop_all(&mut self) -> DropCounts {
        self.generation += 1;
        self.waiters.retain(|w| !w.reply.is_closed());
        let counts = DropCounts {
            closed_now: self.available.len(),
            close_on_return: self.in_use,
            waiters_failed: self.waiters.len(),
            connecting_discarded: self.connecting + self.checking,
        };
        self.available.clear();
        for waiter in self.waiters.drain(..) {
            let _ = waiter.reply.send(Err(PoolError::Dropped(format!(
                "Pooled connections dropped for {}",
                self.host
            ))));
        }
        self.connecting = 0;
        self.checking = 0;
        self.keep_min = false;
        counts
    }

    /// Hands idle connections to waiters and starts the connects that are needed.
    fn serve_waiters(&mut self) {
        // Checkouts that gave up (timed out) need neither a connection nor a connect.
        self.waiters.retain(|w| !w.reply.is_closed());
        while let Some(waiter) = self.waiters.pop_front() {
            if waiter.reply.is_closed() {
                continue; // gave up (checkout timeout)
            }
            let Some(conn) = self.available.pop() else {
                self.waiters.push_front(waiter);
                break;
            };
            self.in_use += 1;
            let pooled = PooledConnection {
                conn: Some(conn),
                events: self.events_tx.clone(),
                outcome: Outcome::Fine,
            };
            if let Err(Ok(mut pooled)) = waiter.reply.send(Ok(pooled)) {
                // Gave up just now: take it back without a check-in round trip.
                self.in_use -= 1;
                if let Some(conn) = pooled.conn.take() {
                    self.available.push(conn);
                }
            }
        }
        let limits = self.shared.settings.limits();
        let mut total = self.in_use + self.available.len() + self.connecting + self.checking;
        let for_waiters = self.waiters.len().saturating_sub(self.connecting);
        let for_min = if self.keep_min {
            limits.min_size.saturating_sub(total)
        } else {
            0
        };
        let mut wanted = for_waiters.max(for_min);
        while wanted > 0 && self.connecting < limits.max_connecting && total < limits.max_size {
            self.start_connect(limits.refresh_timeout);
            total += 1;
            wanted -= 1;
        }
    }

    fn start_connect(&mut self, timeout: Duration) {
        self.connecting += 1;
        self.counters.add_created();
        let generation = self.generation;
        let host = self.host.clone();
        let shared = self.shared.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let setup = shared.setup.read().clone();
            let my_host = shared.my_host.read().clone();
            let result =
                Connection::connect_via(&shared.connector, &host, &my_host, timeout, setup).await;
            let _ = events.send(Event::Connected { generation, result });
        });
    }

    /// Health-checks idle connections that waited past RefreshRequirementMS. Returns
    /// true when the pool has been unused for HostTimeoutMS and should go away.
    fn maintain(&mut self) -> bool {
        let limits = self.shared.settings.limits();
        let now = Instant::now();
        let mut i = 0;
        while i < self.available.len() {
            if now.duration_since(self.available[i].idle_since) >= limits.refresh_requirement {
                let conn = self.available.swap_remove(i);
                self.start_check(conn, limits.refresh_timeout);
            } else {
                i += 1;
            }
        }
        self.in_use == 0
            && self.waiters.is_empty()
            && now.duration_since(self.last_active) >= limits.host_timeout
    }

    fn start_check(&mut self, mut conn: Connection, timeout: Duration) {
        self.checking += 1;
        let generation = self.generation;
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let result = conn
                .run_command(doc! {"hello": 1, "$db": "admin"}, timeout)
                .await
                .and_then(|reply| match reply.get_f64("ok") {
                    Ok(1.0) => Ok(()),
                    _ => Err(PoolError::Network(format!("health check failed: {reply}"))),
                })
                .map(|()| conn);
            let _ = events.send(Event::Checked { generation, result });
        });
    }

    fn next_wake(&self) -> Instant {
        let limits = self.shared.settings.limits();
        let now = Instant::now();
        let mut wake = now + MAX_SLEEP;
        if let Some(oldest) = self.available.iter().map(|c| c.idle_since).min() {
            wake = wake.min(oldest + limits.refresh_requirement);
        }
        if self.in_use == 0 && self.waiters.is_empty() {
            wake = wake.min(self.last_active + limits.host_timeout);
        }
        wake.max(now)
    }

    fn publish(&self) {
        self.counters.set(
            self.in_use,
            self.available.len(),
            self.connecting + self.checking,
        );
        self.counters.set_queued(self.waiters.len());
    }

    /// Host timeout: leave the registry, then turn away anything already queued (the
    /// manager retries those on a fresh pool).
    fn shut_down(mut self, mut checkout_rx: mpsc::UnboundedReceiver<CheckoutRequest>) {
        if let Some(named) = self.named.upgrade() {
            named.forget(&self.host, self.id);
        }
        checkout_rx.close();
        while let Ok(request) = checkout_rx.try_recv() {
            let _ = request.reply.send(Err(PoolError::Gone));
        }
        tracing::info!(target: "CONNPOOL", id = 22576, ctx = &*self.pool_name, hostAndPort = %self.host,
            closing = self.available.len() as i64,
            "Ending idle connection pool because the pool meets constraints");
        self.available.clear();
        self.generation += 1;
        self.connecting = 0;
        self.checking = 0;
        self.publish();
    }
}
