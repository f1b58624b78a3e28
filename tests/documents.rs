//! Documents through the Rust driver against a real ferrod: insert, find with cursors,
//! updates, deletes, findAndModify, count, distinct, namespaces and their errors.

mod common;

use common::Ferrod;
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::FindOptions;

async fn client(server: &Ferrod) -> mongodb::Client {
    common::driver(&server.uri(), None, None).await
}

fn code_of(e: &mongodb::error::Error) -> Option<i32> {
    // The driver reports write errors and command errors in different kinds.
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first())
            .map(|w| w.code),
        _ => None,
    }
}

#[tokio::test]
async fn insert_and_find_with_filter_sort_skip_limit_projection_and_cursors() {
    let server = Ferrod::start(&[]);
    let c = client(&server).await;
    let coll = c.database("test").collection::<Document>("foo");
    let one = coll.insert_one(doc! {"a": 1}).await.unwrap();
    assert!(matches!(one.inserted_id, Bson::ObjectId(_)));
    let docs: Vec<Document> = (0..250)
        .map(|i| doc! {"_id": i, "n": i % 10, "s": format!("x{i}")})
        .collect();
    coll.insert_many(docs).await.unwrap();
    assert_eq!(coll.estimated_document_count().await.unwrap(), 251);

    // Several batches: 101 first, then getMore.
    let all: Vec<Document> = coll
        .find(doc! {"n": {"$exists": true}})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 250);
    let ids: Vec<i32> = all.iter().map(|d| d.get_i32("_id").unwrap()).collect();
    assert_eq!(ids, (0..250).collect::<Vec<_>>(), "_id order");

    let found: Vec<Document> = coll
        .find(doc! {"n": 3})
        .sort(doc! {"_id": -1})
        .skip(2)
        .limit(3)
        .projection(doc! {"s": 1, "_id": 0})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        found,
        vec![doc! {"s": "x223"}, doc! {"s": "x213"}, doc! {"s": "x203"}]
    );

    let small_batches: Vec<Document> = coll
        .find(doc! {"_id": {"$gte": 100, "$lt": 110}})
        .with_options(FindOptions::builder().batch_size(3).build())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(small_batches.len(), 10);

    let by_id = coll.find_one(doc! {"_id": 42}).await.unwrap().unwrap();
    assert_eq!(by_id.get_str("s").unwrap(), "x42");
    // int, long and double _ids are one key.
    assert!(coll.find_one(doc! {"_id": 42.0}).await.unwrap().is_some());
}

#[tokio::test]
async fn duplicate_ids_are_write_errors_with_their_index_ordered_and_unordered() {
    let server = Ferrod::start(&[]);
    let db = server.command(doc! {"insert": "c", "documents": [{"_id": 1}], "$db": "test"});
    assert!(common::ok(&db), "{db:?}");
    let ordered = server.command(
        doc! {"insert": "c", "documents": [{"_id": 2}, {"_id": 1}, {"_id": 3}], "$db": "test"},
    );
    assert_eq!(ordered.get_i32("n").unwrap(), 1, "{ordered:?}");
    let errors = ordered.get_array("writeErrors").unwrap();
    let e = errors[0].as_document().unwrap();
    assert_eq!(e.get_i32("index").unwrap(), 1);
    assert_eq!(e.get_i32("code").unwrap(), 11000);
    assert_eq!(e.get_document("keyPattern").unwrap(), &doc! {"_id": 1});
    assert_eq!(e.get_document("keyValue").unwrap(), &doc! {"_id": 1});
    assert_eq!(
        e.get_str("errmsg").unwrap(),
        "E11000 duplicate key error collection: test.c index: _id_ dup key: { _id: 1 }"
    );
    let unordered = server.command(doc! {"insert": "c", "documents": [{"_id": 4}, {"_id": 1}, {"_id": 4.0}, {"_id": 5}], "ordered": false, "$db": "test"});
    assert_eq!(unordered.get_i32("n").unwrap(), 2, "{unordered:?}");
    let indexes: Vec<i32> = unordered
        .get_array("writeErrors")
        .unwrap()
        .iter()
        .map(|e| e.as_document().unwrap().get_i32("index").unwrap())
        .collect();
    assert_eq!(indexes, [1, 2]);
    let count = server.command(doc! {"count": "c", "$db": "test"});
    assert_eq!(count.get_i32("n").unwrap(), 4, "{count:?}");
}

