//! What mongosh's helpers send (issue 11, item 7): logComponentVerbosity
//! (`db.getLogComponents()`, `db.setLogLevel()`), replSetSyncFrom (`rs.syncFrom()`),
//! aggregate with `$currentOp` (`db.currentOp()`) and the built-in roles of mongod's list.
//! tests/interop.rs runs the helpers themselves in mongosh.

mod common;

use bson::{doc, Bson, Document};
use common::{admin, eventually, Ferrod};
use std::io::Write;
use std::time::Duration;

fn code(reply: &Document) -> Option<i32> {
    reply.get_i32("code").ok()
}

#[test]
fn log_component_verbosity_is_a_tree_that_logs_what_it_says() {
    let server = Ferrod::start(&[]);
    let r = admin(
        &server,
        doc! {"getParameter": 1, "logComponentVerbosity": 1},
    );
    let tree = r.get_document("logComponentVerbosity").unwrap();
    assert_eq!(tree.get_i32("verbosity").unwrap(), 0);
    assert_eq!(
        tree.get_document("network").unwrap(),
        &doc! {"verbosity": -1, "asio": {"verbosity": -1}, "bridge": {"verbosity": -1},
        "connectionPool": {"verbosity": -1}}
    );
    // db.setLogLevel(1): the default component, which is logLevel.
    let r = admin(
        &server,
        doc! {"setParameter": 1, "logComponentVerbosity": {"verbosity": 1}},
    );
    assert_eq!(
        r.get_document("was").unwrap().get_i32("verbosity").unwrap(),
        0,
        "{r}"
    );
    let r = admin(&server, doc! {"getParameter": 1, "logLevel": 1});
    assert_eq!(r.get_i32("logLevel").unwrap(), 1);
    admin(&server, doc! {"setParameter": 1, "logLevel": 0});
    let r = admin(
        &server,
        doc! {"getParameter": 1, "logComponentVerbosity": 1},
    );
    assert_eq!(
        r.get_document("logComponentVerbosity")
            .unwrap()
            .get_i32("verbosity")
            .unwrap(),
        0
    );

    // db.setLogLevel(1, "network"): network's debug lines appear, the default stays 0.
    let r = admin(
        &server,
        doc! {"setParameter": 1, "logComponentVerbosity": {"network": {"verbosity": 1}}},
    );
    assert_eq!(r.get_f64("ok").unwrap(), 1.0, "{r}");
    let mut s = server.raw();
    // An OP_MSG whose body holds an element of no BSON type: "invalid message", a debug
    // line of the network component.
    let body = [0, 0, 0, 0, 0, 8, 0, 0, 0, 0x20, b'a', 0, 0];
    s.write_all(&common::frame(1, 2013, &body)).unwrap();
    let _ = common::read_frame(&mut s);
    let line = server.wait_for_log("\"id\":22632", Duration::from_secs(5));
    assert!(line.contains("\"s\":\"D1\""), "{line}");

    let r = admin(
        &server,
        doc! {"setParameter": 1, "logComponentVerbosity": {"nosuch": {"verbosity": 1}}},
    );
    assert_eq!(code(&r), Some(2), "{r}");
    assert_eq!(
        r.get_str("errmsg").unwrap(),
        "Invalid component name nosuch"
    );
}

#[test]
fn current_op_aggregate_answers_mongosh_pipeline() {
    let server = Ferrod::start(&[]);
    let r = admin(
        &server,
        doc! {"aggregate": 1, "pipeline": [
            {"$currentOp": {"allUsers": true, "idleConnections": false, "truncateOps": false}},
            {"$match": {"command.aggregate": 1}},
        ], "cursor": {}},
    );
    let cursor = r.get_document("cursor").unwrap();
    assert_eq!(cursor.get_str("ns").unwrap(), "admin.$cmd.aggregate");
    assert_eq!(cursor.get_i64("id").unwrap(), 0);
    let batch = cursor.get_array("firstBatch").unwrap();
    assert_eq!(batch.len(), 1, "the aggregate sees itself: {r}");
    let op = batch[0].as_document().unwrap();
    assert_eq!(op.get_str("type").unwrap(), "op");

    let r = server.command(
        doc! {"aggregate": 1, "pipeline": [{"$currentOp": {}}], "cursor": {}, "$db": "test"},
    );
    assert_eq!(code(&r), Some(73), "{r}");
    let r = admin(
        &server,
        doc! {"aggregate": 1, "pipeline": [{"$match": {}}, {"$currentOp": {}}], "cursor": {}},
    );
    assert_eq!(code(&r), Some(40602), "{r}");
    let r = admin(
        &server,
        doc! {"aggregate": 1, "pipeline": [{"$currentOp": {"bogus": true}}], "cursor": {}},
    );
    assert_eq!(code(&r), Some(9), "{r}");
    let r = admin(
        &server,
        doc! {"aggregate": 1, "pipeline": [{"$currentOp": {}}]},
    );
    assert_eq!(code(&r), Some(9), "cursor is required: {r}");
}

