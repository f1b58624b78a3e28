//! The parts of the update language and projection that go through the query matcher
//! and the expression evaluator: `$pull` conditions, `arrayFilters`, the positional `$`
//! from a real match, upserts seeded from a filter, `$elemMatch` projections and
//! expressions in pipeline updates and computed projection fields. Expected results are
//! those of mongod's jstests and unit tests (update_array_node_test.cpp, pull_node_test.cpp,
//! jstests/core/write/update/update_arrayFilters.js, upsert_fields.js).

use bson::{bson, doc, Bson, Document};
use ferrod::error::CommandError;
use ferrod::query::matcher::Filter;
use ferrod::query::projection::Projection;
use ferrod::query::update::{upsert_document, Update, UpdateContext};

fn ctx(is_insert: bool) -> UpdateContext {
    UpdateContext {
        let_vars: bson::Document::new(),
        now: bson::DateTime::from_millis(1_700_000_000_000),
        now_timestamp: bson::Timestamp {
            time: 1_700_000_000,
            increment: 1,
        },
        is_insert,
    }
}

fn with_filters(
    doc: Document,
    update: Bson,
    filters: &[Document],
) -> Result<Document, CommandError> {
    let parsed = Update::parse(&update, Some(filters))?;
    Ok(parsed.apply(&doc, None, &ctx(false))?.doc)
}

fn updated(doc: Document, update: Bson) -> Document {
    let parsed = Update::parse(&update, None).unwrap_or_else(|e| panic!("{update}: {e}"));
    parsed
        .apply(&doc, None, &ctx(false))
        .unwrap_or_else(|e| panic!("{update}: {e}"))
        .doc
}

#[test]
fn pull_with_conditions() {
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [1, 6, 7, 2]},
            bson!({"$pull": {"a": {"$gte": 6}}})
        ),
        doc! {"_id": 1, "a": [1, 2]}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [{"b": 1, "c": 1}, {"b": 2}, 1]},
            bson!({"$pull": {"a": {"b": 1}}})
        ),
        doc! {"_id": 1, "a": [{"b": 2}, 1]}
    );
    // An empty object matches every document element.
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [{"x": 1}, 1, {}]},
            bson!({"$pull": {"a": {}}})
        ),
        doc! {"_id": 1, "a": [1]}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": ["xa", "b", "xc"]},
            bson!({"$pull": {"a": Bson::RegularExpression(bson::Regex { pattern: "^x".into(), options: String::new() })}})
        ),
        doc! {"_id": 1, "a": ["b"]}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [1, 2, 3]},
            bson!({"$pull": {"a": {"$in": [1, 3]}}})
        ),
        doc! {"_id": 1, "a": [2]}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [{"b": 1}, {"b": 5}]},
            bson!({"$pull": {"a": {"b": {"$gt": 1}}}})
        ),
        doc! {"_id": 1, "a": [{"b": 1}]}
    );
    let e = Update::parse(&bson!({"$pull": {"a": 1}}), None)
        .unwrap()
        .apply(&doc! {"_id": 1, "a": 1}, None, &ctx(false))
        .unwrap_err();
    assert_eq!(
        (e.code.number(), e.message.as_str()),
        (2, "Cannot apply $pull to a non-array value")
    );
}

#[test]
fn array_filters_select_elements() {
    assert_eq!(
        with_filters(
            doc! {"_id": 1, "a": [1, 3, 5]},
            bson!({"$set": {"a.$[x]": 0}}),
            &[doc! {"x": {"$gt": 2}}]
        )
        .unwrap(),
        doc! {"_id": 1, "a": [1, 0, 0]}
    );
    assert_eq!(
        with_filters(
            doc! {"_id": 1, "a": [{"c": 1, "b": 1}, {"c": 2, "b": 1}]},
            bson!({"$set": {"a.$[i].b": 9}}),
            &[doc! {"i.c": 1}]
        )
        .unwrap(),
        doc! {"_id": 1, "a": [{"c": 1, "b": 9}, {"c": 2, "b": 1}]}
    );
    assert_eq!(
        with_filters(
            doc! {"_id": 1, "a": [{"b": [1, 5]}, {"b": [6]}]},
            bson!({"$inc": {"a.$[].b.$[n]": 10}}),
            &[doc! {"n": {"$gte": 5}}]
        )
        .unwrap(),
        doc! {"_id": 1, "a": [{"b": [1, 15]}, {"b": [16]}]}
    );
}