#[tokio::test]
async fn cursors_end_with_cursor_not_found_after_kill_and_idle_timeout() {
    let server = Ferrod::start(&[]);
    let docs: Vec<Document> = (0..10).map(|i| doc! {"_id": i}).collect();
    server.command(doc! {"insert": "c", "documents": docs, "$db": "test"});
    let first = server.command(doc! {"find": "c", "batchSize": 2, "$db": "test"});
    let cursor = first.get_document("cursor").unwrap();
    assert_eq!(cursor.get_array("firstBatch").unwrap().len(), 2);
    assert_eq!(cursor.get_str("ns").unwrap(), "test.c");
    let id = cursor.get_i64("id").unwrap();
    assert_ne!(id, 0);
    let more =
        server.command(doc! {"getMore": id, "collection": "c", "batchSize": 3, "$db": "test"});
    let next = more.get_document("cursor").unwrap();
    assert_eq!(next.get_array("nextBatch").unwrap().len(), 3, "{more:?}");
    assert_eq!(next.get_i64("id").unwrap(), id);
    let killed = server.command(doc! {"killCursors": "c", "cursors": [id], "$db": "test"});
    assert_eq!(
        killed.get_array("cursorsKilled").unwrap(),
        &vec![Bson::Int64(id)]
    );
    let gone = server.command(doc! {"getMore": id, "collection": "c", "$db": "test"});
    assert_eq!(gone.get_i32("code").unwrap(), 43, "{gone:?}");
    assert_eq!(gone.get_str("codeName").unwrap(), "CursorNotFound");

    // With cursorTimeoutMillis 0 any idle cursor is closed before the next command,
    // except one opened with noCursorTimeout.
    let reply = server.command(doc! {"setParameter": 1, "cursorTimeoutMillis": 0, "$db": "admin"});
    assert!(common::ok(&reply), "{reply:?}");
    let open = |extra: Document| {
        let mut cmd = doc! {"find": "c", "batchSize": 2, "$db": "test"};
        cmd.extend(extra);
        let first = server.command(cmd);
        first.get_document("cursor").unwrap().get_i64("id").unwrap()
    };
    let idle = open(doc! {});
    let kept = open(doc! {"noCursorTimeout": true});
    let reply = server.command(doc! {"getMore": idle, "collection": "c", "$db": "test"});
    assert_eq!(reply.get_i32("code").ok(), Some(43), "{reply:?}");
    let reply = server.command(doc! {"getMore": kept, "collection": "c", "$db": "test"});
    assert_eq!(
        reply
            .get_document("cursor")
            .unwrap()
            .get_array("nextBatch")
            .unwrap()
            .len(),
        8,
        "{reply:?}"
    );
}

