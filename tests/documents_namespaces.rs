//! Namespaces against a real ferrod: capped collections, validators, collMod,
//! renameCollection, collStats, validate, dbHash and the blocking sort's memory limit,
//! through raw OP_MSG commands and the Rust driver, with a bad-input table of codes.

mod common;

use common::Ferrod;
use mongodb::bson::{doc, Bson, Document};

fn run(node: &Ferrod, db: &str, mut cmd: Document) -> Document {
    cmd.insert("$db", db);
    node.command(cmd)
}

fn ok(reply: &Document) -> bool {
    common::ok(reply)
}

fn code(reply: &Document) -> i32 {
    reply.get_i32("code").unwrap_or(0)
}

/// A number of any integer type (mongod writes small counts as ints).
fn int(d: &Document, field: &str) -> i64 {
    match d.get(field) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        other => panic!("{field}: {other:?} in {d}"),
    }
}

fn ids(reply: &Document) -> Vec<i32> {
    reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|d| d.as_document().unwrap().get_i32("_id").unwrap())
        .collect()
}

#[test]
fn a_capped_collection_keeps_insertion_order_and_drops_its_oldest_documents() {
    let node = Ferrod::start(&[]);
    let r = run(
        &node,
        "test",
        doc! {"create": "log", "capped": true, "size": 100_000, "max": 3},
    );
    assert!(ok(&r), "{r}");
    // _ids out of order: insertion order is what $natural follows.
    for id in [5, 1, 4] {
        let r = run(
            &node,
            "test",
            doc! {"insert": "log", "documents": [{"_id": id}]},
        );
        assert_eq!(r.get_i32("n"), Ok(1), "{r}");
    }
    assert_eq!(
        ids(&run(&node, "test", doc! {"find": "log"})),
        vec![5, 1, 4]
    );
    // Two more in one batch: the two oldest go in the same write.
    let r = run(
        &node,
        "test",
        doc! {"insert": "log", "documents": [{"_id": 2}, {"_id": 3}]},
    );
    assert_eq!(r.get_i32("n"), Ok(2), "{r}");
    assert_eq!(
        ids(&run(&node, "test", doc! {"find": "log"})),
        vec![4, 2, 3]
    );
    assert_eq!(
        ids(&run(
            &node,
            "test",
            doc! {"find": "log", "sort": {"$natural": -1}}
        )),
        vec![3, 2, 4]
    );
    // Deletes are allowed (mongod 5.0+), and so are updates that change the size
    // (mongod 5.3+).
    let r = run(
        &node,
        "test",
        doc! {"delete": "log", "deletes": [{"q": {"_id": 2}, "limit": 1}]},
    );
    assert_eq!(r.get_i32("n"), Ok(1), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"update": "log", "updates": [{"q": {"_id": 4}, "u": {"$set": {"grown": "x".repeat(100)}}}]},
    );
    assert_eq!(r.get_i32("nModified"), Ok(1), "{r}");
    assert_eq!(ids(&run(&node, "test", doc! {"find": "log"})), vec![4, 3]);
    // listCollections shows the options, size rounded up to a multiple of 256.
    let r = run(
        &node,
        "test",
        doc! {"listCollections": 1, "filter": {"name": "log"}},
    );
    let entry = r
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    let options = entry.get_document("options").unwrap();
    assert_eq!(options.get_bool("capped"), Ok(true), "{entry}");
    assert_eq!(options.get("size"), Some(&Bson::Int64(100_096)), "{entry}");

    // By size: 4096 bytes at least; documents of about 1 KB leave room for three.
    let r = run(
        &node,
        "test",
        doc! {"create": "small", "capped": true, "size": 1},
    );
    assert!(ok(&r), "{r}");
    for id in 0..10 {
        let r = run(
            &node,
            "test",
            doc! {"insert": "small", "documents": [{"_id": id, "pad": "p".repeat(1000)}]},
        );
        assert_eq!(r.get_i32("n"), Ok(1), "{r}");
    }
    assert_eq!(
        ids(&run(
            &node,
            "test",
            doc! {"find": "small", "projection": {"_id": 1}}
        )),
        vec![6, 7, 8, 9]
    );
    // A document larger than the whole collection is refused.
    let r = run(
        &node,
        "test",
        doc! {"insert": "small", "documents": [{"_id": 99, "pad": "p".repeat(5000)}]},
    );
    let errors = r.get_array("writeErrors").unwrap();
    assert_eq!(
        errors[0].as_document().unwrap().get_i32("code"),
        Ok(2),
        "{r}"
    );

    // Survives a restart (the order is stored).
    let dbpath = node.into_dbpath();
    let node = Ferrod::start_in(dbpath, &[]);
    assert_eq!(ids(&run(&node, "test", doc! {"find": "log"})), vec![4, 3]);
    let r = run(
        &node,
        "test",
        doc! {"insert": "log", "documents": [{"_id": 0}]},
    );
    assert_eq!(r.get_i32("n"), Ok(1), "{r}");
    assert_eq!(
        ids(&run(&node, "test", doc! {"find": "log"})),
        vec![4, 3, 0]
    );
    // The kept size followed the delete and the grown update.
    for coll in ["log", "small"] {
        let r = run(&node, "test", doc! {"validate": coll});
        assert_eq!(r.get_bool("valid"), Ok(true), "{r}");
    }
}

