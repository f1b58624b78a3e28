//! The aggregation pipeline engine (`query::pipeline`) run in memory: a table of pipelines
//! and their results, the stages that reach the outside world through a host kept in
//! memory, the blocking stages' memory limit, and a table of bad pipelines with mongod's
//! codes.

use bson::{bson, doc, Bson, Document};
use ferrod::error::{Code, CommandError, CommandResult};
use ferrod::query::pipeline::{Options, Pipeline, PipelineHost};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// Collections in memory, keyed by (db, coll).
#[derive(Default)]
struct MemHost {
    colls: RefCell<BTreeMap<(String, String), Vec<Document>>>,
    interrupt_after: Cell<Option<u32>>,
}

impl MemHost {
    fn with(coll: &str, docs: Vec<Document>) -> MemHost {
        let host = MemHost::default();
        host.colls
            .borrow_mut()
            .insert(("test".into(), coll.into()), docs);
        host
    }
    fn coll(&self, coll: &str) -> Vec<Document> {
        self.colls
            .borrow()
            .get(&("test".to_string(), coll.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

impl PipelineHost for MemHost {
    fn read_collection(&self, db: &str, coll: &str) -> CommandResult<Vec<Document>> {
        Ok(self
            .colls
            .borrow()
            .get(&(db.into(), coll.into()))
            .cloned()
            .unwrap_or_default())
    }
    fn replace_collection(&self, db: &str, coll: &str, docs: Vec<Document>) -> CommandResult<()> {
        self.colls
            .borrow_mut()
            .insert((db.into(), coll.into()), docs);
        Ok(())
    }
    fn find_matching(
        &self,
        db: &str,
        coll: &str,
        fields: &Document,
    ) -> CommandResult<Vec<Document>> {
        Ok(self
            .read_collection(db, coll)?
            .into_iter()
            .filter(|d| fields.iter().all(|(k, v)| d.get(k) == Some(v)))
            .collect())
    }
    fn insert_document(&self, db: &str, coll: &str, doc: Document) -> CommandResult<()> {
        self.colls
            .borrow_mut()
            .entry((db.into(), coll.into()))
            .or_default()
            .push(doc);
        Ok(())
    }
    fn replace_document(
        &self,
        db: &str,
        coll: &str,
        old: &Document,
        new: Document,
    ) -> CommandResult<()> {
        let mut colls = self.colls.borrow_mut();
        let docs = colls
            .get_mut(&(db.into(), coll.into()))
            .expect("collection");
        let slot = docs
            .iter_mut()
            .find(|d| d.get("_id") == old.get("_id"))
            .expect("document");
        *slot = new;
        Ok(())
    }
    fn coll_stats(&self, db: &str, coll: &str, spec: &Document) -> CommandResult<Document> {
        Ok(doc! {"ns": format!("{db}.{coll}"), "spec": spec.clone()})
    }
    fn index_stats(&self, _db: &str, _coll: &str) -> CommandResult<Vec<Document>> {
        Ok(vec![doc! {"name": "_id_", "key": {"_id": 1}}])
    }
    fn current_op(&self, _spec: &Document) -> CommandResult<Vec<Document>> {
        Ok(vec![
            doc! {"op": "command", "active": true},
            doc! {"op": "none", "active": false},
        ])
    }
    fn list_local_sessions(&self, _spec: &Document) -> CommandResult<Vec<Document>> {
        Ok(vec![doc! {"_id": {"id": 1}}])
    }
    fn check_interrupt(&self) -> CommandResult<()> {
        match self.interrupt_after.get() {
            Some(0) => Err(CommandError::new(
                Code::MaxTimeMSExpired,
                "operation exceeded time limit",
            )),
            Some(n) => {
                self.interrupt_after.set(Some(n - 1));
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn pipeline(stages: Bson) -> Vec<Bson> {
    match stages {
        Bson::Array(a) => a,
        other => panic!("not an array: {other}"),
    }
}

fn run_with(
    host: &MemHost,
    opts: &Options,
    input: &[Document],
    stages: Bson,
) -> CommandResult<Vec<Document>> {
    let p = Pipeline::parse(&pipeline(stages), opts)?;
    p.run(input.iter().cloned().map(Ok), host, opts)
}

fn run(input: &[Document], stages: Bson) -> Vec<Document> {
    let host = MemHost::default();
    run_with(
        &host,
        &Options::new("test", Some("c")),
        input,
        stages.clone(),
    )
    .unwrap_or_else(|e| panic!("{stages}: {e}"))
}

fn docs(v: Bson) -> Vec<Document> {
    pipeline(v)
        .into_iter()
        .map(|d| d.as_document().expect("document").clone())
        .collect()
}

#[test]
fn table_of_pipelines_and_results() {
    let people = docs(bson!([
        {"_id": 1, "name": "ann", "age": 31, "city": "oslo", "tags": ["a", "b"]},
        {"_id": 2, "name": "bob", "age": 25, "city": "rome", "tags": []},
        {"_id": 3, "name": "cid", "age": 40, "city": "oslo"},
        {"_id": 4, "name": "dan", "age": null, "city": "rome", "tags": ["c"]},
    ]));
    let cases: Vec<(Bson, Bson)> = vec![
        (
            bson!([{"$match": {"age": {"$gte": 31}}}, {"$project": {"name": 1}}]),
            bson!([{"_id": 1, "name": "ann"}, {"_id": 3, "name": "cid"}]),
        ),
        (
            bson!([{"$match": {"_id": 1}}, {"$project": {"_id": 0, "tags": 0, "city": 0}}]),
            bson!([{"name": "ann", "age": 31}]),
        ),
        // Computed fields come after the included ones, in the specification's order.
        (
            bson!([{"$match": {"_id": 2}}, {"$project": {"next": {"$add": ["$age", 1]}, "name": true}}]),
            bson!([{"_id": 2, "name": "bob", "next": 26}]),
        ),
        (
            bson!([{"$match": {"_id": 1}}, {"$set": {"name": {"$toUpper": "$name"}, "x.y": 5}}, {"$unset": ["tags", "city", "age"]}]),
            bson!([{"_id": 1, "name": "ANN", "x": {"y": 5}}]),
        ),
        (
            bson!([{"$group": {"_id": "$city", "n": {"$sum": 1}, "ages": {"$sum": "$age"}, "avg": {"$avg": "$age"},
                "min": {"$min": "$age"}, "max": {"$max": "$age"}, "first": {"$first": "$name"},
                "last": {"$last": "$name"}, "names": {"$push": "$name"}, "count": {"$count": {}}}},
                {"$sort": {"_id": 1}}]),
            bson!([
                {"_id": "oslo", "n": 2, "ages": 71, "avg": 35.5, "min": 31, "max": 40, "first": "ann", "last": "cid", "names": ["ann", "cid"], "count": 2},
                {"_id": "rome", "n": 2, "ages": 25, "avg": 25.0, "min": 25, "max": 25, "first": "bob", "last": "dan", "names": ["bob", "dan"], "count": 2},
            ]),
        ),
        (
            bson!([{"$sort": {"age": -1, "_id": 1}}, {"$skip": 1}, {"$limit": 2}, {"$project": {"_id": 1}}]),
            bson!([{"_id": 1}, {"_id": 2}]),
        ),
        (
            bson!([{"$match": {"city": "oslo"}}, {"$count": "total"}]),
            bson!([{"total": 2}]),
        ),
        (
            bson!([{"$match": {"city": "nowhere"}}, {"$count": "total"}]),
            bson!([]),
        ),
        (
            bson!([{"$unwind": "$tags"}, {"$project": {"tags": 1}}]),
            bson!([{"_id": 1, "tags": "a"}, {"_id": 1, "tags": "b"}, {"_id": 4, "tags": "c"}]),
        ),
        (
            bson!([{"$unwind": {"path": "$tags", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": true}}, {"$project": {"tags": 1, "i": 1}}]),
            bson!([{"_id": 1, "tags": "a", "i": 0i64}, {"_id": 1, "tags": "b", "i": 1i64}, {"_id": 2, "i": null},
                   {"_id": 3, "i": null}, {"_id": 4, "tags": "c", "i": 0i64}]),
        ),
        (
            bson!([{"$match": {"_id": 1}}, {"$replaceRoot": {"newRoot": {"who": "$name", "where": "$city"}}}]),
            bson!([{"who": "ann", "where": "oslo"}]),
        ),
        (
            bson!([{"$match": {"_id": 3}}, {"$replaceWith": {"n": "$name"}}]),
            bson!([{"n": "cid"}]),
        ),
        (
            bson!([{"$sortByCount": "$city"}, {"$sort": {"_id": 1}}]),
            bson!([{"_id": "oslo", "count": 2}, {"_id": "rome", "count": 2}]),
        ),
        (
            bson!([{"$facet": {"young": [{"$match": {"age": {"$lt": 30}}}, {"$project": {"_id": 1}}],
                               "n": [{"$count": "n"}]}}]),
            bson!([{"young": [{"_id": 2}], "n": [{"n": 4}]}]),
        ),
        // A group key that is a document, and $$ROOT.
        (
            bson!([{"$match": {"_id": {"$in": [1, 3]}}}, {"$group": {"_id": {"c": "$city"}, "all": {"$push": "$$ROOT.name"}}}]),
            bson!([{"_id": {"c": "oslo"}, "all": ["ann", "cid"]}]),
        ),
    ];
    for (stages, expected) in cases {
        let got = run(&people, stages.clone());
        assert_eq!(got, docs(expected), "pipeline {stages}");
    }
}

#[test]
fn accumulators_follow_mongods_rules() {
    let input = docs(bson!([
        {"_id": 1, "v": 1}, {"_id": 2, "v": 1.0}, {"_id": 3, "v": null}, {"_id": 4},
        {"_id": 5, "v": "s"}, {"_id": 6, "v": 2147483647},
    ]));
    let got = run(
        &input,
        bson!([{"$group": {"_id": null, "sum": {"$sum": "$v"}, "avg": {"$avg": "$v"}, "min": {"$min": "$v"},
            "max": {"$max": "$v"}, "set": {"$addToSet": "$v"}, "push": {"$push": "$v"},
            "first": {"$first": "$missing"}}}]),
    );
    // int + double is a double; strings are skipped by $sum/$avg; $min/$max skip null and
    // missing but compare across types (a string is above numbers); $addToSet treats 1
    // and 1.0 as equal; $push skips missing values; $first of a missing value is null.
    assert_eq!(
        got,
        docs(
            bson!([{"_id": null, "sum": 2147483649.0, "avg": 715827883.0, "min": 1, "max": "s",
            "set": [1, null, "s", 2147483647], "push": [1, 1.0, null, "s", 2147483647], "first": null}])
        )
    );
    // int overflow widens to long.
    let got = run(
        &input[5..],
        bson!([{"$group": {"_id": 0, "s": {"$sum": {"$add": ["$v", 1]}}}}]),
    );
    assert_eq!(got, docs(bson!([{"_id": 0, "s": 2147483648i64}])));
}

#[test]
fn projection_through_arrays_and_nested_fields() {
    let input =
        docs(bson!([{"_id": 1, "a": [{"b": 1, "c": 2}, 5, {"b": 3}], "d": {"e": 1, "f": 2}}]));
    assert_eq!(
        run(&input, bson!([{"$project": {"a.b": 1, "d": {"f": 1}}}])),
        docs(bson!([{"_id": 1, "a": [{"b": 1}, {"b": 3}], "d": {"f": 2}}]))
    );
    assert_eq!(
        run(
            &input,
            bson!([{"$project": {"a.b": 0, "d.e": 0, "_id": 0}}])
        ),
        docs(bson!([{"a": [{"c": 2}, 5, {}], "d": {"f": 2}}]))
    );
    // $addFields with a nested object adds to the existing sub-document.
    assert_eq!(
        run(
            &input,
            bson!([{"$addFields": {"d": {"g": {"$literal": 3}}}}, {"$project": {"d": 1, "_id": 0}}])
        ),
        docs(bson!([{"d": {"e": 1, "f": 2, "g": 3}}]))
    );
    // A field set to a missing value is removed.
    assert_eq!(
        run(
            &input,
            bson!([{"$set": {"d": "$nothing"}}, {"$project": {"a": 0}}])
        ),
        docs(bson!([{"_id": 1}]))
    );
}

#[test]
fn lookup_both_forms() {
    let host = MemHost::with(
        "items",
        docs(bson!([
            {"_id": 10, "sku": "x", "qty": 5},
            {"_id": 11, "sku": "y", "qty": 1},
            {"_id": 12, "sku": null, "qty": 9},
        ])),
    );
    let orders = docs(bson!([
        {"_id": 1, "item": "x"},
        {"_id": 2, "item": ["x", "y"]},
        {"_id": 3},
    ]));
    let opts = Options::new("test", Some("orders"));
    let got = run_with(
        &host,
        &opts,
        &orders,
        bson!([{"$lookup": {"from": "items", "localField": "item", "foreignField": "sku", "as": "found"}},
               {"$project": {"ids": "$found._id"}}]),
    )
    .unwrap();
    // An array local field matches any element; a missing one matches null.
    assert_eq!(
        got,
        docs(
            bson!([{"_id": 1, "ids": [10]}, {"_id": 2, "ids": [10, 11]}, {"_id": 3, "ids": [12]}])
        )
    );
    let got = run_with(
        &host,
        &opts,
        &orders[..1],
        bson!([{"$lookup": {"from": "items", "let": {"want": "$item"}, "as": "found", "pipeline": [
            {"$match": {"$expr": {"$ne": ["$sku", "$$want"]}}}, {"$project": {"_id": 1}}]}}]),
    )
    .unwrap();
    assert_eq!(
        got,
        docs(bson!([{"_id": 1, "item": "x", "found": [{"_id": 11}, {"_id": 12}]}]))
    );
}

#[test]
fn out_and_merge_write_through_the_host() {
    let host = MemHost::with(
        "target",
        docs(bson!([{"_id": 1, "v": "old", "keep": true}])),
    );
    let opts = Options::new("test", Some("src"));
    let input = docs(bson!([{"_id": 1, "v": "new"}, {"_id": 2, "v": "two"}]));
    let got = run_with(&host, &opts, &input, bson!([{"$merge": "target"}])).unwrap();
    assert!(got.is_empty());
    assert_eq!(
        host.coll("target"),
        docs(bson!([{"_id": 1, "v": "new", "keep": true}, {"_id": 2, "v": "two"}]))
    );
    let err = run_with(
        &host,
        &opts,
        &input,
        bson!([{"$merge": {"into": "target", "whenMatched": "fail"}}]),
    )
    .unwrap_err();
    assert_eq!(err.code, Code::DuplicateKey);
    run_with(
        &host,
        &opts,
        &docs(bson!([{"_id": 2, "v": 3}, {"_id": 9, "v": 9}])),
        bson!([{"$merge": {"into": {"db": "test", "coll": "target"}, "whenNotMatched": "discard",
            "whenMatched": [{"$set": {"v": {"$add": ["$$new.v", 100]}}}]}}]),
    )
    .unwrap();
    assert_eq!(
        host.coll("target"),
        docs(bson!([{"_id": 1, "v": "new", "keep": true}, {"_id": 2, "v": 103}]))
    );
    run_with(
        &host,
        &opts,
        &input,
        bson!([{"$match": {"_id": 2}}, {"$out": "target"}]),
    )
    .unwrap();
    assert_eq!(host.coll("target"), docs(bson!([{"_id": 2, "v": "two"}])));
}

#[test]
fn source_stages_ask_the_host() {
    let host = MemHost::default();
    let opts = Options::new("test", Some("c"));
    let got = run_with(&host, &opts, &[], bson!([{"$collStats": {"count": {}}}])).unwrap();
    assert_eq!(got, vec![doc! {"ns": "test.c", "spec": {"count": {}}}]);
    let got = run_with(
        &host,
        &opts,
        &[],
        bson!([{"$indexStats": {}}, {"$project": {"name": 1, "_id": 0}}]),
    )
    .unwrap();
    assert_eq!(got, vec![doc! {"name": "_id_"}]);
    let admin = Options::new("admin", None);
    let got = run_with(
        &host,
        &admin,
        &[],
        bson!([{"$currentOp": {}}, {"$match": {"active": true}}]),
    )
    .unwrap();
    assert_eq!(got, vec![doc! {"op": "command", "active": true}]);
    let got = run_with(
        &host,
        &admin,
        &[],
        bson!([{"$documents": [{"x": 1}, {"x": 2}]}, {"$match": {"x": 2}}]),
    )
    .unwrap();
    assert_eq!(got, vec![doc! {"x": 2}]);
}

#[test]
fn sample_takes_distinct_input_documents() {
    let input: Vec<Document> = (0..50).map(|i| doc! {"_id": i}).collect();
    let got = run(&input, bson!([{"$sample": {"size": 5}}]));
    assert_eq!(got.len(), 5);
    let mut ids: Vec<i32> = got.iter().map(|d| d.get_i32("_id").unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    assert_eq!(
        run(&input[..3], bson!([{"$sample": {"size": 10}}])).len(),
        3
    );
}

#[test]
fn limit_stops_reading_its_input() {
    let host = MemHost::default();
    let opts = Options::new("test", Some("c"));
    let pulled = Cell::new(0);
    let endless = (0..).map(|i| {
        pulled.set(pulled.get() + 1);
        Ok(doc! {"_id": i, "even": i % 2 == 0})
    });
    let p = Pipeline::parse(
        &pipeline(bson!([{"$match": {"even": true}}, {"$limit": 3}])),
        &opts,
    )
    .unwrap();
    let got = p.run(endless, &host, &opts).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(pulled.get(), 5);
}

#[test]
fn blocking_stages_respect_the_memory_limit_without_allow_disk_use() {
    let host = MemHost::default();
    let input: Vec<Document> = (0..100)
        .map(|i| doc! {"_id": i, "pad": "x".repeat(100)})
        .collect();
    let mut opts = Options::new("test", Some("c"));
    opts.memory_limit = 2_000;
    opts.group_memory_limit = 2_000;
    opts.allow_disk_use = false;
    for stages in [
        bson!([{"$sort": {"pad": 1}}]),
        bson!([{"$group": {"_id": "$_id", "p": {"$push": "$pad"}}}]),
    ] {
        let err = run_with(&host, &opts, &input, stages.clone()).unwrap_err();
        assert_eq!(
            err.code,
            Code::QueryExceededMemoryLimitNoDiskUseAllowed,
            "{stages}"
        );
        assert_eq!(err.code.number(), 292);
    }
    let err = run_with(&host, &opts, &input, bson!([{"$sort": {"pad": 1}}])).unwrap_err();
    assert_eq!(
        err.message,
        "Sort exceeded memory limit of 2000 bytes, but did not opt in to external sorting."
    );
    opts.allow_disk_use = true;
    assert_eq!(
        run_with(&host, &opts, &input, bson!([{"$sort": {"_id": -1}}]))
            .unwrap()
            .len(),
        100
    );
}

#[test]
fn long_pipelines_stop_when_interrupted() {
    let host = MemHost::default();
    host.interrupt_after.set(Some(2));
    let input: Vec<Document> = (0..10_000).map(|i| doc! {"_id": i}).collect();
    let opts = Options::new("test", Some("c"));
    let err = run_with(&host, &opts, &input, bson!([{"$match": {"nope": 1}}])).unwrap_err();
    assert_eq!(err.code, Code::MaxTimeMSExpired);
}

#[test]
fn bad_pipelines_get_mongods_codes() {
    let cases: Vec<(Bson, i32)> = vec![
        (bson!([{}]), 40323),
        (bson!([{"$match": {}, "$limit": 1}]), 40323),
        (bson!([5]), 40323),
        (bson!([{"$nosuch": {}}]), 40324),
        (bson!([{"$match": 1}]), 15959),
        (bson!([{"$match": {"a": {"$bogus": 1}}}]), 2),
        (bson!([{"$limit": "x"}]), 15957),
        (bson!([{"$limit": 0}]), 15958),
        (bson!([{"$limit": -1}]), 15958),
        (bson!([{"$skip": "x"}]), 15972),
        (bson!([{"$skip": -1}]), 15956),
        (bson!([{"$sort": 1}]), 15973),
        (bson!([{"$sort": {}}]), 15976),
        (bson!([{"$sort": {"a": 2}}]), 15975),
        (bson!([{"$project": 1}]), 15969),
        (bson!([{"$project": {}}]), 51272),
        (bson!([{"$project": {"a": 1, "b": 0}}]), 31254),
        (bson!([{"$project": {"a": 0, "b": 1}}]), 31253),
        (bson!([{"$project": {"a": 0, "b": "$x"}}]), 31252),
        (bson!([{"$project": {"a": 1, "a.b": 1}}]), 31250),
        (bson!([{"$project": {"$a": 1}}]), 16410),
        (bson!([{"$project": {"a": {}}}]), 51270),
        (bson!([{"$addFields": 1}]), 40272),
        (bson!([{"$set": []}]), 40272),
        (bson!([{"$unset": 1}]), 31002),
        (bson!([{"$unset": []}]), 31119),
        (bson!([{"$unset": [1]}]), 31120),
        (bson!([{"$group": 1}]), 15947),
        (bson!([{"$group": {"n": {"$sum": 1}}}]), 15955),
        (bson!([{"$group": {"_id": 1, "n": 1}}]), 40234),
        (
            bson!([{"$group": {"_id": 1, "n": {"$sum": 1, "$avg": 1}}}]),
            40238,
        ),
        (bson!([{"$group": {"_id": 1, "n": {"$bogus": 1}}}]), 15952),
        (bson!([{"$group": {"_id": 1, "a.b": {"$sum": 1}}}]), 40235),
        (bson!([{"$group": {"_id": 1, "$a": {"$sum": 1}}}]), 40236),
        (
            bson!([{"$group": {"_id": 1, "n": {"$push": [1, 2]}}}]),
            40237,
        ),
        (bson!([{"$group": {"_id": 1, "n": {"$count": 1}}}]), 14),
        (bson!([{"$group": {"_id": 1, "n": {"$median": 1}}}]), 238),
        (bson!([{"$count": 1}]), 40156),
        (bson!([{"$count": ""}]), 40157),
        (bson!([{"$count": "$x"}]), 40158),
        (bson!([{"$count": "a.b"}]), 40160),
        (bson!([{"$unwind": 1}]), 15981),
        (bson!([{"$unwind": "a"}]), 28818),
        (bson!([{"$unwind": {}}]), 28812),
        (bson!([{"$unwind": {"path": 1}}]), 28808),
        (
            bson!([{"$unwind": {"path": "$a", "preserveNullAndEmptyArrays": 1}}]),
            28809,
        ),
        (
            bson!([{"$unwind": {"path": "$a", "includeArrayIndex": "$i"}}]),
            28822,
        ),
        (bson!([{"$unwind": {"path": "$a", "bogus": 1}}]), 28811),
        (bson!([{"$replaceRoot": 1}]), 40229),
        (bson!([{"$replaceRoot": {}}]), 40414),
        (bson!([{"$replaceRoot": {"newRoot": "$a", "x": 1}}]), 40415),
        (bson!([{"$sortByCount": "a"}]), 40148),
        (bson!([{"$sortByCount": {"a": 1}}]), 40147),
        (bson!([{"$sortByCount": 1}]), 40149),
        (bson!([{"$facet": 1}]), 40169),
        (bson!([{"$facet": {}}]), 40169),
        (bson!([{"$facet": {"a": 1}}]), 40170),
        (bson!([{"$facet": {"a": [{"$out": "x"}]}}]), 40600),
        (bson!([{"$facet": {"a": [{"$facet": {"b": []}}]}}]), 40600),
        (bson!([{"$sample": 1}]), 28745),
        (bson!([{"$sample": {"size": "x"}}]), 28746),
        (bson!([{"$sample": {"size": -1}}]), 28747),
        (bson!([{"$sample": {"size": 1, "x": 1}}]), 28748),
        (bson!([{"$sample": {}}]), 28749),
        (bson!([{"$lookup": {"from": "x", "as": "y"}}]), 9),
        (
            bson!([{"$lookup": {"from": "x", "localField": "a", "foreignField": "b"}}]),
            9,
        ),
        (
            bson!([{"$lookup": {"from": "x", "localField": "a", "as": "y"}}]),
            9,
        ),
        (
            bson!([{"$lookup": {"from": "x", "as": "y", "pipeline": [{"$out": "z"}]}}]),
            51047,
        ),
        (bson!([{"$out": "x"}, {"$match": {}}]), 40601),
        (bson!([{"$merge": "x"}, {"$match": {}}]), 40601),
        (
            bson!([{"$merge": {"into": "x", "whenMatched": "bogus"}}]),
            2,
        ),
        (
            bson!([{"$merge": {"into": "x", "whenMatched": [{"$group": {"_id": 1}}]}}]),
            72,
        ),
        (bson!([{"$merge": {"into": "x", "bogus": 1}}]), 40415),
        (bson!([{"$merge": {}}]), 40414),
        (bson!([{"$match": {}}, {"$collStats": {}}]), 40602),
        (bson!([{"$match": {}}, {"$indexStats": {}}]), 40602),
        (bson!([{"$indexStats": {"a": 1}}]), 28803),
        (bson!([{"$changeStream": {}}]), 115),
        (bson!([{"$graphLookup": {}}]), 238),
        (bson!([{"$project": {"a": {"$nosuchop": 1}}}]), 168),
    ];
    let opts = Options::new("test", Some("c"));
    for (stages, code) in cases {
        let err = Pipeline::parse(&pipeline(stages.clone()), &opts)
            .err()
            .unwrap_or_else(|| panic!("{stages} parsed"));
        assert_eq!(err.code.number(), code, "{stages}: {err}");
    }
}

#[test]
fn runtime_errors_get_mongods_codes() {
    let input = docs(bson!([{"_id": 1, "a": 5}]));
    let host = MemHost::default();
    let opts = Options::new("test", Some("c"));
    let err = run_with(
        &host,
        &opts,
        &input,
        bson!([{"$replaceRoot": {"newRoot": "$a"}}]),
    )
    .unwrap_err();
    assert_eq!(err.code.number(), 40228);
    let err = run_with(
        &host,
        &opts,
        &input,
        bson!([{"$merge": {"into": "t", "on": "a", "whenNotMatched": "fail"}}]),
    )
    .unwrap_err();
    assert_eq!(err.code.number(), 13113);
    let err = run_with(
        &host,
        &opts,
        &input,
        bson!([{"$merge": {"into": "t", "on": "b"}}]),
    )
    .unwrap_err();
    assert_eq!(err.code.number(), 51132);
}
