//! Outgoing pools against local listeners that play the peer: each drop rule of SPEC
//! section 4, network error vs timeout, refresh, host timeout, and a drop/checkout race,
//! with connPoolStats checked after every step.

mod common;
mod peer;

use bson::{doc, Bson, Document};
use common::{admin, ok, Ferrod};
use peer::{Action, Peer};
use std::time::{Duration, Instant};

const REPL_POOL: &str = "NetworkInterfaceTL-ReplNetwork";

fn start(extra: &[&str]) -> Ferrod {
    let mut args = vec!["--setParameter", "enableTestCommands=1"];
    args.extend_from_slice(extra);
    Ferrod::start(&args)
}

fn code(reply: &Document) -> i32 {
    assert!(!ok(reply), "expected an error, got {reply}");
    reply.get_i32("code").unwrap()
}

/// Checks out through the test command; `extra` adds count/holdMs/command/timeoutMS.
fn checkout(server: &Ferrod, host: &str, extra: Document) -> Document {
    let mut cmd = doc! {"_ferrodPoolCheckout": host};
    cmd.extend(extra);
    admin(server, cmd)
}

fn drop_connections(server: &Ferrod, hosts: &[&str]) -> Document {
    let reply = admin(server, doc! {"dropConnections": 1, "hostAndPort": hosts});
    assert!(ok(&reply), "{reply}");
    reply
}

/// Waits until the host pool task has handled everything sent to it so far and published
/// its counters: a checkout of no connections replies only after the pool's sync.
fn pool_barrier(server: &Ferrod, host: &str) {
    assert!(ok(&checkout(server, host, doc! {"count": 0})));
}

/// Waits until `n` checkouts are queued for a connection (the pool task's own gauge).
fn wait_queued(server: &Ferrod, n: i64) {
    common::eventually(Duration::from_secs(10), "queued checkouts", || {
        let runtime = admin(server, doc! {"_ferrodRuntimeStats": 1});
        (int(&runtime, "queuedCheckouts") == n).then_some(())
    });
}

fn int(d: &Document, key: &str) -> i64 {
    match d.get(key) {
        Some(Bson::Int32(n)) => *n as i64,
        Some(Bson::Int64(n)) => *n,
        other => panic!("{key} is {other:?} in {d}"),
    }
}

/// Per-host counters of the replica-set pool.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct HostCounts {
    in_use: i64,
    available: i64,
    created: i64,
    refreshing: i64,
}

impl HostCounts {
    fn open(&self) -> i64 {
        self.in_use + self.available + self.refreshing
    }
}

/// Runs connPoolStats, checks its shape and invariants, and returns the host's counters
/// (None if the pool does not list the host).
fn stats(server: &Ferrod, host: &str) -> Option<HostCounts> {
    let s = admin(server, doc! {"connPoolStats": 1});
    assert!(ok(&s), "{s}");
    check_invariants(&s);
    let pool = s
        .get_document("pools")
        .unwrap()
        .get_document(REPL_POOL)
        .ok()?;
    let h = pool.get_document(host).ok()?;
    let by_host = s.get_document("hosts").unwrap().get_document(host).unwrap();
    assert_eq!(int(h, "created"), int(by_host, "created"));
    Some(HostCounts {
        in_use: int(h, "inUse"),
        available: int(h, "available"),
        created: int(h, "created"),
        refreshing: int(h, "refreshing"),
    })
}

fn check_invariants(s: &Document) {
    for key in [
        "numClientConnections",
        "numAScopedConnections",
        "totalRefreshing",
    ] {
        int(s, key);
    }
    assert!(s.get_document("replicaSets").is_ok());
    let (in_use, available, created) = (
        int(s, "totalInUse"),
        int(s, "totalAvailable"),
        int(s, "totalCreated"),
    );
    assert!(in_use + available <= created, "totals inconsistent: {s}");
    let mut sum_created = 0;
    for (_, pool) in s.get_document("pools").unwrap() {
        let pool = pool.as_document().unwrap();
        assert!(int(pool, "poolInUse") + int(pool, "poolAvailable") <= int(pool, "poolCreated"));
        for (key, host) in pool {
            if let Bson::Document(host) = host {
                assert!(key.contains(':'), "host key {key}");
                assert!(
                    int(host, "created") > 0,
                    "a pool is listed once it created one"
                );
                assert!(int(host, "inUse") + int(host, "available") <= int(host, "created"));
                sum_created += int(host, "created");
            }
        }
    }
    assert_eq!(sum_created, created, "{s}");
}

