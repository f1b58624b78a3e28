//! Server behaviour against real ferrod processes: listening addresses, the connection
//! limit, connection ids, graceful shutdown, moreToCome, the command line and config
//! file, and the log. Run with `cargo test --test server`.

mod common;
mod support;

use bson::{doc, Document};
use common::{free_port, op_msg, read_frame, Ferrod};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

const TEST_COMMANDS: &[&str] = &["--setParameter", "enableTestCommands=1"];

fn hello_connection_id(s: &mut TcpStream) -> i64 {
    let reply = admin(s, doc! {"hello": 1});
    assert_ok(&reply);
    bson_i64(reply.get("connectionId").unwrap())
}

fn connections(s: &mut TcpStream) -> Document {
    let status = admin(s, doc! {"serverStatus": 1});
    assert_ok(&status);
    status.get_document("connections").unwrap().clone()
}

/// True once the peer has closed `s` (EOF or reset) within its read timeout.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match s.read(&mut buf) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

// ---- listening -------------------------------------------------------------------

#[test]
fn bind_ip_list_answers_on_ipv4_and_ipv6() {
    let server = Ferrod::start(&["--bind_ip", "127.0.0.1,::1"]);
    let mut v4 = server.raw();
    assert_ok(&admin(&mut v4, doc! {"ping": 1}));
    let mut v6 = match TcpStream::connect(addr_v6(server.port)) {
        Ok(s) => s,
        Err(e) => panic!(
            "cannot reach ferrod on [::1]:{} ({e}); this test needs an IPv6 loopback: \
             enable it (sysctl net.ipv6.conf.lo.disable_ipv6=0)",
            server.port
        ),
    };
    v6.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let reply = admin(&mut v6, doc! {"whatsmyuri": 1});
    assert_ok(&reply);
    assert!(
        reply.get_str("you").unwrap().starts_with("[::1]:"),
        "{reply}"
    );
    let listening: Vec<String> = with_id(&server.log_lines(), 23015)
        .iter()
        .map(|l| l["attr"]["address"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listening,
        vec![
            format!("127.0.0.1:{}", server.port),
            format!("[::1]:{}", server.port)
        ]
    );
}

#[test]
fn bind_ip_all_answers_on_every_loopback() {
    let server = Ferrod::start(&["--bind_ip_all"]);
    assert_ok(&admin(&mut server.raw(), doc! {"ping": 1}));
    let mut v6 = TcpStream::connect(addr_v6(server.port)).unwrap_or_else(|e| {
        panic!("--bind_ip_all must also listen on IPv6, but [::1] refused: {e} (does this machine have ::1?)")
    });
    v6.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_ok(&admin(&mut v6, doc! {"ping": 1}));
    let opts = admin(&mut server.raw(), doc! {"getCmdLineOpts": 1});
    assert_eq!(
        opts.get_document("parsed")
            .unwrap()
            .get_document("net")
            .unwrap()
            .get_bool("bindIpAll"),
        Ok(true)
    );
}

#[test]
fn port_flag_sets_the_listening_port() {
    let (_proc, port, _dir) = Proc::listening(&[]);
    let mut s = connect_port(port);
    let status = admin(&mut s, doc! {"serverStatus": 1});
    assert!(
        status
            .get_str("host")
            .unwrap()
            .ends_with(&format!(":{port}")),
        "{status}"
    );
}

// ---- connections -----------------------------------------------------------------

#[test]
fn max_conns_closes_the_extra_connection_at_once_and_serves_the_others() {
    let server = Ferrod::start(&["--maxConns", "2"]);
    let mut first = server.raw();
    let mut second = server.raw();
    assert_ok(&admin(&mut first, doc! {"ping": 1}));
    assert_ok(&admin(&mut second, doc! {"ping": 1}));

    let started = Instant::now();
    let mut third = server.raw();
    // The server may close before or after our write lands; either way no reply comes.
    let _ = third.write_all(&op_msg(1, 0, &doc! {"ping": 1, "$db": "admin"}));
    assert!(
        closed_by_server(&mut third),
        "the third connection was not closed"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let refused = server.wait_for_log("\"id\":22942", Duration::from_secs(5));
    let refused: serde_json::Value = serde_json::from_str(&refused).unwrap();
    assert_eq!(refused["c"], "NETWORK");
    assert_eq!(
        refused["msg"],
        "Connection refused because there are too many open connections"
    );
    assert_eq!(refused["attr"]["connectionCount"], 2);

    assert_ok(&admin(&mut first, doc! {"ping": 1}));
    let conns = connections(&mut second);
    assert_eq!(conns.get_i32("current"), Ok(2), "{conns}");
    assert_eq!(conns.get_i32("available"), Ok(0), "{conns}");
    assert_eq!(conns.get_i32("totalCreated"), Ok(2), "{conns}");
    assert_eq!(conns.get_i32("rejected"), Ok(1), "{conns}");

    // Once one leaves, a newcomer gets its place.
    drop(first);
    let mut newcomer = eventually(Duration::from_secs(5), "a free connection slot", || {
        let mut s = server.raw();
        s.write_all(&op_msg(9, 0, &doc! {"ping": 1, "$db": "admin"}))
            .ok()?;
        read_frame(&mut s).ok()?;
        Some(s)
    });
    assert_ok(&admin(&mut newcomer, doc! {"ping": 1}));
}

#[test]
fn connection_ids_increase_and_appear_in_hello_and_the_log() {
    let server = Ferrod::start(&[]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut s = server.raw();
        ids.push(hello_connection_id(&mut s));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let ended = format!("\"ctx\":\"conn{}\"", ids[2]);
    server.wait_for_log(&ended, Duration::from_secs(5));
    let lines = server.log_lines();
    for id in &ids {
        let accepted = with_id(&lines, 22943);
        let line = accepted
            .iter()
            .find(|l| l["attr"]["connectionId"].as_i64() == Some(*id))
            .unwrap_or_else(|| panic!("no 'Connection accepted' line for id {id}"));
        assert_eq!(line["msg"], "Connection accepted");
        assert_eq!(line["ctx"], "listener");
        let ended = with_id(&lines, 22944);
        let line = ended
            .iter()
            .find(|l| l["attr"]["connectionId"].as_i64() == Some(*id))
            .unwrap_or_else(|| panic!("no 'Connection ended' line for id {id}"));
        assert_eq!(line["ctx"], format!("conn{id}"));
    }
}

#[test]
fn server_status_counts_current_total_and_active_connections() {
    let server = Ferrod::start(TEST_COMMANDS);
    let mut observer = server.raw();
    let before = connections(&mut observer);
    assert_eq!(before.get_i32("current"), Ok(1), "{before}");
    // Only the observer's own serverStatus is running.
    assert_eq!(before.get_i32("active"), Ok(1), "{before}");

    let mut sleeper = server.raw();
    send(
        &mut sleeper,
        5,
        doc! {"sleep": 1, "millis": 1500, "lock": "none"},
    );
    let during = eventually(Duration::from_secs(5), "active == 2", || {
        let c = connections(&mut observer);
        (c.get_i32("active") == Ok(2)).then_some(c)
    });
    assert_eq!(during.get_i32("current"), Ok(2), "{during}");
    assert_eq!(during.get_i32("totalCreated"), Ok(2), "{during}");
    let available = during.get_i32("available").unwrap();
    assert_eq!(available, 1_000_000 - 2, "{during}");

    let (_, reply) = receive(&mut sleeper);
    assert_ok(&reply);
    let after = connections(&mut observer);
    assert_eq!(after.get_i32("active"), Ok(1), "{after}");

    // A closed connection leaves `current` and gives its slot back to `available`.
    drop(sleeper);
    let closed = eventually(Duration::from_secs(5), "current == 1", || {
        let c = connections(&mut observer);
        (c.get_i32("current") == Ok(1)).then_some(c)
    });
    assert_eq!(closed.get_i32("available"), Ok(1_000_000 - 1), "{closed}");
    assert_eq!(closed.get_i32("totalCreated"), Ok(2), "{closed}");
}

#[test]
fn more_to_come_requests_run_but_get_no_reply() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    // flag bit 1: moreToCome. The command runs (logLevel changes) but sends nothing.
    s.write_all(&op_msg(
        7,
        2,
        &doc! {"setParameter": 1, "logLevel": 1, "$db": "admin"},
    ))
    .unwrap();
    s.write_all(&op_msg(
        8,
        0,
        &doc! {"getParameter": 1, "logLevel": 1, "$db": "admin"},
    ))
    .unwrap();
    let (response_to, reply) = receive(&mut s);
    assert_eq!(
        response_to, 8,
        "the moreToCome request must not be answered"
    );
    assert_eq!(reply.get_i32("logLevel"), Ok(1), "{reply}");
}

#[test]
fn a_client_that_leaves_before_its_reply_is_not_an_error() {
    let server = Ferrod::start(TEST_COMMANDS);
    let mut observer = server.raw();
    let mut leaver = server.raw();
    let leaver_id = hello_connection_id(&mut leaver);
    send(
        &mut leaver,
        3,
        doc! {"sleep": 1, "millis": 200, "lock": "none"},
    );
    wait_for_sleep_op(&mut observer);
    // An abortive close (RST), as a client that gives up does: the reply write fails.
    socket2::SockRef::from(&leaver)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(leaver);
    server.wait_for_log(
        &format!("\"id\":22944,\"ctx\":\"conn{leaver_id}\""),
        Duration::from_secs(5),
    );
    assert_ok(&admin(&mut observer, doc! {"ping": 1}));
    let problems: Vec<serde_json::Value> = json_lines(&server.log_lines())
        .into_iter()
        .filter(|l| l["s"] == "E" || (l["s"] == "W" && l.get("tags").is_none()))
        .collect();
    assert!(problems.is_empty(), "logged as a problem: {problems:?}");
}

// ---- shutdown --------------------------------------------------------------------

fn assert_clean_shutdown_log(lines: &[String]) {
    assert_eq!(
        with_id(lines, 20562).len(),
        1,
        "no 'going to close listening sockets'"
    );
    assert_eq!(with_id(lines, 20565).len(), 1, "no 'Now exiting'");
    let last = with_id(lines, 23138);
    assert_eq!(last.len(), 1, "no 'Shutting down' line");
    assert_eq!(last[0]["attr"]["exitCode"], 0);
}

#[test]
fn sigterm_stops_accepting_lets_the_inflight_command_finish_and_exits_0() {
    let mut server = Ferrod::start(TEST_COMMANDS);
    let mut busy = server.raw();
    let mut observer = server.raw();
    send(
        &mut busy,
        11,
        doc! {"sleep": 1, "millis": 800, "lock": "none"},
    );
    wait_for_sleep_op(&mut observer);
    let sent = Instant::now();
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    // No new connections once shutdown has begun.
    eventually(Duration::from_secs(5), "the listener to close", || {
        TcpStream::connect(server.addr()).is_err().then_some(())
    });
    let (response_to, reply) = receive(&mut busy);
    assert_eq!(response_to, 11);
    assert_ok(&reply);
    assert!(sent.elapsed() < Duration::from_secs(5));
    let status = server.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status}");
    let lines = server.log_lines();
    let signal = with_id(&lines, 23377);
    assert_eq!(signal.len(), 1);
    assert_eq!(signal[0]["msg"], "Received signal");
    assert_eq!(signal[0]["attr"]["signal"], 15);
    assert_clean_shutdown_log(&lines);
}

#[test]
fn sigint_shuts_down_cleanly() {
    let mut server = Ferrod::start(&[]);
    let mut idle = server.raw();
    assert_ok(&admin(&mut idle, doc! {"ping": 1}));
    unsafe { libc::kill(server.pid() as i32, libc::SIGINT) };
    let status = server.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(closed_by_server(&mut idle));
    let lines = server.log_lines();
    assert_eq!(with_id(&lines, 23377)[0]["attr"]["signal"], 2);
    assert_clean_shutdown_log(&lines);
}

#[test]
fn shutdown_command_exits_0_and_is_logged() {
    let mut server = Ferrod::start(&[]);
    let mut s = server.raw();
    // Only against admin.
    let reply = on_db(&mut s, "test", doc! {"shutdown": 1});
    let msg = assert_error(&reply, 13, "Unauthorized");
    assert_eq!(msg, "shutdown may only be run against the admin database.");
    s.write_all(&op_msg(1, 0, &doc! {"shutdown": 1, "$db": "admin"}))
        .unwrap();
    // As with mongod, the socket closes instead of answering.
    assert!(closed_by_server(&mut s), "shutdown sent a reply");
    let status = server.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status}");
    let lines = server.log_lines();
    let line = with_id(&lines, 4695400);
    assert_eq!(line.len(), 1);
    assert_eq!(line[0]["msg"], "Terminating via shutdown command");
    assert_eq!(line[0]["attr"]["force"], false);
    assert_eq!(line[0]["attr"]["timeoutMillis"], 15_000);
    assert_clean_shutdown_log(&lines);
}

