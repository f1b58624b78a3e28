//! `ferrod healthcheck`, the container healthcheck that needs no shell, as a real process:
//! exit 0 against a running ferrod (also one with authorization on), exit 1 when nothing
//! listens, when the peer never answers (within the bounded timeout), and when the reply
//! is `ok: 0`; the server's own flags are untouched by the subcommand.

mod common;

use bson::doc;
use common::{op_msg, read_frame, Ferrod, FERROD};
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn healthcheck(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(FERROD)
        .arg("healthcheck")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ferrod healthcheck");
    (out, started.elapsed())
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn healthy_server_exits_0() {
    let server = Ferrod::start(&[]);
    let port = server.port.to_string();
    let (out, _) = healthcheck(&["--port", &port]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("answered ping"),
        "{}",
        text(&out)
    );
    // By name, with the flag=value form.
    let (out, _) = healthcheck(&["--host=localhost", &format!("--port={port}")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn server_with_authorization_is_healthy_without_credentials() {
    let server = Ferrod::start(&["--auth"]);
    let (out, _) = healthcheck(&["--port", &server.port.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn nothing_listening_exits_1() {
    let port = common::free_port(); // bound and released: nothing listens there now
    let (out, took) = healthcheck(&["--port", &port.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not healthy"),
        "{}",
        text(&out)
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn silent_peer_times_out_with_1() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts (the kernel does, through the backlog) and never answers.
    let (out, took) = healthcheck(&["--port", &port.to_string(), "--timeout-ms", "500"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timed out"),
        "{}",
        text(&out)
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    drop(listener);
}

#[test]
fn ok_0_reply_exits_1() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (request_id, _, op, body) = read_frame(&mut s).unwrap();
        assert_eq!(op, common::OP_MSG);
        let request = common::parse_op_msg_reply(&body);
        assert_eq!(request, doc! {"ping": 1, "$db": "admin"});
        let mut reply = op_msg(
            7,
            0,
            &doc! {"ok": 0.0, "errmsg": "not today", "code": 11600},
        );
        reply[8..12].copy_from_slice(&request_id.to_le_bytes());
        s.write_all(&reply).unwrap();
    });
    let (out, _) = healthcheck(&["--port", &port.to_string()]);
    peer.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not today"),
        "{}",
        text(&out)
    );
}

#[test]
fn bad_arguments_exit_2_and_server_flags_are_unchanged() {
    let (out, _) = healthcheck(&["--port", "notaport"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // The server's own parser still owns everything else.
    let out = Command::new(FERROD).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("db version v"));
}