fn wait_stats(
    server: &Ferrod,
    host: &str,
    what: &str,
    f: impl Fn(Option<HostCounts>) -> bool,
) -> Option<HostCounts> {
    common::wait_until(Duration::from_secs(10), what, || {
        let s = stats(server, host);
        if f(s) {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
}

/// Runs `f` on its own thread (a second client of ferrod) and hands back its result.
fn in_background<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(f)
}

#[test]
fn pool_test_commands_need_enable_test_commands() {
    let server = Ferrod::start(&[]);
    let reply = admin(&server, doc! {"_ferrodPoolCheckout": "127.0.0.1:1"});
    assert_eq!(code(&reply), 59);
    assert_eq!(reply.get_str("codeName").unwrap(), "CommandNotFound");
}

#[test]
fn a_pool_appears_once_it_has_created_a_connection() {
    let server = start(&[]);
    let peer = Peer::start();
    assert_eq!(stats(&server, &peer.host), None);
    let reply = checkout(&server, &peer.host, doc! {"command": {"ping": 1}});
    assert!(ok(&reply), "{reply}");
    assert_eq!(int(&reply, "checkedOut"), 1);
    let after = stats(&server, &peer.host).expect("pool listed");
    assert_eq!(after.in_use, 0);
    assert_eq!(after.available, 1);
    assert_eq!(after.created, 1);
    // serverStatus carries the same totals.
    let status = admin(&server, doc! {"serverStatus": 1});
    let totals = status.get_document("connPoolStats").unwrap();
    assert_eq!(int(totals, "totalCreated"), 1);
    assert_eq!(int(totals, "totalAvailable"), 1);
}

#[test]
fn drop_closes_idle_connections_at_once_and_logs_one_line() {
    let server = start(&[]);
    let peer = Peer::start();
    assert!(ok(&checkout(&server, &peer.host, doc! {"count": 3})));
    let before = stats(&server, &peer.host).unwrap();
    assert_eq!((before.in_use, before.available), (0, 3));
    peer.wait_until("3 open", Duration::from_secs(5), |p| p.open() == 3);

    drop_connections(&server, &[&peer.host]);
    let after = stats(&server, &peer.host).unwrap();
    assert_eq!(after.open(), 0, "{after:?}");
    assert_eq!(after.created, 3);
    peer.wait_until("idle connections closed", Duration::from_secs(5), |p| {
        p.open() == 0
    });

    let line = server.wait_for_log("Dropping all pooled connections", Duration::from_secs(5));
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["c"], "CONNPOOL");
    assert_eq!(line["attr"]["hostAndPort"][0], peer.host.as_str());
    assert_eq!(line["attr"]["closedNow"], 3);
    assert_eq!(line["attr"]["closeOnReturn"], 0);
    assert_eq!(line["attr"]["waitingRequestsFailed"], 0);
    let drop_lines = server
        .log_lines()
        .iter()
        .filter(|l| l.contains("Dropping all pooled connections"))
        .count();
    assert_eq!(drop_lines, 1);
}

#[test]
fn drop_leaves_checked_out_connections_working_and_closes_them_on_return() {
    let server = start(&[]);
    let peer = Peer::start();
    let host = peer.host.clone();
    let port = server.port;
    let holder = in_background(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        common::op_msg_roundtrip(
            &mut s,
            &doc! {"_ferrodPoolCheckout": host, "holdMs": 1500, "command": {"ping": 1}, "$db": "admin"},
        )
    });
    wait_stats(&server, &peer.host, "one in use", |s| {
        s.is_some_and(|s| s.in_use == 1)
    });
    drop_connections(&server, &[&peer.host]);
    let during = stats(&server, &peer.host).unwrap();
    assert_eq!(
        during.in_use, 1,
        "a checked-out connection counts until returned"
    );
    assert_eq!(during.available + during.refreshing, 0);
    assert_eq!(
        peer.open(),
        1,
        "the checked-out connection is not interrupted"
    );

    let reply = holder.join().unwrap();
    assert!(ok(&reply), "the command after the drop still ran: {reply}");
    let after = stats(&server, &peer.host).unwrap();
    assert_eq!(after.open(), 0, "{after:?}");
    peer.wait_until("closed on return", Duration::from_secs(5), |p| {
        p.open() == 0
    });
    let line = server.wait_for_log("\"closeOnReturn\":1", Duration::from_secs(5));
    assert!(line.contains(&peer.host));
}