#[tokio::test]
async fn update_delete_find_and_modify_count_and_distinct() {
    let server = Ferrod::start(&[]);
    let c = client(&server).await;
    let coll = c.database("test").collection::<Document>("u");
    coll.insert_many((0..6).map(|i| doc! {"_id": i, "g": i % 2, "v": i}))
        .await
        .unwrap();

    let one = coll
        .update_one(doc! {"g": 1}, doc! {"$inc": {"v": 100}})
        .await
        .unwrap();
    assert_eq!((one.matched_count, one.modified_count), (1, 1));
    assert_eq!(
        coll.find_one(doc! {"_id": 1})
            .await
            .unwrap()
            .unwrap()
            .get_i32("v")
            .unwrap(),
        101
    );
    let many = coll
        .update_many(doc! {"g": 0}, doc! {"$set": {"tag": "even"}})
        .await
        .unwrap();
    assert_eq!((many.matched_count, many.modified_count), (3, 3));
    let again = coll
        .update_many(doc! {"g": 0}, doc! {"$set": {"tag": "even"}})
        .await
        .unwrap();
    assert_eq!(
        (again.matched_count, again.modified_count),
        (3, 0),
        "nothing changed"
    );
    let up = coll
        .update_one(doc! {"_id": 10, "g": 7}, doc! {"$set": {"v": 1}})
        .upsert(true)
        .await
        .unwrap();
    assert_eq!(up.upserted_id, Some(Bson::Int32(10)));
    assert_eq!(
        coll.find_one(doc! {"_id": 10}).await.unwrap().unwrap(),
        doc! {"_id": 10, "g": 7, "v": 1},
        "the upsert starts from the query's equalities"
    );
    let replaced = coll
        .replace_one(doc! {"_id": 2}, doc! {"r": true})
        .await
        .unwrap();
    assert_eq!(replaced.modified_count, 1);
    assert_eq!(
        coll.find_one(doc! {"_id": 2}).await.unwrap().unwrap(),
        doc! {"_id": 2, "r": true}
    );

    // _id is immutable (66).
    let err = coll
        .update_one(doc! {"_id": 3}, doc! {"$set": {"_id": 4}})
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), Some(66), "{err:?}");

    let before = coll
        .find_one_and_update(doc! {"g": 1}, doc! {"$set": {"seen": 1}})
        .sort(doc! {"v": -1})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        before.get_i32("_id").unwrap(),
        1,
        "the highest v, before the update"
    );
    let after = coll
        .find_one_and_update(doc! {"_id": 5}, doc! {"$set": {"seen": 2}})
        .return_document(mongodb::options::ReturnDocument::After)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.get_i32("seen").unwrap(), 2);
    let removed = coll
        .find_one_and_delete(doc! {"_id": 5})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed.get_i32("_id").unwrap(), 5);
    let raw = server.command(doc! {"findAndModify": "u", "query": {"_id": 99}, "update": {"$set": {"x": 1}}, "upsert": true, "new": true, "$db": "test"});
    let last = raw.get_document("lastErrorObject").unwrap();
    assert_eq!(last.get_i32("n").unwrap(), 1, "{raw:?}");
    assert!(!last.get_bool("updatedExisting").unwrap());
    assert_eq!(last.get("upserted"), Some(&Bson::Int32(99)));
    assert_eq!(
        raw.get_document("value").unwrap(),
        &doc! {"_id": 99, "x": 1}
    );

    let mut distinct = coll.distinct("g", doc! {}).await.unwrap();
    distinct.sort_by_key(|b| b.as_i32());
    assert_eq!(
        distinct,
        vec![Bson::Int32(0), Bson::Int32(1), Bson::Int32(7)]
    );
    let count = server.command(doc! {"count": "u", "query": {"g": 0}, "$db": "test"});
    // _id 2 was replaced by a document without g.
    assert_eq!(count.get_i32("n").unwrap(), 2, "{count:?}");

    let deleted = coll.delete_many(doc! {"g": 0}).await.unwrap();
    assert_eq!(deleted.deleted_count, 2);
    let deleted = coll.delete_one(doc! {}).await.unwrap();
    assert_eq!(deleted.deleted_count, 1);
    // Left: 2, 3, 10 and 99 (0 and 4 by delete_many, 1 by delete_one, 5 by findAndModify).
    assert_eq!(coll.estimated_document_count().await.unwrap(), 4);
}

