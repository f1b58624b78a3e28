//! aggregate through the Rust driver and as raw commands on a standalone: pipelines run
//! by the engine (`$documents` on `aggregate: 1`, `let` variables, `$currentOp`), the
//! command's own checks with mongod's codes, and a collection that holds nothing yet.

mod common;

use common::{admin, Ferrod};
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};

fn code(reply: &Document) -> Option<i32> {
    reply.get_i32("code").ok()
}

#[tokio::test]
async fn driver_runs_a_pipeline_over_documents() {
    let server = Ferrod::start(&[]);
    let client = common::driver(&server.uri(), None, None).await;
    let db = client.database("test");
    let pipeline = vec![
        doc! {"$documents": [
            {"city": "oslo", "n": 3, "tags": ["a", "b"]},
            {"city": "rome", "n": 1, "tags": ["c"]},
            {"city": "oslo", "n": 4, "tags": []},
        ]},
        doc! {"$unwind": {"path": "$tags", "preserveNullAndEmptyArrays": true}},
        doc! {"$group": {"_id": "$city", "total": {"$sum": "$n"}, "tags": {"$push": "$tags"}, "rows": {"$count": {}}}},
        doc! {"$sort": {"total": -1}},
        doc! {"$set": {"city": "$_id", "scaled": {"$multiply": ["$total", "$$factor"]}}},
        doc! {"$project": {"_id": 0}},
    ];
    let cursor = db
        .aggregate(pipeline)
        .let_vars(doc! {"factor": 10})
        .await
        .unwrap();
    let got: Vec<Document> = cursor.try_collect().await.unwrap();
    assert_eq!(
        got,
        vec![
            doc! {"total": 10, "tags": ["a", "b"], "rows": 3, "city": "oslo", "scaled": 100},
            doc! {"total": 1, "tags": ["c"], "rows": 1, "city": "rome", "scaled": 10},
        ]
    );

    // $listLocalSessions lists the session the command runs in.
    let mut session = client.start_session().await.unwrap();
    let lsid = session.id().get("id").unwrap().clone();
    let mut cursor = db
        .aggregate(vec![
            doc! {"$listLocalSessions": {}},
            doc! {"$project": {"id": "$_id.id", "_id": 0}},
        ])
        .session(&mut session)
        .await
        .unwrap();
    let sessions: Vec<Document> = cursor.stream(&mut session).try_collect().await.unwrap();
    assert_eq!(sessions, vec![doc! {"id": lsid}]);

    // A stage mongod does not know is refused, and named.
    let err = db
        .aggregate(vec![doc! {"$documents": []}, doc! {"$frobnicate": {}}])
        .await
        .unwrap_err();
    let mongodb::error::ErrorKind::Command(e) = *err.kind else {
        panic!("{err}");
    };
    assert_eq!(e.code, 40324);
    assert_eq!(e.message, "Unrecognized pipeline stage name: '$frobnicate'");

    // A collection with no documents answers an empty cursor on its namespace.
    let coll = db.collection::<Document>("nothing");
    let got: Vec<Document> = coll
        .aggregate(vec![doc! {"$match": {"a": 1}}, doc! {"$count": "n"}])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(got.is_empty());
}

#[test]
fn aggregate_command_checks_its_arguments() {
    let server = Ferrod::start(&[]);
    let run = |cmd: Document| server.command(cmd);
    let r = run(doc! {"aggregate": "c", "pipeline": [], "$db": "test"});
    assert_eq!(code(&r), Some(9), "cursor is required: {r}");
    assert_eq!(
        r.get_str("errmsg").unwrap(),
        "The 'cursor' option is required, except for aggregate with the explain argument"
    );
    let r = run(doc! {"aggregate": "c", "pipeline": [], "cursor": {}, "bogus": 1, "$db": "test"});
    assert_eq!(code(&r), Some(40415), "{r}");
    let r = run(doc! {"aggregate": "c", "pipeline": {}, "cursor": {}, "$db": "test"});
    assert_eq!(code(&r), Some(14), "{r}");
    let r =
        run(doc! {"aggregate": "c", "pipeline": [], "cursor": {"batchSize": -1}, "$db": "test"});
    assert_eq!(code(&r), Some(51024), "{r}");
    let r = run(doc! {"aggregate": 1, "pipeline": [{"$match": {}}], "cursor": {}, "$db": "test"});
    assert_eq!(code(&r), Some(73), "{r}");
    let r = run(
        doc! {"aggregate": "c", "pipeline": [{"$changeStream": {}}], "cursor": {}, "$db": "test"},
    );
    assert_eq!(code(&r), Some(115), "{r}");
    assert!(
        r.get_str("errmsg").unwrap().contains("$changeStream"),
        "{r}"
    );
    let r = run(
        doc! {"aggregate": "c", "pipeline": [], "cursor": {}, "collation": {"locale": "fr"}, "$db": "test"},
    );
    assert_eq!(code(&r), Some(2), "collation is refused, not ignored: {r}");
    let r = run(doc! {"aggregate": "c", "pipeline": [{"$limit": 0}], "cursor": {}, "$db": "test"});
    assert_eq!(code(&r), Some(15958), "{r}");
    let r = run(doc! {"aggregate": "c", "pipeline": [{"$match": {}}], "cursor": {}, "$db": "test"});
    let cursor = r.get_document("cursor").unwrap();
    assert_eq!(cursor.get_str("ns").unwrap(), "test.c");
    assert_eq!(cursor.get_i64("id").unwrap(), 0);
    assert!(cursor.get_array("firstBatch").unwrap().is_empty());
    // explain needs no cursor and names the stages.
    let r = run(
        doc! {"aggregate": "c", "pipeline": [{"$match": {}}, {"$limit": 2}], "explain": true, "$db": "test"},
    );
    assert_eq!(r.get_array("stages").unwrap().len(), 2, "{r}");
}

