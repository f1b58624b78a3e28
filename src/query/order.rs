//! BSON's comparison order, as mongod compares values (filters, sort, index keys).
//!
//! Facts from mongod 7.0: `canonicalizeBSONType` (bsontypes.cpp) gives the type brackets,
//! `compareElementValues` (bsonelement.cpp) the order inside a bracket, and
//! compare_numbers.h the exact comparisons across int, long, double and decimal.
//! Decimal128 is compared exactly from its BID fields (sign, 113-bit coefficient,
//! exponent): no crate keeps all 34 digits and every cross-type rule, so numbers are
//! reduced to a (sign, decimal digits, exponent) form only when a decimal is involved.

use bson::{Bson, Document};
use std::cmp::Ordering;

/// mongod's canonical type bracket. Undefined ranks with missing (0), below null, as in
/// `canonicalizeBSONType`.
pub fn canonical_rank(v: &Bson) -> i32 {
    match v {
        Bson::MinKey => -1,
        Bson::Undefined => 0,
        Bson::Null => 5,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) => 10,
        Bson::String(_) | Bson::Symbol(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        Bson::Binary(_) => 30,
        Bson::ObjectId(_) => 35,
        Bson::Boolean(_) => 40,
        Bson::DateTime(_) => 45,
        Bson::Timestamp(_) => 47,
        Bson::RegularExpression(_) => 50,
        Bson::DbPointer(_) => 55,
        Bson::JavaScriptCode(_) => 60,
        Bson::JavaScriptCodeWithScope(_) => 65,
        Bson::MaxKey => 127,
    }
}

/// True for the four numeric types.
pub fn is_number(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_)
    )
}

