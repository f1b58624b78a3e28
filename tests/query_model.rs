//! Property tests: the filter matcher, the sort order and the BSON order checked against a
//! second, deliberately simple model on random documents and filters (ints, longs,
//! doubles, strings, null, nested arrays and documents, missing fields).
//!
//! The model states mongod's rules directly: a path yields candidates (documents are
//! descended, arrays in the middle are transparent for their documents and indexed by
//! numeric components, an array at the end yields its elements and itself, a scalar in
//! the middle or a missing field yields "missing"); a leaf operator matches when some
//! candidate does, comparing only within a type bracket, with null matching missing.

use bson::{Bson, Document};
use ferrod::query::matcher::Filter;
use ferrod::query::order;
use ferrod::query::sort::SortSpec;
use proptest::prelude::*;
use std::cmp::Ordering;

// ------------------------------------------------------------------ generators

fn scalar() -> impl Strategy<Value = Bson> {
    prop_oneof![
        (-2i32..3).prop_map(Bson::Int32),
        (-2i64..3).prop_map(Bson::Int64),
        prop::sample::select(vec![-1.5, 0.0, 0.5, 1.0, 2.0]).prop_map(Bson::Double),
        prop::sample::select(vec!["", "a", "b", "ab"]).prop_map(|s| Bson::String(s.to_string())),
        Just(Bson::Null),
    ]
}

fn small_doc(inner: impl Strategy<Value = Bson> + Clone) -> impl Strategy<Value = Document> {
    (
        prop::option::of(inner.clone()),
        prop::option::of(inner),
        any::<bool>(),
    )
        .prop_map(|(a, b, swap)| {
            let mut d = Document::new();
            let mut fields = vec![("a", a), ("b", b)];
            if swap {
                fields.reverse();
            }
            for (k, v) in fields {
                if let Some(v) = v {
                    d.insert(k, v);
                }
            }
            d
        })
}

fn value() -> impl Strategy<Value = Bson> + Clone {
    scalar().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
            small_doc(inner).prop_map(Bson::Document),
        ]
    })
}

fn document() -> impl Strategy<Value = Document> {
    small_doc(value())
}

fn path() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a", "b", "a.b", "a.a", "a.0", "a.1", "a.b.a", "a.0.b", "b.1.a",
    ])
    .prop_map(str::to_string)
}

