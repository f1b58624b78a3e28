//! Retryable writes (issue 13): a write with `lsid` and `txnNumber` is applied once and a
//! retry answers the first result, per statement, also after a restart and on a new
//! primary after a step-down; an older `txnNumber` gets TransactionTooOld (225); the
//! session arguments are checked as mongod checks them (72, 20, 50768); transactions
//! are refused.

mod common;

use bson::{doc, Binary, Bson, Document};
use common::{admin, eventually, free_port, ok, Ferrod};
use std::time::Duration;

fn lsid() -> Document {
    doc! {"id": Binary::from_uuid(bson::Uuid::new())}
}

fn primary_of(nodes: &[Ferrod]) -> usize {
    eventually(Duration::from_secs(30), "a primary", || {
        nodes
            .iter()
            .position(|n| admin(n, doc! {"hello": 1}).get_bool("isWritablePrimary") == Ok(true))
    })
}

/// A replica set of `size` members on fresh ports, and its primary's index.
fn set(size: usize) -> (Vec<Ferrod>, usize) {
    set_with(size, &[])
}

fn set_with(size: usize, args: &[&str]) -> (Vec<Ferrod>, usize) {
    let args: Vec<&str> = ["--replSet", "rs0"].iter().chain(args).copied().collect();
    let nodes: Vec<Ferrod> = (0..size)
        .map(|_| Ferrod::start_on_port(tempfile::tempdir().unwrap(), free_port(), &args))
        .collect();
    let config = doc! {
        "_id": "rs0", "version": 1,
        "members": nodes.iter().enumerate()
            .map(|(i, n)| Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
            .collect::<Vec<_>>(),
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
    };
    let reply = admin(&nodes[0], doc! {"replSetInitiate": config});
    assert!(ok(&reply), "{reply}");
    let p = primary_of(&nodes);
    (nodes, p)
}

fn with_session(mut cmd: Document, lsid: &Document, txn: i64) -> Document {
    cmd.insert("lsid", lsid.clone());
    cmd.insert("txnNumber", txn);
    cmd.insert("$db", "app");
    cmd
}

fn count(node: &Ferrod, filter: Document) -> i32 {
    let reply = node.command(doc! {"count": "c", "query": filter, "$db": "app"});
    reply.get_i32("n").unwrap_or_else(|_| panic!("{reply}"))
}

fn write_error_codes(reply: &Document) -> Vec<(i32, i32)> {
    reply
        .get_array("writeErrors")
        .map(|a| {
            a.iter()
                .map(|e| {
                    let e = e.as_document().unwrap();
                    (e.get_i32("index").unwrap(), e.get_i32("code").unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_retried_insert_answers_the_first_result_and_inserts_once() {
    let (nodes, p) = set(1);
    let node = &nodes[p];
    let s = lsid();
    let insert = with_session(
        doc! {"insert": "c", "documents": [{"_id": 1}, {"_id": 2}]},
        &s,
        1,
    );
    let first = node.command(insert.clone());
    assert!(ok(&first) && first.get_i32("n") == Ok(2), "{first}");
    let retry = node.command(insert);
    assert!(ok(&retry), "{retry}");
    assert_eq!(retry.get_i32("n"), Ok(2), "{retry}");
    assert!(!retry.contains_key("writeErrors"), "{retry}");
    assert_eq!(
        retry.get_array("retriedStmtIds").unwrap(),
        &vec![Bson::Int32(0), Bson::Int32(1)]
    );
    assert_eq!(count(node, doc! {}), 2);

    // Per statement: the one that ran is answered, the one that failed runs again.
    let partial = with_session(
        doc! {"insert": "c", "documents": [{"_id": 3}, {"_id": 1}, {"_id": 4}]},
        &s,
        2,
    );
    let first = node.command(partial.clone());
    assert_eq!(first.get_i32("n"), Ok(1), "{first}");
    assert_eq!(write_error_codes(&first), vec![(1, 11000)]);
    let retry = node.command(partial);
    assert_eq!(retry.get_i32("n"), Ok(1), "{retry}");
    assert_eq!(write_error_codes(&retry), vec![(1, 11000)]);
    assert_eq!(
        retry.get_array("retriedStmtIds").unwrap(),
        &vec![Bson::Int32(0)]
    );
    assert_eq!(count(node, doc! {}), 3);

    // A newer txnNumber runs; an older one is refused.
    let newer = node.command(with_session(
        doc! {"insert": "c", "documents": [{"_id": 5}]},
        &s,
        7,
    ));
    assert_eq!(newer.get_i32("n"), Ok(1), "{newer}");
    let older = node.command(with_session(
        doc! {"insert": "c", "documents": [{"_id": 6}]},
        &s,
        6,
    ));
    assert_eq!(older.get_i32("code"), Ok(225), "{older}");
    assert_eq!(older.get_str("codeName"), Ok("TransactionTooOld"));
    assert!(
        older
            .get_str("errmsg")
            .unwrap()
            .contains("Retryable write with txnNumber 6 is prohibited"),
        "{older}"
    );
    assert_eq!(count(node, doc! {"_id": 6}), 0);
    // Another session has its own numbers.
    let other = node.command(with_session(
        doc! {"insert": "c", "documents": [{"_id": 6}]},
        &lsid(),
        1,
    ));
    assert_eq!(other.get_i32("n"), Ok(1), "{other}");
}

#[test]
fn retried_update_delete_and_find_and_modify_apply_once() {
    let (nodes, p) = set(1);
    let node = &nodes[p];
    let s = lsid();
    let seed = node.command(doc! {
        "insert": "c", "documents": [{"_id": 1, "v": 0}, {"_id": 2, "v": 0}, {"_id": 3, "v": 0}],
        "$db": "app",
    });
    assert!(ok(&seed), "{seed}");

    let update = with_session(
        doc! {"update": "c", "updates": [
            {"q": {"_id": 1}, "u": {"$inc": {"v": 1}}},
            {"q": {"_id": 10}, "u": {"$set": {"v": 5}}, "upsert": true},
        ]},
        &s,
        1,
    );
    let first = node.command(update.clone());
    assert_eq!(first.get_i32("n"), Ok(2), "{first}");
    assert_eq!(first.get_i32("nModified"), Ok(1), "{first}");
    let retry = node.command(update);
    assert_eq!(retry.get_i32("n"), Ok(2), "{retry}");
    assert_eq!(retry.get_i32("nModified"), Ok(1), "{retry}");
    assert_eq!(
        retry.get_array("upserted").unwrap(),
        first.get_array("upserted").unwrap()
    );
    assert_eq!(count(node, doc! {"_id": 1, "v": 1}), 1, "the $inc ran once");

    let delete = with_session(
        doc! {"delete": "c", "deletes": [{"q": {"v": 0}, "limit": 1}]},
        &s,
        2,
    );
    let first = node.command(delete.clone());
    assert_eq!(first.get_i32("n"), Ok(1), "{first}");
    let retry = node.command(delete);
    assert_eq!(retry.get_i32("n"), Ok(1), "{retry}");
    assert_eq!(
        count(node, doc! {"v": 0}),
        1,
        "one document deleted, not two"
    );

    let fam = with_session(
        doc! {"findAndModify": "c", "query": {"_id": 1}, "update": {"$inc": {"v": 10}}, "new": true},
        &s,
        3,
    );
    let first = node.command(fam.clone());
    assert_eq!(
        first.get_document("value").unwrap().get_i32("v"),
        Ok(11),
        "{first}"
    );
    let retry = node.command(fam);
    assert_eq!(retry.get_document("value"), first.get_document("value"));
    assert_eq!(
        retry.get_document("lastErrorObject"),
        first.get_document("lastErrorObject")
    );
    assert_eq!(retry.get_i32("retriedStmtId"), Ok(0), "{retry}");
    assert_eq!(
        count(node, doc! {"_id": 1, "v": 11}),
        1,
        "the $inc ran once"
    );

    // Statements that cannot be retried fail as write errors (InvalidOptions).
    let multi = node.command(with_session(
        doc! {"update": "c", "updates": [
            {"q": {"_id": 1}, "u": {"$set": {"m": 1}}},
            {"q": {}, "u": {"$set": {"m": 2}}, "multi": true},
        ]},
        &s,
        4,
    ));
    assert_eq!(multi.get_i32("n"), Ok(1), "{multi}");
    assert_eq!(write_error_codes(&multi), vec![(1, 72)]);
    let all = node.command(with_session(
        doc! {"delete": "c", "deletes": [{"q": {}, "limit": 0}]},
        &s,
        5,
    ));
    assert_eq!(write_error_codes(&all), vec![(0, 72)], "{all}");
    assert!(all.get_array("writeErrors").unwrap().iter().any(|e| e
        .as_document()
        .unwrap()
        .get_str("errmsg")
        == Ok("Cannot use (or request) retryable writes with limit=0")));
}

#[test]
fn session_arguments_are_checked_as_mongod_checks_them() {
    let (nodes, p) = set(1);
    let node = &nodes[p];
    let no_lsid = node.command(doc! {
        "insert": "c", "documents": [{"_id": 1}], "txnNumber": 1_i64, "$db": "app",
    });
    assert_eq!(no_lsid.get_i32("code"), Ok(72), "{no_lsid}");
    assert_eq!(
        no_lsid.get_str("errmsg"),
        Ok("Transaction number requires a session ID to also be specified")
    );
    let find = node.command(with_session(doc! {"find": "c"}, &lsid(), 1));
    assert_eq!(find.get_i32("code"), Ok(50768), "{find}");
    assert!(find
        .get_str("errmsg")
        .unwrap()
        .ends_with("and find is not a retryable write command."));
    let negative = node.command(with_session(
        doc! {"insert": "c", "documents": [{"_id": 1}]},
        &lsid(),
        -1,
    ));
    assert_eq!(negative.get_i32("code"), Ok(72), "{negative}");
    let mut txn = with_session(doc! {"insert": "c", "documents": [{"_id": 1}]}, &lsid(), 1);
    txn.insert("startTransaction", true);
    txn.insert("autocommit", false);
    let txn = node.command(txn);
    assert_eq!(txn.get_i32("code"), Ok(20), "{txn}");
    assert!(
        txn.get_str("errmsg").unwrap().contains("transactions"),
        "{txn}"
    );
    assert_eq!(count(node, doc! {}), 0, "nothing was written");
    let stream = node.command(doc! {
        "aggregate": "c", "pipeline": [{"$changeStream": {}}], "cursor": {}, "$db": "app",
    });
    assert_eq!(stream.get_i32("code"), Ok(115), "{stream}");
    assert!(stream.get_str("errmsg").unwrap().contains("$changeStream"));
}

/// failCommand's writeConcernError with RetryableWriteError follows a write that ran:
/// the driver retries it with the same txnNumber, and the retry must not apply it again.
#[tokio::test]
async fn the_driver_retries_after_a_lost_acknowledgement_and_the_write_lands_once() {
    let (nodes, p) = set_with(1, &["--setParameter", "enableTestCommands=1"]);
    let node = &nodes[p];
    let fail_once = |command: &str| {
        let reply = admin(
            node,
            doc! {
                "configureFailPoint": "failCommand", "mode": {"times": 1},
                "data": {
                    "failCommands": [command],
                    "writeConcernError": {"code": 91, "errmsg": "Replication is being shut down"},
                    "errorLabels": ["RetryableWriteError"],
                },
            },
        );
        assert!(ok(&reply), "{reply}");
    };
    // 91 (ShutdownInProgress) makes the driver mark the server unknown until its next
    // heartbeat: a short one lets the retry find it again.
    let client = common::driver(
        &format!(
            "mongodb://{}/?directConnection=true&heartbeatFrequencyMS=500",
            node.addr()
        ),
        None,
        None,
    )
    .await;
    let coll = client.database("app").collection::<Document>("c");

    fail_once("insert");
    coll.insert_one(doc! {"_id": 1, "v": 0}).await.unwrap();
    assert_eq!(count(node, doc! {}), 1);

    fail_once("update");
    let r = coll
        .update_one(doc! {"_id": 1}, doc! {"$inc": {"v": 1}})
        .await
        .unwrap();
    assert_eq!((r.matched_count, r.modified_count), (1, 1));
    assert_eq!(count(node, doc! {"v": 1}), 1, "the $inc ran once");

    fail_once("findAndModify");
    let before = coll
        .find_one_and_update(doc! {"_id": 1}, doc! {"$inc": {"v": 1}})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.get_i32("v"), Ok(1), "the first attempt's answer");
    assert_eq!(count(node, doc! {"v": 2}), 1, "the $inc ran once");

    coll.insert_one(doc! {"_id": 2}).await.unwrap();
    fail_once("delete");
    let r = coll.delete_one(doc! {}).await.unwrap();
    assert_eq!(r.deleted_count, 1);
    assert_eq!(count(node, doc! {}), 1, "one document deleted, not two");
}

#[test]
fn a_standalone_refuses_transaction_numbers() {
    let node = Ferrod::start(&[]);
    let reply = node.command(with_session(
        doc! {"insert": "c", "documents": [{"_id": 1}]},
        &lsid(),
        1,
    ));
    assert_eq!(reply.get_i32("code"), Ok(20), "{reply}");
    assert_eq!(
        reply.get_str("errmsg"),
        Ok("Transaction numbers are only allowed on a replica set member or mongos")
    );
    // With lsid alone (what drivers send to a standalone) the write runs.
    let mut plain = doc! {"insert": "c", "documents": [{"_id": 1}], "$db": "app"};
    plain.insert("lsid", lsid());
    assert_eq!(node.command(plain).get_i32("n"), Ok(1));
}

#[test]
fn a_retry_on_the_new_primary_after_a_step_down_is_applied_once() {
    let (nodes, p) = set(3);
    let s = lsid();
    let mut insert = with_session(
        doc! {"insert": "c", "documents": [{"_id": 1, "x": "a"}, {"_id": 2}]},
        &s,
        4,
    );
    insert.insert("writeConcern", doc! {"w": "majority"});
    let first = nodes[p].command(insert.clone());
    assert!(ok(&first) && first.get_i32("n") == Ok(2), "{first}");
    let fam = with_session(
        doc! {"findAndModify": "c", "query": {"_id": 1}, "update": {"$push": {"log": 1}}, "new": true, "writeConcern": {"w": "majority"}},
        &s,
        5,
    );
    let fam_first = nodes[p].command(fam.clone());
    assert!(ok(&fam_first), "{fam_first}");

    let down = admin(
        &nodes[p],
        doc! {"replSetStepDown": 10, "secondaryCatchUpPeriodSecs": 5},
    );
    assert!(ok(&down), "{down}");
    let q = eventually(Duration::from_secs(30), "a new primary", || {
        nodes.iter().enumerate().position(|(i, n)| {
            i != p && admin(n, doc! {"hello": 1}).get_bool("isWritablePrimary") == Ok(true)
        })
    });
    let fam_retry = nodes[q].command(fam);
    assert!(ok(&fam_retry), "{fam_retry}");
    assert_eq!(
        fam_retry.get_document("value"),
        fam_first.get_document("value")
    );
    assert_eq!(count(&nodes[q], doc! {"log": [1]}), 1, "the $push ran once");
    // The older txnNumber is refused there too: the record replicated.
    let retry = nodes[q].command(insert);
    assert_eq!(retry.get_i32("code"), Ok(225), "{retry}");
    assert_eq!(count(&nodes[q], doc! {}), 2);
}

#[test]
fn the_record_survives_a_restart() {
    let (mut nodes, p) = set(1);
    let s = lsid();
    let insert = with_session(doc! {"insert": "c", "documents": [{"_id": 1}]}, &s, 1);
    assert_eq!(nodes[p].command(insert.clone()).get_i32("n"), Ok(1));
    let node = nodes.remove(p);
    let port = node.port;
    let mut node = node;
    node.terminate();
    let node = Ferrod::start_on_port(node.into_dbpath(), port, &["--replSet", "rs0"]);
    let nodes = vec![node];
    let p = primary_of(&nodes);
    let retry = nodes[p].command(insert);
    assert_eq!(retry.get_i32("n"), Ok(1), "{retry}");
    assert_eq!(
        retry.get_array("retriedStmtIds").unwrap(),
        &vec![Bson::Int32(0)]
    );
    assert_eq!(count(&nodes[p], doc! {}), 1);
}
