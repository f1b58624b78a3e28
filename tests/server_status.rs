//! serverStatus against a real ferrod: the sections monitoring tools read (mongostat,
//! Prometheus exporters) in mongod 7.0's shape, and counters that move with the work.

mod common;

use bson::{doc, Bson, Document};
use common::{admin, eventually, Ferrod};
use std::time::Duration;

fn status(node: &Ferrod) -> Document {
    let s = admin(node, doc! {"serverStatus": 1});
    assert_eq!(s.get_f64("ok"), Ok(1.0), "{s}");
    s
}

/// A numeric field at a dotted path.
fn number(doc: &Document, path: &str) -> i64 {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut d = doc;
    for p in parts {
        d = d
            .get_document(p)
            .unwrap_or_else(|_| panic!("no {p} in {path}: {doc}"));
    }
    match d.get(last) {
        Some(Bson::Int32(n)) => *n as i64,
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(n)) => *n as i64,
        other => panic!("{path} is {other:?}"),
    }
}

#[test]
fn sections_have_mongods_shape() {
    let node = Ferrod::start(&[]);
    let s = status(&node);
    assert_eq!(s.get_str("process"), Ok("mongod"));
    for field in ["regular", "warning", "msg", "user", "tripwire", "rollovers"] {
        assert!(
            matches!(
                s.get_document("asserts").unwrap().get(field),
                Some(Bson::Int32(_))
            ),
            "asserts.{field}: {s}"
        );
    }
    let extra = s.get_document("extra_info").unwrap();
    assert_eq!(extra.get_str("note"), Ok("fields vary by platform"));
    for field in [
        "user_time_us",
        "system_time_us",
        "maximum_resident_set_kb",
        "page_reclaims",
        "page_faults",
        "voluntary_context_switches",
        "involuntary_context_switches",
        "input_blocks",
        "output_blocks",
    ] {
        assert!(
            matches!(extra.get(field), Some(Bson::Int64(_))),
            "extra_info.{field}: {extra}"
        );
    }
    assert!(number(&s, "extra_info.page_reclaims") > 0);
    assert!(number(&s, "extra_info.maximum_resident_set_kb") > 0);
    for path in [
        "globalLock.currentQueue.total",
        "globalLock.currentQueue.readers",
        "globalLock.currentQueue.writers",
        "globalLock.activeClients.total",
        "globalLock.activeClients.readers",
        "globalLock.activeClients.writers",
    ] {
        assert_eq!(number(&s, path), 0, "{path}");
    }
    let tls = s.get_document("transportSecurity").unwrap();
    let keys: Vec<&str> = tls.keys().map(String::as_str).collect();
    assert_eq!(keys, ["1.0", "1.1", "1.2", "1.3", "unknown"]);
    assert!(tls.values().all(|v| v == &Bson::Int64(0)), "{tls}");
    for path in [
        "metrics.cursor.open.total",
        "metrics.document.inserted",
        "metrics.operation.writeConflicts",
        "metrics.queryExecutor.scanned",
        "metrics.repl.apply.ops",
        "metrics.ttl.passes",
    ] {
        assert_eq!(number(&s, path), 0, "{path}");
    }
    // A standalone has no repl section, as on mongod.
    assert!(s.get("repl").is_none(), "{s}");
    // globalLock.totalTime is microseconds since start, and grows.
    let first = number(&s, "globalLock.totalTime");
    assert!(first > 0);
    eventually(Duration::from_secs(5), "totalTime to grow", || {
        (number(&status(&node), "globalLock.totalTime") > first).then_some(())
    });
}

#[test]
fn command_counters_move() {
    let node = Ferrod::start(&[]);
    let before = status(&node);
    // The fast lane's bare ping and the general path's ping count alike.
    admin(&node, doc! {"ping": 1});
    admin(&node, doc! {"ping": 1, "comment": "general path"});
    // A command that fails, and a name that is no command.
    let failed = admin(&node, doc! {"replSetGetStatus": 1});
    assert_eq!(failed.get_i32("code"), Ok(76), "{failed}");
    let unknown = admin(&node, doc! {"noSuchCommand": 1});
    assert_eq!(unknown.get_i32("code"), Ok(59), "{unknown}");
    let after = status(&node);
    let moved = |path: &str| number(&after, path) - number(&before, path);
    assert_eq!(moved("metrics.commands.ping.total"), 2);
    assert_eq!(moved("metrics.commands.ping.failed"), 0);
    assert_eq!(moved("metrics.commands.replSetGetStatus.total"), 1);
    assert_eq!(moved("metrics.commands.replSetGetStatus.failed"), 1);
    assert_eq!(moved("metrics.commands.<UNKNOWN>"), 1);
    assert_eq!(moved("asserts.user"), 2);
    // A command counts once it is done: `before` missed itself, `after` has it.
    assert_eq!(moved("metrics.commands.serverStatus.total"), 1);
    let cmds = after
        .get_document("metrics")
        .unwrap()
        .get_document("commands")
        .unwrap();
    assert!(matches!(
        cmds.get_document("hello").unwrap().get("total"),
        Some(Bson::Int64(_))
    ));
    // Test commands are listed only where they exist.
    assert!(cmds.get("configureFailPoint").is_none(), "{cmds}");
}

#[test]
fn a_set_member_has_a_repl_section() {
    let node = Ferrod::start(&["--replSet", "rs0"]);
    let reply = admin(
        &node,
        doc! {"replSetInitiate": {"_id": "rs0", "members": [{"_id": 0, "host": node.addr()}]}},
    );
    assert_eq!(reply.get_f64("ok"), Ok(1.0), "{reply}");
    let repl = eventually(Duration::from_secs(10), "a primary's repl section", || {
        let s = status(&node);
        let repl = s.get_document("repl").ok()?.clone();
        (repl.get_bool("isWritablePrimary") == Ok(true)).then_some(repl)
    });
    assert_eq!(repl.get_str("setName"), Ok("rs0"));
    assert_eq!(repl.get_i32("setVersion"), Ok(1));
    assert_eq!(repl.get_bool("secondary"), Ok(false));
    assert_eq!(repl.get_str("me"), Ok(node.addr().as_str()));
    assert_eq!(repl.get_str("primary"), Ok(node.addr().as_str()));
    assert_eq!(
        repl.get_array("hosts").unwrap(),
        &vec![Bson::String(node.addr())]
    );
    assert!(repl.get_object_id("electionId").is_ok(), "{repl}");
    assert!(repl.get_document("topologyVersion").is_ok(), "{repl}");
    assert!(repl
        .get_document("lastWrite")
        .unwrap()
        .get("opTime")
        .is_some());
    assert!(repl.get_document("primaryOnlyServices").is_ok(), "{repl}");
    assert_eq!(repl.get_i32("rbid"), Ok(1));
}
