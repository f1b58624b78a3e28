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
