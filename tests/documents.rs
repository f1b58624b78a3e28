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
