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

fn run(node: &Ferrod, cmd: Document) -> Document {
    let reply = node.command(cmd.clone());
    assert_eq!(reply.get_f64("ok"), Ok(1.0), "{cmd}: {reply}");
    reply
}

/// The document commands move opcounters as mongod counts them (insert per document,
/// update and delete per statement, find and getMore per command, none of them in
/// `command`) and the document, executor and cursor metrics.
#[test]
fn document_commands_move_opcounters_and_document_metrics() {
    let node = Ferrod::start(&[]);
    let before = status(&node);
    run(
        &node,
        doc! {"insert": "c", "documents": [{"_id": 1, "a": 1}, {"_id": 2, "a": 1}, {"_id": 3, "a": 2}], "$db": "app"},
    );
    let first = run(
        &node,
        doc! {"find": "c", "filter": {"a": 1}, "batchSize": 1, "$db": "app"},
    );
    let id = first.get_document("cursor").unwrap().get_i64("id").unwrap();
    run(&node, doc! {"getMore": id, "collection": "c", "$db": "app"});
    run(
        &node,
        doc! {"find": "c", "filter": {"_id": 3}, "$db": "app"},
    );
    run(
        &node,
        doc! {"update": "c", "updates": [
            {"q": {"a": 1}, "u": {"$set": {"b": 1}}, "multi": true},
            {"q": {"_id": 9}, "u": {"$set": {"b": 2}}, "upsert": true},
        ], "$db": "app"},
    );
    run(
        &node,
        doc! {"delete": "c", "deletes": [{"q": {"_id": 3}, "limit": 1}], "$db": "app"},
    );
    run(&node, doc! {"count": "c", "$db": "app"});
    // A cursor left open.
    let open = run(&node, doc! {"find": "c", "batchSize": 1, "$db": "app"});
    assert_ne!(open.get_document("cursor").unwrap().get_i64("id"), Ok(0));
    let after = status(&node);
    let moved = |path: &str| number(&after, path) - number(&before, path);
    assert_eq!(moved("opcounters.insert"), 3);
    assert_eq!(moved("opcounters.query"), 3);
    assert_eq!(moved("opcounters.getmore"), 1);
    assert_eq!(moved("opcounters.update"), 2);
    assert_eq!(moved("opcounters.delete"), 1);
    // count and the second serverStatus; the document commands are not in `command`.
    assert_eq!(moved("opcounters.command"), 2);
    assert_eq!(
        moved("metrics.document.inserted"),
        4,
        "three inserts and one upsert"
    );
    assert_eq!(moved("metrics.document.updated"), 2);
    assert_eq!(moved("metrics.document.deleted"), 1);
    // 2 by the filtered find (one per batch), 1 by the _id find, 1 by the last find.
    assert_eq!(moved("metrics.document.returned"), 4);
    // Scans: 3 (find a: 1), 1 (_id point lookup), 3 + 0 (update: scan, upsert by
    // _id), 1 (delete by _id), 4 (count), 4 (the last find).
    assert!(moved("metrics.queryExecutor.scannedObjects") >= 12);
    assert_eq!(number(&after, "metrics.cursor.open.total"), 1);
}

/// A secondary counts what it applies from the log in opcountersRepl; the primary,
/// which made those writes, does not.
#[test]
fn a_secondary_counts_applied_writes_in_opcounters_repl() {
    let nodes: Vec<Ferrod> = (0..2)
        .map(|_| Ferrod::start(&["--replSet", "rs0"]))
        .collect();
    let members: Vec<Bson> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
        .collect();
    let config = doc! {"_id": "rs0", "members": members,
    "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000}};
    admin(&nodes[0], doc! {"replSetInitiate": config});
    let p = eventually(Duration::from_secs(20), "a primary", || {
        nodes
            .iter()
            .position(|n| admin(n, doc! {"hello": 1}).get_bool("isWritablePrimary") == Ok(true))
    });
    let s = 1 - p;
    run(
        &nodes[p],
        doc! {"create": "c", "writeConcern": {"w": 2}, "$db": "app"},
    );
    let before = status(&nodes[s]);
    let w2 = doc! {"w": 2};
    run(
        &nodes[p],
        doc! {"insert": "c", "documents": [{"_id": 1}, {"_id": 2}], "writeConcern": w2.clone(), "$db": "app"},
    );
    run(
        &nodes[p],
        doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {"x": 1}}}], "writeConcern": w2.clone(), "$db": "app"},
    );
    run(
        &nodes[p],
        doc! {"delete": "c", "deletes": [{"q": {"_id": 2}, "limit": 1}], "writeConcern": w2, "$db": "app"},
    );
    // w: 2 waits until the secondary holds the entries; it applies them just after.
    let after = eventually(Duration::from_secs(10), "the writes applied", || {
        let after = status(&nodes[s]);
        (number(&after, "opcountersRepl.delete") > number(&before, "opcountersRepl.delete"))
            .then_some(after)
    });
    let moved = |path: &str| number(&after, path) - number(&before, path);
    assert_eq!(moved("opcountersRepl.insert"), 2);
    assert_eq!(moved("opcountersRepl.update"), 1);
    assert_eq!(moved("opcountersRepl.delete"), 1);
    let primary = status(&nodes[p]);
    assert_eq!(number(&primary, "opcountersRepl.insert"), 0, "{primary}");
    assert_eq!(number(&primary, "opcounters.insert"), 2);
}

fn slow_line(node: &Ferrod, comment: &str) -> serde_json::Value {
    eventually(Duration::from_secs(5), "the slow query line", || {
        node.log_lines().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["id"] == 51803 && v["attr"]["command"]["comment"] == comment).then_some(v)
        })
    })
}

/// The "Slow query" line of a find carries planSummary, docsExamined and nreturned;
/// `profile` sets slowms at run time (0: every command is logged).
#[test]
fn slow_finds_are_logged_with_their_plan_and_counts() {
    let node = Ferrod::start(&[]);
    run(
        &node,
        doc! {"insert": "c", "documents": [{"_id": 1, "a": 1}, {"_id": 2, "a": 2}, {"_id": 3, "a": 1}], "$db": "app"},
    );
    let reply = run(&node, doc! {"profile": 0, "slowms": 0, "$db": "app"});
    assert_eq!(
        reply
            .get_i64("slowms")
            .ok()
            .or(reply.get_i32("slowms").ok().map(i64::from)),
        Some(100),
        "{reply}"
    );
    run(
        &node,
        doc! {"find": "c", "filter": {"a": 1}, "comment": "scan", "$db": "app"},
    );
    run(
        &node,
        doc! {"find": "c", "filter": {"_id": 2}, "comment": "by id", "$db": "app"},
    );
    let scan = slow_line(&node, "scan");
    assert_eq!(scan["attr"]["planSummary"], "COLLSCAN", "{scan}");
    assert_eq!(scan["attr"]["docsExamined"], 3, "{scan}");
    assert_eq!(scan["attr"]["nreturned"], 2, "{scan}");
    let by_id = slow_line(&node, "by id");
    assert_eq!(by_id["attr"]["planSummary"], "IDHACK", "{by_id}");
    assert_eq!(by_id["attr"]["docsExamined"], 1, "{by_id}");
    assert_eq!(by_id["attr"]["nreturned"], 1, "{by_id}");
    // Levels that write system.profile are refused: ferrod keeps none.
    let reply = node.command(doc! {"profile": 1, "$db": "app"});
    assert_eq!(reply.get_i32("code"), Ok(2), "{reply}");
}
