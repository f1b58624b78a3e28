//! Decimal128 as mongod keeps and computes it: `_id` keys exact (two decimals with one
//! nearest double are two documents; a decimal equal to an int is that int's key), and
//! `$inc`/`$mul`, `$sum`/`$avg` and `$add`/`$subtract`/`$multiply`/`$divide` with decimal
//! operands giving exact Decimal128 results (IEEE 754-2008, round half to even).

mod common;

use bson::{doc, Bson, Decimal128, Document};
use common::Ferrod;
use std::str::FromStr;

fn dec(s: &str) -> Bson {
    Bson::Decimal128(Decimal128::from_str(s).unwrap())
}

fn batch(reply: &Document) -> Vec<Bson> {
    reply
        .get_document("cursor")
        .unwrap_or_else(|_| panic!("{reply:?}"))
        .get_array("firstBatch")
        .unwrap()
        .clone()
}

#[test]
fn decimal_ids_are_exact_keys() {
    let server = Ferrod::start(&[]);
    let a = dec("0.1000000000000000000000000000000001");
    let b = dec("0.1000000000000000000000000000000002");
    let reply = server.command(doc! {"insert": "c", "$db": "t", "documents": [
        {"_id": b.clone()}, {"_id": a.clone()}, {"_id": 0.1}, {"_id": dec("1E400")}
    ]});
    assert_eq!(reply.get_i32("n").unwrap(), 4, "{reply:?}");
    // A decimal equal to an int is the same key (11000).
    server.command(doc! {"insert": "c", "$db": "t", "documents": [{"_id": 7}]});
    let reply =
        server.command(doc! {"insert": "c", "$db": "t", "documents": [{"_id": dec("7.00")}]});
    let code = reply.get_array("writeErrors").unwrap()[0]
        .as_document()
        .unwrap()
        .get_i32("code")
        .unwrap();
    assert_eq!(code, 11000, "{reply:?}");
    // Point reads find each, and the scan is in numeric order.
    for id in [&a, &b] {
        let reply = server.command(doc! {"find": "c", "$db": "t", "filter": {"_id": id.clone()}});
        assert_eq!(batch(&reply), [Bson::Document(doc! {"_id": id.clone()})]);
    }
    let reply = server.command(doc! {"find": "c", "$db": "t"});
    let ids: Vec<Bson> = batch(&reply)
        .into_iter()
        .map(|d| d.as_document().unwrap().get("_id").unwrap().clone())
        .collect();
    assert_eq!(ids, [a, b, Bson::Double(0.1), Bson::Int32(7), dec("1E400")]);
}

#[test]
fn decimal_arithmetic_is_exact() {
    let server = Ferrod::start(&[]);
    server.command(doc! {"insert": "c", "$db": "t", "documents": [
        {"_id": 1, "n": dec("0.1"), "i": 2},
        {"_id": 2, "n": dec("0.2"), "i": 3},
    ]});
    let reply = server.command(doc! {"update": "c", "$db": "t", "updates": [
        {"q": {"_id": 1}, "u": {"$inc": {"n": dec("0.2"), "i": dec("1.5")}}},
        {"q": {"_id": 2}, "u": {"$mul": {"n": 3, "m": dec("2")}}},
    ]});
    assert_eq!(reply.get_i32("nModified").unwrap(), 2, "{reply:?}");
    let reply = server.command(doc! {"find": "c", "$db": "t", "sort": {"_id": 1}});
    assert_eq!(
        batch(&reply),
        [
            Bson::Document(doc! {"_id": 1, "n": dec("0.3"), "i": dec("3.5")}),
            Bson::Document(doc! {"_id": 2, "n": dec("0.6"), "i": 3, "m": dec("0")}),
        ]
    );
    let reply = server.command(doc! {"aggregate": "c", "$db": "t", "cursor": {}, "pipeline": [
        {"$group": {"_id": null, "sum": {"$sum": "$n"}, "avg": {"$avg": "$n"}, "isum": {"$sum": "$i"}}},
        {"$project": {
            "_id": 0, "sum": 1, "avg": 1, "isum": 1,
            "add": {"$add": ["$sum", 1]},
            "sub": {"$subtract": ["$sum", dec("0.9")]},
            "mul": {"$multiply": ["$sum", dec("0.1")]},
            "div": {"$divide": ["$sum", 3]},
        }},
    ]});
    assert_eq!(
        batch(&reply),
        [Bson::Document(doc! {
            "sum": dec("0.9"), "avg": dec("0.45"), "isum": dec("6.5"),
            "add": dec("1.9"), "sub": dec("0.0"), "mul": dec("0.09"), "div": dec("0.3"),
        })]
    );
}