#[test]
fn a_validator_refuses_documents_with_121_and_errinfo() {
    let node = Ferrod::start(&[]);
    let r = run(
        &node,
        "test",
        doc! {"create": "people", "validator": {"age": {"$gte": 0}, "$jsonSchema": {"required": ["name"]}}},
    );
    assert!(ok(&r), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"insert": "people", "documents": [{"_id": 1, "name": "a", "age": 3}, {"_id": 2, "age": -1}, {"_id": 3, "name": "c", "age": 4}], "ordered": false},
    );
    assert_eq!(r.get_i32("n"), Ok(2), "{r}");
    let e = r.get_array("writeErrors").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(e.get_i32("index"), Ok(1), "{r}");
    assert_eq!(e.get_i32("code"), Ok(121), "{r}");
    assert_eq!(e.get_str("errmsg"), Ok("Document failed validation"));
    let info = e.get_document("errInfo").unwrap();
    assert_eq!(info.get("failingDocumentId"), Some(&Bson::Int32(2)), "{e}");
    let details = info.get_document("details").unwrap();
    assert_eq!(details.get_str("operatorName"), Ok("$and"), "{e}");
    assert_eq!(
        details.get_array("clausesNotSatisfied").unwrap().len(),
        2,
        "{e}"
    );
    // An update that would break it: 121; bypassDocumentValidation lets it through.
    let r = run(
        &node,
        "test",
        doc! {"update": "people", "updates": [{"q": {"_id": 1}, "u": {"$set": {"age": -5}}}]},
    );
    let e = r.get_array("writeErrors").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(e.get_i32("code"), Ok(121), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"findAndModify": "people", "query": {"_id": 1}, "update": {"$unset": {"name": 1}}},
    );
    assert_eq!(code(&r), 121, "{r}");
    assert!(r.get_document("errInfo").is_ok(), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"update": "people", "updates": [{"q": {"_id": 1}, "u": {"$set": {"age": -5}}}], "bypassDocumentValidation": true},
    );
    assert_eq!(r.get_i32("nModified"), Ok(1), "{r}");

    // moderate: an invalid document may stay invalid; warn: written, logged.
    let r = run(
        &node,
        "test",
        doc! {"create": "mod", "validator": {"a": {"$type": "int"}}, "validationLevel": "moderate"},
    );
    assert!(ok(&r), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"insert": "mod", "documents": [{"_id": 1, "a": "x"}], "bypassDocumentValidation": true},
    );
    assert_eq!(r.get_i32("n"), Ok(1), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"update": "mod", "updates": [{"q": {"_id": 1}, "u": {"$set": {"b": 1}}}]},
    );
    assert_eq!(r.get_i32("nModified"), Ok(1), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"insert": "mod", "documents": [{"_id": 2, "a": "x"}]},
    );
    assert!(r.get_array("writeErrors").is_ok(), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"create": "warned", "validator": {"a": 1}, "validationAction": "warn"},
    );
    assert!(ok(&r), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"insert": "warned", "documents": [{"_id": 7, "a": 2}]},
    );
    assert_eq!(r.get_i32("n"), Ok(1), "{r}");
    node.wait_for_log(
        "Document would fail validation",
        std::time::Duration::from_secs(10),
    );
}

