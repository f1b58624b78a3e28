//! The filter matcher as a library: tables of (filter, document, matches) taken from
//! mongod's documented and tested behaviour (jstests/core/query/*, the matcher's unit
//! tests), and a table of bad filters with mongod's codes.

use bson::{doc, Bson, Document};
use ferrod::query::matcher::Filter;

fn check(cases: &[(Document, Document, bool)]) {
    for (filter, document, expected) in cases {
        let f = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter} does not parse: {e}"));
        assert_eq!(
            f.matches(document),
            *expected,
            "filter {filter} on {document} should be {expected}"
        );
    }
}

#[test]
fn equality_through_arrays_and_nested_arrays() {
    check(&[
        (doc! {"a": 1}, doc! {"a": 1}, true),
        (doc! {"a": 1}, doc! {"a": 1.0}, true),
        (doc! {"a": 1}, doc! {"a": [1, 2]}, true),
        (doc! {"a": 1}, doc! {"a": [[1], 2]}, false),
        (doc! {"a": [1]}, doc! {"a": [[1], 2]}, true),
        (doc! {"a": [1, 2]}, doc! {"a": [1, 2]}, true),
        (doc! {"a": [1, 2]}, doc! {"a": [2, 1]}, false),
        (doc! {"a.b": 1}, doc! {"a": [{"b": 1}, {"b": 2}]}, true),
        (doc! {"a.b": 1}, doc! {"a": [{"b": [0, 1]}]}, true),
        (doc! {"a.b": 1}, doc! {"a": [[{"b": 1}]]}, false),
        (doc! {"a.0": 1}, doc! {"a": [1, 2]}, true),
        (doc! {"a.1": 1}, doc! {"a": [1, 2]}, false),
        (doc! {"a.0.b": 1}, doc! {"a": [{"b": 1}]}, true),
        (doc! {"a.0": 1}, doc! {"a": {"0": 1}}, true),
        (doc! {"a.0": 1}, doc! {"a": [{"0": 1}]}, true),
        (doc! {"a.0.0": 1}, doc! {"a": [[1]]}, true),
        (doc! {"a": {"b": 1}}, doc! {"a": {"b": 1}}, true),
        (doc! {"a": {"b": 1}}, doc! {"a": {"b": 1, "c": 1}}, false),
        (
            doc! {"a": {"b": 1, "c": 2}},
            doc! {"a": {"c": 2, "b": 1}},
            false,
        ),
        (doc! {"a": {"b": 1}}, doc! {"a": [{"b": 1}]}, true),
        (doc! {"a": "x"}, doc! {"a": 1}, false),
    ]);
}

#[test]
fn null_matches_missing_and_undefined_not_empty_arrays() {
    check(&[
        (doc! {"a": null}, doc! {}, true),
        (doc! {"a": null}, doc! {"a": null}, true),
        (doc! {"a": null}, doc! {"a": Bson::Undefined}, true),
        (doc! {"a": null}, doc! {"a": 0}, false),
        (doc! {"a": null}, doc! {"a": []}, false),
        (doc! {"a": null}, doc! {"a": [null]}, true),
        (doc! {"a": null}, doc! {"a": [1, Bson::Undefined]}, true),
        (doc! {"a.b": null}, doc! {"a": 1}, true),
        (doc! {"a.b": null}, doc! {"a": [1, 2]}, false),
        (doc! {"a.b": null}, doc! {"a": [{"b": 1}, {"c": 1}]}, true),
        (doc! {"a.b": null}, doc! {"a": [{"b": 1}]}, false),
        (doc! {"a": {"$ne": null}}, doc! {}, false),
        (doc! {"a": {"$gte": null}}, doc! {}, true),
        (doc! {"a": {"$lte": null}}, doc! {"a": null}, true),
        (doc! {"a": {"$gt": null}}, doc! {"a": 1}, false),
        (doc! {"a": {"$in": [null]}}, doc! {}, true),
        (
            doc! {"a": {"$in": [null]}},
            doc! {"a": Bson::Undefined},
            true,
        ),
        (doc! {"a": {"$nin": [null]}}, doc! {"a": 1}, true),
        (doc! {"a": {"$exists": true}}, doc! {"a": null}, true),
        (doc! {"a": {"$exists": true}}, doc! {"a": []}, true),
        (doc! {"a": {"$exists": false}}, doc! {"b": 1}, true),
        (doc! {"a.b": {"$exists": true}}, doc! {"a": [1]}, false),
        (
            doc! {"a.b": {"$exists": true}},
            doc! {"a": [{"b": null}]},
            true,
        ),
    ]);
}