#[tokio::test]
async fn namespaces_are_created_listed_sized_and_dropped() {
    let server = Ferrod::start(&[]);
    let c = client(&server).await;
    let db = c.database("shop");
    db.create_collection("empty").await.unwrap();
    db.collection::<Document>("items")
        .insert_one(doc! {"x": 1})
        .await
        .unwrap();
    let mut names = db.list_collection_names().await.unwrap();
    names.sort();
    assert_eq!(names, ["empty", "items"]);
    let listed =
        server.command(doc! {"listCollections": 1, "filter": {"name": "items"}, "$db": "shop"});
    let batch = listed
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    assert_eq!(batch.len(), 1, "{listed:?}");
    let entry = batch[0].as_document().unwrap();
    assert_eq!(entry.get_str("type").unwrap(), "collection");
    assert!(matches!(
        entry.get_document("info").unwrap().get("uuid"),
        Some(Bson::Binary(b)) if b.subtype == mongodb::bson::spec::BinarySubtype::Uuid
    ));

    let dbs = c.list_database_names().await.unwrap();
    assert!(dbs.contains(&"shop".to_owned()), "{dbs:?}");
    let stats = db.run_command(doc! {"dbStats": 1}).await.unwrap();
    assert_eq!(stats.get_i32("collections").unwrap(), 2);
    assert_eq!(stats.get_i32("objects").unwrap(), 1);

    // create on an existing collection with the same options succeeds (mongod 7.0).
    db.create_collection("empty").await.unwrap();
    let refused = server.command(doc! {"create": "c2", "viewOn": "items", "$db": "shop"});
    assert_eq!(refused.get_i32("code").unwrap(), 72, "{refused:?}");

    db.collection::<Document>("items").drop().await.unwrap();
    assert_eq!(db.list_collection_names().await.unwrap(), ["empty"]);
    db.drop().await.unwrap();
    assert!(db.list_collection_names().await.unwrap().is_empty());
    assert!(!c
        .list_database_names()
        .await
        .unwrap()
        .contains(&"shop".to_owned()));
}

/// Bad input: mongod's codes for each.
#[test]
fn bad_input_gets_mongod_codes() {
    let server = Ferrod::start(&[]);
    server.command(doc! {"insert": "c", "documents": [{"_id": 1, "a": 1}], "$db": "t"});
    let cases: Vec<(Document, i32)> = vec![
        (
            doc! {"insert": "c", "documents": [{"_id": {"$bad": 1}}]},
            52,
        ),
        (doc! {"insert": "c", "documents": [{"_id": [1]}]}, 2),
        (doc! {"insert": "c", "documents": []}, 16),
        (doc! {"insert": "c", "documents": 1}, 14),
        (doc! {"insert": "c", "documents": [{}], "bogus": 1}, 40415),
        (doc! {"insert": "", "documents": [{}]}, 73),
        (doc! {"find": "c", "filter": {"a": {"$foo": 1}}}, 2),
        (doc! {"find": "c", "filter": 1}, 14),
        (doc! {"find": "c", "limit": -1}, 51024),
        (doc! {"find": "c", "sort": {"a": 2}}, 15975),
        (doc! {"find": "c", "filter": {"a": {"$in": 1}}}, 2),
        (doc! {"find": "c", "filter": {"$and": []}}, 2),
        (doc! {"find": "c", "filter": {"a": {"$regex": "("}}}, 51091),
        (doc! {"find": "c", "projection": {"a": 1, "b": 0}}, 31254),
        (doc! {"find": "c", "bogus": 1}, 40415),
        (doc! {"getMore": 1, "collection": "c"}, 14),
        (doc! {"getMore": 12345_i64, "collection": "c"}, 43),
        (
            doc! {"update": "c", "updates": [{"q": {}, "u": {"$foo": {"a": 1}}}]},
            9,
        ),
        (
            doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {"_id": 2}}}]},
            66,
        ),
        (
            doc! {"update": "c", "updates": [{"q": {}, "u": {"$inc": {"a": "x"}}}]},
            14,
        ),
        (doc! {"delete": "c", "deletes": [{"q": {}, "limit": 5}]}, 9),
        // An upsert whose _id exists but did not match the rest of the query.
        (
            doc! {"update": "c", "updates": [{"q": {"_id": 1, "a": 5}, "u": {"$set": {"b": 1}}, "upsert": true}]},
            11000,
        ),
        (doc! {"findAndModify": "c", "query": {}}, 9),
        (
            doc! {"findAndModify": "c", "remove": true, "update": {"a": 1}},
            9,
        ),
        (doc! {"distinct": "c"}, 40414),
        (doc! {"create": "c", "capped": true}, 72),
    ];
    for (mut cmd, code) in cases {
        cmd.insert("$db", "t");
        let reply = server.command(cmd.clone());
        let got = reply.get_i32("code").ok().or_else(|| {
            reply
                .get_array("writeErrors")
                .ok()
                .and_then(|w| w[0].as_document().unwrap().get_i32("code").ok())
        });
        assert_eq!(got, Some(code), "{cmd:?} answered {reply:?}");
    }
}

