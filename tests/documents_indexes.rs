//! Secondary indexes against real ferrod processes: createIndexes, listIndexes,
//! dropIndexes and their errors, unique (11000 with keyPattern/keyValue) in insert,
//! update and findAndModify, sparse, partial, multikey, hidden, builds over existing
//! data, the planner and explain, TTL, and a unique index on a replica set.

mod common;

use common::{eventually, Ferrod};
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use std::time::Duration;

fn ok(reply: &Document) -> bool {
    matches!(reply.get("ok"), Some(Bson::Double(v)) if *v == 1.0)
}

fn code(reply: &Document) -> i32 {
    reply.get_i32("code").unwrap_or(0)
}

fn cmd(server: &Ferrod, mut c: Document) -> Document {
    if !c.contains_key("$db") {
        c.insert("$db", "test");
    }
    server.command(c)
}

fn batch(reply: &Document) -> Vec<Document> {
    reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|d| d.as_document().unwrap().clone())
        .collect()
}

fn names(server: &Ferrod, coll: &str) -> Vec<String> {
    let reply = cmd(server, doc! {"listIndexes": coll});
    assert!(ok(&reply), "{reply}");
    batch(&reply)
        .iter()
        .map(|s| s.get_str("name").unwrap().to_owned())
        .collect()
}

fn create(server: &Ferrod, coll: &str, specs: Vec<Document>) -> Document {
    cmd(server, doc! {"createIndexes": coll, "indexes": specs})
}

#[test]
fn create_list_and_drop_indexes_with_mongod_replies() {
    let s = Ferrod::start(&[]);
    let r = create(&s, "c", vec![doc! {"key": {"a": 1, "b": -1}}]);
    assert!(ok(&r), "{r}");
    assert_eq!(r.get_i32("numIndexesBefore"), Ok(1));
    assert_eq!(r.get_i32("numIndexesAfter"), Ok(2));
    assert_eq!(r.get_bool("createdCollectionAutomatically"), Ok(true));
    assert_eq!(names(&s, "c"), vec!["_id_", "a_1_b_-1"]);
    let r = create(
        &s,
        "c",
        vec![doc! {"key": {"a": 1, "b": -1}, "name": "a_1_b_-1"}],
    );
    assert_eq!(r.get_str("note"), Ok("all indexes already exist"), "{r}");
    let specs = batch(&cmd(&s, doc! {"listIndexes": "c"}));
    assert_eq!(
        specs[1],
        doc! {"v": 2, "key": {"a": 1, "b": -1}, "name": "a_1_b_-1"}
    );

    // Conflicts: same key under another name (85); same name, another key (86).
    let r = create(
        &s,
        "c",
        vec![doc! {"key": {"a": 1, "b": -1}, "name": "other"}],
    );
    assert_eq!(code(&r), 85, "{r}");
    let r = create(&s, "c", vec![doc! {"key": {"z": 1}, "name": "a_1_b_-1"}]);
    assert_eq!(code(&r), 86, "{r}");

    create(
        &s,
        "c",
        vec![doc! {"key": {"x": 1}}, doc! {"key": {"y": 1}}],
    );
    let r = cmd(&s, doc! {"dropIndexes": "c", "index": "x_1"});
    assert!(ok(&r) && r.get_i32("nIndexesWas") == Ok(4), "{r}");
    let r = cmd(&s, doc! {"dropIndexes": "c", "index": {"y": 1}});
    assert!(ok(&r), "{r}");
    let r = cmd(&s, doc! {"dropIndexes": "c", "index": "nope"});
    assert_eq!(code(&r), 27, "{r}");
    let r = cmd(&s, doc! {"dropIndexes": "c", "index": "_id_"});
    assert_eq!(code(&r), 72, "{r}");
    let r = cmd(&s, doc! {"dropIndexes": "c", "index": "*"});
    assert!(ok(&r), "{r}");
    assert_eq!(names(&s, "c"), vec!["_id_"]);
    let r = cmd(&s, doc! {"listIndexes": "missing"});
    assert_eq!(code(&r), 26, "{r}");
}