#[test]
fn drop_fails_queued_checkouts_with_145() {
    let server = start(&["--setParameter", "ShardingTaskExecutorPoolMaxSize=1"]);
    let peer = Peer::start();
    let (host, port) = (peer.host.clone(), server.port);
    let holder = in_background(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        common::op_msg_roundtrip(
            &mut s,
            &doc! {"_ferrodPoolCheckout": host, "holdMs": 2500, "$db": "admin"},
        )
    });
    wait_stats(&server, &peer.host, "one in use", |s| {
        s.is_some_and(|s| s.in_use == 1)
    });
    let (host, port) = (peer.host.clone(), server.port);
    let waiter = in_background(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        common::op_msg_roundtrip(
            &mut s,
            &doc! {"_ferrodPoolCheckout": host, "timeoutMS": 8000, "$db": "admin"},
        )
    });
    // The second checkout can only queue: MaxSize is 1 and the one connection is out.
    wait_queued(&server, 1);
    assert!(
        !waiter.is_finished(),
        "the second checkout should be waiting"
    );
    drop_connections(&server, &[&peer.host]);
    let reply = waiter.join().unwrap();
    assert_eq!(code(&reply), 145, "{reply}");
    assert_eq!(
        reply.get_str("codeName").unwrap(),
        "PooledConnectionsDropped"
    );
    let during = stats(&server, &peer.host).unwrap();
    assert_eq!(
        (during.in_use, during.available + during.refreshing),
        (1, 0)
    );
    assert!(ok(&holder.join().unwrap()));
    assert_eq!(stats(&server, &peer.host).unwrap().open(), 0);
    server.wait_for_log("\"waitingRequestsFailed\":1", Duration::from_secs(5));
}

#[test]
fn drop_discards_connections_still_being_established() {
    let server = start(&[]);
    let peer = Peer::start();
    peer.set_handshake_delay(Duration::from_millis(1200));
    let (host, port) = (peer.host.clone(), server.port);
    let waiter = in_background(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        common::op_msg_roundtrip(
            &mut s,
            &doc! {"_ferrodPoolCheckout": host, "timeoutMS": 8000, "$db": "admin"},
        )
    });
    wait_stats(&server, &peer.host, "a connect under way", |s| {
        s.is_some_and(|s| s.refreshing == 1)
    });
    peer.wait_until("handshake started", Duration::from_secs(5), |p| {
        p.hellos() == 1
    });
    drop_connections(&server, &[&peer.host]);
    assert_eq!(code(&waiter.join().unwrap()), 145);
    assert_eq!(stats(&server, &peer.host).unwrap().open(), 0);
    // The handshake finishes after the drop: the pool closes that connection as soon
    // as its connect reports back, which the peer sees.
    peer.wait_until("discarded connection closed", Duration::from_secs(5), |p| {
        p.open() == 0
    });
    pool_barrier(&server, &peer.host);
    let after = stats(&server, &peer.host).unwrap();
    assert_eq!(after.open(), 0, "{after:?}");
    assert_eq!(after.created, 1);
}

