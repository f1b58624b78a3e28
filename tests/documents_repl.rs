//! Documents on a three-member replica set of real processes: writes on the primary
//! (w: "majority") reach every member through the replication log, secondaries serve
//! reads with secondaryOk, refuse writes with NotWritablePrimary (10107) and refuse
//! reads without secondaryOk (13435).

mod common;

use common::{eventually, Ferrod};
use mongodb::bson::{doc, Bson, Document};
use std::time::Duration;

fn ok(reply: &Document) -> bool {
    matches!(reply.get("ok"), Some(Bson::Double(v)) if *v == 1.0)
}

fn secondary_read(node: &Ferrod, cmd: Document) -> Document {
    let mut cmd = cmd;
    cmd.insert("$readPreference", doc! {"mode": "secondaryPreferred"});
    node.command(cmd)
}

#[test]
fn writes_on_the_primary_are_read_on_every_secondary() {
    let (nodes, p) = common::three_member_set();
    let primary = &nodes[p];
    let docs: Vec<Document> = (0..50).map(|i| doc! {"_id": i, "v": i * 2}).collect();
    let reply = primary.command(doc! {
        "insert": "c", "documents": docs, "writeConcern": {"w": "majority"}, "$db": "app"
    });
    assert!(ok(&reply) && reply.get_i32("n") == Ok(50), "{reply}");
    let reply = primary.command(doc! {
        "update": "c", "updates": [{"q": {"_id": 7}, "u": {"$set": {"v": -1}}}],
        "writeConcern": {"w": 3}, "$db": "app"
    });
    assert_eq!(reply.get_i32("nModified"), Ok(1), "{reply}");
    let reply = primary.command(doc! {
        "delete": "c", "deletes": [{"q": {"_id": 8}, "limit": 1}], "writeConcern": {"w": 3}, "$db": "app"
    });
    assert_eq!(reply.get_i32("n"), Ok(1), "{reply}");

    for (i, node) in nodes.iter().enumerate() {
        if i == p {
            continue;
        }
        // w: 3 acknowledged: every member holds the writes (applied in log order).
        let found = eventually(Duration::from_secs(10), "the writes on a secondary", || {
            let reply = secondary_read(node, doc! {"count": "c", "$db": "app"});
            (reply.get_i32("n") == Ok(49)).then_some(reply)
        });
        assert!(ok(&found));
        let seven = secondary_read(node, doc! {"find": "c", "filter": {"_id": 7}, "$db": "app"});
        let batch = seven
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap();
        assert_eq!(batch[0].as_document().unwrap(), &doc! {"_id": 7, "v": -1});

        let refused = node.command(doc! {"insert": "c", "documents": [{"_id": 100}], "$db": "app"});
        assert_eq!(refused.get_i32("code"), Ok(10107), "{refused}");
        let refused = node.command(doc! {"find": "c", "$db": "app"});
        assert_eq!(refused.get_i32("code"), Ok(13435), "{refused}");
    }
    // A duplicate _id is refused on the primary, and nothing of it reaches the log.
    let dup = primary.command(doc! {"insert": "c", "documents": [{"_id": 1}], "$db": "app"});
    let errors = dup.get_array("writeErrors").unwrap();
    assert_eq!(errors[0].as_document().unwrap().get_i32("code"), Ok(11000));
}

fn purged(node: &Ferrod) -> bool {
    node.log_lines()
        .iter()
        .any(|l| l.contains("\"Purged the replication log\""))
}

/// A member added after the primary purged its log is caught up by a snapshot, which
/// carries the collections and their documents.
#[test]
fn a_snapshot_carries_the_documents_to_a_new_member() {
    let args = &[
        "--replSet",
        "rs0",
        "--setParameter",
        "replLogEntriesPerSnapshot=20",
    ];
    let nodes: Vec<Ferrod> = (0..2).map(|_| Ferrod::start(args)).collect();
    let member = |i: usize| doc! {"_id": i as i32, "host": nodes[i].addr()};
    let settings = doc! {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000};
    let reply = nodes[0].command(doc! {"replSetInitiate": {"_id": "rs0", "version": 1, "members": [member(0)], "settings": settings.clone()}, "$db": "admin"});
    assert!(ok(&reply), "{reply}");
    eventually(Duration::from_secs(10), "a primary", || {
        (nodes[0]
            .command(doc! {"hello": 1, "$db": "admin"})
            .get_bool("isWritablePrimary")
            == Ok(true))
        .then_some(())
    });
    for i in 0..60 {
        let reply = nodes[0]
            .command(doc! {"insert": "c", "documents": [{"_id": i, "s": "x"}], "$db": "app"});
        assert_eq!(reply.get_i32("n"), Ok(1), "{reply}");
    }
    eventually(Duration::from_secs(20), "the log purged", || {
        purged(&nodes[0]).then_some(())
    });
    let reply = nodes[0].command(doc! {"replSetReconfig": {"_id": "rs0", "version": 2, "members": [member(0), member(1)], "settings": settings}, "$db": "admin"});
    assert!(ok(&reply), "{reply}");
    nodes[1].wait_for_log(
        "\"Installed a snapshot of the replicated catalog\"",
        Duration::from_secs(20),
    );
    eventually(
        Duration::from_secs(20),
        "every document on the new member",
        || {
            let reply = secondary_read(&nodes[1], doc! {"count": "c", "$db": "app"});
            (reply.get_i32("n") == Ok(60)).then_some(())
        },
    );
}