#[test]
fn bad_index_specifications_are_refused_with_mongod_codes() {
    let s = Ferrod::start(&[]);
    let table: Vec<(Bson, i32)> = vec![
        (Bson::Array(vec![]), 2),
        (Bson::Array(vec![Bson::Document(doc! {"name": "x"})]), 9),
        (
            Bson::Array(vec![Bson::Document(doc! {"key": {}, "name": "x"})]),
            67,
        ),
        (
            Bson::Array(vec![Bson::Document(doc! {"key": {"a": 0}, "name": "x"})]),
            67,
        ),
        (
            Bson::Array(vec![Bson::Document(doc! {"key": {"a": true}, "name": "x"})]),
            67,
        ),
        (
            Bson::Array(vec![Bson::Document(doc! {"key": {"$a": 1}, "name": "x"})]),
            67,
        ),
        (
            Bson::Array(vec![Bson::Document(
                doc! {"key": {"a": "foo"}, "name": "x"},
            )]),
            67,
        ),
        (
            Bson::Array(vec![Bson::Document(
                doc! {"key": {"a": 1}, "name": "x", "bogus": 1},
            )]),
            197,
        ),
        (
            Bson::Array(vec![Bson::Document(
                doc! {"key": {"_id": 1}, "name": "_id_", "unique": true},
            )]),
            197,
        ),
        (
            Bson::Array(vec![Bson::Document(
                doc! {"key": {"a": 1, "b": 1}, "name": "x", "expireAfterSeconds": 5},
            )]),
            67,
        ),
        (
            Bson::Array(vec![Bson::Document(
                doc! {"key": {"a": 1}, "name": "x", "expireAfterSeconds": "5"},
            )]),
            14,
        ),
        (
            Bson::Array(vec![Bson::Document(
                doc! {"key": {"a": 1}, "name": "x", "sparse": true, "partialFilterExpression": {"a": 1}},
            )]),
            67,
        ),
        (
            Bson::Array(vec![Bson::Document(
                doc! {"key": {"a": 1}, "name": "x", "partialFilterExpression": {"a": {"$bogus": 1}}},
            )]),
            2,
        ),
        (
            Bson::Array(vec![Bson::Document(doc! {"key": {"a": 1}, "name": "*"})]),
            2,
        ),
        (Bson::Array(vec![Bson::Int32(1)]), 14),
        (Bson::Int32(1), 14),
    ];
    for (indexes, expected) in table {
        let r = cmd(&s, doc! {"createIndexes": "c", "indexes": indexes.clone()});
        assert_eq!(code(&r), expected, "{indexes}: {r}");
    }
    let r = cmd(
        &s,
        doc! {"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a"}], "bogus": 1},
    );
    assert_eq!(code(&r), 40415, "{r}");
    // Nothing was created by the refused requests.
    let r = cmd(&s, doc! {"listIndexes": "c"});
    assert!(code(&r) == 26 || batch(&r).len() == 1, "{r}");
}

fn write_error(e: &mongodb::error::Error) -> (i32, Document) {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => {
            (w.code, w.details.clone().unwrap_or_default())
        }
        ErrorKind::InsertMany(m) => {
            let w = &m.write_errors.as_ref().unwrap()[0];
            (w.code, w.details.clone().unwrap_or_default())
        }
        ErrorKind::Command(c) => (c.code, Document::new()),
        other => panic!("unexpected error {other:?}"),
    }
}