/// (command, expected code) on database `test`.
fn bad_inputs() -> Vec<(Document, i32)> {
    vec![
        (doc! {"create": "c1", "capped": true}, 72),
        (doc! {"create": "c1", "size": 1000}, 72),
        (doc! {"create": "c1", "max": 10}, 72),
        (doc! {"create": "c1", "capped": true, "size": 0}, 51024),
        (doc! {"create": "c1", "capped": true, "size": "big"}, 14),
        (doc! {"create": "c1", "capped": "yes", "size": 100}, 14),
        (doc! {"create": "c1", "validator": 5}, 14),
        (doc! {"create": "c1", "validator": {"$where": "true"}}, 224),
        (doc! {"create": "c1", "validator": {"a": {"$bogus": 1}}}, 2),
        (doc! {"create": "c1", "validationLevel": "sometimes"}, 2),
        (doc! {"create": "c1", "validationAction": "shout"}, 2),
        (doc! {"create": "c1", "validationAction": 1}, 14),
        (doc! {"create": "c1", "viewOn": "x"}, 72),
        (doc! {"create": "c1", "bogus": 1}, 40415),
    ]
}

#[test]
fn bad_namespace_inputs_get_mongods_codes() {
    let node = Ferrod::start(&[]);
    for (cmd, expected) in bad_inputs() {
        let r = run(&node, "test", cmd.clone());
        assert_eq!(code(&r), expected, "{cmd} -> {r}");
    }
    // Nothing was created by the refused commands.
    let r = run(&node, "test", doc! {"listCollections": 1, "nameOnly": true});
    assert!(ids_or_names(&r).is_empty(), "{r}");
    // An existing collection with other options: 48.
    assert!(ok(&run(&node, "test", doc! {"create": "c2"})));
    let r = run(
        &node,
        "test",
        doc! {"create": "c2", "capped": true, "size": 4096},
    );
    assert_eq!(code(&r), 48, "{r}");
}

fn ids_or_names(reply: &Document) -> Vec<String> {
    reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|d| d.as_document().unwrap().get_str("name").unwrap().to_owned())
        .collect()
}

#[test]
fn coll_mod_changes_the_validator_and_rename_collection_moves_documents() {
    let node = Ferrod::start(&[]);
    let r = run(
        &node,
        "test",
        doc! {"insert": "a", "documents": [{"_id": 1, "x": 1}]},
    );
    assert_eq!(r.get_i32("n"), Ok(1), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"collMod": "a", "validator": {"x": {"$type": "string"}}, "validationAction": "error"},
    );
    assert!(ok(&r), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"insert": "a", "documents": [{"_id": 2, "x": 2}]},
    );
    assert!(r.get_array("writeErrors").is_ok(), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"listCollections": 1, "filter": {"name": "a"}},
    );
    let entry = r
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(
        entry
            .get_document("options")
            .unwrap()
            .get_document("validator"),
        Ok(&doc! {"x": {"$type": "string"}}),
        "{entry}"
    );
    // validationLevel off: the validator stays, nothing is checked.
    assert!(ok(&run(
        &node,
        "test",
        doc! {"collMod": "a", "validationLevel": "off"}
    )));
    let r = run(
        &node,
        "test",
        doc! {"insert": "a", "documents": [{"_id": 2, "x": 2}]},
    );
    assert_eq!(r.get_i32("n"), Ok(1), "{r}");

    // Within the database, then to another one; the documents follow.
    let r = run(
        &node,
        "admin",
        doc! {"renameCollection": "test.a", "to": "test.b"},
    );
    assert!(ok(&r), "{r}");
    assert_eq!(
        ids(&run(&node, "test", doc! {"find": "a"})),
        Vec::<i32>::new()
    );
    assert_eq!(ids(&run(&node, "test", doc! {"find": "b"})), vec![1, 2]);
    run(
        &node,
        "other",
        doc! {"insert": "c", "documents": [{"_id": 9}]},
    );
    let r = run(
        &node,
        "admin",
        doc! {"renameCollection": "test.b", "to": "other.c"},
    );
    assert_eq!(code(&r), 48, "{r}");
    let r = run(
        &node,
        "admin",
        doc! {"renameCollection": "test.b", "to": "other.c", "dropTarget": true},
    );
    assert!(ok(&r), "{r}");
    assert_eq!(ids(&run(&node, "other", doc! {"find": "c"})), vec![1, 2]);
    // The options (validator) moved with it.
    let r = run(
        &node,
        "other",
        doc! {"collMod": "c", "validationLevel": "strict"},
    );
    assert!(ok(&r), "{r}");
    let r = run(
        &node,
        "other",
        doc! {"insert": "c", "documents": [{"_id": 3, "x": 3}]},
    );
    assert!(r.get_array("writeErrors").is_ok(), "{r}");

    let table: Vec<(&str, Document, i32)> = vec![
        (
            "admin",
            doc! {"renameCollection": "test.nope", "to": "test.x"},
            26,
        ),
        (
            "admin",
            doc! {"renameCollection": "other.c", "to": "other.c"},
            20,
        ),
        (
            "admin",
            doc! {"renameCollection": "other.system.views", "to": "other.v"},
            20,
        ),
        (
            "admin",
            doc! {"renameCollection": "other.c", "to": "other.system.x"},
            20,
        ),
        (
            "admin",
            doc! {"renameCollection": "other.c", "to": "nodot"},
            73,
        ),
        ("admin", doc! {"renameCollection": "other.c", "to": 5}, 14),
        (
            "admin",
            doc! {"renameCollection": "other.c", "to": "other.d", "bogus": 1},
            40415,
        ),
        (
            "test",
            doc! {"renameCollection": "other.c", "to": "other.d"},
            13,
        ),
        ("test", doc! {"collMod": "nope", "validator": {}}, 26),
        (
            "other",
            doc! {"collMod": "c", "index": {"name": "a_1", "hidden": true}},
            72,
        ),
        (
            "other",
            doc! {"collMod": "c", "validationLevel": "never"},
            2,
        ),
        (
            "other",
            doc! {"collMod": "c", "validator": {"$where": "1"}},
            224,
        ),
        ("other", doc! {"collMod": "c", "bogus": 1}, 40415),
    ];
    for (db, cmd, expected) in table {
        let r = run(&node, db, cmd.clone());
        assert_eq!(code(&r), expected, "{cmd} -> {r}");
    }
}