#[test]
fn current_op_and_coll_stats_run_through_the_engine() {
    let server = Ferrod::start(&[]);
    // $currentOp feeds the rest of the pipeline: here a $project and a $count.
    let r = admin(
        &server,
        doc! {"aggregate": 1, "pipeline": [
            {"$currentOp": {"allUsers": true}},
            {"$match": {"command.aggregate": 1}},
            {"$project": {"kind": "$type", "_id": 0}},
        ], "cursor": {}},
    );
    let batch = r
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    assert_eq!(batch, &vec![Bson::Document(doc! {"kind": "op"})], "{r}");
    let r = server.command(
        doc! {"aggregate": "c", "pipeline": [{"$collStats": {}}], "cursor": {}, "$db": "test"},
    );
    let batch = r
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    assert_eq!(
        batch[0].as_document().unwrap().get_str("ns").unwrap(),
        "test.c",
        "{r}"
    );
    let r = server.command(
        doc! {"aggregate": "c", "pipeline": [{"$collStats": {"count": {}}}], "cursor": {}, "$db": "test"},
    );
    assert_eq!(code(&r), Some(26), "{r}");
}

#[tokio::test]
async fn driver_aggregates_stored_documents_with_cursors_lookup_out_and_merge() {
    let server = Ferrod::start(&[]);
    let client = common::driver(&server.uri(), None, None).await;
    let db = client.database("shop");
    let orders = db.collection::<Document>("orders");
    let docs: Vec<Document> = (0..250)
        .map(|i| doc! {"_id": i, "item": format!("sku{}", i % 5), "qty": i % 7})
        .collect();
    orders.insert_many(docs).await.unwrap();
    db.collection::<Document>("items")
        .insert_many(vec![
            doc! {"_id": "sku0", "price": 10},
            doc! {"_id": "sku1", "price": 20},
        ])
        .await
        .unwrap();

    // 250 documents in batches of 20: the driver's getMores read the rest.
    let all: Vec<Document> = orders
        .aggregate(vec![
            doc! {"$sort": {"_id": -1}},
            doc! {"$project": {"qty": 0}},
        ])
        .batch_size(20)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 250);
    assert_eq!(all[0], doc! {"_id": 249, "item": "sku4"});
    assert_eq!(all[249], doc! {"_id": 0, "item": "sku0"});

    let totals: Vec<Document> = orders
        .aggregate(vec![
            doc! {"$match": {"item": {"$in": ["sku0", "sku1"]}}},
            doc! {"$group": {"_id": "$item", "qty": {"$sum": "$qty"}, "n": {"$sum": 1}}},
            doc! {"$lookup": {"from": "items", "localField": "_id", "foreignField": "_id", "as": "item"}},
            doc! {"$unwind": "$item"},
            doc! {"$project": {"n": 1, "value": {"$multiply": ["$qty", "$item.price"]}}},
            doc! {"$sort": {"_id": 1}},
        ])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let expected_qty = |k: i32| -> i32 { (0..250).filter(|i| i % 5 == k).map(|i| i % 7).sum() };
    assert_eq!(
        totals,
        vec![
            doc! {"_id": "sku0", "n": 50, "value": expected_qty(0) * 10},
            doc! {"_id": "sku1", "n": 50, "value": expected_qty(1) * 20},
        ]
    );

    // $out replaces the target collection; $merge updates it in place.
    orders
        .aggregate(vec![
            doc! {"$group": {"_id": "$item", "n": {"$sum": 1}}},
            doc! {"$out": "summary"},
        ])
        .await
        .unwrap();
    let summary = db.collection::<Document>("summary");
    let mut got: Vec<Document> = summary
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    got.sort_by_key(|d| d.get_str("_id").unwrap().to_string());
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], doc! {"_id": "sku0", "n": 50});
    db.collection::<Document>("items")
        .aggregate(vec![
            doc! {"$merge": {"into": "summary", "whenNotMatched": "discard"}},
        ])
        .await
        .unwrap();
    let merged = summary
        .find_one(doc! {"_id": "sku1"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(merged, doc! {"_id": "sku1", "n": 50, "price": 20});
    assert_eq!(summary.count_documents(doc! {}).await.unwrap(), 5);

    // $collStats counts what is stored.
    let stats: Vec<Document> = orders
        .aggregate(vec![doc! {"$collStats": {"count": {}}}])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(stats[0].get_i64("count").unwrap(), 250);
}

#[tokio::test]
async fn aggregate_needs_find_and_its_outputs_need_write_privileges() {
    let server = Ferrod::start(&[
        "--auth",
        "--setParameter",
        "scramIterationCount=5000",
        "--setParameter",
        "scramSHA256IterationCount=5000",
    ]);
    // The first user through the localhost exception.
    let r = admin(
        &server,
        doc! {"createUser": "root", "pwd": "rootpw", "roles": ["root"]},
    );
    assert_eq!(r.get_f64("ok"), Ok(1.0), "{r}");
    let root = common::driver(&server.uri(), Some(("root", "rootpw")), None).await;
    root.database("admin")
        .run_command(
            doc! {"createUser": "reader", "pwd": "pw", "roles": [{"role": "read", "db": "test"}]},
        )
        .await
        .unwrap();
    root.database("test")
        .collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let reader = common::driver(&server.uri(), Some(("reader", "pw")), None).await;
    let got: Vec<Document> = reader
        .database("test")
        .collection::<Document>("c")
        .aggregate(vec![doc! {"$match": {}}])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got, vec![doc! {"_id": 1}]);
    let denied = |err: mongodb::error::Error| match *err.kind {
        mongodb::error::ErrorKind::Command(e) => e.code,
        other => panic!("{other:?}"),
    };
    let err = reader
        .database("test")
        .collection::<Document>("c")
        .aggregate(vec![doc! {"$out": "copy"}])
        .await
        .unwrap_err();
    assert_eq!(denied(err), 13);
    let err = reader
        .database("other")
        .collection::<Document>("c")
        .aggregate(vec![doc! {"$match": {}}])
        .await
        .unwrap_err();
    assert_eq!(denied(err), 13);
    let err = reader
        .database("test")
        .collection::<Document>("c")
        .aggregate(vec![
            doc! {"$lookup": {"from": {"db": "other", "coll": "x"}, "as": "x", "pipeline": []}},
        ])
        .await
        .unwrap_err();
    // A foreign database is refused at parse time, before any privilege matters.
    assert_eq!(denied(err), 9);
}