#[test]
fn drop_leaves_other_hosts_untouched() {
    let server = start(&[]);
    let (dropped, kept) = (Peer::start(), Peer::start());
    assert!(ok(&checkout(&server, &dropped.host, doc! {"count": 2})));
    assert!(ok(&checkout(&server, &kept.host, doc! {"count": 2})));
    drop_connections(&server, &[&dropped.host]);
    assert_eq!(stats(&server, &dropped.host).unwrap().open(), 0);
    let kept_stats = stats(&server, &kept.host).unwrap();
    assert_eq!((kept_stats.available, kept_stats.created), (2, 2));
    dropped.wait_until("dropped host closed", Duration::from_secs(5), |p| {
        p.open() == 0
    });
    assert_eq!(kept.open(), 2);
}

#[test]
fn host_names_compare_without_case_and_ipv6_is_bracketed() {
    let server = start(&[]);
    let peer = Peer::start_on("::1");
    assert_eq!(peer.host, format!("[::1]:{}", peer.port));
    assert!(ok(&checkout(&server, &peer.host, doc! {})));
    assert_eq!(stats(&server, &peer.host).unwrap().available, 1);
    let named = Peer::start();
    let upper = format!("LocalHost:{}", named.port);
    let lower = format!("localhost:{}", named.port);
    assert!(ok(&checkout(&server, &upper, doc! {})));
    assert_eq!(
        stats(&server, &lower).unwrap().available,
        1,
        "listed lower-cased"
    );
    drop_connections(&server, &[&upper, &format!("[::1]:{}", peer.port)]);
    assert_eq!(stats(&server, &lower).unwrap().open(), 0);
    assert_eq!(stats(&server, &peer.host).unwrap().open(), 0);
}

#[test]
fn pool_is_rebuilt_on_next_checkout() {
    let server = start(&[]);
    let peer = Peer::start();
    let first = checkout(&server, &peer.host, doc! {});
    drop_connections(&server, &[&peer.host]);
    // Nothing reconnects by itself after a drop: once the pool task has run past the
    // drop (a connect it started would show as refreshing), nothing is open.
    pool_barrier(&server, &peer.host);
    assert_eq!(stats(&server, &peer.host).unwrap().open(), 0);
    assert_eq!(peer.accepted(), 1);
    let second = checkout(&server, &peer.host, doc! {"command": {"ping": 1}});
    assert!(ok(&second), "{second}");
    let gen = |r: &Document| r.get_array("generations").unwrap()[0].as_i64().unwrap();
    assert!(gen(&second) > gen(&first), "{first} {second}");
    let after = stats(&server, &peer.host).unwrap();
    assert_eq!((after.available, after.created), (1, 2));
}

#[test]
fn network_error_on_a_returned_connection_drops_the_host_pool() {
    let server = start(&[]);
    let peer = Peer::start();
    assert!(ok(&checkout(&server, &peer.host, doc! {"count": 2})));
    assert_eq!(stats(&server, &peer.host).unwrap().available, 2);
    peer.on("ping", Action::Close);
    let reply = checkout(&server, &peer.host, doc! {"command": {"ping": 1}});
    assert_eq!(code(&reply), 6, "{reply}");
    // The other, idle connection went too: the whole host pool was dropped.
    let after = stats(&server, &peer.host).unwrap();
    assert_eq!(after.open(), 0, "{after:?}");
    peer.wait_until("all closed", Duration::from_secs(5), |p| p.open() == 0);
    server.wait_for_log(
        "network error on a returned connection",
        Duration::from_secs(5),
    );
}

#[test]
fn timeout_on_a_returned_connection_closes_only_that_connection() {
    let server = start(&[]);
    let peer = Peer::start();
    assert!(ok(&checkout(&server, &peer.host, doc! {"count": 2})));
    peer.on("ping", Action::Hang);
    let reply = checkout(
        &server,
        &peer.host,
        doc! {"command": {"ping": 1}, "timeoutMS": 300},
    );
    assert_eq!(code(&reply), 89, "{reply}");
    let after = stats(&server, &peer.host).unwrap();
    assert_eq!((after.in_use, after.available), (0, 1), "{after:?}");
    peer.wait_until("timed-out connection closed", Duration::from_secs(5), |p| {
        p.open() == 1
    });
}

