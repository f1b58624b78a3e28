//! Hostile input: a request as large as the limits allow must not make a log line as large.

use super::common::*;
use bson::doc;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A ping whose `comment` is `len` bytes, logged whole by the slow-query line unless cut.
fn big_ping(len: usize) -> bson::Document {
    doc! {"ping": 1, "comment": "c".repeat(len), "$db": "admin"}
}

#[test]
fn slow_query_lines_are_cut_at_max_log_size_kb_in_json() {
    // slowms 0: every command is "slow", so the ping is logged with its whole command.
    let server = Ferrod::start(&["--slowms", "0"]);
    server.command(big_ping(2_000_000));
    let line = server.wait_for_log("\"Slow query\"", Duration::from_secs(10));
    assert!(line.len() < 12 * 1024, "a {}-byte log line", line.len());
    let v: serde_json::Value = serde_json::from_str(&line).expect("still one JSON line");
    assert_eq!(v["attr"]["command"]["ping"], 1);
    assert_eq!(
        v["truncated"]["command"]["truncated"]["comment"],
        serde_json::json!({"type": "string", "size": 2_000_000})
    );
    assert!(
        v["size"]["command"].as_u64().unwrap() > 2_000_000,
        "{}",
        v["size"]
    );

    // maxLogSizeKB is a runtime parameter, as in mongod.
    let reply = server.command(doc! {"setParameter": 1, "maxLogSizeKB": 1, "$db": "admin"});
    assert_eq!(reply.get_f64("ok").ok(), Some(1.0), "{reply}");
    server.command(doc! {"ping": 1, "comment": "second", "x": "y".repeat(50_000), "$db": "admin"});
    let line = server.wait_for_log("\"second\"", Duration::from_secs(10));
    assert!(
        line.len() < 2 * 1024 + 1024,
        "a {}-byte log line",
        line.len()
    );
    assert!(line.contains("\"truncated\""), "{line}");
}

#[test]
fn slow_query_lines_are_cut_in_the_text_format_too() {
    let dbpath = tempfile::tempdir().unwrap();
    let mut child = Command::new(FERROD)
        .args([
            "--port",
            "0",
            "--slowms",
            "0",
            "--logFormat",
            "text",
            "--dbpath",
        ])
        .arg(dbpath.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ferrod");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = || lines.next().expect("ferrod logs").expect("a line");
    let port = loop {
        let line = next_line();
        if line.contains("Waiting for connections") {
            let attr = &line[line.find('{').expect("attributes")..];
            let attr: serde_json::Value = serde_json::from_str(attr).unwrap();
            break attr["port"].as_u64().unwrap();
        }
    };
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
    op_msg_roundtrip(&mut s, &big_ping(1_000_000));
    let line = loop {
        let line = next_line();
        if line.contains("Slow query") {
            break line;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.len() < 12 * 1024, "a {}-byte log line", line.len());
    assert!(line.contains(" truncated: {\"command\""), "{line}");
    assert!(line.contains(" size: {\"command\""), "{line}");
}
