//! `local.oplog.rs` on replica-set members: the applied document writes of the
//! replication log in mongod's oplog form, readable with find and getMore on every
//! member, oldest entries gone with the purged log, and refused to user writes.

mod common;

use common::{eventually, free_port, Ferrod};
use mongodb::bson::{doc, Bson, Document, Timestamp};
use std::time::Duration;

fn ok(reply: &Document) -> bool {
    matches!(reply.get("ok"), Some(Bson::Double(v)) if *v == 1.0)
}

fn initiate(nodes: &[Ferrod]) -> usize {
    let config = doc! {
        "_id": "rs0", "version": 1,
        "members": nodes.iter().enumerate()
            .map(|(i, n)| Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
            .collect::<Vec<_>>(),
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
    };
    let reply = nodes[0].command(doc! {"replSetInitiate": config, "$db": "admin"});
    assert!(ok(&reply), "{reply}");
    eventually(Duration::from_secs(30), "a primary", || {
        nodes.iter().position(|n| {
            n.command(doc! {"hello": 1, "$db": "admin"})
                .get_bool("isWritablePrimary")
                == Ok(true)
        })
    })
}

fn set(members: usize, args: &[&str]) -> (Vec<Ferrod>, usize) {
    let mut all = vec!["--replSet", "rs0"];
    all.extend_from_slice(args);
    let nodes: Vec<Ferrod> = (0..members)
        .map(|_| Ferrod::start_on_port(tempfile::tempdir().unwrap(), free_port(), &all))
        .collect();
    let p = initiate(&nodes);
    (nodes, p)
}

fn batch(reply: &Document, field: &str) -> Vec<Document> {
    reply
        .get_document("cursor")
        .unwrap_or_else(|_| panic!("{reply}"))
        .get_array(field)
        .unwrap()
        .iter()
        .map(|b| b.as_document().unwrap().clone())
        .collect()
}

fn oplog(node: &Ferrod, filter: Document) -> Vec<Document> {
    let reply = node
        .command(doc! {"find": "oplog.rs", "filter": filter, "batchSize": 100_000, "$db": "local"});
    batch(&reply, "firstBatch")
}

#[test]
fn document_writes_are_oplog_entries_with_mongods_fields_on_every_member() {
    let (nodes, p) = set(3, &[]);
    let primary = &nodes[p];
    let w3 = doc! {"w": 3};
    let reply = primary.command(doc! {"create": "c", "writeConcern": w3.clone(), "$db": "app"});
    assert!(ok(&reply), "{reply}");
    let reply = primary.command(doc! {
        "insert": "c", "documents": [{"_id": 1, "a": 1}], "writeConcern": w3.clone(), "$db": "app"
    });
    assert_eq!(reply.get_i32("n"), Ok(1), "{reply}");
    let insert_time = reply.get_timestamp("operationTime").unwrap();
    let reply = primary.command(doc! {
        "update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {"a": 2}}}],
        "writeConcern": w3.clone(), "$db": "app"
    });
    assert_eq!(reply.get_i32("nModified"), Ok(1), "{reply}");
    let reply = primary.command(doc! {
        "delete": "c", "deletes": [{"q": {"_id": 1}, "limit": 1}], "writeConcern": w3, "$db": "app"
    });
    assert_eq!(reply.get_i32("n"), Ok(1), "{reply}");

    let on_primary = oplog(primary, doc! {"ns": "app.c"});
    let ops: Vec<&str> = on_primary
        .iter()
        .map(|e| e.get_str("op").unwrap())
        .collect();
    assert_eq!(ops, ["i", "u", "d"], "{on_primary:?}");
    let (i, u, d) = (&on_primary[0], &on_primary[1], &on_primary[2]);
    assert_eq!(i.get_document("o").unwrap(), &doc! {"_id": 1, "a": 1});
    assert!(!i.contains_key("o2"), "{i}");
    assert_eq!(u.get_document("o").unwrap(), &doc! {"_id": 1, "a": 2});
    assert_eq!(u.get_document("o2").unwrap(), &doc! {"_id": 1});
    assert_eq!(d.get_document("o").unwrap(), &doc! {"_id": 1});
    // The insert's entry carries the time the write answered with.
    assert_eq!(i.get_timestamp("ts").unwrap(), insert_time, "{i}");
    let ts: Vec<Timestamp> = on_primary
        .iter()
        .map(|e| e.get_timestamp("ts").unwrap())
        .collect();
    assert!(ts
        .windows(2)
        .all(|w| (w[0].time, w[0].increment) < (w[1].time, w[1].increment)));
    for e in &on_primary {
        assert!(
            matches!(e.get("ui"), Some(Bson::Binary(b)) if b.bytes.len() == 16),
            "{e}"
        );
        assert_eq!(e.get_i64("v"), Ok(2), "{e}");
        assert!(e.get_i64("t").unwrap() >= 1, "{e}");
        let wall = e.get_datetime("wall").unwrap().timestamp_millis();
        assert_eq!(
            wall,
            e.get_timestamp("ts").unwrap().time as i64 * 1000,
            "{e}"
        );
    }
    // The create is a command entry on the database's $cmd namespace.
    let create = oplog(primary, doc! {"op": "c", "ns": "app.$cmd", "o.create": "c"});
    assert_eq!(create.len(), 1, "{create:?}");
    assert_eq!(create[0].get("ui"), on_primary[0].get("ui"));

    // Every member holds the same entries, and serves them without secondaryOk.
    for (n, node) in nodes.iter().enumerate() {
        if n != p {
            let entries = eventually(Duration::from_secs(10), "the entries on a member", || {
                let entries = oplog(node, doc! {"ns": "app.c"});
                (entries.len() == 3).then_some(entries)
            });
            assert_eq!(entries, on_primary);
        }
    }
}

#[test]
fn natural_order_limits_and_get_more_walk_the_oplog() {
    let (nodes, p) = set(1, &[]);
    let node = &nodes[p];
    for i in 0..5 {
        let reply = node.command(doc! {"insert": "c", "documents": [{"_id": i}], "$db": "app"});
        assert_eq!(reply.get_i32("n"), Ok(1), "{reply}");
    }
    // One insert of several documents is one applyOps entry.
    let reply =
        node.command(doc! {"insert": "c", "documents": [{"_id": 10}, {"_id": 11}], "$db": "app"});
    assert_eq!(reply.get_i32("n"), Ok(2), "{reply}");

    let newest = node.command(doc! {
        "find": "oplog.rs", "sort": {"$natural": -1}, "limit": 1, "$db": "local"
    });
    let newest = batch(&newest, "firstBatch");
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].get_str("op"), Ok("c"), "{:?}", newest[0]);
    assert_eq!(newest[0].get_str("ns"), Ok("admin.$cmd"));
    let ops = newest[0]
        .get_document("o")
        .unwrap()
        .get_array("applyOps")
        .unwrap();
    let ids: Vec<&Bson> = ops
        .iter()
        .map(|o| {
            o.as_document()
                .unwrap()
                .get_document("o")
                .unwrap()
                .get("_id")
                .unwrap()
        })
        .collect();
    assert_eq!(ids, [&Bson::Int32(10), &Bson::Int32(11)]);

    // Oldest first by default; batches continue with getMore.
    let first = node.command(doc! {
        "find": "oplog.rs", "filter": {"op": "i", "ns": "app.c"}, "batchSize": 2, "$db": "local"
    });
    let mut ids: Vec<Bson> = batch(&first, "firstBatch")
        .iter()
        .map(|e| e.get_document("o").unwrap().get("_id").unwrap().clone())
        .collect();
    let id = first.get_document("cursor").unwrap().get_i64("id").unwrap();
    assert_ne!(id, 0);
    let more = node.command(doc! {"getMore": id, "collection": "oplog.rs", "$db": "local"});
    ids.extend(
        batch(&more, "nextBatch")
            .iter()
            .map(|e| e.get_document("o").unwrap().get("_id").unwrap().clone()),
    );
    let expected: Vec<Bson> = (0..5).map(Bson::Int32).collect();
    // The first insert also created the collection: one applyOps entry, not an "i".
    assert_eq!(ids, expected[1..], "{ids:?}");
}