#[tokio::test]
async fn unique_indexes_refuse_duplicates_in_insert_update_and_find_and_modify() {
    let s = Ferrod::start(&[]);
    let client = common::driver(&s.uri(), None, None).await;
    let coll = client.database("test").collection::<Document>("u");
    coll.insert_many(vec![doc! {"_id": 1, "a": 1}, doc! {"_id": 2, "a": 2}])
        .await
        .unwrap();
    let r = create(
        &s,
        "u",
        vec![doc! {"key": {"a": 1}, "name": "a_1", "unique": true}],
    );
    assert!(ok(&r), "{r}");

    // The raw reply: errmsg, keyPattern, keyValue as mongod words them.
    let r = cmd(&s, doc! {"insert": "u", "documents": [{"_id": 3, "a": 1}]});
    let we = r.get_array("writeErrors").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(we.get_i32("code"), Ok(11000), "{r}");
    assert_eq!(
        we.get_str("errmsg"),
        Ok("E11000 duplicate key error collection: test.u index: a_1 dup key: { a: 1 }")
    );
    assert_eq!(we.get_document("keyPattern"), Ok(&doc! {"a": 1}));
    assert_eq!(we.get_document("keyValue"), Ok(&doc! {"a": 1}));

    // Unordered: the others go in; a duplicate within the batch is refused too.
    let r = cmd(
        &s,
        doc! {"insert": "u", "ordered": false, "documents": [
        {"_id": 4, "a": 4}, {"_id": 5, "a": 4}, {"_id": 6, "a": 6}]},
    );
    assert_eq!(r.get_i32("n"), Ok(2), "{r}");
    assert_eq!(r.get_array("writeErrors").unwrap().len(), 1, "{r}");

    let e = coll
        .update_one(doc! {"_id": 2}, doc! {"$set": {"a": 1}})
        .await
        .unwrap_err();
    let (c, details) = write_error(&e);
    assert_eq!(c, 11000, "{e:?}");
    let _ = details;
    let e = coll
        .find_one_and_update(doc! {"_id": 2}, doc! {"$set": {"a": 6}})
        .await
        .unwrap_err();
    assert_eq!(write_error(&e).0, 11000, "{e:?}");
    // The refused writes changed nothing.
    let two = coll.find_one(doc! {"_id": 2}).await.unwrap().unwrap();
    assert_eq!(two.get_i32("a"), Ok(2));
    // Moving a key away frees it.
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"a": 100}})
        .await
        .unwrap();
    coll.insert_one(doc! {"_id": 7, "a": 1}).await.unwrap();
    coll.delete_one(doc! {"_id": 7}).await.unwrap();
    coll.insert_one(doc! {"_id": 8, "a": 1}).await.unwrap();

    // A unique build over duplicates fails (11000) and leaves no index.
    coll.insert_many(vec![
        doc! {"_id": 20, "a": 20, "b": 5},
        doc! {"_id": 21, "a": 21, "b": 5},
    ])
    .await
    .unwrap();
    let r = create(
        &s,
        "u",
        vec![doc! {"key": {"b": 1}, "name": "b_1", "unique": true}],
    );
    assert_eq!(code(&r), 11000, "{r}");
    assert!(!names(&s, "u").contains(&"b_1".to_owned()));
    // Two documents without the field are a duplicate null unless sparse.
    let r = create(
        &s,
        "u",
        vec![doc! {"key": {"zz": 1}, "name": "zz_1", "unique": true}],
    );
    assert_eq!(code(&r), 11000, "{r}");
    let r = create(
        &s,
        "u",
        vec![doc! {"key": {"zz": 1}, "name": "zz_1", "unique": true, "sparse": true}],
    );
    assert!(ok(&r), "{r}");
}