#[test]
fn shutdown_is_bounded_and_interrupts_what_is_still_running_with_11600() {
    let mut server = Ferrod::start(TEST_COMMANDS);
    let mut busy = server.raw();
    let mut observer = server.raw();
    send(&mut busy, 21, doc! {"sleep": 1, "secs": 60, "lock": "none"});
    wait_for_sleep_op(&mut observer);
    let started = Instant::now();
    observer
        .write_all(&op_msg(
            2,
            0,
            &doc! {"shutdown": 1, "timeoutSecs": 1, "$db": "admin"},
        ))
        .unwrap();
    let (response_to, reply) = receive(&mut busy);
    assert_eq!(response_to, 21);
    let msg = assert_error(&reply, 11600, "InterruptedAtShutdown");
    assert_eq!(msg, "interrupted at shutdown");
    let status = server.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn signaled_shutdown_grace_comes_from_its_parameter() {
    let mut server = Ferrod::start(&[
        "--setParameter",
        "enableTestCommands=1",
        "--setParameter",
        "shutdownTimeoutMillisForSignaledShutdown=300",
    ]);
    let mut busy = server.raw();
    let mut observer = server.raw();
    send(&mut busy, 4, doc! {"sleep": 1, "secs": 60, "lock": "none"});
    wait_for_sleep_op(&mut observer);
    let started = Instant::now();
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    let (_, reply) = receive(&mut busy);
    assert_error(&reply, 11600, "InterruptedAtShutdown");
    assert_eq!(server.wait(Duration::from_secs(10)).code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ---- command line and config file ------------------------------------------------

/// Runs ferrod with bad arguments: it must exit non-zero, name `needle` on stderr, and
/// never listen on `port`.
fn refused(args: &[&str], port: u16, needle: &str) {
    let mut proc = Proc::spawn(args);
    let status = proc.wait_exit(Duration::from_secs(10));
    // mongod's EXIT_BADOPTIONS.
    assert_eq!(
        status.code(),
        Some(2),
        "ferrod accepted {args:?} or failed otherwise"
    );
    let stderr = proc.stderr();
    assert!(
        stderr.contains(needle),
        "stderr for {args:?} does not name {needle:?}:\n{stderr}"
    );
    assert!(
        with_id(&proc.stdout(), 23016).is_empty(),
        "ferrod listened before refusing {args:?}"
    );
    assert!(port_is_free(port), "port {port} was bound");
}

#[test]
fn bad_flags_and_values_exit_non_zero_before_listening() {
    // A known port: each refused start is checked not to have listened on it.
    let port = free_port();
    let p = port.to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().to_str().unwrap();
    refused(
        &[
            "--port",
            &p,
            "--dbpath",
            db,
            "--bind_ip",
            "127.0.0.1",
            "--bind_ip_all",
        ],
        port,
        "--bind_ip_all",
    );
    refused(
        &["--port", &p, "--dbpath", db, "--noSuchFlag"],
        port,
        "--noSuchFlag",
    );
    refused(&["--port", "seventy", "--dbpath", db], port, "--port");
    refused(&["--port", "70000", "--dbpath", db], port, "--port");
    refused(
        &["--port", &p, "--dbpath", db, "--maxConns", "0"],
        port,
        "maxConns",
    );
    refused(
        &["--port", &p, "--dbpath", db, "--logFormat", "xml"],
        port,
        "--logFormat",
    );
    refused(
        &[
            "--port",
            &p,
            "--dbpath",
            db,
            "--networkMessageCompressors",
            "lz4",
        ],
        port,
        "lz4",
    );
    refused(
        &[
            "--port",
            &p,
            "--dbpath",
            db,
            "--setParameter",
            "noSuchParameter=1",
        ],
        port,
        "noSuchParameter",
    );
    refused(
        &[
            "--port",
            &p,
            "--dbpath",
            db,
            "--setParameter",
            "logLevel=loud",
        ],
        port,
        "logLevel",
    );
    refused(
        &[
            "--port",
            &p,
            "--dbpath",
            db,
            "--setParameter",
            "featureCompatibilityVersion=6.0",
        ],
        port,
        "featureCompatibilityVersion",
    );
    // --initialMembers: only with a set name, each a host:port, none twice.
    let initial: &[(&[&str], &str)] = &[
        (&["--initialMembers", "a:1,b:2"], "requires replSet"),
        (
            &["--replSet", "rs0", "--initialMembers", "a:1,b"],
            "'b' is not host:port",
        ),
        (
            &["--replSet", "rs0", "--initialMembers", "a:1,a:0"],
            "'a:0' is not host:port",
        ),
        (
            &["--replSet", "rs0", "--initialMembers", "a:1,,b:2"],
            "empty member",
        ),
        (
            &["--replSet", "rs0", "--initialMembers", "a:1,A:1"],
            "listed twice",
        ),
    ];
    for (extra, needle) in initial {
        let mut args = vec!["--port", &p, "--dbpath", db];
        args.extend_from_slice(extra);
        refused(&args, port, needle);
    }
}

#[test]
fn bad_config_files_exit_non_zero_naming_the_key_or_value() {
    // A known port: each refused start is checked not to have listened on it.
    let port = free_port();
    let p = port.to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let cases: &[(&str, &str)] = &[
        ("net:\n  prot: 1\n", "prot"),
        ("nett:\n  port: 1\n", "nett"),
        ("net:\n  port: abc\n", "net.port"),
        (
            "net:\n  maxIncomingConnections: -3\n",
            "maxIncomingConnections",
        ),
        ("systemLog:\n  destination: syslog\n", "syslog"),
        (
            "net:\n  bindIp: 127.0.0.1\n  bindIpAll: true\n",
            "net.bindIpAll",
        ),
        ("systemLog:\n  destination: file\n", "systemLog.path"),
        ("net:\n  compression:\n    compressors: brotli\n", "brotli"),
        ("setParameter:\n  noSuchParameter: 1\n", "noSuchParameter"),
        (
            "replication:\n  replSetName: rs0\n  initialMembers: 7\n",
            "replication.initialMembers",
        ),
        (
            "replication:\n  replSetName: rs0\n  initialMembers: [\"a:1\", \"nope\"]\n",
            "'nope' is not host:port",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&file, text).unwrap();
        refused(
            &["-f", file.to_str().unwrap(), "--port", &p, "--dbpath", db],
            port,
            needle,
        );
    }
    let missing = dir.path().join("missing.yaml");
    refused(
        &["--config", missing.to_str().unwrap(), "--port", &p],
        port,
        "missing.yaml",
    );
}

#[test]
fn a_port_in_use_exits_48_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Proc::spawn(&[
        "--port",
        &port.to_string(),
        "--dbpath",
        dir.path().to_str().unwrap(),
        "--logFormat",
        "json",
    ]);
    let status = proc.wait_exit(Duration::from_secs(10));
    // mongod's EXIT_NET_ERROR.
    assert_eq!(status.code(), Some(48), "{status}");
    assert!(
        proc.stderr().contains(&format!("127.0.0.1:{port}")),
        "{}",
        proc.stderr()
    );
    let error = with_id(&proc.stdout(), 20568);
    assert_eq!(error.len(), 1, "no 'Error setting up listener' line");
    assert_eq!(error[0]["s"], "E");
}

#[test]
fn version_flag_prints_the_version_and_exits_0() {
    let out = std::process::Command::new(common::FERROD)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("db version v7.0.0\n"), "{text}");
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

#[test]
fn dbpath_is_created_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a/b/c");
    let mut proc = Proc::spawn(&["--port", "0", "--dbpath", db.to_str().unwrap()]);
    proc.wait_bound_port();
    assert!(db.is_dir());
}

fn write_config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let file = dir.join("ferrod.yaml");
    let text = format!(
        "net:\n  port: {port}\n  bindIp: 127.0.0.1\n  maxIncomingConnections: 2\n  compression:\n    compressors: zlib\n\
         storage:\n  dbPath: {db}\n\
         systemLog:\n  destination: file\n  path: {log}\n  quiet: true\n\
         operationProfiling:\n  slowOpThresholdMs: 0\n\
         setParameter:\n  logLevel: 1\n  enableTestCommands: true\n",
        db = dir.join("data/db").display(),
        log = dir.join("ferrod.log").display(),
    );
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn config_file_in_mongods_layout_sets_every_option() {
    let dir = tempfile::tempdir().unwrap();
    // The port is written into the config file under test (net.port).
    let port = free_port();
    let file = write_config(dir.path(), port);
    let mut proc = Proc::spawn(&["-f", file.to_str().unwrap()]);
    proc.wait_listening(port);
    assert!(
        dir.path().join("data/db").is_dir(),
        "storage.dbPath not created"
    );

    let mut s = connect_port(port);
    let hello = admin(
        &mut s,
        doc! {"hello": 1, "compression": ["snappy", "zlib", "zstd"]},
    );
    assert_eq!(
        hello.get_array("compression").unwrap(),
        &vec![bson::Bson::from("zlib")]
    );
    let params = admin(
        &mut s,
        doc! {"getParameter": 1, "logLevel": 1, "enableTestCommands": 1},
    );
    assert_eq!(params.get_i32("logLevel"), Ok(1), "{params}");
    assert_eq!(params.get_bool("enableTestCommands"), Ok(true), "{params}");

    // net.maxIncomingConnections: 2 (the probe in wait_listening has gone by now).
    let mut second = eventually(Duration::from_secs(5), "a second slot", || {
        let mut c = connect_port(port);
        c.write_all(&op_msg(1, 0, &doc! {"ping": 1, "$db": "admin"}))
            .ok()?;
        read_frame(&mut c).ok()?;
        Some(c)
    });
    assert_ok(&admin(&mut second, doc! {"ping": 1}));
    let mut third = connect_port(port);
    assert!(
        closed_by_server(&mut third),
        "maxIncomingConnections not enforced"
    );

    // systemLog: to the file, quiet (no connection lines), slowOpThresholdMs 0.
    admin(&mut s, doc! {"ping": 1, "comment": "from the config test"});
    let log = std::fs::read_to_string(dir.path().join("ferrod.log")).unwrap();
    assert!(log.contains("Waiting for connections"), "{log}");
    assert!(
        log.contains("from the config test"),
        "slow query not logged:\n{log}"
    );
    assert!(
        !log.contains("Connection accepted"),
        "quiet not applied:\n{log}"
    );
    assert!(
        proc.stdout().is_empty(),
        "systemLog.destination file, yet stdout got lines"
    );

    let opts = admin(&mut s, doc! {"getCmdLineOpts": 1});
    let parsed = opts.get_document("parsed").unwrap();
    assert_eq!(
        parsed.get_str("config"),
        Ok(file.to_str().unwrap()),
        "{parsed}"
    );
    let net = parsed.get_document("net").unwrap();
    assert_eq!(bson_i64(net.get("port").unwrap()), port as i64);
    assert_eq!(net.get_str("bindIp"), Ok("127.0.0.1"));
    assert_eq!(bson_i64(net.get("maxIncomingConnections").unwrap()), 2);
    assert_eq!(
        net.get_document("compression")
            .unwrap()
            .get_str("compressors"),
        Ok("zlib")
    );
    let log_section = parsed.get_document("systemLog").unwrap();
    assert_eq!(log_section.get_str("destination"), Ok("file"));
    assert_eq!(log_section.get_bool("quiet"), Ok(true));
    assert!(parsed
        .get_document("storage")
        .unwrap()
        .get_str("dbPath")
        .unwrap()
        .ends_with("data/db"));
    assert_eq!(
        opts.get_array("argv").unwrap(),
        &vec![
            bson::Bson::from(common::FERROD),
            bson::Bson::from("-f"),
            bson::Bson::from(file.to_str().unwrap())
        ]
    );
}

#[test]
fn command_line_beats_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    // Both known: the file's port is the one the command line must beat.
    let file_port = free_port();
    let file = write_config(dir.path(), file_port);
    let port = free_port();
    let mut proc = Proc::spawn(&[
        "-f",
        file.to_str().unwrap(),
        "--port",
        &port.to_string(),
        "--setParameter",
        "logLevel=2",
        "--networkMessageCompressors",
        "snappy",
    ]);
    proc.wait_listening(port);
    assert!(port_is_free(file_port), "the file's port was used");
    let mut s = connect_port(port);
    let params = admin(&mut s, doc! {"getParameter": 1, "logLevel": 1});
    assert_eq!(params.get_i32("logLevel"), Ok(2), "{params}");
    let hello = admin(&mut s, doc! {"hello": 1, "compression": ["zlib", "snappy"]});
    assert_eq!(
        hello.get_array("compression").unwrap(),
        &vec![bson::Bson::from("snappy")]
    );
}