#[test]
fn the_oldest_entries_leave_with_the_purged_log() {
    let (nodes, p) = set(1, &["--setParameter", "replLogEntriesPerSnapshot=20"]);
    let node = &nodes[p];
    for i in 0..80 {
        let reply = node.command(doc! {"insert": "c", "documents": [{"_id": i}], "$db": "app"});
        assert_eq!(reply.get_i32("n"), Ok(1), "{reply}");
    }
    node.wait_for_log("\"Purged the replication log\"", Duration::from_secs(20));
    let entries = oplog(node, doc! {"ns": "app.c"});
    let ids: Vec<i32> = entries
        .iter()
        .map(|e| e.get_document("o").unwrap().get_i32("_id").unwrap())
        .collect();
    assert!(!ids.contains(&1), "the oldest entries are gone: {ids:?}");
    assert_eq!(ids.last(), Some(&79), "{ids:?}");
    let expected: Vec<i32> = (ids[0]..80).collect();
    assert_eq!(ids, expected, "the kept entries are a suffix, in order");
}

#[test]
fn user_writes_to_the_oplog_are_refused_with_invalid_namespace() {
    let (nodes, p) = set(1, &[]);
    let node = &nodes[p];
    let reply =
        node.command(doc! {"insert": "oplog.rs", "documents": [{"op": "n"}], "$db": "local"});
    let errors = reply
        .get_array("writeErrors")
        .unwrap_or_else(|_| panic!("{reply}"));
    let e = errors[0].as_document().unwrap();
    assert_eq!(e.get_i32("code"), Ok(73), "{reply}");
    assert_eq!(e.get_str("errmsg"), Ok("cannot write to 'local.oplog.rs'"));
    let reply = node.command(doc! {
        "delete": "oplog.rs", "deletes": [{"q": {}, "limit": 0}], "$db": "local"
    });
    assert!(reply.get_array("writeErrors").is_ok(), "{reply}");
    let reply = node.command(doc! {
        "findAndModify": "oplog.rs", "query": {}, "remove": true, "$db": "local"
    });
    assert_eq!(reply.get_i32("code"), Ok(73), "{reply}");
    // listCollections on local shows the oplog as capped.
    let reply =
        node.command(doc! {"listCollections": 1, "filter": {"name": "oplog.rs"}, "$db": "local"});
    let entries = batch(&reply, "firstBatch");
    assert_eq!(entries.len(), 1, "{reply}");
    assert_eq!(
        entries[0]
            .get_document("options")
            .unwrap()
            .get_bool("capped"),
        Ok(true)
    );
}