#[test]
fn idle_connections_are_health_checked_after_refresh_requirement() {
    let server = start(&[
        "--setParameter",
        "ShardingTaskExecutorPoolRefreshRequirementMS=300",
        "--setParameter",
        "ShardingTaskExecutorPoolRefreshTimeoutMS=200",
    ]);
    let peer = Peer::start();
    assert!(ok(&checkout(&server, &peer.host, doc! {})));
    assert_eq!(peer.hellos(), 1);
    peer.wait_until("a health check", Duration::from_secs(5), |p| {
        p.hellos() >= 3
    });
    let s = admin(&server, doc! {"connPoolStats": 1});
    assert!(int(&s, "totalRefreshed") >= 2, "{s}");
    assert_eq!(
        stats(&server, &peer.host).unwrap().created,
        1,
        "checked, not replaced"
    );
    // A check that gets no answer in RefreshTimeoutMS closes the connection.
    peer.on("hello", Action::Hang);
    peer.wait_until("hung check closed", Duration::from_secs(5), |p| {
        p.open() == 0
    });
    wait_stats(&server, &peer.host, "nothing open", |s| {
        s.is_some_and(|s| s.open() == 0)
    });
}

#[test]
fn host_pool_is_removed_after_host_timeout() {
    let server = start(&[
        "--setParameter",
        "ShardingTaskExecutorPoolHostTimeoutMS=1000",
        "--setParameter",
        "ShardingTaskExecutorPoolRefreshRequirementMS=600",
        "--setParameter",
        "ShardingTaskExecutorPoolRefreshTimeoutMS=300",
    ]);
    let peer = Peer::start();
    assert!(ok(&checkout(&server, &peer.host, doc! {"count": 2})));
    assert!(stats(&server, &peer.host).is_some());
    let started = Instant::now();
    wait_stats(&server, &peer.host, "pool removed", |s| s.is_none());
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "removed too early"
    );
    let runtime = admin(&server, doc! {"_ferrodRuntimeStats": 1});
    assert_eq!(int(&runtime, "hostPools"), 0);
    peer.wait_until("connections closed", Duration::from_secs(5), |p| {
        p.open() == 0
    });
    // The next checkout makes a fresh pool.
    assert!(ok(&checkout(&server, &peer.host, doc! {})));
    assert_eq!(stats(&server, &peer.host).unwrap().created, 1);
}

#[test]
fn runtime_changes_to_pool_parameters_take_effect() {
    let server = start(&[]);
    let peer = Peer::start();
    let set = admin(
        &server,
        doc! {"setParameter": 1, "ShardingTaskExecutorPoolMinSize": 3},
    );
    assert!(ok(&set), "{set}");
    assert!(ok(&checkout(&server, &peer.host, doc! {})));
    wait_stats(&server, &peer.host, "MinSize connections", |s| {
        s.is_some_and(|s| s.available == 3)
    });
    let bad = admin(
        &server,
        doc! {"setParameter": 1, "ShardingTaskExecutorPoolHostTimeoutMS": 10},
    );
    assert_eq!(code(&bad), 2);
}