fn secondary_find(node: &Ferrod, db: &str, coll: &str) -> Vec<i32> {
    ids(&run(
        node,
        db,
        doc! {"find": coll, "$readPreference": {"mode": "secondaryPreferred"}},
    ))
}

#[test]
fn capped_trims_renames_and_coll_mod_replicate_to_every_member() {
    let (nodes, p) = common::three_member_set();
    let primary = &nodes[p];
    let w = doc! {"w": 3, "wtimeout": 20000};
    let r = run(
        primary,
        "test",
        doc! {"create": "cap", "capped": true, "size": 4096, "max": 2, "writeConcern": w.clone()},
    );
    assert!(ok(&r), "{r}");
    for id in [3, 1, 2] {
        let r = run(
            primary,
            "test",
            doc! {"insert": "cap", "documents": [{"_id": id}], "writeConcern": w.clone()},
        );
        assert_eq!(r.get_i32("n"), Ok(1), "{r}");
    }
    let r = run(
        primary,
        "test",
        doc! {"collMod": "cap", "validator": {"_id": {"$gt": 0}}, "writeConcern": w.clone()},
    );
    assert!(ok(&r), "{r}");
    let r = run(
        primary,
        "admin",
        doc! {"renameCollection": "test.cap", "to": "moved.cap", "writeConcern": w.clone()},
    );
    assert!(ok(&r), "{r}");
    for node in &nodes {
        // w: 3 waits for the log; the member applies the entries right after.
        common::eventually(
            std::time::Duration::from_secs(20),
            "the rename applied",
            || (secondary_find(node, "moved", "cap") == vec![1, 2]).then_some(()),
        );
        assert!(secondary_find(node, "test", "cap").is_empty());
        let r = run(
            node,
            "moved",
            doc! {"listCollections": 1, "$readPreference": {"mode": "secondaryPreferred"}},
        );
        let entry = r
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()[0]
            .as_document()
            .unwrap()
            .clone();
        let options = entry.get_document("options").unwrap();
        assert_eq!(
            options.get_document("validator"),
            Ok(&doc! {"_id": {"$gt": 0}})
        );
        assert_eq!(options.get_bool("capped"), Ok(true));
    }
    // Secondaries refuse both commands.
    let s = (p + 1) % 3;
    assert_eq!(
        code(&run(
            &nodes[s],
            "moved",
            doc! {"collMod": "cap", "validator": {}}
        )),
        10107
    );
    assert_eq!(
        code(&run(
            &nodes[s],
            "admin",
            doc! {"renameCollection": "moved.cap", "to": "moved.x"}
        )),
        10107
    );
}