#[test]
fn comparisons_bracket_types() {
    check(&[
        (doc! {"a": {"$gt": 1}}, doc! {"a": "2"}, false),
        (doc! {"a": {"$gt": 1}}, doc! {"a": 2i64}, true),
        (doc! {"a": {"$gt": 1}}, doc! {"a": [0, 5]}, true),
        (doc! {"a": {"$gt": 1, "$lt": 3}}, doc! {"a": [0, 5]}, true),
        (
            doc! {"a": {"$elemMatch": {"$gt": 1, "$lt": 3}}},
            doc! {"a": [0, 5]},
            false,
        ),
        (
            doc! {"a": {"$elemMatch": {"$gt": 1, "$lt": 3}}},
            doc! {"a": [0, 2]},
            true,
        ),
        (doc! {"a": {"$lt": "b"}}, doc! {"a": "a"}, true),
        (doc! {"a": {"$lt": "b"}}, doc! {"a": 1}, false),
        (doc! {"a": {"$gt": [1]}}, doc! {"a": [2]}, true),
        (doc! {"a": {"$lt": Bson::MaxKey}}, doc! {"a": "x"}, true),
        (doc! {"a": {"$gt": Bson::MinKey}}, doc! {"a": null}, true),
        (doc! {"a": {"$lt": Bson::MaxKey}}, doc! {}, true),
        (doc! {"a": {"$gte": f64::NAN}}, doc! {"a": f64::NAN}, true),
        (doc! {"a": {"$lt": 1}}, doc! {"a": f64::NAN}, false),
        (doc! {"a": {"$gt": f64::NAN}}, doc! {"a": 1}, false),
        (doc! {"a": f64::NAN}, doc! {"a": f64::NAN}, true),
        (doc! {"a": {"$gt": {"b": 1}}}, doc! {"a": {"b": 2}}, true),
        (doc! {"a": {"$ne": 1}}, doc! {"a": [1, 2]}, false),
        (doc! {"a": {"$ne": 1}}, doc! {"a": [2, 3]}, true),
        (doc! {"a": {"$eq": [1, 2]}}, doc! {"a": [1, 2]}, true),
    ]);
}