#[test]
fn a_standalone_has_no_oplog() {
    let node = Ferrod::start(&[]);
    let reply = node.command(doc! {"insert": "c", "documents": [{"_id": 1}], "$db": "app"});
    assert_eq!(reply.get_i32("n"), Ok(1), "{reply}");
    assert!(oplog(&node, doc! {}).is_empty());
    let reply = node.command(doc! {"listCollections": 1, "nameOnly": true, "$db": "local"});
    assert!(batch(&reply, "firstBatch").is_empty(), "{reply}");
}

#[test]
fn count_and_distinct_read_the_oplog_on_a_secondary_without_secondary_ok() {
    let (nodes, p) = set(2, &[]);
    let reply = nodes[p].command(doc! {
        "insert": "c", "documents": [{"_id": 1}], "writeConcern": {"w": 2}, "$db": "app"
    });
    assert_eq!(reply.get_i32("n"), Ok(1), "{reply}");
    let reply = nodes[p].command(doc! {
        "insert": "c", "documents": [{"_id": 2}], "writeConcern": {"w": 2}, "$db": "app"
    });
    assert_eq!(reply.get_i32("n"), Ok(1), "{reply}");
    let s = 1 - p;
    let n = eventually(
        Duration::from_secs(10),
        "the inserts on the secondary",
        || {
            let reply = nodes[s]
                .command(doc! {"count": "oplog.rs", "query": {"ns": "app.c"}, "$db": "local"});
            (reply.get_i32("n") == Ok(1)).then_some(reply)
        },
    );
    assert_eq!(n.get_i32("n"), Ok(1), "{n}");
    let reply = nodes[s].command(doc! {"distinct": "oplog.rs", "key": "op", "$db": "local"});
    let values = reply
        .get_array("values")
        .unwrap_or_else(|_| panic!("{reply}"));
    assert!(values.contains(&Bson::String("i".into())), "{reply}");
    assert!(values.contains(&Bson::String("c".into())), "{reply}");
}