fn thread_count_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn a_thousand_drops_racing_checkouts_and_heartbeats_leave_no_leak() {
    let server = start(&[
        "--setParameter",
        "ShardingTaskExecutorPoolHostTimeoutMS=1000",
        "--setParameter",
        "ShardingTaskExecutorPoolRefreshRequirementMS=600",
        "--setParameter",
        "ShardingTaskExecutorPoolRefreshTimeoutMS=300",
    ]);
    let peer = Peer::start();
    let port = server.port;
    let connect = move || {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    };
    // Every client connection is opened before the baseline is taken.
    let mut dropper = connect();
    let mut monitor = connect();
    let mut workers: Vec<_> = (0..4).map(|_| connect()).collect();
    let mut heartbeat = connect();
    // One round trip on each: the server has accepted them and their tasks run.
    for s in [&mut dropper, &mut monitor, &mut heartbeat]
        .into_iter()
        .chain(workers.iter_mut())
    {
        assert!(ok(&common::op_msg_roundtrip(s, &common::ping_doc())));
    }
    let baseline_fds = open_fds(server.pid());
    let baseline_threads = thread_count_of(server.pid());
    let baseline_tasks = int(
        &common::op_msg_roundtrip(
            &mut monitor,
            &doc! {"_ferrodRuntimeStats": 1, "$db": "admin"},
        ),
        "aliveTasks",
    );

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for (i, mut s) in workers.into_iter().enumerate() {
        let (host, done) = (peer.host.clone(), done.clone());
        threads.push(std::thread::spawn(move || {
            let mut rounds = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let cmd = doc! {"_ferrodPoolCheckout": &host, "count": (i % 3 + 1) as i32,
                "holdMs": rounds % 3, "command": {"ping": 1}, "timeoutMS": 5000, "$db": "admin"};
                let reply = common::op_msg_roundtrip(&mut s, &cmd);
                if reply.get_f64("ok") != Ok(1.0) {
                    let c = reply.get_i32("code").unwrap();
                    assert!(matches!(c, 145 | 6), "unexpected failure {reply}");
                }
                rounds += 1;
            }
            (rounds, s)
        }));
    }
    {
        let (host, done) = (peer.host.clone(), done.clone());
        threads.push(std::thread::spawn(move || {
            let mut beats = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let cmd =
                    doc! {"_ferrodPoolCheckout": &host, "command": {"hello": 1}, "$db": "admin"};
                let reply = common::op_msg_roundtrip(&mut heartbeat, &cmd);
                if reply.get_f64("ok") != Ok(1.0) {
                    assert!(matches!(reply.get_i32("code"), Ok(145 | 6)), "{reply}");
                }
                beats += 1;
                // Paces the heartbeats (the behaviour imitated), not a wait for anything.
                std::thread::sleep(Duration::from_millis(5));
            }
            (beats, heartbeat)
        }));
    }
    for round in 0..1000 {
        let reply = common::op_msg_roundtrip(
            &mut dropper,
            &doc! {"dropConnections": 1, "hostAndPort": [&peer.host], "$db": "admin"},
        );
        assert_eq!(reply.get_f64("ok"), Ok(1.0), "round {round}: {reply}");
        if round % 50 == 0 {
            let s =
                common::op_msg_roundtrip(&mut monitor, &doc! {"connPoolStats": 1, "$db": "admin"});
            check_invariants(&s);
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    // The clients' own connections stay open so the baseline still applies.
    let (rounds, _clients): (Vec<i32>, Vec<_>) = threads
        .into_iter()
        .map(|t| t.join().expect("no panic"))
        .unzip();
    assert!(
        rounds.iter().all(|&r| r > 0),
        "every client made progress: {rounds:?}"
    );

    // Everything goes quiet: the host pool times out, its connections close.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let runtime = common::op_msg_roundtrip(
            &mut monitor,
            &doc! {"_ferrodRuntimeStats": 1, "$db": "admin"},
        );
        let (fds, tasks) = (open_fds(server.pid()), int(&runtime, "aliveTasks"));
        let thread_count = thread_count_of(server.pid());
        if fds == baseline_fds
            && tasks == baseline_tasks
            && thread_count <= baseline_threads
            && int(&runtime, "hostPools") == 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leak: fds {fds} (was {baseline_fds}), tasks {tasks} (was {baseline_tasks}), \
             threads {thread_count} (was {baseline_threads}), {runtime}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server_alive(server));
    peer.wait_until(
        "peer sees every connection closed",
        Duration::from_secs(5),
        |p| p.open() == 0,
    );
}

fn server_alive(mut server: Ferrod) -> bool {
    server.alive()
}