#[test]
fn set_operators() {
    check(&[
        (doc! {"a": {"$in": [1, "x"]}}, doc! {"a": "x"}, true),
        (doc! {"a": {"$in": [1, "x"]}}, doc! {"a": [3, 1]}, true),
        (doc! {"a": {"$in": []}}, doc! {"a": 1}, false),
        (
            doc! {"a": {"$in": [bson::Regex { pattern: "^x".into(), options: String::new() }]}},
            doc! {"a": "xy"},
            true,
        ),
        (doc! {"a": {"$nin": [1, 2]}}, doc! {"a": [3, 1]}, false),
        (doc! {"a": {"$nin": [1, 2]}}, doc! {}, true),
        (doc! {"a": {"$all": [1, 2]}}, doc! {"a": [2, 3, 1]}, true),
        (doc! {"a": {"$all": [1, 2]}}, doc! {"a": [2, 3]}, false),
        (doc! {"a": {"$all": [1]}}, doc! {"a": 1}, true),
        (doc! {"a": {"$all": []}}, doc! {"a": []}, false),
        (doc! {"a": {"$all": [[1, 2]]}}, doc! {"a": [1, 2]}, true),
        (
            doc! {"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"b": 2}}]}},
            doc! {"a": [{"b": 1}, {"b": 2}]},
            true,
        ),
        (doc! {"a": {"$size": 2}}, doc! {"a": [1, [2, 3]]}, true),
        (doc! {"a": {"$size": 0}}, doc! {"a": []}, true),
        (doc! {"a": {"$size": 1}}, doc! {"a": [[1, 2]]}, true),
        (doc! {"a": {"$size": 1}}, doc! {"a": 1}, false),
        (doc! {"a.b": {"$size": 1}}, doc! {"a": [{"b": [1]}]}, true),
        (
            doc! {"a": {"$elemMatch": {"b": 1, "c": 2}}},
            doc! {"a": [{"b": 1}, {"c": 2}]},
            false,
        ),
        (
            doc! {"a": {"$elemMatch": {"b": 1, "c": 2}}},
            doc! {"a": [{"b": 1, "c": 2}]},
            true,
        ),
        (
            doc! {"a": {"$elemMatch": {"$eq": [1]}}},
            doc! {"a": [[1]]},
            true,
        ),
        (
            doc! {"a": {"$elemMatch": {"0": 1}}},
            doc! {"a": [[1]]},
            true,
        ),
        (
            doc! {"a": {"$elemMatch": {"b": 1}}},
            doc! {"a": {"b": 1}},
            false,
        ),
    ]);
}

#[test]
fn logical_operators() {
    check(&[
        (doc! {"$or": [{"a": 1}, {"b": 1}]}, doc! {"b": 1}, true),
        (doc! {"$and": [{"a": 1}, {"b": 1}]}, doc! {"b": 1}, false),
        (doc! {"$nor": [{"a": 1}, {"b": 1}]}, doc! {"c": 1}, true),
        (doc! {"a": {"$not": {"$gt": 2}}}, doc! {"a": 1}, true),
        (doc! {"a": {"$not": {"$gt": 2}}}, doc! {}, true),
        (doc! {"a": {"$not": {"$gt": 2}}}, doc! {"a": [1, 3]}, false),
        (
            doc! {"a": {"$not": bson::Regex { pattern: "^a".into(), options: String::new() }}},
            doc! {"a": "b"},
            true,
        ),
        (doc! {"$comment": "x", "a": 1}, doc! {"a": 1}, true),
        (doc! {"$alwaysFalse": 1}, doc! {}, false),
        (doc! {}, doc! {"a": 1}, true),
    ]);
}

#[test]
fn regex_type_mod_bits() {
    let re = |p: &str, o: &str| {
        Bson::RegularExpression(bson::Regex {
            pattern: p.into(),
            options: o.into(),
        })
    };
    check(&[
        (doc! {"a": re("^ab", "")}, doc! {"a": "abc"}, true),
        (doc! {"a": re("^AB", "i")}, doc! {"a": "abc"}, true),
        (
            doc! {"a": {"$regex": "^b", "$options": "m"}},
            doc! {"a": "a\nb"},
            true,
        ),
        (doc! {"a": {"$regex": "^b"}}, doc! {"a": "a\nb"}, false),
        (
            doc! {"a": {"$regex": "a.b", "$options": "s"}},
            doc! {"a": "a\nb"},
            true,
        ),
        (
            doc! {"a": {"$regex": "a b", "$options": "x"}},
            doc! {"a": "ab"},
            true,
        ),
        (doc! {"a": re("x", "")}, doc! {"a": ["y", "xz"]}, true),
        // PCRE's look-around and back-references.
        (
            doc! {"a": {"$regex": "^(?=.*[0-9])(?!.*x)"}},
            doc! {"a": "ab1"},
            true,
        ),
        (
            doc! {"a": {"$regex": "^(?=.*[0-9])(?!.*x)"}},
            doc! {"a": "xb1"},
            false,
        ),
        (doc! {"a": {"$regex": "(?<=a)b"}}, doc! {"a": "ab"}, true),
        (
            doc! {"a": {"$regex": "^(a+)-\\1$"}},
            doc! {"a": "aa-aa"},
            true,
        ),
        (
            doc! {"a": {"$regex": "^(a+)-\\1$"}},
            doc! {"a": "aa-a"},
            false,
        ),
        (doc! {"a": re("1", "")}, doc! {"a": 1}, false),
        (
            doc! {"a": {"$eq": re("x", "")}},
            doc! {"a": re("x", "")},
            true,
        ),
        (doc! {"a": re("x", "")}, doc! {"a": re("x", "")}, true),
        (doc! {"a": {"$type": "string"}}, doc! {"a": "x"}, true),
        (doc! {"a": {"$type": 2}}, doc! {"a": ["x"]}, true),
        (doc! {"a": {"$type": "array"}}, doc! {"a": []}, true),
        (doc! {"a": {"$type": "array"}}, doc! {"a": 1}, false),
        (doc! {"a": {"$type": "number"}}, doc! {"a": 1i64}, true),
        (
            doc! {"a": {"$type": ["bool", "null"]}},
            doc! {"a": null},
            true,
        ),
        (doc! {"a": {"$type": "null"}}, doc! {}, false),
        (doc! {"a": {"$type": -1}}, doc! {"a": Bson::MinKey}, true),
        (doc! {"a": {"$mod": [4, 0]}}, doc! {"a": 8}, true),
        (doc! {"a": {"$mod": [4, 1]}}, doc! {"a": 9.9}, true),
        (doc! {"a": {"$mod": [4, -1]}}, doc! {"a": -5}, true),
        (doc! {"a": {"$mod": [4, 0]}}, doc! {"a": "8"}, false),
        (doc! {"a": {"$bitsAllSet": [0, 2]}}, doc! {"a": 5}, true),
        (doc! {"a": {"$bitsAllSet": 6}}, doc! {"a": 5}, false),
        (doc! {"a": {"$bitsAnySet": 6}}, doc! {"a": 5}, true),
        (doc! {"a": {"$bitsAllClear": [1, 3]}}, doc! {"a": 5}, true),
        (doc! {"a": {"$bitsAnyClear": [0, 2]}}, doc! {"a": 5}, false),
        (doc! {"a": {"$bitsAllSet": [70]}}, doc! {"a": -1}, true),
        (doc! {"a": {"$bitsAllSet": [0]}}, doc! {"a": 1.5}, false),
        (
            doc! {"a": {"$bitsAllSet": [1]}},
            doc! {"a": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![2] }},
            true,
        ),
    ]);
}