#[derive(Debug, Clone)]
enum F {
    Leaf(String, &'static str, Bson),
    In(String, bool, Vec<Bson>),
    Exists(String, bool),
    Size(String, i32),
    Logic(&'static str, Vec<F>),
}

fn filter() -> impl Strategy<Value = F> {
    let leaf = prop_oneof![
        (
            path(),
            prop::sample::select(vec!["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]),
            value()
        )
            .prop_map(|(p, op, v)| F::Leaf(p, op, v)),
        (path(), any::<bool>(), prop::collection::vec(value(), 0..3))
            .prop_map(|(p, neg, v)| F::In(p, neg, v)),
        (path(), any::<bool>()).prop_map(|(p, b)| F::Exists(p, b)),
        (path(), 0i32..3).prop_map(|(p, n)| F::Size(p, n)),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        (
            prop::sample::select(vec!["$and", "$or", "$nor"]),
            prop::collection::vec(inner, 1..3),
        )
            .prop_map(|(op, v)| F::Logic(op, v))
    })
}

fn to_bson(f: &F) -> Document {
    let mut d = Document::new();
    match f {
        F::Leaf(p, op, v) => {
            let mut o = Document::new();
            o.insert(*op, v.clone());
            d.insert(p.clone(), o);
        }
        F::In(p, neg, v) => {
            let mut o = Document::new();
            o.insert(if *neg { "$nin" } else { "$in" }, v.clone());
            d.insert(p.clone(), o);
        }
        F::Exists(p, b) => {
            let mut o = Document::new();
            o.insert("$exists", *b);
            d.insert(p.clone(), o);
        }
        F::Size(p, n) => {
            let mut o = Document::new();
            o.insert("$size", *n);
            d.insert(p.clone(), o);
        }
        F::Logic(op, items) => {
            d.insert(
                *op,
                items
                    .iter()
                    .map(|i| Bson::Document(to_bson(i)))
                    .collect::<Vec<_>>(),
            );
        }
    }
    d
}

// ------------------------------------------------------------------ the model

fn rank(v: &Bson) -> i32 {
    match v {
        Bson::Undefined => 0,
        Bson::Null => 5,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => 10,
        Bson::String(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        other => panic!("outside the model's domain: {other:?}"),
    }
}

fn as_f64(v: &Bson) -> f64 {
    match v {
        Bson::Int32(n) => *n as f64,
        Bson::Int64(n) => *n as f64,
        Bson::Double(f) => *f,
        _ => unreachable!(),
    }
}

/// BSON order on the model's domain: bracket, then value; documents field by field
/// (bracket, name, value); arrays element by element; shorter prefix first.
fn model_cmp(a: &Bson, b: &Bson) -> Ordering {
    let r = rank(a).cmp(&rank(b));
    if r != Ordering::Equal {
        return r;
    }
    match (a, b) {
        (Bson::String(x), Bson::String(y)) => x.cmp(y),
        (Bson::Document(x), Bson::Document(y)) => {
            let xs: Vec<_> = x.iter().collect();
            let ys: Vec<_> = y.iter().collect();
            for i in 0..xs.len().min(ys.len()) {
                let o = rank(xs[i].1)
                    .cmp(&rank(ys[i].1))
                    .then(xs[i].0.cmp(ys[i].0))
                    .then(model_cmp(xs[i].1, ys[i].1));
                if o != Ordering::Equal {
                    return o;
                }
            }
            xs.len().cmp(&ys.len())
        }
        (Bson::Array(x), Bson::Array(y)) => {
            for i in 0..x.len().min(y.len()) {
                let o = model_cmp(&x[i], &y[i]);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Bson::Null, Bson::Null) | (Bson::Undefined, Bson::Undefined) => Ordering::Equal,
        _ => as_f64(a).partial_cmp(&as_f64(b)).unwrap(),
    }
}

fn candidates(v: Option<&Bson>, parts: &[&str], expand_leaf: bool, out: &mut Vec<Option<Bson>>) {
    let Some((first, rest)) = parts.split_first() else {
        match v {
            Some(Bson::Array(a)) if expand_leaf => {
                out.extend(a.iter().cloned().map(Some));
                out.push(Some(Bson::Array(a.clone())));
            }
            other => out.push(other.cloned()),
        }
        return;
    };
    match v {
        Some(Bson::Document(d)) => candidates(d.get(*first), rest, expand_leaf, out),
        Some(Bson::Array(a)) => {
            for (i, e) in a.iter().enumerate() {
                if let Bson::Document(_) = e {
                    candidates(Some(e), parts, expand_leaf, out);
                }
                if *first == i.to_string() {
                    if rest.is_empty() {
                        out.push(Some(e.clone()));
                    } else if matches!(e, Bson::Array(_) | Bson::Document(_)) {
                        candidates(Some(e), rest, expand_leaf, out);
                    }
                }
            }
        }
        _ => out.push(None),
    }
}

fn cands(doc: &Document, path: &str, expand_leaf: bool) -> Vec<Option<Bson>> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    candidates(doc.get(parts[0]), &parts[1..], expand_leaf, &mut out);
    out
}

fn leaf_eq(c: &Option<Bson>, v: &Bson) -> bool {
    match c {
        None => matches!(v, Bson::Null),
        Some(x) => rank(x) == rank(v) && model_cmp(x, v) == Ordering::Equal,
    }
}

fn model_matches(f: &F, doc: &Document) -> bool {
    match f {
        F::Leaf(p, op, v) => {
            let cs = cands(doc, p, true);
            let eq = cs.iter().any(|c| leaf_eq(c, v));
            match *op {
                "$eq" => eq,
                "$ne" => !eq,
                _ => cs.iter().any(|c| {
                    let x = match c {
                        None => Bson::Null,
                        Some(x) => x.clone(),
                    };
                    if rank(&x) != rank(v) {
                        return false;
                    }
                    let o = model_cmp(&x, v);
                    match *op {
                        "$gt" => o == Ordering::Greater,
                        "$gte" => o != Ordering::Less,
                        "$lt" => o == Ordering::Less,
                        _ => o != Ordering::Greater,
                    }
                }),
            }
        }
        F::In(p, neg, values) => {
            let cs = cands(doc, p, true);
            let hit = values.iter().any(|v| cs.iter().any(|c| leaf_eq(c, v)));
            hit != *neg
        }
        F::Exists(p, b) => cands(doc, p, true).iter().any(Option::is_some) == *b,
        F::Size(p, n) => cands(doc, p, false)
            .iter()
            .any(|c| matches!(c, Some(Bson::Array(a)) if a.len() as i32 == *n)),
        F::Logic(op, items) => {
            let results: Vec<bool> = items.iter().map(|i| model_matches(i, doc)).collect();
            match *op {
                "$and" => results.iter().all(|b| *b),
                "$or" => results.iter().any(|b| *b),
                _ => !results.iter().any(|b| *b),
            }
        }
    }
}

/// The sort key of a top-level field: missing is null, an empty array undefined, an
/// array its smallest (ascending) or largest (descending) element.
fn model_sort_key(doc: &Document, field: &str, ascending: bool) -> Bson {
    let values: Vec<Bson> = match doc.get(field) {
        None => vec![Bson::Null],
        Some(Bson::Array(a)) if a.is_empty() => vec![Bson::Undefined],
        Some(Bson::Array(a)) => a.clone(),
        Some(v) => vec![v.clone()],
    };
    let pick = if ascending {
        values.into_iter().min_by(model_cmp)
    } else {
        values.into_iter().max_by(model_cmp)
    };
    pick.unwrap()
}

// ------------------------------------------------------------------ properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn matcher_agrees_with_the_model(f in filter(), doc in document()) {
        let spec = to_bson(&f);
        let parsed = Filter::parse(&spec).expect("generated filters are valid");
        prop_assert_eq!(parsed.matches(&doc), model_matches(&f, &doc), "filter {} on {}", spec, doc);
    }

    #[test]
    fn order_agrees_with_the_model(a in value(), b in value()) {
        prop_assert_eq!(order::compare(&a, &b), model_cmp(&a, &b), "{} vs {}", a, b);
        prop_assert_eq!(order::compare(&b, &a), model_cmp(&a, &b).reverse());
    }

    #[test]
    fn sort_agrees_with_the_model(
        mut docs in prop::collection::vec(document(), 0..12),
        field in prop::sample::select(vec!["a", "b"]),
        ascending in any::<bool>(),
    ) {
        let mut spec = Document::new();
        spec.insert(field, if ascending { 1 } else { -1 });
        let sort = SortSpec::parse(&spec).unwrap();
        docs.sort_by(|x, y| sort.compare(x, y));
        for pair in docs.windows(2) {
            let (k0, k1) = (
                model_sort_key(&pair[0], field, ascending),
                model_sort_key(&pair[1], field, ascending),
            );
            let o = model_cmp(&k0, &k1);
            let o = if ascending { o } else { o.reverse() };
            prop_assert!(o != Ordering::Greater, "{} before {} sorting by {}", pair[0], pair[1], spec);
        }
    }
}