#[test]
fn coll_stats_validate_and_db_hash_describe_a_collection() {
    let node = Ferrod::start(&[]);
    run(
        &node,
        "test",
        doc! {"create": "cap", "capped": true, "size": 10_000, "max": 50},
    );
    let docs: Vec<Document> = (0..10)
        .map(|i| doc! {"_id": i, "pad": "x".repeat(100)})
        .collect();
    run(&node, "test", doc! {"insert": "cap", "documents": docs});
    let r = run(&node, "test", doc! {"collStats": "cap", "scale": 1});
    assert!(ok(&r), "{r}");
    assert_eq!(r.get_str("ns"), Ok("test.cap"));
    assert_eq!(int(&r, "count"), 10, "{r}");
    assert!(int(&r, "size") > 1000, "{r}");
    assert_eq!(r.get_bool("capped"), Ok(true), "{r}");
    assert_eq!(int(&r, "max"), 50, "{r}");
    assert_eq!(int(&r, "maxSize"), 10_240, "{r}");
    assert_eq!(r.get_i32("nindexes"), Ok(1), "{r}");
    assert!(r.get_document("indexSizes").unwrap().contains_key("_id_"));
    let kb = run(&node, "test", doc! {"collStats": "cap", "scale": 1024});
    assert_eq!(int(&kb, "maxSize"), 10, "{kb}");
    assert_eq!(kb.get_i32("scaleFactor"), Ok(1024), "{kb}");
    // $collStats (what mongosh's db.coll.stats() runs) shares it.
    let r = run(
        &node,
        "test",
        doc! {"aggregate": "cap", "pipeline": [{"$collStats": {"storageStats": {}}}], "cursor": {}},
    );
    let first = r
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    let stats = first.get_document("storageStats").unwrap();
    assert_eq!(stats.get_bool("capped"), Ok(true), "{first}");
    assert_eq!(int(stats, "max"), 50, "{first}");

    let r = run(&node, "test", doc! {"validate": "cap", "full": true});
    assert!(ok(&r), "{r}");
    assert_eq!(r.get_bool("valid"), Ok(true), "{r}");
    assert_eq!(int(&r, "nrecords"), 10, "{r}");
    assert_eq!(r.get_i32("nIndexes"), Ok(1), "{r}");
    assert_eq!(
        int(r.get_document("keysPerIndex").unwrap(), "_id_"),
        10,
        "{r}"
    );
    assert!(r.get_array("errors").unwrap().is_empty(), "{r}");
    assert!(r.get_array("warnings").unwrap().is_empty(), "{r}");

    run(
        &node,
        "test",
        doc! {"insert": "plain", "documents": [{"_id": 1}]},
    );
    let h1 = run(&node, "test", doc! {"dbHash": 1});
    assert!(ok(&h1), "{h1}");
    let colls = h1.get_document("collections").unwrap();
    assert_eq!(colls.len(), 2, "{h1}");
    assert_eq!(h1.get_array("capped").unwrap().len(), 1, "{h1}");
    assert!(h1.get_document("uuids").unwrap().contains_key("plain"));
    assert_eq!(h1.get_str("md5").unwrap().len(), 32);
    let only = run(&node, "test", doc! {"dbHash": 1, "collections": ["plain"]});
    assert_eq!(only.get_document("collections").unwrap().len(), 1, "{only}");
    // A change changes the hash of that collection only.
    run(
        &node,
        "test",
        doc! {"insert": "plain", "documents": [{"_id": 2}]},
    );
    let h2 = run(&node, "test", doc! {"dbHash": 1});
    let colls2 = h2.get_document("collections").unwrap();
    assert_ne!(colls.get("plain"), colls2.get("plain"));
    assert_eq!(colls.get("cap"), colls2.get("cap"));
    assert_ne!(h1.get_str("md5"), h2.get_str("md5"));

    let table: Vec<(Document, i32)> = vec![
        (doc! {"collStats": "nope"}, 26),
        (doc! {"collStats": "cap", "scale": 0}, 51024),
        (doc! {"collStats": "cap", "scale": "k"}, 14),
        (doc! {"collStats": "cap", "bogus": 1}, 40415),
        (doc! {"validate": "nope"}, 26),
        (
            doc! {"validate": "cap", "full": true, "background": true},
            115,
        ),
        (doc! {"validate": "cap", "bogus": 1}, 40415),
        (doc! {"dbHash": 1, "collections": "cap"}, 14),
        (doc! {"dbHash": 1, "collections": [1]}, 14),
        (doc! {"dbHash": 1, "bogus": 1}, 40415),
    ];
    for (cmd, expected) in table {
        let r = run(&node, "test", cmd.clone());
        assert_eq!(code(&r), expected, "{cmd} -> {r}");
    }
}