#[test]
fn expr_and_json_schema() {
    check(&[
        (
            doc! {"$expr": {"$gt": ["$a", "$b"]}},
            doc! {"a": 2, "b": 1},
            true,
        ),
        (
            doc! {"$expr": {"$gt": ["$a", "$b"]}},
            doc! {"a": 1, "b": 1},
            false,
        ),
        (
            doc! {"$expr": {"$eq": [{"$size": "$a"}, 2]}},
            doc! {"a": [1, 2]},
            true,
        ),
        (doc! {"$expr": "$a"}, doc! {"a": 0}, false),
        (doc! {"$expr": "$a"}, doc! {"a": "x"}, true),
        (
            doc! {"$jsonSchema": {"required": ["a"], "properties": {"a": {"bsonType": "int", "minimum": 2}}}},
            doc! {"a": 3},
            true,
        ),
        (
            doc! {"$jsonSchema": {"required": ["a"], "properties": {"a": {"bsonType": "int", "minimum": 2}}}},
            doc! {"a": 1},
            false,
        ),
        (
            doc! {"$jsonSchema": {"properties": {"a": {"type": "string", "maxLength": 2}}}},
            doc! {"a": "abc"},
            false,
        ),
        (
            doc! {"$jsonSchema": {"properties": {"a": {"type": "string", "maxLength": 2}}}},
            doc! {"b": "abc"},
            true,
        ),
        (
            doc! {"$jsonSchema": {"additionalProperties": false, "properties": {"_id": {}, "a": {}}}},
            doc! {"_id": 1, "b": 1},
            false,
        ),
        (
            doc! {"$jsonSchema": {"properties": {"a": {"items": {"bsonType": "int"}, "minItems": 1}}}},
            doc! {"a": [1, "x"]},
            false,
        ),
        (
            doc! {"$jsonSchema": {"properties": {"a": {"enum": [1, 2]}}}},
            doc! {"a": 2.0},
            true,
        ),
    ]);
    let with_let =
        Filter::parse_with_vars(&doc! {"$expr": {"$eq": ["$a", "$$x"]}}, &doc! {"x": 5}).unwrap();
    assert!(with_let.matches(&doc! {"a": 5}));
    assert!(!with_let.matches(&doc! {"a": 6}));
}

