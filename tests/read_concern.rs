//! readConcern on a standalone and on a replica set, as mongod 7.0 answers it: the levels
//! each topology serves, mongod's refusals (unknown levels and fields, linearizable off
//! the primary, `$out` under linearizable, snapshot for count), and afterClusterTime
//! waiting until the member has applied that time (causal consistency).

mod common;

use common::{eventually, free_port, Ferrod};
use mongodb::bson::{doc, Bson, Document, Timestamp};
use std::process::Command;
use std::time::Duration;

fn ok(reply: &Document) -> bool {
    matches!(reply.get("ok"), Some(Bson::Double(v)) if *v == 1.0)
}

fn code(reply: &Document) -> i32 {
    reply
        .get_i32("code")
        .unwrap_or_else(|_| panic!("no error: {reply}"))
}

fn first_batch(reply: &Document) -> Vec<Document> {
    reply
        .get_document("cursor")
        .unwrap_or_else(|_| panic!("{reply}"))
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|b| b.as_document().unwrap().clone())
        .collect()
}

fn find_with(node: &Ferrod, rc: Document) -> Document {
    node.command(doc! {
        "find": "c", "readConcern": rc, "$readPreference": {"mode": "secondaryPreferred"},
        "$db": "app"
    })
}

fn set() -> (Vec<Ferrod>, usize) {
    let nodes: Vec<Ferrod> = (0..3)
        .map(|_| {
            Ferrod::start_on_port(
                tempfile::tempdir().unwrap(),
                free_port(),
                &["--replSet", "rs0"],
            )
        })
        .collect();
    let config = doc! {
        "_id": "rs0", "version": 1,
        "members": nodes.iter().enumerate()
            .map(|(i, n)| Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
            .collect::<Vec<_>>(),
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
    };
    let reply = nodes[0].command(doc! {"replSetInitiate": config, "$db": "admin"});
    assert!(ok(&reply), "{reply}");
    let p = eventually(Duration::from_secs(30), "a primary", || {
        nodes.iter().position(|n| {
            n.command(doc! {"hello": 1, "$db": "admin"})
                .get_bool("isWritablePrimary")
                == Ok(true)
        })
    });
    (nodes, p)
}

#[test]
fn a_standalone_serves_local_available_and_majority_and_refuses_the_rest() {
    let node = Ferrod::start(&[]);
    let reply = node.command(doc! {"insert": "c", "documents": [{"_id": 1}], "$db": "app"});
    assert_eq!(reply.get_i32("n"), Ok(1), "{reply}");
    for level in ["local", "available", "majority"] {
        let reply = find_with(&node, doc! {"level": level});
        assert_eq!(first_batch(&reply).len(), 1, "{level}: {reply}");
    }
    let ts = Timestamp {
        time: 1,
        increment: 1,
    };
    let refused: Vec<(Document, i32)> = vec![
        (doc! {"level": "linearizable"}, 123),
        (doc! {"level": "snapshot"}, 123),
        (doc! {"afterClusterTime": ts}, 20),
        (doc! {"level": "strong"}, 9),
        (doc! {"level": 1}, 14),
        (doc! {"level": "local", "bogus": 1}, 72),
        (doc! {"level": "available", "afterClusterTime": ts}, 72),
        (doc! {"level": "local", "atClusterTime": ts}, 72),
    ];
    for (rc, expected) in refused {
        let reply = find_with(&node, rc.clone());
        assert_eq!(code(&reply), expected, "{rc}: {reply}");
    }
    let reply = node.command(doc! {"find": "c", "readConcern": 1, "$db": "app"});
    assert_eq!(code(&reply), 9, "{reply}");
    // count reads no snapshot outside a transaction: refused before the topology check.
    let reply = node.command(doc! {
        "count": "c", "readConcern": {"level": "snapshot"}, "$db": "app"
    });
    assert_eq!(code(&reply), 72, "{reply}");
}

#[test]
fn levels_on_a_replica_set_primary_and_secondary() {
    let (nodes, p) = set();
    let s = (p + 1) % 3;
    let reply = nodes[p].command(doc! {
        "insert": "c", "documents": [{"_id": 1, "x": 1}], "writeConcern": {"w": 3}, "$db": "app"
    });
    assert_eq!(reply.get_i32("n"), Ok(1), "{reply}");
    for level in ["local", "available", "majority", "linearizable", "snapshot"] {
        let reply = find_with(&nodes[p], doc! {"level": level});
        assert_eq!(
            first_batch(&reply).len(),
            1,
            "{level} on the primary: {reply}"
        );
    }
    // w: 3 means every member holds the entry; the secondary applies it just after.
    eventually(
        Duration::from_secs(10),
        "the write on the secondary",
        || (first_batch(&find_with(&nodes[s], doc! {})).len() == 1).then_some(()),
    );
    for level in ["local", "available", "majority", "snapshot"] {
        let reply = find_with(&nodes[s], doc! {"level": level});
        assert_eq!(
            first_batch(&reply).len(),
            1,
            "{level} on a secondary: {reply}"
        );
    }
    let reply = find_with(&nodes[s], doc! {"level": "linearizable"});
    assert_eq!(code(&reply), 10107, "{reply}");
    assert_eq!(
        reply.get_str("errmsg"),
        Ok("cannot satisfy linearizable read concern on non-primary node")
    );
    // linearizable with afterOpTime: FailedToParse.
    let optime = doc! {"ts": Timestamp { time: 1, increment: 1 }, "t": 1i64};
    let reply = find_with(
        &nodes[p],
        doc! {"level": "linearizable", "afterOpTime": optime},
    );
    assert_eq!(code(&reply), 9, "{reply}");
    // A time later than the member's cluster time is refused, not waited for.
    let future = Timestamp {
        time: u32::MAX - 1,
        increment: 1,
    };
    let reply = find_with(&nodes[p], doc! {"afterClusterTime": future});
    assert_eq!(code(&reply), 72, "{reply}");
    // $out cannot run under linearizable; count reads no snapshot.
    let reply = nodes[p].command(doc! {
        "aggregate": "c", "pipeline": [{"$match": {}}, {"$out": "d"}], "cursor": {},
        "readConcern": {"level": "linearizable"}, "$db": "app"
    });
    assert_eq!(code(&reply), 72, "{reply}");
    assert!(
        reply
            .get_str("errmsg")
            .unwrap()
            .ends_with("$out cannot be used with a 'linearizable' read concern level"),
        "{reply}"
    );
    let reply = nodes[p].command(doc! {
        "count": "c", "readConcern": {"level": "snapshot"}, "$db": "app"
    });
    assert_eq!(code(&reply), 72, "{reply}");
    for cmd in [
        doc! {"count": "c", "readConcern": {"level": "majority"}, "$db": "app"},
        doc! {"distinct": "c", "key": "x", "readConcern": {"level": "linearizable"}, "$db": "app"},
        doc! {"aggregate": "c", "pipeline": [], "cursor": {}, "readConcern": {"level": "majority"}, "$db": "app"},
    ] {
        let reply = nodes[p].command(cmd.clone());
        assert!(ok(&reply), "{cmd}: {reply}");
    }
}

fn signal(node: &Ferrod, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A secondary that has not yet applied a write answers a read with that write's
/// afterClusterTime only once it has: the read is sent while the member is stopped
/// (so it lags), and the member resumes with the read already waiting.
#[test]
fn after_cluster_time_waits_until_the_secondary_has_applied_the_write() {
    let (nodes, p) = set();
    let s = (p + 1) % 3;
    eventually(Duration::from_secs(20), "a secondary", || {
        let hello = nodes[s].command(doc! {"hello": 1, "$db": "admin"});
        (hello.get_bool("secondary") == Ok(true)).then_some(())
    });
    let mut conn = nodes[s].raw();
    // The connection is set up before the member stops.
    let hello = common::op_msg_roundtrip(&mut conn, &doc! {"ping": 1, "$db": "admin"});
    assert!(ok(&hello), "{hello}");
    signal(&nodes[s], "-STOP");
    let reply = nodes[p].command(doc! {
        "insert": "c", "documents": [{"_id": "late"}], "writeConcern": {"w": 2}, "$db": "app"
    });
    assert_eq!(reply.get_i32("n"), Ok(1), "{reply}");
    let time = reply.get_timestamp("operationTime").unwrap();
    let cluster_time = reply.get_document("$clusterTime").unwrap().clone();
    let find = doc! {
        "find": "c", "filter": {"_id": "late"},
        "readConcern": {"level": "local", "afterClusterTime": time},
        "$readPreference": {"mode": "secondary"}, "$clusterTime": cluster_time, "$db": "app"
    };
    use std::io::Write;
    conn.write_all(&common::op_msg(7, 0, &find)).unwrap();
    signal(&nodes[s], "-CONT");
    let (_, _, _, body) = common::read_frame(&mut conn).unwrap();
    let reply = common::parse_op_msg_reply(&body);
    assert_eq!(first_batch(&reply).len(), 1, "{reply}");
}

/// The Rust driver's causally consistent session: a write on the primary, then a read
/// on a secondary in the same session, sees the write.
#[test]
fn a_causally_consistent_session_reads_its_write_on_a_secondary() {
    let (nodes, _) = set();
    let hosts: Vec<String> = nodes.iter().map(|n| n.addr()).collect();
    let uri = format!("mongodb://{}/?replicaSet=rs0", hosts.join(","));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use mongodb::options::{ReadPreference, SelectionCriteria};
        let client = common::driver(&uri, None, None).await;
        let coll = client.database("app").collection::<Document>("causal");
        let mut session = client
            .start_session()
            .causal_consistency(true)
            .await
            .unwrap();
        let secondary = SelectionCriteria::ReadPreference(ReadPreference::Secondary {
            options: Default::default(),
        });
        for i in 0..20 {
            coll.insert_one(doc! {"_id": i})
                .session(&mut session)
                .await
                .unwrap();
            let found = coll
                .find_one(doc! {"_id": i})
                .selection_criteria(secondary.clone())
                .session(&mut session)
                .await
                .unwrap();
            assert_eq!(found, Some(doc! {"_id": i}), "read {i} on a secondary");
        }
    });
}