#[test]
fn db_hash_is_equal_on_every_member_once_caught_up() {
    let (nodes, p) = common::three_member_set();
    let primary = &nodes[p];
    let w = doc! {"w": 3, "wtimeout": 20000};
    run(
        primary,
        "app",
        doc! {"create": "cap", "capped": true, "size": 4096, "max": 5, "writeConcern": w.clone()},
    );
    for i in 0..20 {
        let r = run(
            primary,
            "app",
            doc! {"insert": if i % 2 == 0 { "cap" } else { "plain" }, "documents": [{"_id": i, "v": i}], "writeConcern": w.clone()},
        );
        assert_eq!(r.get_i32("n"), Ok(1), "{r}");
    }
    run(
        primary,
        "app",
        doc! {"update": "plain", "updates": [{"q": {}, "u": {"$inc": {"v": 1}}, "multi": true}], "writeConcern": w.clone()},
    );
    // Caught up: every member has applied the last write (w: 3 waits for the log only).
    let hashes: Vec<Document> = common::eventually(
        std::time::Duration::from_secs(20),
        "equal dbHash on every member",
        || {
            let hashes: Vec<Document> = nodes
                .iter()
                .map(|n| {
                    run(
                        n,
                        "app",
                        doc! {"dbHash": 1, "$readPreference": {"mode": "secondaryPreferred"}},
                    )
                })
                .collect();
            hashes
                .iter()
                .all(|h| h.get_str("md5") == hashes[0].get_str("md5"))
                .then_some(hashes)
        },
    );
    for h in &hashes {
        assert!(ok(h), "{h}");
        assert_eq!(h.get_document("collections").unwrap().len(), 2, "{h}");
        assert_eq!(
            h.get_str("md5"),
            hashes[0].get_str("md5"),
            "{h} vs {}",
            hashes[0]
        );
        assert_eq!(h.get_document("uuids"), hashes[0].get_document("uuids"));
    }
    for n in &nodes {
        let r = run(
            n,
            "app",
            doc! {"validate": "cap", "$readPreference": {"mode": "secondaryPreferred"}},
        );
        assert_eq!(r.get_bool("valid"), Ok(true), "{r}");
        assert_eq!(int(&r, "nrecords"), 5, "{r}");
    }
}

#[test]
fn a_blocking_sort_past_its_memory_limit_needs_allow_disk_use() {
    let node = Ferrod::start(&[]);
    let docs: Vec<Document> = (0..20)
        .map(|i| doc! {"_id": i, "pad": "x".repeat(100)})
        .collect();
    run(&node, "test", doc! {"insert": "s", "documents": docs});
    let r = run(
        &node,
        "admin",
        doc! {"setParameter": 1, "internalQueryMaxBlockingSortMemoryUsageBytes": 1000},
    );
    assert!(ok(&r), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"find": "s", "sort": {"_id": -1}, "allowDiskUse": false},
    );
    assert_eq!(code(&r), 292, "{r}");
    assert!(r
        .get_str("errmsg")
        .unwrap()
        .contains("Sort exceeded memory limit of 1000 bytes"));
    // mongod 7.0's allowDiskUseByDefault: absent means allowed.
    let r = run(&node, "test", doc! {"find": "s", "sort": {"_id": -1}});
    assert_eq!(ids(&r)[0], 19, "{r}");
    let r = run(
        &node,
        "test",
        doc! {"find": "s", "sort": {"_id": -1}, "allowDiskUse": true, "batchSize": 2},
    );
    assert_eq!(ids(&r), vec![19, 18], "{r}");
    // A top-k sort holds only its limit.
    let r = run(
        &node,
        "test",
        doc! {"find": "s", "sort": {"_id": -1}, "limit": 3, "allowDiskUse": false},
    );
    assert_eq!(ids(&r), vec![19, 18, 17], "{r}");
    // Without a sort nothing is held.
    let r = run(&node, "test", doc! {"find": "s", "allowDiskUse": false});
    assert!(ok(&r), "{r}");
    // aggregate's $sort and $group follow their own parameters.
    let r = run(
        &node,
        "test",
        doc! {"aggregate": "s", "pipeline": [{"$sort": {"_id": -1}}], "cursor": {}, "allowDiskUse": false},
    );
    assert_eq!(code(&r), 292, "{r}");
    let r = run(
        &node,
        "admin",
        doc! {"setParameter": 1, "internalDocumentSourceGroupMaxMemoryBytes": 1000},
    );
    assert!(ok(&r), "{r}");
    let r = run(
        &node,
        "test",
        doc! {"aggregate": "s", "pipeline": [{"$group": {"_id": "$_id", "p": {"$push": "$pad"}}}], "cursor": {}, "allowDiskUse": false},
    );
    assert_eq!(code(&r), 292, "{r}");
}

