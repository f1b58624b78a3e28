//! The pool actor on tokio's paused clock: refresh, host timeout, generations, check-in
//! and drop semantics, waiters. The peers are in-memory (a [`Connector`] seam), so time
//! moves only when the test advances it or every task is idle, and no test waits on a
//! real clock. The areas follow the CMAP specification's pool tests (check-in reuse, FIFO
//! waiters, wait-queue timeout, clear/generation, min size, idle pruning).

use super::*;
use crate::wire::{Body, Message, WireCodec};
use bson::{doc, Bson};
use futures::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use tokio_util::codec::Framed;

/// What an in-memory peer does with the hellos after a connection's first (health
/// checks) and whether it accepts connections at all.
#[derive(Default)]
struct Peer {
    connects: AtomicUsize,
    open: AtomicUsize,
    hellos: AtomicUsize,
    pings: AtomicUsize,
    refuse: AtomicBool,
    hang_checks: AtomicBool,
    /// Hang up instead of answering a ping.
    close_on_ping: AtomicBool,
    /// Milliseconds a connect takes (paused clock).
    connect_delay_ms: AtomicU64,
}

impl Peer {
    fn count(c: &AtomicUsize) -> usize {
        c.load(Ordering::SeqCst)
    }

    async fn serve(self: Arc<Self>, stream: tokio::io::DuplexStream) {
        let mut framed = Framed::new(stream, WireCodec);
        let mut first = true;
        while let Some(Ok(incoming)) = framed.next().await {
            let Ok(request) = incoming.message else { break };
            let Body::Msg(msg) = request.body else { break };
            let command = msg.into_command();
            let name = command.keys().next().cloned().unwrap_or_default();
            if name == "hello" {
                self.hellos.fetch_add(1, Ordering::SeqCst);
                if !first && self.hang_checks.load(Ordering::SeqCst) {
                    continue; // never answered; the socket stays open
                }
            } else if name == "ping" {
                self.pings.fetch_add(1, Ordering::SeqCst);
                if self.close_on_ping.load(Ordering::SeqCst) {
                    break;
                }
            }
            first = false;
            let reply = Message {
                request_id: 0,
                response_to: request.request_id,
                compressor: None,
                body: Body::Msg(OpMsg::from_body(doc! {"ok": 1.0})),
            };
            if framed.send(&reply).await.is_err() {
                break;
            }
        }
        self.open.fetch_sub(1, Ordering::SeqCst);
    }

    fn connector(self: &Arc<Self>) -> Connector {
        let peer = self.clone();
        Arc::new(move |host: HostAndPort| {
            let peer = peer.clone();
            Box::pin(async move {
                let delay = peer.connect_delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if peer.refuse.load(Ordering::SeqCst) {
                    return Err(PoolError::HostUnreachable(format!(
                        "Error connecting to {host}: refused"
                    )));
                }
                peer.connects.fetch_add(1, Ordering::SeqCst);
                peer.open.fetch_add(1, Ordering::SeqCst);
                let (client, server) = tokio::io::duplex(64 * 1024);
                tokio::spawn(peer.clone().serve(server));
                Ok(Box::new(client) as Box<dyn Transport>)
            })
        })
    }
}

const POOL: &str = REPL_POOL;

fn host() -> HostAndPort {
    "peer.test:27017".parse().unwrap()
}

fn manager(peer: &Arc<Peer>, settings: &[(&str, i32)]) -> PoolManager {
    let params = Parameters::default();
    let updates: Vec<(String, Bson)> = settings
        .iter()
        .map(|(name, value)| (name.to_string(), Bson::Int32(*value)))
        .collect();
    params.set_many(&updates, true).unwrap();
    PoolManager::with_connector(&params, peer.connector())
}

fn counts(pools: &PoolManager) -> Snapshot {
    pools.totals()
}

/// Lets every task that can run, run (the paused clock does not move while they do).
async fn settle(pools: &PoolManager) {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    pools.sync(POOL, &host()).await;
}

async fn checkout(pools: &PoolManager) -> Result<PooledConnection, PoolError> {
    pools.checkout(POOL, &host(), Duration::from_secs(20)).await
}