#[test]
fn multikey_sparse_partial_and_parallel_arrays() {
    let s = Ferrod::start(&[]);
    let r = create(
        &s,
        "m",
        vec![doc! {"key": {"tags": 1, "n": 1}, "name": "t"}],
    );
    assert!(ok(&r), "{r}");
    let r = cmd(
        &s,
        doc! {"insert": "m", "documents": [
            {"_id": 1, "tags": ["x", "y"], "n": 1},
            {"_id": 2, "tags": "x", "n": 2},
            {"_id": 3, "tags": ["z"], "n": [1, 2]},
        ]},
    );
    assert_eq!(r.get_i32("n"), Ok(2), "{r}");
    let we = r.get_array("writeErrors").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(we.get_i32("code"), Ok(171), "{r}");
    let found = batch(&cmd(&s, doc! {"find": "m", "filter": {"tags": "x"}}));
    assert_eq!(found.len(), 2);
    let e = cmd(
        &s,
        doc! {"explain": {"find": "m", "filter": {"tags": "y"}}, "verbosity": "queryPlanner"},
    );
    let ix = e
        .get_document("queryPlanner")
        .unwrap()
        .get_document("winningPlan")
        .unwrap()
        .get_document("inputStage")
        .unwrap()
        .clone();
    assert_eq!(ix.get_str("stage"), Ok("IXSCAN"), "{e}");
    assert_eq!(ix.get_bool("isMultiKey"), Ok(true), "{e}");

    // Partial: the index holds only matching documents, and is not used for others.
    create(
        &s,
        "p",
        vec![doc! {"key": {"a": 1}, "name": "a_1", "unique": true,
        "partialFilterExpression": {"kind": "k"}}],
    );
    let r = cmd(
        &s,
        doc! {"insert": "p", "documents": [
        {"_id": 1, "a": 1, "kind": "k"}, {"_id": 2, "a": 1, "kind": "other"}, {"_id": 3, "a": 1, "kind": "k"}]},
    );
    assert_eq!(r.get_i32("n"), Ok(2), "{r}");
    assert_eq!(
        batch(&cmd(&s, doc! {"find": "p", "filter": {"a": 1}})).len(),
        2
    );

    // Sparse: documents without the field are not in it; queries still see them.
    create(
        &s,
        "sp",
        vec![doc! {"key": {"a": 1}, "name": "a_1", "sparse": true, "unique": true}],
    );
    let r = cmd(
        &s,
        doc! {"insert": "sp", "documents": [{"_id": 1}, {"_id": 2}, {"_id": 3, "a": 3}]},
    );
    assert_eq!(r.get_i32("n"), Ok(3), "{r}");
    assert_eq!(
        batch(&cmd(&s, doc! {"find": "sp", "filter": {"a": null}})).len(),
        2
    );
}

fn winning(s: &Ferrod, inner: Document) -> Document {
    let e = cmd(s, doc! {"explain": inner, "verbosity": "executionStats"});
    assert!(ok(&e), "{e}");
    e
}

fn stages(plan: &Document) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = Some(plan.clone());
    while let Some(p) = cur {
        out.push(p.get_str("stage").unwrap().to_owned());
        cur = p.get_document("inputStage").ok().cloned();
    }
    out
}