/// kill -9 while a client inserts with `j: true`: after a restart on the same data,
/// every acknowledged document is there (50 rounds on one data directory, the issue's
/// count).
#[test]
fn acknowledged_journaled_inserts_survive_kill_9() {
    use std::sync::{Arc, Mutex};
    let mut dbpath = tempfile::tempdir().unwrap();
    let acknowledged = Arc::new(Mutex::new(Vec::<i64>::new()));
    for round in 0..50_i64 {
        let server = Ferrod::start_in(dbpath, &[]);
        let addr = server.addr();
        let acked = acknowledged.clone();
        let before = acknowledged.lock().unwrap().len();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            for id in round * 1_000_000.. {
                let cmd = doc! {"insert": "j", "documents": [{"_id": id}], "writeConcern": {"w": 1, "j": true}, "$db": "test"};
                if s.write_all(&common::op_msg(1, 0, &cmd)).is_err() {
                    return;
                }
                let Ok((_, _, _, body)) = common::read_frame(&mut s) else {
                    return;
                };
                if common::parse_op_msg_reply(&body).get_i32("n") != Ok(1) {
                    return;
                }
                acked.lock().unwrap().push(id);
            }
        });
        common::eventually(
            std::time::Duration::from_secs(20),
            "some acknowledged inserts",
            || (acknowledged.lock().unwrap().len() >= before + 20).then_some(()),
        );
        // kill -9 while the writer is still inserting.
        dbpath = server.into_dbpath();
        let _ = writer.join();
    }
    let server = Ferrod::start_in(dbpath, &[]);
    let expected: Vec<i64> = acknowledged.lock().unwrap().clone();
    let mut s = server.raw();
    let mut found = Vec::new();
    let first = common::op_msg_roundtrip(
        &mut s,
        &doc! {"find": "j", "batchSize": 100_000, "$db": "test"},
    );
    for d in first
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
    {
        found.push(d.as_document().unwrap().get_i64("_id").unwrap());
    }
    for id in &expected {
        assert!(
            found.contains(id),
            "acknowledged _id {id} lost after kill -9"
        );
    }
}

/// find, update and findAndModify use the whole query language: array traversal,
/// `$elemMatch`, `$or`, `$type`, and the positional `$` in updates and projections.
#[tokio::test]
async fn the_query_language_and_positional_operator_reach_the_commands() {
    let server = Ferrod::start(&[]);
    let c = client(&server).await;
    let coll = c.database("test").collection::<Document>("q");
    coll.insert_many(vec![
        doc! {"_id": 1, "tags": ["a", "b"], "scores": [{"k": "x", "v": 5}, {"k": "y", "v": 9}]},
        doc! {"_id": 2, "tags": ["c"], "scores": [{"k": "x", "v": 1}]},
        doc! {"_id": 3, "tags": "a", "n": null},
    ])
    .await
    .unwrap();
    let ids = |docs: Vec<Document>| {
        docs.iter()
            .map(|d| d.get_i32("_id").unwrap())
            .collect::<Vec<_>>()
    };
    let found: Vec<Document> = coll
        .find(doc! {"tags": "a"})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids(found), [1, 3], "an array matches by any element");
    let found: Vec<Document> = coll
        .find(doc! {"scores": {"$elemMatch": {"k": "x", "v": {"$gt": 2}}}})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids(found), [1]);
    let found: Vec<Document> = coll
        .find(doc! {"$or": [{"n": {"$type": "null"}}, {"tags": {"$size": 1}}]})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids(found), [2, 3]);

    coll.update_one(
        doc! {"_id": 1, "scores.k": "y"},
        doc! {"$inc": {"scores.$.v": 1}},
    )
    .await
    .unwrap();
    let projected = coll
        .find_one(doc! {"_id": 1, "scores.k": "y"})
        .projection(doc! {"scores.$": 1})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(projected, doc! {"_id": 1, "scores": [{"k": "y", "v": 10}]});
}