/// mongod's total order of BSON values (BSONElement::woCompare without field names and
/// without collation).
pub fn compare(a: &Bson, b: &Bson) -> Ordering {
    let (ra, rb) = (canonical_rank(a), canonical_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    compare_same_rank(a, b)
}

/// Equality in the query sense (compare == Equal).
pub fn values_equal(a: &Bson, b: &Bson) -> bool {
    compare(a, b) == Ordering::Equal
}

/// Documents compared as mongod's BSONObj::woCompare: element by element, first the type
/// bracket, then the field name, then the value; a prefix sorts first.
pub fn compare_documents(a: &Document, b: &Document) -> Ordering {
    let mut ia = a.iter();
    let mut ib = b.iter();
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => {
                let o = canonical_rank(va)
                    .cmp(&canonical_rank(vb))
                    .then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
                    .then_with(|| compare_same_rank(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Arrays compare as documents whose field names are "0", "1", ...: since both sides
/// have the same names at the same positions, only ranks and values matter.
fn compare_arrays(a: &[Bson], b: &[Bson]) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let o = compare(x, y);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

fn compare_same_rank(a: &Bson, b: &Bson) -> Ordering {
    use Bson::*;
    match (a, b) {
        _ if is_number(a) && is_number(b) => compare_numbers(a, b),
        (String(x) | Symbol(x), String(y) | Symbol(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Document(x), Document(y)) => compare_documents(x, y),
        (Array(x), Array(y)) => compare_arrays(x, y),
        // Length first, then subtype, then bytes (mongod compares the size, then memcmp
        // from the subtype byte on).
        (Binary(x), Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then_with(|| u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then_with(|| x.bytes.cmp(&y.bytes)),
        (ObjectId(x), ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Boolean(x), Boolean(y)) => x.cmp(y),
        (DateTime(x), DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        // Unsigned 64-bit: the seconds are the high half.
        (Timestamp(x), Timestamp(y)) => (x.time, x.increment).cmp(&(y.time, y.increment)),
        (RegularExpression(x), RegularExpression(y)) => x
            .pattern
            .as_bytes()
            .cmp(y.pattern.as_bytes())
            .then_with(|| x.options.as_bytes().cmp(y.options.as_bytes())),
        (DbPointer(_), DbPointer(_)) => compare_db_pointers(a, b),
        (JavaScriptCode(x), JavaScriptCode(y)) => x.as_bytes().cmp(y.as_bytes()),
        (JavaScriptCodeWithScope(x), JavaScriptCodeWithScope(y)) => x
            .code
            .as_bytes()
            .cmp(y.code.as_bytes())
            .then_with(|| compare_documents(&x.scope, &y.scope)),
        // Null, undefined, MinKey, MaxKey: one value per bracket.
        _ => Ordering::Equal,
    }
}

/// DBPointer's fields are private in the bson crate: compare the raw value bytes as mongod
/// does (value size first, then the bytes: length, namespace, NUL, ObjectId).
fn compare_db_pointers(a: &Bson, b: &Bson) -> Ordering {
    fn raw(v: &Bson) -> Vec<u8> {
        let mut d = Document::new();
        d.insert("", v.clone());
        let bytes = bson::to_vec(&d).unwrap_or_default();
        // Document: int32 size, type byte, "" NUL, value..., trailing NUL.
        if bytes.len() > 7 {
            bytes[6..bytes.len() - 1].to_vec()
        } else {
            Vec::new()
        }
    }
    let (x, y) = (raw(a), raw(b));
    x.len().cmp(&y.len()).then_with(|| x.cmp(&y))
}

/// Exact numeric comparison across int, long, double and decimal; NaN sorts below every
/// other number and equals itself; -0 equals 0.
pub fn compare_numbers(a: &Bson, b: &Bson) -> Ordering {
    use Bson::*;
    match (a, b) {
        (Int32(x), Int32(y)) => x.cmp(y),
        (Int64(x), Int64(y)) => x.cmp(y),
        (Int32(x), Int64(y)) => (*x as i64).cmp(y),
        (Int64(x), Int32(y)) => x.cmp(&(*y as i64)),
        (Double(x), Double(y)) => compare_doubles(*x, *y),
        (Int32(x), Double(y)) => compare_doubles(*x as f64, *y),
        (Double(x), Int32(y)) => compare_doubles(*x, *y as f64),
        (Int64(x), Double(y)) => compare_long_double(*x, *y),
        (Double(x), Int64(y)) => compare_long_double(*y, *x).reverse(),
        _ => {
            let (x, y) = (Exact::of(a), Exact::of(b));
            x.cmp(&y)
        }
    }
}

fn compare_doubles(x: f64, y: f64) -> Ordering {
    match x.partial_cmp(&y) {
        Some(o) => o,
        None => match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            _ => Ordering::Greater,
        },
    }
}

/// compare_numbers.h's compareLongToDouble: exact, including longs beyond 2^53.
fn compare_long_double(x: i64, y: f64) -> Ordering {
    if y.is_nan() {
        return Ordering::Greater;
    }
    const PRECISE: i64 = 1 << 53;
    if (-PRECISE..=PRECISE).contains(&x) {
        return compare_doubles(x as f64, y);
    }
    const BOUND: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if y >= BOUND {
        return Ordering::Less;
    }
    if y < -BOUND {
        return Ordering::Greater;
    }
    // |y| > 2^53 here or the truncation keeps the order: longs of that size are far from y's
    // fraction.
    let t = y.trunc() as i64;
    x.cmp(&t).then_with(|| {
        if y > y.trunc() {
            Ordering::Less
        } else if y < y.trunc() {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    })
}

/// A number in an exact, comparable form: NaN, ±infinity, or ±0.d1d2...×10^exp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exact {
    NaN,
    NegInf,
    /// sign (true = negative), significant digits without leading/trailing zeros
    /// (empty for zero), the exponent of the first digit's position.
    Finite(bool, Vec<u8>, i64),
    PosInf,
}

impl Exact {
    pub(crate) fn of(v: &Bson) -> Exact {
        match v {
            Bson::Int32(n) => Exact::from_i128(*n as i128),
            Bson::Int64(n) => Exact::from_i128(*n as i128),
            Bson::Double(f) => Exact::from_f64(*f),
            Bson::Decimal128(d) => Exact::from_decimal(&d.bytes()),
            _ => Exact::NaN,
        }
    }

    fn from_i128(n: i128) -> Exact {
        Exact::from_digits(n < 0, &n.unsigned_abs().to_string(), 0)
    }

    /// `digits` × 10^`scale`, normalized.
    fn from_digits(neg: bool, digits: &str, scale: i64) -> Exact {
        let bytes: Vec<u8> = digits.bytes().map(|c| c - b'0').collect();
        let start = bytes.iter().position(|&d| d != 0);
        let Some(start) = start else {
            return Exact::Finite(false, Vec::new(), 0);
        };
        let end = bytes.iter().rposition(|&d| d != 0).unwrap_or(start) + 1;
        // Position of the first significant digit relative to the decimal point.
        let exp = (bytes.len() - start) as i64 + scale;
        Exact::Finite(neg, bytes[start..end].to_vec(), exp)
    }

    fn from_f64(f: f64) -> Exact {
        if f.is_nan() {
            return Exact::NaN;
        }
        if f.is_infinite() {
            return if f > 0.0 {
                Exact::PosInf
            } else {
                Exact::NegInf
            };
        }
        if f == 0.0 {
            return Exact::Finite(false, Vec::new(), 0);
        }
        // A double's exact decimal expansion has at most 767 significant digits; Rust's
        // formatting with an explicit precision is exact.
        let s = format!("{:.800e}", f.abs());
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i64 = exp.parse().unwrap_or(0);
        let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
        let len = digits.len() as i64;
        // mantissa d.ddd × 10^exp = digits × 10^(exp - (len - 1))
        Exact::from_digits(f < 0.0, &digits, exp - (len - 1))
    }

    /// IEEE 754-2008 decimal128, binary integer decimal encoding (little-endian bytes).
    fn from_decimal(bytes: &[u8; 16]) -> Exact {
        let low = u64::from_le_bytes(bytes[0..8].try_into().unwrap_or([0; 8]));
        let high = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or([0; 8]));
        let neg = high >> 63 == 1;
        let combination = (high >> 58) & 0x1f;
        if combination == 0x1f {
            return Exact::NaN;
        }
        if combination == 0x1e {
            return if neg { Exact::NegInf } else { Exact::PosInf };
        }
        let (exp, coef) = if (high >> 61) & 3 == 3 {
            // The "11" form's coefficient is at least 2^113 > 10^34 - 1: non-canonical, zero.
            (((high >> 47) & 0x3fff) as i64, 0u128)
        } else {
            let c = (((high & 0x1_ffff_ffff_ffff) as u128) << 64) | low as u128;
            let c = if c > 9_999_999_999_999_999_999_999_999_999_999_999u128 {
                0
            } else {
                c
            };
            (((high >> 49) & 0x3fff) as i64, c)
        };
        Exact::from_digits(neg, &coef.to_string(), exp - 6176)
    }

    fn is_zero(&self) -> bool {
        matches!(self, Exact::Finite(_, d, _) if d.is_empty())
    }
}

impl PartialOrd for Exact {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Exact {
    fn cmp(&self, other: &Self) -> Ordering {
        fn class(e: &Exact) -> i32 {
            match e {
                Exact::NaN => 0,
                Exact::NegInf => 1,
                Exact::Finite(..) if e.is_zero() => 3,
                Exact::Finite(true, ..) => 2,
                Exact::Finite(false, ..) => 4,
                Exact::PosInf => 5,
            }
        }
        let (ca, cb) = (class(self), class(other));
        if ca != cb {
            return ca.cmp(&cb);
        }
        match (self, other) {
            (Exact::Finite(neg, da, ea), Exact::Finite(_, db, eb)) if ca != 3 => {
                let magnitude = ea.cmp(eb).then_with(|| da.cmp(db));
                if *neg {
                    magnitude.reverse()
                } else {
                    magnitude
                }
            }
            _ => Ordering::Equal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{
        doc, oid::ObjectId, spec::BinarySubtype, Binary, DateTime, Decimal128,
        JavaScriptCodeWithScope, Regex, Timestamp,
    };
    use std::str::FromStr;

    fn dec(s: &str) -> Bson {
        Bson::Decimal128(Decimal128::from_str(s).unwrap())
    }

    fn lt(a: Bson, b: Bson) {
        assert_eq!(compare(&a, &b), Ordering::Less, "{a:?} < {b:?}");
        assert_eq!(compare(&b, &a), Ordering::Greater, "{b:?} > {a:?}");
    }

    fn eq(a: Bson, b: Bson) {
        assert_eq!(compare(&a, &b), Ordering::Equal, "{a:?} == {b:?}");
        assert_eq!(compare(&b, &a), Ordering::Equal, "{b:?} == {a:?}");
    }

    #[test]
    fn brackets_in_mongod_order() {
        // The order of jstests/core/query/sort (mixed types) and bsontypes.cpp.
        let ascending = vec![
            Bson::MinKey,
            Bson::Undefined,
            Bson::Null,
            Bson::Double(f64::NAN),
            Bson::Int32(1),
            Bson::String("a".into()),
            Bson::Document(doc! {}),
            Bson::Array(vec![]),
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![],
            }),
            Bson::ObjectId(ObjectId::from_bytes([0; 12])),
            Bson::Boolean(false),
            Bson::DateTime(DateTime::from_millis(i64::MIN)),
            Bson::Timestamp(Timestamp {
                time: 0,
                increment: 0,
            }),
            Bson::RegularExpression(Regex {
                pattern: "a".into(),
                options: String::new(),
            }),
            Bson::JavaScriptCode("x".into()),
            Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: "x".into(),
                scope: doc! {},
            }),
            Bson::MaxKey,
        ];
        for (i, a) in ascending.iter().enumerate() {
            for b in &ascending[i + 1..] {
                lt(a.clone(), b.clone());
            }
        }
    }

    #[test]
    fn numbers_compare_exactly_across_types() {
        eq(Bson::Int32(1), Bson::Double(1.0));
        eq(Bson::Int32(1), Bson::Int64(1));
        eq(Bson::Int64(1), dec("1.000"));
        eq(Bson::Double(0.0), Bson::Double(-0.0));
        eq(dec("-0"), Bson::Int32(0));
        eq(dec("0E+300"), Bson::Double(-0.0));
        eq(Bson::Double(f64::NAN), dec("NaN"));
        eq(Bson::Double(f64::NAN), Bson::Double(-f64::NAN));
        eq(Bson::Double(f64::INFINITY), dec("Infinity"));
        eq(Bson::Double(0.5), dec("0.5"));
        eq(Bson::Double(1e22), dec("1E+22"));
        // 1e300 as a double is 1.0000000000000000525...E+300.
        lt(dec("1E+300"), Bson::Double(1e300));
        lt(Bson::Double(f64::NAN), Bson::Double(f64::NEG_INFINITY));
        lt(dec("NaN"), dec("-Infinity"));
        lt(Bson::Double(f64::NEG_INFINITY), Bson::Int64(i64::MIN));
        lt(Bson::Int64(i64::MAX), Bson::Double(f64::INFINITY));
        // 2^63 - 1 as a long is below 2^63 as a double; their double forms are equal.
        lt(
            Bson::Int64(i64::MAX),
            Bson::Double(9_223_372_036_854_775_808.0),
        );
        // Longs that do not fit a double's 53 bits (compare_numbers.h).
        lt(
            Bson::Double(9_007_199_254_740_992.0),
            Bson::Int64(9_007_199_254_740_993),
        );
        lt(
            Bson::Int64(-9_007_199_254_740_993),
            Bson::Double(-9_007_199_254_740_992.0),
        );
        lt(
            Bson::Int64(i64::MIN),
            Bson::Double(-9_223_372_036_854_774_784.0),
        );
        eq(
            Bson::Int64(i64::MIN),
            Bson::Double(-9_223_372_036_854_775_808.0),
        );
        lt(Bson::Int32(1), Bson::Double(1.5));
        lt(Bson::Double(-1.5), Bson::Int32(-1));
        // 0.1 as a double is 0.1000000000000000055511151231257827...
        lt(dec("0.1"), Bson::Double(0.1));
        lt(
            Bson::Double(0.1),
            dec("0.1000000000000000055511151231257828"),
        );
        lt(
            dec("0.1000000000000000055511151231257827"),
            Bson::Double(0.1),
        );
        lt(dec("9223372036854775807"), dec("9223372036854775808"));
        lt(Bson::Int64(i64::MAX), dec("9223372036854775807.5"));
        lt(dec("-1E+6144"), Bson::Double(f64::MIN));
        lt(Bson::Double(f64::MAX), dec("1E+6144"));
        lt(dec("1E-6176"), Bson::Double(5e-324));
        lt(dec("-2"), dec("-1.99999"));
        eq(dec("12.30"), dec("1.23E+1"));
    }

    #[test]
    fn values_inside_a_bracket() {
        lt(Bson::String("a".into()), Bson::String("b".into()));
        lt(Bson::String("B".into()), Bson::String("a".into()));
        lt(Bson::String("a".into()), Bson::String("aa".into()));
        eq(Bson::String("x".into()), Bson::Symbol("x".into()));
        lt(Bson::Symbol("a".into()), Bson::String("b".into()));
        lt(Bson::Boolean(false), Bson::Boolean(true));
        lt(
            Bson::DateTime(DateTime::from_millis(-1)),
            Bson::DateTime(DateTime::from_millis(0)),
        );
        // Timestamps compare unsigned, seconds first.
        lt(
            Bson::Timestamp(Timestamp {
                time: 1,
                increment: 9,
            }),
            Bson::Timestamp(Timestamp {
                time: 2,
                increment: 0,
            }),
        );
        lt(
            Bson::Timestamp(Timestamp {
                time: 1,
                increment: 0,
            }),
            Bson::Timestamp(Timestamp {
                time: u32::MAX,
                increment: 0,
            }),
        );
        // binData: length first, then subtype, then bytes.
        let bin = |st: u8, b: &[u8]| {
            Bson::Binary(Binary {
                subtype: BinarySubtype::from(st),
                bytes: b.to_vec(),
            })
        };
        lt(bin(5, &[9]), bin(0, &[0, 0]));
        lt(bin(0, &[9]), bin(2, &[0]));
        lt(bin(0, &[1]), bin(0, &[2]));
        lt(
            Bson::ObjectId(ObjectId::from_bytes([0; 12])),
            Bson::ObjectId(ObjectId::from_bytes([1; 12])),
        );
        let re = |p: &str, o: &str| {
            Bson::RegularExpression(Regex {
                pattern: p.into(),
                options: o.into(),
            })
        };
        lt(re("a", "i"), re("b", ""));
        lt(re("a", ""), re("a", "i"));
        eq(Bson::Null, Bson::Null);
        eq(Bson::MinKey, Bson::MinKey);
        lt(Bson::Undefined, Bson::Null);
    }

    #[test]
    fn arrays_and_documents() {
        // Element by element; a prefix first.
        lt(
            Bson::Array(vec![Bson::Int32(1)]),
            Bson::Array(vec![Bson::Int32(1), Bson::Int32(0)]),
        );
        lt(
            Bson::Array(vec![Bson::Int32(1), Bson::Int32(2)]),
            Bson::Array(vec![Bson::Int32(2)]),
        );
        eq(
            Bson::Array(vec![Bson::Int32(1), Bson::Double(2.0)]),
            Bson::Array(vec![Bson::Int64(1), Bson::Int32(2)]),
        );
        // Type bracket of the element before its value.
        lt(
            Bson::Array(vec![Bson::Int32(100)]),
            Bson::Array(vec![Bson::String("".into())]),
        );
        lt(Bson::Array(vec![]), Bson::Array(vec![Bson::MinKey]));
        // bson_obj_test.cpp: {a: 1} < {b: 1}; type before field name; {} first.
        let d = |d: Document| Bson::Document(d);
        lt(d(doc! {"a": 1}), d(doc! {"b": 1}));
        lt(d(doc! {"b": 1}), d(doc! {"a": "x"}));
        lt(d(doc! {}), d(doc! {"a": 1}));
        lt(d(doc! {"a": 1}), d(doc! {"a": 1, "b": 1}));
        lt(d(doc! {"a": 1, "b": 1}), d(doc! {"a": 2}));
        eq(d(doc! {"a": 1, "b": 2.0}), d(doc! {"a": 1i64, "b": 2}));
        assert_eq!(
            compare_documents(&doc! {"a": {"b": 1}}, &doc! {"a": {"b": 1.0}}),
            Ordering::Equal
        );
        assert_eq!(
            compare_documents(&doc! {"a": null}, &doc! {"a": 0}),
            Ordering::Less
        );
        assert!(values_equal(&Bson::Int32(3), &dec("3")));
        assert!(!values_equal(&Bson::Int32(3), &Bson::String("3".into())));
    }

    #[test]
    fn code_with_scope_and_db_pointer() {
        let cws = |c: &str, s: Document| {
            Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: c.into(),
                scope: s,
            })
        };
        lt(cws("a", doc! {"z": 1}), cws("b", doc! {}));
        lt(cws("a", doc! {"x": 1}), cws("a", doc! {"x": 2}));
        let dbp = |ns: &str, oid: &str| {
            Bson::try_from(serde_json::json!({"$dbPointer": {"$ref": ns, "$id": {"$oid": oid}}}))
                .unwrap()
        };
        let (a, b) = (
            dbp("a.b", "000000000000000000000001"),
            dbp("a.c", "000000000000000000000000"),
        );
        assert!(matches!(a, Bson::DbPointer(_)));
        lt(a, b);
        lt(
            dbp("z", "000000000000000000000000"),
            dbp("aa", "000000000000000000000000"),
        );
        lt(
            dbp("a", "000000000000000000000000"),
            dbp("a", "000000000000000000000001"),
        );
    }
}