/// kill -9 of the primary while a client inserts with `w: "majority"`, 20 rounds (the
/// issue's count): every acknowledged document is on the new primary, and every member
/// holds the same documents, with equal `dbHash`es, once caught up.
#[test]
fn no_majority_acknowledged_document_is_lost_when_the_primary_is_killed() {
    use std::sync::{Arc, Mutex};
    let (mut nodes, mut p) = common::three_member_set();
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let acknowledged = Arc::new(Mutex::new(Vec::<i64>::new()));
    for round in 0..20_i64 {
        let before = acknowledged.lock().unwrap().len();
        let port = nodes[p].port;
        let acked = acknowledged.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                return;
            };
            for id in round * 1_000_000.. {
                let cmd = doc! {"insert": "c", "documents": [{"_id": id}], "writeConcern": {"w": "majority"}, "$db": "app"};
                if s.write_all(&common::op_msg(1, 0, &cmd)).is_err() {
                    return;
                }
                let Ok((_, _, _, body)) = common::read_frame(&mut s) else {
                    return;
                };
                let reply = common::parse_op_msg_reply(&body);
                if reply.get_i32("n") != Ok(1) || reply.contains_key("writeConcernError") {
                    return;
                }
                acked.lock().unwrap().push(id);
            }
        });
        eventually(Duration::from_secs(20), "acknowledged inserts", || {
            (acknowledged.lock().unwrap().len() >= before + 20).then_some(())
        });
        let old = nodes.remove(p);
        let dbpath = old.into_dbpath();
        let _ = writer.join();
        let survivors: Vec<usize> = (0..nodes.len()).collect();
        let new_p = eventually(Duration::from_secs(30), "a new primary", || {
            survivors.iter().copied().find(|&i| {
                nodes[i]
                    .command(doc! {"hello": 1, "$db": "admin"})
                    .get_bool("isWritablePrimary")
                    == Ok(true)
            })
        });
        let expected = acknowledged.lock().unwrap().clone();
        let reply = nodes[new_p].command(doc! {"find": "c", "batchSize": 1_000_000, "$db": "app"});
        let found: Vec<i64> = reply
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()
            .iter()
            .map(|d| d.as_document().unwrap().get_i64("_id").unwrap())
            .collect();
        for id in &expected {
            assert!(
                found.contains(id),
                "round {round}: acknowledged _id {id} lost"
            );
        }
        // The killed member comes back on its port and catches up.
        let restarted = Ferrod::start_on_port(
            dbpath,
            ports
                .iter()
                .copied()
                .find(|port| nodes.iter().all(|n| n.port != *port))
                .unwrap(),
            &["--replSet", "rs0"],
        );
        nodes.push(restarted);
        p = new_p;
    }
    // Every member ends with the same documents (the unacknowledged last insert of a
    // round may or may not be among them, alike everywhere).
    let expected = acknowledged.lock().unwrap().len() as i32;
    eventually(
        Duration::from_secs(30),
        "every member caught up alike",
        || {
            let ids: Vec<Vec<Bson>> = nodes
                .iter()
                .map(|node| {
                    let reply = secondary_read(
                        node,
                        doc! {"find": "c", "batchSize": 1_000_000, "$db": "app"},
                    );
                    reply
                        .get_document("cursor")
                        .map(|c| c.get_array("firstBatch").cloned().unwrap_or_default())
                        .unwrap_or_default()
                })
                .collect();
            let hashes: Vec<String> = nodes
                .iter()
                .map(|node| {
                    let reply = secondary_read(node, doc! {"dbHash": 1, "$db": "app"});
                    reply.get_str("md5").unwrap_or_default().to_string()
                })
                .collect();
            let same_hash = !hashes[0].is_empty() && hashes.iter().all(|h| *h == hashes[0]);
            (ids[0].len() as i32 >= expected && ids.iter().all(|i| *i == ids[0]) && same_hash)
                .then_some(())
        },
    );
}