#[tokio::test(start_paused = true)]
async fn a_returned_connection_is_reused_not_reopened() {
    let peer = Arc::new(Peer::default());
    let pools = manager(&peer, &[]);
    let mut conn = checkout(&pools).await.unwrap();
    conn.run_command(doc! {"ping": 1, "$db": "admin"}, Duration::from_secs(5))
        .await
        .unwrap();
    let generation = conn.generation();
    drop(conn);
    settle(&pools).await;
    let s = counts(&pools);
    assert_eq!((s.in_use, s.available, s.created), (0, 1, 1));
    let again = checkout(&pools).await.unwrap();
    assert_eq!(again.generation(), generation);
    assert_eq!(Peer::count(&peer.connects), 1);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_health_checked_after_refresh_requirement() {
    let peer = Arc::new(Peer::default());
    let pools = manager(
        &peer,
        &[
            (params::POOL_REFRESH_REQUIREMENT_MS, 1_000),
            (params::POOL_REFRESH_TIMEOUT_MS, 500),
        ],
    );
    drop(checkout(&pools).await.unwrap());
    settle(&pools).await;
    assert_eq!(Peer::count(&peer.hellos), 1, "the handshake only");
    // Just short of the requirement: nothing is checked.
    tokio::time::advance(Duration::from_millis(999)).await;
    settle(&pools).await;
    assert_eq!(Peer::count(&peer.hellos), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    settle(&pools).await;
    assert_eq!(Peer::count(&peer.hellos), 2, "one health check");
    let s = counts(&pools);
    assert_eq!((s.available, s.refreshed, s.created), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_health_check_that_times_out_closes_that_connection_only() {
    let peer = Arc::new(Peer::default());
    let pools = manager(
        &peer,
        &[
            (params::POOL_REFRESH_REQUIREMENT_MS, 1_000),
            (params::POOL_REFRESH_TIMEOUT_MS, 500),
        ],
    );
    drop(checkout(&pools).await.unwrap());
    settle(&pools).await;
    peer.hang_checks.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_millis(1_000)).await;
    settle(&pools).await;
    assert_eq!(counts(&pools).refreshing, 1, "the check is under way");
    tokio::time::advance(Duration::from_millis(500)).await;
    settle(&pools).await;
    // The timed-out connection is closed and, for MinSize (1), replaced; the pool is
    // not dropped (same generation).
    let s = counts(&pools);
    assert_eq!((s.in_use, s.available, s.refreshing), (0, 1, 0), "{s:?}");
    assert_eq!((s.created, s.refreshed), (2, 0));
    assert_eq!(Peer::count(&peer.connects), 2);
    assert_eq!(
        Peer::count(&peer.open),
        1,
        "the timed-out connection is closed"
    );
    assert_eq!(pools.host_pool_count(), 1);
    let conn = checkout(&pools).await.unwrap();
    assert_eq!(conn.generation(), 0, "no drop happened");
}

#[tokio::test(start_paused = true)]
async fn an_unused_host_pool_ends_after_host_timeout() {
    let peer = Arc::new(Peer::default());
    let pools = manager(
        &peer,
        &[
            (params::POOL_HOST_TIMEOUT_MS, 5_000),
            (params::POOL_REFRESH_REQUIREMENT_MS, 2_000),
            (params::POOL_REFRESH_TIMEOUT_MS, 1_000),
        ],
    );
    drop(checkout(&pools).await.unwrap());
    settle(&pools).await;
    tokio::time::advance(Duration::from_millis(4_999)).await;
    settle(&pools).await;
    assert_eq!(pools.host_pool_count(), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    settle(&pools).await;
    assert_eq!(pools.host_pool_count(), 0);
    assert_eq!(Peer::count(&peer.open), 0, "its idle connection is closed");
    // A later checkout makes a fresh pool.
    drop(checkout(&pools).await.unwrap());
    assert_eq!(pools.host_pool_count(), 1);
    assert_eq!(Peer::count(&peer.connects), 2);
}

#[tokio::test(start_paused = true)]
async fn a_checked_out_connection_keeps_its_host_pool_alive() {
    let peer = Arc::new(Peer::default());
    let pools = manager(
        &peer,
        &[
            (params::POOL_HOST_TIMEOUT_MS, 5_000),
            (params::POOL_REFRESH_REQUIREMENT_MS, 2_000),
            (params::POOL_REFRESH_TIMEOUT_MS, 1_000),
        ],
    );
    let conn = checkout(&pools).await.unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    settle(&pools).await;
    assert_eq!(pools.host_pool_count(), 1);
    drop(conn);
    settle(&pools).await;
    assert_eq!(counts(&pools).available, 1);
}

#[tokio::test(start_paused = true)]
async fn a_drop_bumps_the_generation_and_closes_what_comes_back() {
    let peer = Arc::new(Peer::default());
    let pools = manager(&peer, &[]);
    let out = checkout(&pools).await.unwrap();
    let idle = checkout(&pools).await.unwrap();
    drop(idle);
    settle(&pools).await;
    assert_eq!(Peer::count(&peer.open), 2);
    let dropped = pools.drop_connections(&[host()], "test").await;
    assert_eq!(
        dropped,
        DropCounts {
            closed_now: 1,
            close_on_return: 1,
            waiters_failed: 0,
            connecting_discarded: 0,
        }
    );
    settle(&pools).await;
    assert_eq!(Peer::count(&peer.open), 1, "the idle one is closed at once");
    // The checked-out one still works, and is closed when it comes back.
    let mut out = out;
    assert_eq!(out.generation(), 0);
    out.run_command(doc! {"ping": 1, "$db": "admin"}, Duration::from_secs(5))
        .await
        .unwrap();
    drop(out);
    settle(&pools).await;
    assert_eq!(Peer::count(&peer.open), 0);
    let s = counts(&pools);
    assert_eq!((s.in_use, s.available), (0, 0));
    let fresh = checkout(&pools).await.unwrap();
    assert_eq!(fresh.generation(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_connect_under_way_at_a_drop_is_discarded() {
    let peer = Arc::new(Peer::default());
    peer.connect_delay_ms.store(1_000, Ordering::SeqCst);
    let pools = Arc::new(manager(&peer, &[]));
    let waiter = tokio::spawn({
        let pools = pools.clone();
        async move { checkout(&pools).await.map(|c| c.generation()) }
    });
    settle(&pools).await;
    assert_eq!(counts(&pools).refreshing, 1);
    let dropped = pools.drop_connections(&[host()], "test").await;
    assert_eq!(
        (dropped.waiters_failed, dropped.connecting_discarded),
        (1, 1)
    );
    assert!(matches!(waiter.await.unwrap(), Err(PoolError::Dropped(_))));
    tokio::time::advance(Duration::from_millis(1_000)).await;
    settle(&pools).await;
    assert_eq!(Peer::count(&peer.connects), 1, "the connect finished");
    assert_eq!(Peer::count(&peer.open), 0, "and its connection was closed");
    let s = counts(&pools);
    assert_eq!((s.in_use, s.available, s.refreshing), (0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_first_come_first_served_and_time_out() {
    let peer = Arc::new(Peer::default());
    let pools = Arc::new(manager(&peer, &[(params::POOL_MAX_SIZE, 1)]));
    let held = checkout(&pools).await.unwrap();
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..2 {
        let (task_pools, order) = (pools.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            let conn = task_pools
                .checkout(POOL, &host(), Duration::from_secs(10))
                .await
                .unwrap();
            order.lock().push(i);
            drop(conn);
        }));
        settle(&pools).await;
        assert_eq!(pools.queued_checkouts(), i + 1);
    }
    drop(held);
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(*order.lock(), vec![0, 1]);
    assert_eq!(
        Peer::count(&peer.connects),
        1,
        "MaxSize 1: one connection served all"
    );
    // With the one connection out, a checkout gives up after its time limit.
    let _held = checkout(&pools).await.unwrap();
    let started = tokio::time::Instant::now();
    let late = pools
        .checkout(POOL, &host(), Duration::from_millis(300))
        .await;
    assert!(
        matches!(late, Err(PoolError::CheckoutTimeout(_))),
        "{:?}",
        late.err()
    );
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    settle(&pools).await;
    assert_eq!(
        pools.queued_checkouts(),
        0,
        "the timed-out waiter left the queue"
    );
}

#[tokio::test(start_paused = true)]
async fn a_network_error_on_a_returned_connection_drops_the_host_pool() {
    let peer = Arc::new(Peer::default());
    let pools = manager(&peer, &[]);
    let mut broken = checkout(&pools).await.unwrap();
    let idle = checkout(&pools).await.unwrap();
    drop(idle);
    settle(&pools).await;
    // The peer hangs up on `broken`'s next command.
    peer.close_on_ping.store(true, Ordering::SeqCst);
    assert!(broken
        .run_command(doc! {"ping": 1, "$db": "admin"}, Duration::from_secs(5))
        .await
        .is_err());
    drop(broken);
    settle(&pools).await;
    let s = counts(&pools);
    assert_eq!((s.in_use, s.available), (0, 0), "{s:?}");
    assert_eq!(checkout(&pools).await.unwrap().generation(), 1);
}

#[tokio::test(start_paused = true)]
async fn min_size_is_kept_open_until_a_drop() {
    let peer = Arc::new(Peer::default());
    let pools = manager(&peer, &[(params::POOL_MIN_SIZE, 3)]);
    drop(checkout(&pools).await.unwrap());
    settle(&pools).await;
    settle(&pools).await;
    assert_eq!(counts(&pools).available, 3);
    pools.drop_connections(&[host()], "test").await;
    settle(&pools).await;
    assert_eq!(Peer::count(&peer.open), 0);
    assert_eq!(
        counts(&pools).created,
        3,
        "nothing reconnects by itself after a drop"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_connect_fails_every_waiter() {
    let peer = Arc::new(Peer::default());
    peer.refuse.store(true, Ordering::SeqCst);
    let pools = manager(&peer, &[]);
    let result = checkout(&pools).await;
    assert!(
        matches!(result, Err(PoolError::HostUnreachable(_))),
        "{:?}",
        result.err()
    );
    peer.refuse.store(false, Ordering::SeqCst);
    assert!(
        checkout(&pools).await.is_ok(),
        "a later checkout connects again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_large_message_does_not_keep_its_buffer_on_the_connection() {
    let peer = Arc::new(Peer::default());
    let pools = manager(&peer, &[]);
    let mut conn = checkout(&pools).await.unwrap();
    let large = "x".repeat(1024 * 1024);
    conn.run_command(
        doc! {"ping": 1, "pad": large, "$db": "admin"},
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let conn = conn.conn.as_mut().unwrap();
    assert!(
        !conn.holds_send_buffer(512 * 1024),
        "the connection keeps the 1 MiB message's send buffer"
    );
}
