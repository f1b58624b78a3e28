//! find's projection on documents in memory: inclusion and exclusion, `_id`, dotted
//! paths through arrays, `$slice`, the positional `$`, computed fields, and a table of
//! bad projections with mongod 7.0's codes (projection_parser.cpp; results as
//! jstests/core/query/project/*.js state them).

use bson::{doc, Document};
use ferrod::query::projection::{MatchDetails, Projection};

fn project(spec: Document, doc: Document) -> Document {
    let p = Projection::parse(&spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    p.apply(&doc, None)
        .unwrap_or_else(|e| panic!("{spec}: {e}"))
}

fn sample() -> Document {
    doc! {"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2, 3, 4, 5]}
}

#[test]
fn inclusion_keeps_id_and_document_order() {
    assert_eq!(project(doc! {"a": 1}, sample()), doc! {"_id": 1, "a": 1});
    assert_eq!(project(doc! {"a": 1, "_id": 0}, sample()), doc! {"a": 1});
    // Output follows the document's field order, not the projection's.
    assert_eq!(
        project(doc! {"e": true, "a": 1}, sample()),
        doc! {"_id": 1, "a": 1, "e": [1, 2, 3, 4, 5]}
    );
    assert_eq!(
        project(doc! {"b.c": 1}, sample()),
        doc! {"_id": 1, "b": {"c": 2}}
    );
    assert_eq!(
        project(doc! {"b": {"d": 1}}, sample()),
        doc! {"_id": 1, "b": {"d": 3}}
    );
    assert_eq!(project(doc! {"_id": 1}, sample()), doc! {"_id": 1});
    assert_eq!(project(doc! {"zzz": 1}, sample()), doc! {"_id": 1});
}

#[test]
fn exclusion_removes_only_what_is_named() {
    assert_eq!(
        project(doc! {"a": 0, "e": 0}, sample()),
        doc! {"_id": 1, "b": {"c": 2, "d": 3}}
    );
    assert_eq!(
        project(doc! {"b.c": 0, "_id": 0}, sample()),
        doc! {"a": 1, "b": {"d": 3}, "e": [1, 2, 3, 4, 5]}
    );
    assert_eq!(
        project(doc! {"_id": 0}, sample()),
        doc! {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2, 3, 4, 5]}
    );
    assert_eq!(project(doc! {}, sample()), sample());
}

#[test]
fn dotted_paths_go_through_arrays() {
    let d = doc! {"_id": 1, "a": [{"b": 1, "c": 2}, 3, [{"b": 4, "c": 5}], {"c": 6}]};
    // Inclusion: scalars inside the array go, documents keep the named field.
    assert_eq!(
        project(doc! {"a.b": 1, "_id": 0}, d.clone()),
        doc! {"a": [{"b": 1}, [{"b": 4}], {}]}
    );
    // Exclusion: scalars stay.
    assert_eq!(
        project(doc! {"a.b": 0, "_id": 0}, d),
        doc! {"a": [{"c": 2}, 3, [{"c": 5}], {"c": 6}]}
    );
}

#[test]
fn slice_forms() {
    let cases = [
        (doc! {"e": {"$slice": 2}}, vec![1, 2]),
        (doc! {"e": {"$slice": -2}}, vec![4, 5]),
        (doc! {"e": {"$slice": [1, 2]}}, vec![2, 3]),
        (doc! {"e": {"$slice": [-2, 1]}}, vec![4]),
        (doc! {"e": {"$slice": [-10, 2]}}, vec![1, 2]),
        (doc! {"e": {"$slice": [10, 2]}}, vec![]),
        (doc! {"e": {"$slice": 0}}, vec![]),
    ];
    for (spec, want) in cases {
        let out = project(spec.clone(), sample());
        // $slice alone is an exclusion-style projection: everything else stays.
        assert_eq!(out.get_i32("a").unwrap(), 1, "{spec}");
        let got: Vec<i32> = out
            .get_array("e")
            .unwrap()
            .iter()
            .map(|v| v.as_i32().unwrap())
            .collect();
        assert_eq!(got, want, "{spec}");
    }
    // With an inclusion it is an inclusion projection.
    assert_eq!(
        project(doc! {"e": {"$slice": 1}, "a": 1}, sample()),
        doc! {"_id": 1, "a": 1, "e": [1]}
    );
    // {_id: 1} with $slice makes it an inclusion.
    assert_eq!(
        project(doc! {"e": {"$slice": 1}, "_id": 1}, sample()),
        doc! {"_id": 1, "e": [1]}
    );
    // Non-arrays are left as they are.
    assert_eq!(project(doc! {"a": {"$slice": 1}}, sample()), sample());
}

#[test]
fn positional_returns_the_matched_element() {
    let p = Projection::parse_with_query(&doc! {"e.$": 1}, &doc! {"e": {"$gt": 3}}).unwrap();
    let details = MatchDetails {
        array_position: Some(3),
    };
    assert_eq!(
        p.apply(&sample(), Some(&details)).unwrap(),
        doc! {"_id": 1, "e": [4]}
    );
    let e = p.apply(&sample(), None).unwrap_err();
    assert_eq!(e.code.number(), 51246);
    let e = Projection::parse_with_query(&doc! {"e.$": 1}, &doc! {"a": 1}).unwrap_err();
    assert_eq!(e.code.number(), 31277);
    assert_eq!(
        e.message,
        "Positional projection 'e.$' does not match the query document."
    );
}

#[test]
fn computed_fields_come_last() {
    assert_eq!(
        project(
            doc! {"x": "lit", "a": 1, "y": "$b.c", "z": {"$literal": 1}},
            sample()
        ),
        doc! {"_id": 1, "a": 1, "x": "lit", "y": 2, "z": 1}
    );
}

/// Bad projections: (spec, code, message).
#[test]
fn bad_projection_table() {
    let cases: Vec<(Document, i32, &str)> = vec![
        (
            doc! {"a": 1, "b": 0},
            31254,
            "Cannot do exclusion on field b in inclusion projection",
        ),
        (
            doc! {"a": 0, "b": 1},
            31253,
            "Cannot do inclusion on field b in exclusion projection",
        ),
        (
            doc! {"a": 1, "a.b": 1},
            31249,
            "Path collision at a.b remaining portion b",
        ),
        (doc! {"a.b": 1, "a": 1}, 31250, "Path collision at a"),
        (
            doc! {"$a": 1},
            16410,
            "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
        ),
        (
            doc! {"": 1},
            40352,
            "FieldPath cannot be constructed with empty string",
        ),
        (doc! {"a.": 1}, 40353, "FieldPath must not end with a '.'."),
        (
            doc! {"a.$": {"$slice": 1}},
            31271,
            "positional projection cannot be used with an expression or sub object",
        ),
        (
            doc! {"a.$": "x"},
            31308,
            "positional projection cannot be used with a literal",
        ),
        (
            doc! {"a.$": 0},
            31395,
            "positional projection cannot be used with exclusion",
        ),
        (
            doc! {"a.$": 1, "b.$": 1},
            31276,
            "Cannot specify more than one positional projection per query.",
        ),
        (
            doc! {"a": {"$slice": [1]}},
            31272,
            "$slice array argument should be of form [skip, limit]",
        ),
        (
            doc! {"a": {"$slice": [1, 0]}},
            31259,
            "$slice limit must be positive, got 0",
        ),
        (
            doc! {"a": {"$slice": [1, "x"]}},
            31258,
            "$slice expects the limit argument to be a number, got string",
        ),
        (
            doc! {"a": {"$slice": "x"}},
            31273,
            "$slice only supports numbers and [skip, limit] arrays",
        ),
        (
            doc! {"a": {"$elemMatch": 1}},
            31274,
            "elemMatch: Invalid argument, object required, but got int",
        ),
        (
            doc! {"a": 0, "b": {"$add": [1, 2]}},
            31252,
            "Cannot use expression other than $meta in exclusion projection",
        ),
        (
            doc! {"a": 0, "b": "x"},
            31310,
            "Cannot use an expression b: \"x\" in an exclusion projection",
        ),
        (
            doc! {"a": {}},
            51270,
            "An empty sub-projection is not a valid value. Found empty object at path a",
        ),
    ];
    let mut failures = Vec::new();
    for (spec, code, message) in cases {
        match Projection::parse(&spec) {
            Ok(_) => failures.push(format!("{spec}: parsed")),
            Err(e) if e.code.number() != code || e.message != message => failures.push(format!(
                "{spec}: got {} {:?}, want {code} {message:?}",
                e.code.number(),
                e.message
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn meta_is_refused_clearly() {
    let e = Projection::parse(&doc! {"s": {"$meta": "textScore"}}).unwrap_err();
    assert_eq!(e.code.number(), 2);
    assert!(e.message.contains("$meta"), "{}", e.message);
}
