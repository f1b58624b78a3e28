//! `$`-prefixed and dotted field names as mongod 5.0+ stores them (storage_validation.cpp,
//! ops/insert.cpp): allowed at any level of an inserted document, refused in an `_id`
//! object (52), refused at the top level of a replacement or operator update unless a
//! DBRef (52, 55), allowed at the top level of a pipeline update.

mod common;

use bson::{doc, Bson, Document};
use common::Ferrod;

fn write_error_code(reply: &Document) -> Option<i32> {
    reply.get_i32("code").ok().or_else(|| {
        reply
            .get_array("writeErrors")
            .ok()
            .and_then(|w| w[0].as_document().unwrap().get_i32("code").ok())
    })
}

fn find_all(server: &Ferrod) -> Vec<Bson> {
    let reply = server.command(doc! {"find": "c", "sort": {"_id": 1}, "$db": "t"});
    reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .clone()
}

#[test]
fn inserts_keep_dollar_prefixed_and_dotted_names() {
    let server = Ferrod::start(&[]);
    let docs = vec![
        doc! {"_id": 1, "$a": 1},
        doc! {"_id": 2, "a.b": 1},
        doc! {"_id": 3, "a": {"$b": 1}},
        doc! {"_id": 4, "a": {"b.c": 1}},
        doc! {"_id": {"a.b": 1}},
        doc! {"_id": 6, "a": {"$db": "foo"}},
        doc! {"_id": {"$ref": "c", "$id": 1}},
    ];
    let reply = server.command(doc! {"insert": "c", "documents": docs.clone(), "$db": "t"});
    assert_eq!(reply.get_i32("n").unwrap(), 7, "{reply:?}");
    let stored = find_all(&server);
    for d in &docs {
        assert!(
            stored.contains(&Bson::Document(d.clone())),
            "{d} not in {stored:?}"
        );
    }
}

#[test]
fn an_id_holding_a_dollar_prefixed_field_is_refused_with_52() {
    let server = Ferrod::start(&[]);
    for id in [doc! {"$a": 1}, doc! {"x": {"$a": 1}}, doc! {"$id": 1}] {
        let reply =
            server.command(doc! {"insert": "c", "documents": [{"_id": id.clone()}], "$db": "t"});
        assert_eq!(write_error_code(&reply), Some(52), "{id}: {reply:?}");
        let msg = reply.get_array("writeErrors").unwrap()[0]
            .as_document()
            .unwrap()
            .get_str("errmsg")
            .unwrap()
            .to_owned();
        assert!(
            msg.starts_with("_id fields may not contain '$'-prefixed fields: $"),
            "{msg}"
        );
    }
    assert!(find_all(&server).is_empty());
}

#[test]
fn updates_follow_mongods_rules_for_top_level_dollar_names() {
    let server = Ferrod::start(&[]);
    server.command(doc! {"insert": "c", "documents": [{"_id": 1, "foo": {}}], "$db": "t"});
    let update = |u: Bson| {
        server.command(doc! {"update": "c", "updates": [{"q": {"_id": 1}, "u": u}], "$db": "t"})
    };
    // A pipeline may write top-level `$` names ($setField with $literal).
    let reply = update(Bson::Array(vec![Bson::Document(doc! {
        "$replaceWith": {"$setField": {"field": {"$literal": "$a"}, "value": 1, "input": "$$ROOT"}}
    })]));
    assert_eq!(reply.get_i32("nModified").unwrap(), 1, "{reply:?}");
    assert_eq!(
        find_all(&server),
        [Bson::Document(doc! {"_id": 1, "foo": {}, "$a": 1})]
    );
    // $getField reads them back.
    let reply = server.command(
        doc! {"aggregate": "c", "cursor": {}, "$db": "t", "pipeline": [
            {"$project": {"_id": 0, "v": {"$getField": {"$literal": "$a"}}}}
        ]},
    );
    let batch = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    assert_eq!(batch, &vec![Bson::Document(doc! {"v": 1})]);
    // Nested in an embedded document through a pipeline $set.
    let reply = update(Bson::Array(vec![Bson::Document(doc! {
        "$set": {"foo": {"$setField": {"field": {"$literal": "$b"}, "value": 2, "input": "$foo"}}}
    })]));
    assert_eq!(reply.get_i32("nModified").unwrap(), 1, "{reply:?}");
    // A replacement may nest them but not put them at the top (52).
    let reply = update(Bson::Document(doc! {"_id": 1, "a": {"$b": 1}}));
    assert_eq!(reply.get_i32("nModified").unwrap(), 1, "{reply:?}");
    let reply = update(Bson::Document(doc! {"_id": 1, "$c": 1}));
    assert_eq!(write_error_code(&reply), Some(52), "{reply:?}");
    // A DBRef at the top level is fine; a malformed one is 55. (A replacement cannot
    // start with a `$` name: it would be read as an operator update.)
    let reply = update(Bson::Document(doc! {"_id": 1, "$ref": "c", "$id": 1}));
    assert_eq!(reply.get_i32("nModified").unwrap(), 1, "{reply:?}");
    let reply = update(Bson::Document(doc! {"x": 1, "$id": 1}));
    assert_eq!(write_error_code(&reply), Some(55), "{reply:?}");
    // $set may write below the top level, not at it.
    let reply = update(Bson::Document(doc! {"$set": {"a.$b": 1}}));
    assert_eq!(reply.get_i32("nModified").unwrap(), 1, "{reply:?}");
    let reply = update(Bson::Document(doc! {"$set": {"$z": 1}}));
    assert_eq!(write_error_code(&reply), Some(52), "{reply:?}");
}