#[test]
fn a_tailable_cursor_follows_inserts_into_a_capped_collection() {
    let node = Ferrod::start(&[]);
    run(
        &node,
        "test",
        doc! {"create": "feed", "capped": true, "size": 100_000},
    );
    run(
        &node,
        "test",
        doc! {"insert": "feed", "documents": [{"_id": 1, "k": "a"}, {"_id": 2, "k": "b"}]},
    );
    let r = run(
        &node,
        "test",
        doc! {"find": "feed", "filter": {"k": {"$ne": "skip"}}, "tailable": true, "awaitData": true},
    );
    assert_eq!(ids(&r), vec![1, 2], "{r}");
    let id = r.get_document("cursor").unwrap().get_i64("id").unwrap();
    assert_ne!(id, 0, "a tailable cursor stays open at the end: {r}");
    let next = |r: &Document| -> Vec<i32> {
        r.get_document("cursor")
            .unwrap()
            .get_array("nextBatch")
            .unwrap()
            .iter()
            .map(|d| d.as_document().unwrap().get_i32("_id").unwrap())
            .collect()
    };
    // Nothing new: an empty batch after maxTimeMS, the cursor still open.
    let r = run(
        &node,
        "test",
        doc! {"getMore": id, "collection": "feed", "maxTimeMS": 50},
    );
    assert!(next(&r).is_empty(), "{r}");
    assert_eq!(r.get_document("cursor").unwrap().get_i64("id"), Ok(id));
    run(
        &node,
        "test",
        doc! {"insert": "feed", "documents": [{"_id": 3, "k": "skip"}, {"_id": 0, "k": "c"}]},
    );
    let r = run(&node, "test", doc! {"getMore": id, "collection": "feed"});
    assert_eq!(next(&r), vec![0], "{r}");
    // awaitData: a getMore waiting for a long time returns as soon as an insert lands.
    let waiting = {
        let mut s = node.raw();
        std::thread::spawn(move || {
            common::op_msg_roundtrip(
                &mut s,
                &doc! {"getMore": id, "collection": "feed", "maxTimeMS": 600_000, "$db": "test"},
            )
        })
    };
    common::eventually(
        std::time::Duration::from_secs(10),
        "the getMore waiting",
        || {
            let ops = run(&node, "admin", doc! {"currentOp": 1});
            ops.get_array("inprog")
                .unwrap()
                .iter()
                .any(|o| {
                    o.as_document()
                        .and_then(|o| o.get_document("command").ok())
                        .is_some_and(|c| c.contains_key("getMore"))
                })
                .then_some(())
        },
    );
    run(
        &node,
        "test",
        doc! {"insert": "feed", "documents": [{"_id": 9, "k": "d"}]},
    );
    let r = waiting.join().unwrap();
    assert_eq!(next(&r), vec![9], "{r}");

    let table: Vec<(Document, i32)> = vec![
        (doc! {"find": "feed", "awaitData": true}, 9),
        (
            doc! {"find": "feed", "tailable": true, "sort": {"_id": 1}},
            2,
        ),
        (
            doc! {"find": "feed", "tailable": true, "sort": {"$natural": -1}},
            2,
        ),
    ];
    run(
        &node,
        "test",
        doc! {"insert": "plain", "documents": [{"_id": 1}]},
    );
    let mut table = table;
    table.push((doc! {"find": "plain", "tailable": true}, 2));
    for (cmd, expected) in table {
        let r = run(&node, "test", cmd.clone());
        assert_eq!(code(&r), expected, "{cmd} -> {r}");
    }
    // maxTimeMS on getMore belongs to awaitData cursors.
    let r = run(&node, "test", doc! {"find": "plain", "batchSize": 0});
    let plain = r.get_document("cursor").unwrap().get_i64("id").unwrap();
    let r = run(
        &node,
        "test",
        doc! {"getMore": plain, "collection": "plain", "maxTimeMS": 10},
    );
    assert_eq!(code(&r), 2, "{r}");
}