#[test]
fn positional_details_and_equalities() {
    let f = Filter::parse(&doc! {"a.b": 2}).unwrap();
    let d = f
        .matches_with_details(&doc! {"a": [{"b": 1}, {"b": 2}]})
        .unwrap();
    assert_eq!(d.array_position, Some(1));
    let f = Filter::parse(&doc! {"a": {"$gt": 2}}).unwrap();
    assert_eq!(
        f.matches_with_details(&doc! {"a": [1, 2, 3]})
            .unwrap()
            .array_position,
        Some(2)
    );
    assert_eq!(
        f.matches_with_details(&doc! {"a": 3})
            .unwrap()
            .array_position,
        None
    );
    assert!(f.matches_with_details(&doc! {"a": 1}).is_none());
    let f = Filter::parse(&doc! {"x": 1, "a": {"$elemMatch": {"b": 1}}}).unwrap();
    assert_eq!(
        f.matches_with_details(&doc! {"x": 1, "a": [{"b": 0}, {"b": 1}]})
            .unwrap()
            .array_position,
        Some(1)
    );

    let f = Filter::parse(&doc! {"a": 1, "b.c": {"$eq": "x"}, "$and": [{"d": 2}], "e": {"$gt": 1}})
        .unwrap();
    assert_eq!(
        f.equalities(),
        vec![
            ("a".to_string(), Bson::Int32(1)),
            ("b.c".to_string(), Bson::String("x".into())),
            ("d".to_string(), Bson::Int32(2)),
        ]
    );
    assert!(Filter::parse(&doc! {}).unwrap().is_empty());
    assert!(!Filter::parse(&doc! {"a": 1}).unwrap().is_empty());
}