#[test]
fn array_filter_errors() {
    let cases: Vec<(Bson, Vec<Document>, i32, &str)> = vec![
        (
            bson!({"$set": {"a.$[i]": 2, "a.$[j]": 3}}),
            vec![doc! {"i": 0}, doc! {"j": 0}],
            40,
            "Update created a conflict at 'a.0'",
        ),
        (
            bson!({"$set": {"a.$[i]": 1}}),
            vec![doc! {"i": 0}, doc! {"j": 0}],
            9,
            "The array filter for identifier 'j' was not used in the update { $set: { a.$[i]: 1 } }",
        ),
        (
            bson!({"$set": {"a.$[i]": 1}}),
            vec![doc! {}],
            9,
            "Cannot use an expression without a top-level field name in arrayFilters",
        ),
        (
            bson!({"$set": {"a.$[i]": 1}}),
            vec![doc! {"i": 1, "j": 1}],
            9,
            "Error parsing array filter :: caused by :: Expected a single top-level field name, found 'i' and 'j'",
        ),
        (
            bson!({"$set": {"a.$[I]": 1}}),
            vec![doc! {"I": 1}],
            2,
            "Error parsing array filter :: caused by :: The top-level field name must be an alphanumeric string beginning with a lowercase letter, found 'I'",
        ),
        (
            bson!({"$set": {"a.$[i]": 1}}),
            vec![doc! {"i": 1}, doc! {"i": 2}],
            9,
            "Found multiple array filters with the same top-level field name i",
        ),
    ];
    let mut failures = Vec::new();
    for (update, filters, code, message) in cases {
        match with_filters(doc! {"_id": 1, "a": [0]}, update.clone(), &filters) {
            Ok(d) => failures.push(format!("{update}: succeeded with {d}")),
            Err(e) if e.code.number() != code || e.message != message => {
                failures.push(format!("{update}: got {} {:?}", e.code.number(), e.message))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn positional_from_a_real_match() {
    let filter = Filter::parse(&doc! {"a.b": 2}).unwrap();
    let doc = doc! {"_id": 1, "a": [{"b": 1}, {"b": 2}]};
    let details = filter.matches_with_details(&doc).unwrap();
    let update = Update::parse(&bson!({"$set": {"a.$.c": 1}}), None).unwrap();
    assert!(update.uses_positional());
    let out = update.apply(&doc, Some(&details), &ctx(false)).unwrap();
    assert_eq!(out.doc, doc! {"_id": 1, "a": [{"b": 1}, {"b": 2, "c": 1}]});
}

fn upsert(filter: Document, update: Bson) -> Result<Document, CommandError> {
    let f = Filter::parse(&filter)?;
    upsert_document(&Update::parse(&update, None)?, &f, &ctx(false))
}

#[test]
fn upserts_are_seeded_from_the_filter() {
    assert_eq!(
        upsert(
            doc! {"a": 1, "b.c": 2, "_id": 5},
            bson!({"$set": {"d": 1}, "$setOnInsert": {"e": 1}})
        )
        .unwrap(),
        doc! {"_id": 5, "a": 1, "b": {"c": 2}, "d": 1, "e": 1}
    );
    // Operators other than equality seed nothing.
    let out = upsert(
        doc! {"a": {"$gt": 1}, "b": {"$eq": 3}},
        bson!({"$inc": {"n": 1}}),
    )
    .unwrap();
    assert!(out.get_object_id("_id").is_ok(), "{out}");
    assert_eq!(out.get("a"), None);
    assert_eq!(out.get_i32("b").unwrap(), 3);
    assert_eq!(out.get_i32("n").unwrap(), 1);
    assert_eq!(out.keys().next().map(String::as_str), Some("_id"));
    // A replacement takes only _id from the filter.
    assert_eq!(
        upsert(doc! {"_id": 3, "a": 1}, bson!({"x": 1})).unwrap(),
        doc! {"_id": 3, "x": 1}
    );
    let e = upsert(doc! {"_id": 1}, bson!({"$set": {"_id": 2}})).unwrap_err();
    assert_eq!(e.code.number(), 66);
    let e = upsert(doc! {"a": 1, "a.b": 2}, bson!({"$set": {"x": 1}})).unwrap_err();
    assert_eq!(e.code.number(), 54);
    assert_eq!(
        e.message,
        "cannot infer query fields to set, both paths 'a.b' and 'a' are matched"
    );
    let e = upsert(
        doc! {"$and": [{"a": 1}, {"a": 2}]},
        bson!({"$set": {"x": 1}}),
    )
    .unwrap_err();
    assert_eq!(e.code.number(), 54);
    assert_eq!(
        e.message,
        "cannot infer query fields to set, path 'a' is matched twice"
    );
}

#[test]
fn pipeline_updates_evaluate_expressions() {
    let u = Update::parse(
        &bson!([{"$set": {"total": {"$add": ["$a", "$b"]}, "at": "$$NOW", "gone": "$$REMOVE"}}]),
        None,
    )
    .unwrap();
    let out = u
        .apply(
            &doc! {"_id": 1, "a": 2, "b": 3, "gone": 1},
            None,
            &ctx(false),
        )
        .unwrap();
    assert_eq!(
        out.doc,
        doc! {"_id": 1, "a": 2, "b": 3, "total": 5, "at": bson::DateTime::from_millis(1_700_000_000_000)}
    );
    let bad = Update::parse(&bson!([{"$replaceRoot": {"newRoot": 1}}]), None).unwrap();
    let e = bad.apply(&doc! {"_id": 1}, None, &ctx(false)).unwrap_err();
    assert_eq!(e.code.number(), 40228);
    let e = Update::parse(&bson!([{"$set": {"a": {"$nope": 1}}}]), None).unwrap_err();
    assert_eq!(e.code.number(), 168);
}

#[test]
fn projection_elem_match_and_expressions() {
    let doc = doc! {"_id": 1, "x": 1, "a": [{"b": 1}, {"b": 2}, {"b": 3}]};
    let p = Projection::parse(&doc! {"a": {"$elemMatch": {"b": {"$gt": 1}}}}).unwrap();
    assert_eq!(
        p.apply(&doc, None).unwrap(),
        doc! {"_id": 1, "a": [{"b": 2}]}
    );
    let none = Projection::parse(&doc! {"a": {"$elemMatch": {"b": 9}}}).unwrap();
    assert_eq!(none.apply(&doc, None).unwrap(), doc! {"_id": 1});
    let computed =
        Projection::parse(&doc! {"s": {"$add": ["$x", 1]}, "m": "$missing", "_id": 0}).unwrap();
    assert_eq!(computed.apply(&doc, None).unwrap(), doc! {"s": 2});
    let e = Projection::parse(&doc! {"s": {"$foo": 1}}).unwrap_err();
    assert_eq!(
        (e.code.number(), e.message.as_str()),
        (31325, "Unknown expression $foo")
    );
}

#[test]
fn parsed_updates_and_projections_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Update>();
    send_sync::<Projection>();
}

#[test]
fn pipeline_project_uses_aggregation_rules() {
    let u = Update::parse(&bson!([{"$project": {"a": {"$slice": ["$a", 1]}}}]), None).unwrap();
    let out = u
        .apply(&doc! {"_id": 1, "a": [1, 2], "b": 1}, None, &ctx(false))
        .unwrap();
    assert_eq!(out.doc, doc! {"_id": 1, "a": [1]});
    let e = Update::parse(&bson!([{"$project": {"a.$": 1}}]), None).unwrap_err();
    assert_eq!(
        (e.code.number(), e.message.as_str()),
        (
            31324,
            "Cannot use positional projection in aggregation projection"
        )
    );
    let e = Update::parse(
        &bson!([{"$project": {"a": {"$elemMatch": {"b": 1}}}}]),
        None,
    )
    .unwrap_err();
    assert_eq!(e.code.number(), 168);
}