#[tokio::test]
async fn blocking_stages_refuse_to_pass_the_memory_limit_without_disk_use() {
    let server = Ferrod::start(&[
        "--setParameter",
        "internalQueryMaxBlockingSortMemoryUsageBytes=10000",
        "--setParameter",
        "internalDocumentSourceGroupMaxMemoryBytes=10000",
    ]);
    let client = common::driver(&server.uri(), None, None).await;
    let coll = client.database("test").collection::<Document>("big");
    let docs: Vec<Document> = (0..200)
        .map(|i| doc! {"_id": i, "pad": "x".repeat(200)})
        .collect();
    coll.insert_many(docs).await.unwrap();
    for stage in [
        doc! {"$sort": {"pad": 1, "_id": -1}},
        doc! {"$group": {"_id": "$_id", "p": {"$push": "$pad"}}},
    ] {
        let err = coll
            .aggregate(vec![stage.clone()])
            .allow_disk_use(false)
            .await
            .unwrap_err();
        let mongodb::error::ErrorKind::Command(e) = *err.kind else {
            panic!("{err}");
        };
        assert_eq!(e.code, 292, "{stage}: {}", e.message);
        // mongod 7.0's allowDiskUseByDefault: without the option the stage may go on.
        let n = coll
            .aggregate(vec![stage])
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len();
        assert_eq!(n, 200);
    }
}