#[test]
fn the_planner_uses_indexes_and_explain_shows_the_stages() {
    let s = Ferrod::start(&[]);
    let docs: Vec<Document> = (0..200)
        .map(|i| doc! {"_id": i, "a": i % 20, "b": i})
        .collect();
    cmd(&s, doc! {"insert": "e", "documents": docs});
    let plan_of = |inner: Document| {
        let e = winning(&s, inner);
        let qp = e
            .get_document("queryPlanner")
            .unwrap()
            .get_document("winningPlan")
            .unwrap()
            .clone();
        (
            stages(&qp),
            e.get_document("executionStats").unwrap().clone(),
            qp,
        )
    };
    let (st, ex, _) = plan_of(doc! {"find": "e", "filter": {"a": 3}});
    assert_eq!(st, vec!["COLLSCAN"]);
    assert_eq!(ex.get_i32("totalDocsExamined"), Ok(200));
    assert_eq!(ex.get_i32("nReturned"), Ok(10));
    create(&s, "e", vec![doc! {"key": {"a": 1}, "name": "a_1"}]);
    let (st, ex, qp) = plan_of(doc! {"find": "e", "filter": {"a": 3}});
    assert_eq!(st, vec!["FETCH", "IXSCAN"]);
    assert_eq!(ex.get_i32("totalKeysExamined"), Ok(10), "{ex}");
    assert_eq!(ex.get_i32("totalDocsExamined"), Ok(10), "{ex}");
    assert_eq!(ex.get_i32("nReturned"), Ok(10));
    let ix = qp.get_document("inputStage").unwrap();
    assert_eq!(ix.get_str("indexName"), Ok("a_1"));
    assert_eq!(ix.get_document("indexBounds"), Ok(&doc! {"a": ["[3, 3]"]}));
    let (st, ex, _) = plan_of(
        doc! {"find": "e", "filter": {"a": {"$gte": 18, "$lt": 19}}, "sort": {"b": -1}, "skip": 1, "limit": 2, "projection": {"b": 1}},
    );
    assert_eq!(
        st,
        vec!["PROJECTION_SIMPLE", "SKIP", "SORT", "FETCH", "IXSCAN"]
    );
    assert_eq!(ex.get_i32("totalKeysExamined"), Ok(10), "{ex}");
    assert_eq!(ex.get_i32("nReturned"), Ok(2));
    let (st, _, _) = plan_of(doc! {"find": "e", "filter": {"a": {"$in": [1, 2]}}, "limit": 3});
    assert_eq!(st, vec!["LIMIT", "FETCH", "IXSCAN"]);
    let (st, _, _) = plan_of(doc! {"find": "e", "filter": {"_id": 5}});
    assert_eq!(st, vec!["IDHACK"]);
    let (st, _, _) = plan_of(doc! {"find": "missing", "filter": {"a": 1}});
    assert_eq!(st, vec!["EOF"]);
    let (st, _, _) = plan_of(doc! {"count": "e", "query": {"a": 1}});
    assert_eq!(st, vec!["COUNT", "FETCH", "IXSCAN"]);
    let (st, _, _) =
        plan_of(doc! {"update": "e", "updates": [{"q": {"a": 1}, "u": {"$set": {"x": 1}}}]});
    assert_eq!(st, vec!["UPDATE", "FETCH", "IXSCAN"]);
    let (st, _, _) = plan_of(doc! {"delete": "e", "deletes": [{"q": {"a": 1}, "limit": 0}]});
    assert_eq!(st, vec!["DELETE", "FETCH", "IXSCAN"]);
    let (st, _, _) = plan_of(doc! {"findAndModify": "e", "query": {"a": 1}, "remove": true});
    assert_eq!(st, vec!["DELETE", "FETCH", "IXSCAN"]);
    let (st, _, _) =
        plan_of(doc! {"aggregate": "e", "pipeline": [{"$match": {"a": 1}}], "cursor": {}});
    assert_eq!(st, vec!["FETCH", "IXSCAN"]);

    // hint: by name, by key pattern, $natural; an unknown one is refused (2).
    let (st, _, _) = plan_of(doc! {"find": "e", "filter": {"b": 3}, "hint": "a_1"});
    assert_eq!(st, vec!["FETCH", "IXSCAN"]);
    let (st, _, _) = plan_of(doc! {"find": "e", "filter": {"a": 3}, "hint": {"$natural": 1}});
    assert_eq!(st, vec!["COLLSCAN"]);
    let r = cmd(&s, doc! {"find": "e", "filter": {"a": 3}, "hint": "nope"});
    assert_eq!(code(&r), 2, "{r}");
    assert_eq!(
        r.get_str("errmsg"),
        Ok("hint provided does not correspond to an existing index")
    );
    let r = cmd(&s, doc! {"find": "e", "filter": {"b": 3}, "hint": {"a": 1}});
    assert_eq!(batch(&r).len(), 1, "{r}");

    // A hidden index is kept up to date but not planned with.
    create(
        &s,
        "e",
        vec![doc! {"key": {"b": 1}, "name": "b_1", "hidden": true}],
    );
    let (st, _, _) = plan_of(doc! {"find": "e", "filter": {"b": 3}});
    assert_eq!(st, vec!["COLLSCAN"]);
    let r = cmd(&s, doc! {"find": "e", "filter": {"b": 3}, "hint": "b_1"});
    assert_eq!(code(&r), 2, "{r}");
}

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn value(&mut self) -> Bson {
        match self.below(9) {
            0 => Bson::Int32(self.below(10) as i32),
            1 => Bson::Int64(self.below(10) as i64),
            2 => Bson::Double(self.below(20) as f64 / 2.0),
            3 => Bson::String(["a", "b", "ab", ""][self.below(4) as usize].into()),
            4 => Bson::Null,
            5 => Bson::Array(
                (0..self.below(3))
                    .map(|_| Bson::Int32(self.below(10) as i32))
                    .collect(),
            ),
            6 => Bson::Document(doc! {"x": self.below(5) as i32}),
            7 => Bson::Boolean(self.below(2) == 0),
            _ => Bson::Array(vec![Bson::Document(doc! {"x": self.below(5) as i32})]),
        }
    }
}