// ---- logging -----------------------------------------------------------------------

#[test]
fn json_log_lines_have_mongods_structure_and_ids() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let id = hello_connection_id(&mut s);
    drop(s);
    server.wait_for_log(
        &format!("\"id\":22944,\"ctx\":\"conn{id}\""),
        Duration::from_secs(5),
    );
    let lines: Vec<String> = server
        .log_lines()
        .into_iter()
        .filter(|l| !l.starts_with("stderr: "))
        .collect();
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(&keys[..6], ["t", "s", "c", "id", "ctx", "msg"], "{line}");
        let date = v["t"]["$date"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_str(date, "%Y-%m-%dT%H:%M:%S%.3f%:z").is_ok(),
            "{date}"
        );
        assert!(
            ["I", "W", "E", "F", "D1", "D2"].contains(&v["s"].as_str().unwrap()),
            "{line}"
        );
        assert!(v["id"].as_i64().unwrap() > 0, "{line}");
        if let Some(attr) = v.get("attr") {
            assert!(attr.is_object(), "{line}");
        }
    }
    let starting = with_id(&lines, 4615611);
    assert_eq!(starting[0]["msg"], "MongoDB starting");
    assert_eq!(starting[0]["c"], "CONTROL");
    assert_eq!(starting[0]["attr"]["pid"], server.pid());
    let waiting = with_id(&lines, 23016);
    assert_eq!(waiting[0]["msg"], "Waiting for connections");
    assert_eq!(waiting[0]["attr"]["port"], server.port);
    let accepted = with_id(&lines, 22943);
    assert_eq!(accepted[0]["c"], "NETWORK");
    assert_eq!(accepted[0]["attr"]["connectionId"], id);
    assert_eq!(with_id(&lines, 22944)[0]["msg"], "Connection ended");
    let warning = with_id(&lines, 22120);
    assert_eq!(warning[0]["s"], "W");
    assert_eq!(warning[0]["tags"], serde_json::json!(["startupWarnings"]));
}

