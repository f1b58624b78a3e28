//! No input may panic: random filter-, expression- and sort-shaped documents (operator
//! names, wrong types, odd numbers, deep nesting) are parsed and, when accepted,
//! evaluated against random documents. Errors are fine; panics are not.

use bson::{Bson, Document};
use ferrod::query::expr::Expr;
use ferrod::query::matcher::Filter;
use ferrod::query::sort::SortSpec;
use proptest::prelude::*;

const NAMES: &[&str] = &[
    "a",
    "b",
    "a.b",
    "a.0",
    "0",
    "",
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$and",
    "$or",
    "$nor",
    "$not",
    "$exists",
    "$type",
    "$regex",
    "$options",
    "$mod",
    "$all",
    "$elemMatch",
    "$size",
    "$bitsAllSet",
    "$bitsAnyClear",
    "$expr",
    "$jsonSchema",
    "$comment",
    "$add",
    "$subtract",
    "$multiply",
    "$divide",
    "$mod",
    "$pow",
    "$round",
    "$trunc",
    "$concat",
    "$substrCP",
    "$substrBytes",
    "$split",
    "$indexOfCP",
    "$indexOfBytes",
    "$arrayElemAt",
    "$slice",
    "$range",
    "$filter",
    "$map",
    "$reduce",
    "$let",
    "$cond",
    "$switch",
    "$convert",
    "$toInt",
    "$toDate",
    "$toString",
    "$dateToString",
    "$year",
    "$mergeObjects",
    "$setField",
    "$getField",
    "$arrayToObject",
    "$regexMatch",
    "$trim",
    "input",
    "as",
    "in",
    "cond",
    "vars",
    "if",
    "then",
    "else",
    "branches",
    "case",
    "default",
    "to",
    "onError",
    "date",
    "format",
    "timezone",
    "field",
    "value",
    "initialValue",
    "limit",
    "bsonType",
    "properties",
    "required",
    "items",
    "minimum",
    "pattern",
    "enum",
    "$meta",
    "$natural",
];

fn scalar() -> impl Strategy<Value = Bson> {
    prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        prop::sample::select(vec![0, 1, -1, 2, 3, 100, i32::MIN, i32::MAX]).prop_map(Bson::Int32),
        prop::sample::select(vec![0i64, -1, i64::MIN, i64::MAX, 1 << 53]).prop_map(Bson::Int64),
        prop::sample::select(vec![
            0.0,
            -0.0,
            0.5,
            -2.5,
            1e300,
            -1e-300,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            9.3e18
        ])
        .prop_map(Bson::Double),
        prop::sample::select(vec![
            "", "a", "$a", "$$a", "$$ROOT", "(", "[a-", "%Y-%m", "%", "+25:00", "x.y"
        ])
        .prop_map(|s| Bson::String(s.to_string())),
        Just(Bson::Null),
        Just(Bson::Undefined),
        Just(Bson::Boolean(true)),
        Just(Bson::MinKey),
        Just(Bson::MaxKey),
        Just(Bson::DateTime(bson::DateTime::from_millis(i64::MAX))),
        Just(Bson::RegularExpression(bson::Regex {
            pattern: "a(".into(),
            options: "z".into()
        })),
    ]
}

fn tree() -> impl Strategy<Value = Bson> {
    scalar().prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
            prop::collection::vec((prop::sample::select(NAMES), inner), 0..4).prop_map(|fields| {
                let mut d = Document::new();
                for (k, v) in fields {
                    d.insert(k.to_string(), v);
                }
                Bson::Document(d)
            }),
        ]
    })
}

fn doc_of(v: Bson) -> Document {
    match v {
        Bson::Document(d) => d,
        other => {
            let mut d = Document::new();
            d.insert("a", other);
            d
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn filters_never_panic(f in tree(), d in tree()) {
        let (f, d) = (doc_of(f), doc_of(d));
        if let Ok(filter) = Filter::parse(&f) {
            let _ = filter.matches(&d);
            let _ = filter.try_matches(&d);
            let _ = filter.matches_with_details(&d);
            let _ = filter.equalities();
        }
    }

    #[test]
    fn expressions_never_panic(e in tree(), d in tree()) {
        let d = doc_of(d);
        if let Ok(expr) = Expr::parse(&e) {
            let _ = expr.evaluate(&d, &Document::new());
        }
    }

    #[test]
    fn sorts_never_panic(s in tree(), a in tree(), b in tree()) {
        if let Ok(sort) = SortSpec::parse(&doc_of(s)) {
            let _ = sort.compare(&doc_of(a), &doc_of(b));
        }
    }
}