#[test]
fn indexed_results_equal_collection_scan_results_on_random_data() {
    let s = Ferrod::start(&[]);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut docs = Vec::new();
    for i in 0..400 {
        let mut d = doc! {"_id": i};
        if rng.below(5) != 0 {
            d.insert("a", rng.value());
        }
        if rng.below(4) != 0 {
            d.insert("b", Bson::Int32(rng.below(6) as i32));
        }
        docs.push(d);
    }
    for (coll, indexed) in [("plain", false), ("indexed", true)] {
        if indexed {
            create(
                &s,
                coll,
                vec![
                    doc! {"key": {"a": 1}, "name": "a_1"},
                    doc! {"key": {"a.x": -1}, "name": "ax"},
                    doc! {"key": {"b": -1, "a": 1}, "name": "ba"},
                ],
            );
        }
        let r = cmd(&s, doc! {"insert": coll, "documents": docs.clone()});
        assert!(ok(&r), "{r}");
    }
    let ops = ["$eq", "$gt", "$gte", "$lt", "$lte", "$in"];
    let mut used_index = 0;
    for round in 0..300 {
        let path = ["a", "a.x", "b"][rng.below(3) as usize];
        let op = ops[rng.below(ops.len() as u64) as usize];
        let v = rng.value();
        let mut cond = if op == "$in" {
            doc! {"$in": [v.clone(), rng.value()]}
        } else {
            doc! {op: v.clone()}
        };
        if rng.below(3) == 0 && op != "$in" {
            cond.insert(["$lt", "$gte"][rng.below(2) as usize], rng.value());
        }
        let filter = doc! {path: cond};
        let find = |coll: &str| {
            let r = cmd(
                &s,
                doc! {"find": coll, "filter": filter.clone(), "batchSize": 1000},
            );
            if !ok(&r) {
                return Err(code(&r));
            }
            Ok(batch(&r))
        };
        let (plain, indexed) = (find("plain"), find("indexed"));
        assert_eq!(plain, indexed, "round {round}: {filter}");
        let e = cmd(
            &s,
            doc! {"explain": {"find": "indexed", "filter": filter.clone()}, "verbosity": "queryPlanner"},
        );
        if e.get_document("queryPlanner")
            .map(|q| q.get_document("winningPlan").unwrap().get_str("stage") == Ok("FETCH"))
            .unwrap_or(false)
        {
            used_index += 1;
        }
    }
    assert!(
        used_index > 100,
        "the index was used in {used_index} rounds"
    );
}