#[test]
fn backup_restore_and_enable_sharding_roles_exist() {
    let server = Ferrod::start(&[]);
    for (user, role, db) in [
        ("b", "backup", "admin"),
        ("r", "restore", "admin"),
        ("s", "enableSharding", "test"),
        ("q", "__queryableBackup", "admin"),
    ] {
        let r = admin(
            &server,
            doc! {"createUser": user, "pwd": "pw", "roles": [{"role": role, "db": db}]},
        );
        assert_eq!(r.get_f64("ok").unwrap(), 1.0, "{role}: {r}");
    }
    let r = admin(
        &server,
        doc! {"rolesInfo": {"role": "backup", "db": "admin"}, "showPrivileges": true},
    );
    let role = r.get_array("roles").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    let privileges = role.get_array("privileges").unwrap();
    let cluster_actions: Vec<&str> = privileges
        .iter()
        .filter_map(Bson::as_document)
        .filter(|p| {
            p.get_document("resource")
                .is_ok_and(|r| r.get_bool("cluster") == Ok(true))
        })
        .flat_map(|p| {
            p.get_array("actions")
                .unwrap()
                .iter()
                .filter_map(Bson::as_str)
        })
        .collect();
    assert!(cluster_actions.contains(&"serverStatus"), "{role}");
    // backup is an admin-only role.
    let r =
        server.command(doc! {"createUser": "x", "pwd": "pw", "roles": ["backup"], "$db": "test"});
    assert_eq!(code(&r), Some(31), "{r}");
}

#[test]
fn repl_set_sync_from_checks_and_answers_as_mongod() {
    let standalone = Ferrod::start(&[]);
    let r = admin(&standalone, doc! {"replSetSyncFrom": "localhost:1"});
    assert_eq!(code(&r), Some(76), "{r}");

    let nodes: Vec<Ferrod> = (0..2)
        .map(|_| Ferrod::start(&["--replSet", "rs0"]))
        .collect();
    let members: Vec<Bson> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
        .collect();
    let r = admin(
        &nodes[0],
        doc! {"replSetInitiate": {"_id": "rs0", "version": 1, "members": members,
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000}}},
    );
    assert_eq!(r.get_f64("ok").unwrap(), 1.0, "{r}");
    let (primary, secondary) = eventually(Duration::from_secs(15), "a primary", || {
        let p = nodes.iter().position(|n| {
            admin(n, doc! {"hello": 1})
                .get_bool("isWritablePrimary")
                .unwrap_or(false)
        })?;
        let s = 1 - p;
        admin(&nodes[s], doc! {"hello": 1})
            .get_str("primary")
            .ok()?;
        Some((p, s))
    });
    let r = admin(
        &nodes[primary],
        doc! {"replSetSyncFrom": nodes[secondary].addr()},
    );
    assert_eq!(code(&r), Some(95), "{r}");
    assert_eq!(r.get_str("errmsg").unwrap(), "primaries don't sync");
    let r = admin(
        &nodes[secondary],
        doc! {"replSetSyncFrom": nodes[secondary].addr()},
    );
    assert_eq!(code(&r), Some(72), "{r}");
    let r = admin(&nodes[secondary], doc! {"replSetSyncFrom": "nowhere:1"});
    assert_eq!(code(&r), Some(74), "{r}");
    let r = admin(
        &nodes[secondary],
        doc! {"replSetSyncFrom": nodes[primary].addr()},
    );
    assert_eq!(r.get_f64("ok").unwrap(), 1.0, "{r}");
    assert_eq!(
        r.get_str("syncFromRequested").unwrap(),
        nodes[primary].addr()
    );
    assert_eq!(r.get_str("prevSyncTarget").unwrap(), nodes[primary].addr());
}