#[test]
fn quiet_suppresses_connection_lines() {
    let server = Ferrod::start(&["--quiet", "--slowms", "0"]);
    let mut s = server.raw();
    admin(
        &mut s,
        doc! {"hello": 1, "client": {
            "application": {"name": "quiet-test"},
            "driver": {"name": "raw-tests", "version": "1.0"},
            "os": {"type": "Linux"},
        }},
    );
    drop(s);
    let mut marker = server.raw();
    admin(&mut marker, doc! {"ping": 1, "comment": "quiet marker"});
    server.wait_for_log("quiet marker", Duration::from_secs(5));
    // The server has seen the first connection end (where id 22944 would be logged).
    eventually(Duration::from_secs(5), "the first connection's end", || {
        let status = admin(&mut marker, doc! {"serverStatus": 1});
        let current = status
            .get_document("connections")
            .ok()?
            .get_i32("current")
            .ok()?;
        (current == 1).then_some(())
    });
    let lines = server.log_lines();
    for id in [22943, 22944, 51800] {
        assert!(
            with_id(&lines, id).is_empty(),
            "--quiet still logged id {id}"
        );
    }
}

#[test]
fn text_log_format_is_human_readable() {
    let (proc, port, _dir) = Proc::listening(&[]);
    let lines = eventually(Duration::from_secs(5), "the waiting line", || {
        let lines = proc.stdout();
        lines
            .iter()
            .any(|l| l.contains("Waiting for connections"))
            .then_some(lines)
    });
    let line = lines
        .iter()
        .find(|l| l.contains("Waiting for connections"))
        .unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(line).is_err(),
        "{line}"
    );
    // "<date> I  NETWORK  [listener] Waiting for connections {...}"
    let date = line.split(' ').next().unwrap();
    assert!(
        chrono::DateTime::parse_from_str(date, "%Y-%m-%dT%H:%M:%S%.3f%:z").is_ok(),
        "{line}"
    );
    assert!(line.contains(" I "), "{line}");
    assert!(line.contains("NETWORK"), "{line}");
    assert!(line.contains("[listener]"), "{line}");
    assert!(line.contains(&port.to_string()), "{line}");
}