#[test]
fn ttl_deletes_expired_documents() {
    let s = Ferrod::start(&["--setParameter", "ttlMonitorSleepSecs=1"]);
    let old = Bson::DateTime(mongodb::bson::DateTime::from_millis(1_000));
    let now = Bson::DateTime(mongodb::bson::DateTime::now());
    cmd(
        &s,
        doc! {"insert": "t", "documents": [
        {"_id": 1, "at": old.clone()}, {"_id": 2, "at": now}, {"_id": 3, "at": "not a date"},
        {"_id": 4, "at": [old]}]},
    );
    let r = create(
        &s,
        "t",
        vec![doc! {"key": {"at": 1}, "name": "at_1", "expireAfterSeconds": 3600}],
    );
    assert!(ok(&r), "{r}");
    let left = eventually(Duration::from_secs(30), "expired documents deleted", || {
        let ids: Vec<i32> = batch(&cmd(&s, doc! {"find": "t"}))
            .iter()
            .map(|d| d.get_i32("_id").unwrap())
            .collect();
        (ids.len() == 2).then_some(ids)
    });
    assert_eq!(left, vec![2, 3]);
}

#[test]
fn a_unique_index_built_on_the_primary_exists_on_every_member() {
    let (nodes, p) = common::three_member_set();
    let primary = &nodes[p];
    let r = cmd(
        primary,
        doc! {"insert": "r", "documents": [{"_id": 1, "k": 1}, {"_id": 2, "k": 2}]},
    );
    assert!(ok(&r), "{r}");
    let r = cmd(
        primary,
        doc! {"createIndexes": "r", "indexes": [{"key": {"k": 1}, "name": "k_1", "unique": true}],
        "writeConcern": {"w": 3}},
    );
    assert!(ok(&r), "{r}");
    for node in &nodes {
        // w: 3 means every member holds the entry; each applies it in log order.
        eventually(Duration::from_secs(10), "the index on every member", || {
            let r = cmd(
                node,
                doc! {"listIndexes": "r", "$readPreference": {"mode": "secondaryPreferred"}},
            );
            let names: Vec<String> = r
                .get_document("cursor")
                .ok()?
                .get_array("firstBatch")
                .ok()?
                .iter()
                .filter_map(|s| s.as_document()?.get_str("name").ok().map(str::to_owned))
                .collect();
            (names == vec!["_id_", "k_1"]).then_some(())
        });
    }
    let r = cmd(
        primary,
        doc! {"insert": "r", "documents": [{"_id": 3, "k": 2}], "writeConcern": {"w": 3}},
    );
    let we = r.get_array("writeErrors").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(we.get_i32("code"), Ok(11000), "{r}");
    let r = cmd(
        primary,
        doc! {"update": "r", "updates": [{"q": {"_id": 1}, "u": {"$set": {"k": 2}}}], "writeConcern": {"w": 3}},
    );
    let we = r.get_array("writeErrors").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(we.get_i32("code"), Ok(11000), "{r}");
    // Every member uses its own copy of the index.
    for node in &nodes {
        let e = cmd(
            node,
            doc! {"explain": {"find": "r", "filter": {"k": 2}}, "verbosity": "executionStats",
            "$readPreference": {"mode": "secondaryPreferred"}},
        );
        let st = e.get_document("executionStats").unwrap();
        assert_eq!(st.get_i32("totalKeysExamined"), Ok(1), "{e}");
        assert_eq!(st.get_i32("nReturned"), Ok(1), "{e}");
    }
}

#[tokio::test]
async fn the_rust_driver_creates_lists_and_drops_indexes() {
    let s = Ferrod::start(&[]);
    let client = common::driver(&s.uri(), None, None).await;
    let coll = client.database("test").collection::<Document>("drv");
    let model = mongodb::IndexModel::builder()
        .keys(doc! {"a": 1})
        .options(
            mongodb::options::IndexOptions::builder()
                .unique(true)
                .build(),
        )
        .build();
    let created = coll.create_index(model).await.unwrap();
    assert_eq!(created.index_name, "a_1");
    let names: Vec<String> = coll.list_index_names().await.unwrap();
    assert_eq!(names, vec!["_id_", "a_1"]);
    let specs: Vec<mongodb::IndexModel> = coll
        .list_indexes()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(specs[1].options.as_ref().unwrap().unique, Some(true));
    coll.drop_index("a_1").await.unwrap();
    assert_eq!(coll.list_index_names().await.unwrap(), vec!["_id_"]);
}