#[test]
fn bad_filters_get_mongods_codes() {
    let cases: Vec<(Document, i32, &str)> = vec![
        (doc! {"a": {"$foo": 1}}, 2, "unknown operator: $foo"),
        (doc! {"$foo": 1}, 2, "unknown top level operator: $foo"),
        (doc! {"a": {"$gt": 1, "b": 1}}, 2, "unknown operator: b"),
        (
            doc! {"$and": []},
            2,
            "$and/$or/$nor must be a nonempty array",
        ),
        (doc! {"$or": 1}, 2, "$or must be an array"),
        (
            doc! {"$or": [1]},
            2,
            "$or/$and/$nor entries need to be full objects",
        ),
        (doc! {"a": {"$in": 1}}, 2, "$in needs an array"),
        (doc! {"a": {"$nin": 1}}, 2, "$nin needs an array"),
        (
            doc! {"a": {"$in": [{"$gt": 1}]}},
            2,
            "cannot nest $ under $in",
        ),
        (doc! {"a": {"$all": 1}}, 2, "$all needs an array"),
        (
            doc! {"a": {"$all": [{"$elemMatch": {"b": 1}}, 1]}},
            2,
            "$all/$elemMatch has to be consistent",
        ),
        (doc! {"a": {"$size": "x"}}, 2, "$size needs a number"),
        (
            doc! {"a": {"$size": -1}},
            2,
            "Expected a non-negative number",
        ),
        (doc! {"a": {"$size": 1.5}}, 2, "Expected an integer"),
        (doc! {"a": {"$mod": [0, 1]}}, 2, "divisor cannot be 0"),
        (
            doc! {"a": {"$mod": [1]}},
            2,
            "malformed mod, not enough elements",
        ),
        (
            doc! {"a": {"$mod": [1, 2, 3]}},
            2,
            "malformed mod, too many elements",
        ),
        (
            doc! {"a": {"$mod": 1}},
            2,
            "malformed mod, needs to be an array",
        ),
        (
            doc! {"a": {"$type": "foo"}},
            2,
            "Unknown type name alias: foo",
        ),
        (
            doc! {"a": {"$type": 100}},
            2,
            "Invalid numerical type code: 100",
        ),
        (
            doc! {"a": {"$type": {}}},
            14,
            "type must be represented as a number or a string",
        ),
        (
            doc! {"a": {"$regex": "("}},
            51091,
            "Regular expression is invalid",
        ),
        (
            doc! {"a": {"$regex": "a", "$options": "c"}},
            51108,
            "invalid flag in regex options: c",
        ),
        (doc! {"a": {"$options": "i"}}, 2, "$options needs a $regex"),
        (doc! {"a": {"$regex": 1}}, 2, "$regex has to be a string"),
        (
            doc! {"a": {"$not": 1}},
            2,
            "$not needs a regex or a document",
        ),
        (doc! {"a": {"$not": {}}}, 2, "$not cannot be empty"),
        (
            doc! {"a": {"$elemMatch": 1}},
            2,
            "$elemMatch needs an Object",
        ),
        (doc! {"a": {"$bitsAllSet": -1}}, 2, "negative"),
        (
            doc! {"a": {"$bitsAllSet": "x"}},
            2,
            "takes an Array, a number, or a BinData",
        ),
        (
            doc! {"a": {"$eq": Bson::Undefined}},
            2,
            "cannot compare to undefined",
        ),
        (doc! {"$where": "true"}, 2, "$where"),
        (doc! {"$text": {"$search": "x"}}, 2, "$text"),
        (doc! {"a": {"$near": [0, 0]}}, 2, "$near"),
        (doc! {"a": {"$geoWithin": {}}}, 2, "$geoWithin"),
        (
            doc! {"$expr": {"$foo": 1}},
            168,
            "Unrecognized expression '$foo'",
        ),
        (
            doc! {"$jsonSchema": {"format": "x"}},
            9,
            "$jsonSchema keyword 'format' is not currently supported",
        ),
        (
            doc! {"$jsonSchema": {"foo": 1}},
            9,
            "Unknown $jsonSchema keyword: foo",
        ),
        (doc! {"$jsonSchema": 1}, 14, "$jsonSchema must be an object"),
        (
            doc! {"$alwaysTrue": 2},
            2,
            "$alwaysTrue must be an integer value of 1",
        ),
    ];
    for (filter, code, msg) in cases {
        let e = Filter::parse(&filter).expect_err(&format!("{filter} should fail"));
        assert_eq!(e.code.number(), code, "{filter}: {e}");
        assert!(
            e.message.contains(msg),
            "{filter}: {} should contain {msg}",
            e.message
        );
    }
}

#[test]
fn deep_filters_are_refused_not_overflowing() {
    // On a stack of the server's worker size (16 MiB, see main.rs).
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(deep_filters)
        .unwrap()
        .join()
        .unwrap();
}

fn deep_filters() {
    // 120 levels of $and / $elemMatch (240 BSON levels, beyond what the wire accepts):
    // refused at mongod's query tree depth of 100, without exhausting the stack.
    let mut f = doc! {"a": 1};
    for _ in 0..120 {
        f = doc! {"$and": [f]};
    }
    let e = Filter::parse(&f).unwrap_err();
    assert_eq!(e.code.number(), 2);
    assert!(
        e.message
            .contains("exceeded maximum query tree depth of 100"),
        "{e}"
    );
    let mut f = doc! {"a": 1};
    for _ in 0..120 {
        f = doc! {"a": {"$elemMatch": f}};
    }
    assert!(Filter::parse(&f).is_err());
    // 99 levels parse and match.
    let mut f = doc! {"a": 1};
    let mut d = doc! {"a": 1};
    for _ in 0..99 {
        f = doc! {"$and": [f]};
        d = doc! {"x": 0, "a": 1};
    }
    assert!(Filter::parse(&f).unwrap().matches(&d));
}