#[test]
fn log_rotate_moves_the_file_aside_and_writes_new_lines_to_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let logpath = dir.path().join("server.log");
    // Known up front: the log (where `--port 0` reports its port) goes to the file
    // under test, which is only read after the server has listened.
    let port = free_port();
    let mut proc = Proc::spawn(&[
        "--port",
        &port.to_string(),
        "--dbpath",
        dir.path().join("db").to_str().unwrap(),
        "--logpath",
        logpath.to_str().unwrap(),
        "--logFormat",
        "json",
        "--slowms",
        "0",
    ]);
    proc.wait_listening(port);
    let mut s = connect_port(port);
    admin(&mut s, doc! {"ping": 1, "comment": "before rotation"});
    assert_ok(&admin(&mut s, doc! {"logRotate": 1}));
    admin(&mut s, doc! {"ping": 1, "comment": "after rotation"});

    let rotated: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("server.log.")
        })
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    let old = std::fs::read_to_string(&rotated[0]).unwrap();
    let new = std::fs::read_to_string(&logpath).unwrap();
    assert!(old.contains("before rotation") && !old.contains("after rotation"));
    assert!(new.contains("after rotation") && !new.contains("before rotation"));
    // A second rotation in the same second keeps both rotated files.
    assert_ok(&admin(&mut s, doc! {"logRotate": 1}));
    assert_ok(&admin(&mut s, doc! {"logRotate": 1}));
    let count = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .starts_with("server.log.")
        })
        .count();
    assert_eq!(count, 3);
}

#[test]
fn a_restart_keeps_the_previous_log_unless_appending() {
    let dir = tempfile::tempdir().unwrap();
    let logpath = dir.path().join("run.log");
    let db = dir.path().join("db");
    let run = |extra: &[&str]| {
        // Known up front: the log goes to a file, not to standard output.
        let port = free_port();
        let p = port.to_string();
        let mut args = vec![
            "--port",
            &p,
            "--dbpath",
            db.to_str().unwrap(),
            "--logpath",
            logpath.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let mut proc = Proc::spawn(&args);
        proc.wait_listening(port);
        proc.signal(libc::SIGTERM);
        assert_eq!(proc.wait_exit(Duration::from_secs(10)).code(), Some(0));
    };
    let rotated = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_str().unwrap().starts_with("run.log.")
            })
            .count()
    };
    let starts = |text: &str| text.matches("MongoDB starting").count();
    run(&[]);
    run(&[]);
    assert_eq!(rotated(), 1, "the first run's log was overwritten");
    assert_eq!(starts(&std::fs::read_to_string(&logpath).unwrap()), 1);
    run(&["--logappend"]);
    assert_eq!(rotated(), 1);
    assert_eq!(starts(&std::fs::read_to_string(&logpath).unwrap()), 2);
}
