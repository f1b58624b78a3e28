//! Properties of the update language and projection on random documents and random
//! updates: no input panics; a successful update that reports no modification leaves
//! the document as it was; applying the same `$set` twice modifies only once; `_id`
//! never changes; an exclusion projection never adds fields.

use bson::{Bson, Document};
use ferrod::query::projection::Projection;
use ferrod::query::update::{Update, UpdateContext};
use proptest::prelude::*;

fn ctx() -> UpdateContext {
    UpdateContext {
        let_vars: bson::Document::new(),
        now: bson::DateTime::from_millis(1_000),
        now_timestamp: bson::Timestamp {
            time: 1,
            increment: 1,
        },
        is_insert: false,
    }
}

fn scalar() -> impl Strategy<Value = Bson> {
    prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        (-3i64..3).prop_map(Bson::Int64),
        prop_oneof![Just(i64::MAX), Just(i64::MIN)].prop_map(Bson::Int64),
        (-2.0f64..2.0).prop_map(Bson::Double),
        "[ab]{0,2}".prop_map(Bson::String),
        Just(Bson::Null),
        any::<bool>().prop_map(Bson::Boolean),
    ]
}

fn value() -> impl Strategy<Value = Bson> {
    scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
            prop::collection::vec((field(), inner), 0..3)
                .prop_map(|fields| Bson::Document(fields.into_iter().collect())),
        ]
    })
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("0".to_string()),
        Just("1".to_string())
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(field(), 1..4).prop_map(|p| p.join(".")),
        1 => prop::collection::vec(
            prop_oneof![field(), Just("$".to_string()), Just("$[]".to_string()), Just("".to_string())],
            1..4
        )
        .prop_map(|p| p.join(".")),
        1 => Just("_id".to_string()),
    ]
}

fn document() -> impl Strategy<Value = Document> {
    prop::collection::vec((field(), value()), 0..4).prop_map(|fields| {
        let mut doc = Document::new();
        doc.insert("_id", 1);
        doc.extend(fields);
        doc
    })
}

const OPS: &[&str] = &[
    "$set",
    "$unset",
    "$inc",
    "$mul",
    "$min",
    "$max",
    "$push",
    "$addToSet",
    "$pop",
    "$pullAll",
    "$bit",
    "$rename",
    "$currentDate",
    "$setOnInsert",
    "$foo",
];

fn update() -> impl Strategy<Value = Bson> {
    let op_arg = prop_oneof![
        value(),
        path().prop_map(Bson::String),
        Just(bson::bson!({"and": 5})),
        Just(bson::bson!({"$each": [1, 2], "$slice": -1, "$sort": 1})),
        Just(bson::bson!({"$type": "timestamp"})),
    ];
    prop::collection::vec(
        (
            prop::sample::select(OPS),
            prop::collection::vec((path(), op_arg), 0..3),
        ),
        1..3,
    )
    .prop_map(|ops| {
        let mut doc = Document::new();
        for (op, fields) in ops {
            doc.insert(op, Bson::Document(fields.into_iter().collect()));
        }
        Bson::Document(doc)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn updates_never_panic_and_report_changes_honestly(doc in document(), spec in update(), pos in prop::option::of(0usize..3)) {
        let Ok(parsed) = Update::parse(&spec, None) else { return Ok(()) };
        let details = ferrod::query::update::MatchDetails { array_position: pos };
        if let Ok(out) = parsed.apply(&doc, Some(&details), &ctx()) {
            if !out.modified {
                prop_assert_eq!(&out.doc, &doc);
            }
            prop_assert_eq!(out.doc.get("_id"), doc.get("_id"));
            // Applying the same update again never fails for a new reason on $set alone.
            if spec.as_document().is_some_and(|d| d.keys().all(|k| k == "$set")) {
                let again = parsed.apply(&out.doc, Some(&details), &ctx());
                prop_assert!(again.is_ok(), "{:?}", again);
                prop_assert!(!again.unwrap().modified);
            }
        }
    }

    #[test]
    fn replacements_keep_id(doc in document(), replacement in document()) {
        let mut replacement = replacement;
        replacement.remove("_id");
        let parsed = Update::parse(&Bson::Document(replacement.clone()), None).unwrap();
        let out = parsed.apply(&doc, None, &ctx()).unwrap();
        prop_assert_eq!(out.doc.get("_id"), doc.get("_id"));
        prop_assert_eq!(out.doc.len(), replacement.len() + 1);
    }

    #[test]
    fn projections_never_panic(doc in document(), spec in prop::collection::vec((path(), prop_oneof![Just(Bson::Int32(0)), Just(Bson::Int32(1)), Just(bson::bson!({"$slice": -1})), scalar()]), 0..4)) {
        let spec: Document = spec.into_iter().collect();
        let Ok(p) = Projection::parse(&spec) else { return Ok(()) };
        if let Ok(out) = p.apply(&doc, None) {
            if !p.is_inclusion() {
                prop_assert!(out.keys().all(|k| doc.contains_key(k)));
            }
        }
    }
}