#[tokio::test]
async fn rename_collection_needs_mongods_actions_on_both_databases() {
    let server = Ferrod::start(&[
        "--auth",
        "--setParameter",
        "scramIterationCount=5000",
        "--setParameter",
        "scramSHA256IterationCount=5000",
    ]);
    let r = run(
        &server,
        "admin",
        doc! {"createUser": "root", "pwd": "rootpw", "roles": ["root"]},
    );
    assert!(ok(&r), "{r}");
    let root = common::driver(&server.uri(), Some(("root", "rootpw")), None).await;
    root.database("admin")
        .run_command(doc! {"createUser": "writer", "pwd": "pw", "roles": [{"role": "readWrite", "db": "test"}]})
        .await
        .unwrap();
    for coll in ["a", "c"] {
        root.database("test")
            .collection::<Document>(coll)
            .insert_one(doc! {"_id": 1})
            .await
            .unwrap();
    }
    let writer = common::driver(&server.uri(), Some(("writer", "pw")), None).await;
    let code_of = |e: mongodb::error::Error| match *e.kind {
        mongodb::error::ErrorKind::Command(c) => c.code,
        other => panic!("{other:?}"),
    };
    // readWrite grants renameCollectionSameDB and dropCollection on its database.
    writer
        .database("admin")
        .run_command(doc! {"renameCollection": "test.a", "to": "test.b"})
        .await
        .unwrap();
    writer
        .database("admin")
        .run_command(doc! {"renameCollection": "test.b", "to": "test.c", "dropTarget": true})
        .await
        .unwrap();
    // Not into a database it cannot write.
    let e = writer
        .database("admin")
        .run_command(doc! {"renameCollection": "test.c", "to": "other.c"})
        .await
        .unwrap_err();
    assert_eq!(code_of(e), 13);
    // collMod is dbAdmin's, not readWrite's.
    let e = writer
        .database("test")
        .run_command(doc! {"collMod": "c", "validator": {"a": 1}})
        .await
        .unwrap_err();
    assert_eq!(code_of(e), 13);
    root.database("admin")
        .run_command(doc! {"renameCollection": "test.c", "to": "other.c"})
        .await
        .unwrap();
    let names = root
        .database("other")
        .list_collection_names()
        .await
        .unwrap();
    assert_eq!(names, vec!["c".to_owned()]);
}

/// A member added after the primary purged its log gets a capped collection by snapshot:
/// in insertion order, with its options, trimming as the primary does afterwards.
#[test]
fn a_snapshot_carries_a_capped_collection_in_insertion_order() {
    use common::eventually;
    use std::time::Duration;
    let args = &[
        "--replSet",
        "rs0",
        "--setParameter",
        "replLogEntriesPerSnapshot=20",
    ];
    let nodes: Vec<Ferrod> = (0..2).map(|_| Ferrod::start(args)).collect();
    let member = |i: usize| doc! {"_id": i as i32, "host": nodes[i].addr()};
    let settings = doc! {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000};
    let r = run(
        &nodes[0],
        "admin",
        doc! {"replSetInitiate": {"_id": "rs0", "version": 1, "members": [member(0)], "settings": settings.clone()}},
    );
    assert!(ok(&r), "{r}");
    eventually(Duration::from_secs(10), "a primary", || {
        (run(&nodes[0], "admin", doc! {"hello": 1}).get_bool("isWritablePrimary") == Ok(true))
            .then_some(())
    });
    run(
        &nodes[0],
        "app",
        doc! {"create": "cap", "capped": true, "size": 4096, "max": 5},
    );
    // _ids descending, so insertion order is not _id order.
    for i in (0..60).rev() {
        let r = run(
            &nodes[0],
            "app",
            doc! {"insert": "cap", "documents": [{"_id": i}]},
        );
        assert_eq!(r.get_i32("n"), Ok(1), "{r}");
    }
    eventually(Duration::from_secs(20), "the log purged", || {
        nodes[0]
            .log_lines()
            .iter()
            .any(|l| l.contains("\"Purged the replication log\""))
            .then_some(())
    });
    let r = run(
        &nodes[0],
        "admin",
        doc! {"replSetReconfig": {"_id": "rs0", "version": 2, "members": [member(0), member(1)], "settings": settings}},
    );
    assert!(ok(&r), "{r}");
    nodes[1].wait_for_log(
        "\"Installed a snapshot of the replicated catalog\"",
        Duration::from_secs(20),
    );
    eventually(
        Duration::from_secs(20),
        "the capped collection on the new member",
        || (secondary_find(&nodes[1], "app", "cap") == vec![4, 3, 2, 1, 0]).then_some(()),
    );
    let r = run(
        &nodes[0],
        "app",
        doc! {"insert": "cap", "documents": [{"_id": 100}]},
    );
    assert_eq!(r.get_i32("n"), Ok(1), "{r}");
    eventually(
        Duration::from_secs(20),
        "the trim on the new member",
        || (secondary_find(&nodes[1], "app", "cap") == vec![3, 2, 1, 0, 100]).then_some(()),
    );
    let r = run(
        &nodes[1],
        "app",
        doc! {"validate": "cap", "$readPreference": {"mode": "secondaryPreferred"}},
    );
    assert_eq!(r.get_bool("valid"), Ok(true), "{r}");
}
