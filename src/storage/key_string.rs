//! An order-preserving encoding of BSON values, as mongod's KeyString: the bytes of two
//! encoded values compare (memcmp) as mongod compares the values (`query::order`), so
//! records keyed by `_id` and index entries iterate in BSON order.
//!
//! Each value starts with its canonical type bracket (one byte), then a body whose byte
//! order is the value order within the bracket. Bodies are prefix-free (fixed widths,
//! or escaped strings with a terminator), so a descending key is the byte complement.
//! Numbers of every type share one body (int32 1, int64 1 and double 1.0 encode alike,
//! as they are one key in a mongod index), and a decimal128 equal to an int64 or a double
//! encodes as that number; any other decimal is placed exactly (see `number_decimal`).

use crate::query::order::Exact;
use bson::{Bson, Document};

/// The canonical type bracket (`query::order::canonical_rank`), as one byte above 0 (the
/// terminator of objects and arrays).
fn bracket(v: &Bson) -> u8 {
    (crate::query::order::canonical_rank(v) + 2) as u8
}

/// Encodes `v` (ascending).
pub fn encode(v: &Bson) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    append(v, &mut out);
    out
}

/// Encodes `v` for a descending index: the complement of [`encode`].
pub fn encode_descending(v: &Bson) -> Vec<u8> {
    let mut out = encode(v);
    for b in &mut out {
        *b = !*b;
    }
    out
}

/// Encodes a compound key, each part ascending (`true`) or descending.
pub fn encode_compound(parts: &[(&Bson, bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (value, ascending) in parts {
        let start = out.len();
        append(value, &mut out);
        if !ascending {
            for b in &mut out[start..] {
                *b = !*b;
            }
        }
    }
    out
}

/// Appends `v`'s bracket and body.
pub fn append(v: &Bson, out: &mut Vec<u8>) {
    out.push(bracket(v));
    body(v, out);
}

fn body(v: &Bson, out: &mut Vec<u8>) {
    match v {
        Bson::MinKey | Bson::MaxKey | Bson::Null | Bson::Undefined => {}
        Bson::Int32(n) => number_int(*n as i64, out),
        Bson::Int64(n) => number_int(*n, out),
        Bson::Double(d) => number_double(*d, out),
        Bson::Decimal128(_) => number_decimal(v, out),
        Bson::String(s) | Bson::Symbol(s) => string(s.as_bytes(), out),
        Bson::Document(d) => document(d, out),
        Bson::Array(items) => {
            for item in items {
                append(item, out);
            }
            out.push(0);
        }
        Bson::Binary(b) => {
            // mongod orders binData by length, then subtype, then bytes.
            out.extend((b.bytes.len() as u32).to_be_bytes());
            out.push(u8::from(b.subtype));
            out.extend(&b.bytes);
        }
        Bson::ObjectId(id) => out.extend(id.bytes()),
        Bson::Boolean(b) => out.push(u8::from(*b)),
        Bson::DateTime(d) => out.extend(flip_sign(d.timestamp_millis())),
        Bson::Timestamp(t) => {
            out.extend(t.time.to_be_bytes());
            out.extend(t.increment.to_be_bytes());
        }
        Bson::RegularExpression(r) => {
            string(r.pattern.as_bytes(), out);
            string(r.options.as_bytes(), out);
        }
        Bson::DbPointer(p) => {
            // Not inspectable through the bson crate beyond its debug form; ordered by it.
            string(format!("{p:?}").as_bytes(), out)
        }
        Bson::JavaScriptCode(code) => string(code.as_bytes(), out),
        Bson::JavaScriptCodeWithScope(c) => {
            string(c.code.as_bytes(), out);
            document(&c.scope, out);
        }
    }
}

/// Fields in order: each as bracket, name, body (mongod's BSONObj::woCompare compares
/// type, then name, then value); a 0 ends the object, so a prefix sorts first.
fn document(d: &Document, out: &mut Vec<u8>) {
    for (name, value) in d {
        out.push(bracket(value));
        string(name.as_bytes(), out);
        body(value, out);
    }
    out.push(0);
}

/// Bytes with 0 escaped as 0 0xFF, ended by 0 0: byte order, and prefix-free.
fn string(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend([0, 0]);
}

fn flip_sign(n: i64) -> [u8; 8] {
    ((n as u64) ^ (1 << 63)).to_be_bytes()
}

// Numbers: a class byte (NaN, negative, zero, positive), then for non-zero values the
// position of the leading 1 bit (biased, 2 bytes), the 64 bits after it (exact for every
// int64 and every double, so they compare as exact numbers) and a suffix: EXACT, or for
// a decimal between two of them INEXACT and its digits. Negative magnitudes are
// complemented so that larger ones sort first.
const NAN: u8 = 1;
const NEGATIVE: u8 = 2;
const ZERO: u8 = 3;
const POSITIVE: u8 = 4;
const EXPONENT_BIAS: i32 = 1100;
const EXACT: u8 = 1;
const INEXACT: u8 = 2;
/// Decimal128 exponents of the first digit lie within ±6200.
const DECIMAL_EXPONENT_BIAS: i64 = 8000;

fn number_int(n: i64, out: &mut Vec<u8>) {
    if n == 0 {
        return out.push(ZERO);
    }
    let (lead, rest) = int_bits(n);
    magnitude_bytes(n < 0, lead, rest, out)
}

fn number_double(d: f64, out: &mut Vec<u8>) {
    if d.is_nan() {
        return out.push(NAN);
    }
    if d == 0.0 {
        return out.push(ZERO);
    }
    if d.is_infinite() {
        // Above every finite magnitude.
        return magnitude_bytes(d < 0.0, 2000, u64::MAX, out);
    }
    let (lead, rest) = double_bits(d);
    magnitude_bytes(d < 0.0, lead, rest, out)
}

/// A decimal128. One equal to an int64 or a double encodes as that number (they are one
/// key, as in mongod's KeyString). Any other lies strictly between two neighbours in the
/// set of int64s and doubles: it encodes as the lower neighbour's magnitude followed by
/// an INEXACT mark and its own decimal digits, so it sorts after that neighbour, before
/// the upper one, and among the decimals of the same gap by exact value.
fn number_decimal(v: &Bson, out: &mut Vec<u8>) {
    let (negative, digits, exp) = match Exact::of(v) {
        Exact::NaN => return out.push(NAN),
        Exact::NegInf => return number_double(f64::NEG_INFINITY, out),
        Exact::PosInf => return number_double(f64::INFINITY, out),
        Exact::Finite(_, digits, _) if digits.is_empty() => return out.push(ZERO),
        Exact::Finite(negative, digits, exp) => (negative, digits, exp),
    };
    let magnitude = Exact::Finite(false, digits.clone(), exp);
    let floor = lower_neighbour(&magnitude);
    if let Some(floor) = &floor {
        if Exact::of(floor) == magnitude {
            let signed = match floor {
                Bson::Int64(n) if negative => Bson::Int64(-n),
                Bson::Double(d) if negative => Bson::Double(-d),
                other => other.clone(),
            };
            return body(&signed, out);
        }
    }
    let (lead, rest) = match floor {
        Some(Bson::Int64(n)) => int_bits(n),
        Some(Bson::Double(d)) => double_bits(d),
        // Below the least positive double: under every double's magnitude.
        _ => (-EXPONENT_BIAS, 0),
    };
    let mut suffix = vec![INEXACT];
    suffix.extend(((exp + DECIMAL_EXPONENT_BIAS) as u16).to_be_bytes());
    suffix.extend(digits.iter().map(|d| d + 1));
    suffix.push(0);
    magnitude_with(negative, lead, rest, &suffix, out)
}

/// The greatest int64 or double not above `magnitude` (positive, finite), if any.
fn lower_neighbour(magnitude: &Exact) -> Option<Bson> {
    let Exact::Finite(_, digits, exp) = magnitude else {
        return None;
    };
    let text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    let approx = format!("0.{text}e{exp}").parse::<f64>().ok()?;
    let mut double = approx.min(f64::MAX);
    if Exact::of(&Bson::Double(double)) > *magnitude {
        double = double.next_down();
    }
    let double = (double > 0.0).then_some(Bson::Double(double));
    // Between 2^53 and 2^63 an int64 can lie closer below than any double.
    let int = (*exp > 0 && *exp <= 19)
        .then(|| {
            let whole: String = (0..*exp as usize)
                .map(|i| char::from(b'0' + digits.get(i).copied().unwrap_or(0)))
                .collect();
            whole.parse::<i64>().ok()
        })
        .flatten()
        .filter(|n| *n > 0)
        .map(Bson::Int64);
    match (double, int) {
        (Some(d), Some(i)) => Some(if Exact::of(&i) > Exact::of(&d) { i } else { d }),
        (d, i) => d.or(i),
    }
}

fn int_bits(n: i64) -> (i32, u64) {
    let magnitude = n.unsigned_abs();
    let lead = 63 - magnitude.leading_zeros() as i32;
    // The bits after the leading one, left-aligned in 64 bits.
    let rest = if lead == 0 {
        0
    } else {
        magnitude << (64 - lead)
    };
    (lead, rest)
}

fn double_bits(d: f64) -> (i32, u64) {
    let bits = d.abs().to_bits();
    let exponent = ((bits >> 52) & 0x7FF) as i32;
    let fraction = bits & ((1 << 52) - 1);
    if exponent == 0 {
        // Subnormal: the value is fraction * 2^-1074.
        let top = 63 - fraction.leading_zeros() as i32;
        let rest = if top == 0 { 0 } else { fraction << (64 - top) };
        (top - 1074, rest)
    } else {
        (exponent - 1023, fraction << 12)
    }
}

fn magnitude_bytes(negative: bool, lead: i32, rest: u64, out: &mut Vec<u8>) {
    magnitude_with(negative, lead, rest, &[EXACT], out)
}

/// Class, then position of the leading bit, the 64 bits after it and the suffix (EXACT,
/// or INEXACT and a decimal's digits), complemented for a negative number so that larger
/// magnitudes sort first.
fn magnitude_with(negative: bool, lead: i32, rest: u64, suffix: &[u8], out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(10 + suffix.len());
    body.extend(((lead + EXPONENT_BIAS) as u16).to_be_bytes());
    body.extend(rest.to_be_bytes());
    body.extend(suffix);
    if negative {
        out.push(NEGATIVE);
        out.extend(body.iter().map(|b| !b));
    } else {
        out.push(POSITIVE);
        out.extend(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId};
    use proptest::prelude::*;

    fn decimal(s: &str) -> Bson {
        Bson::Decimal128(s.parse().unwrap())
    }

    /// Decimals near one another, near ints and doubles, and far outside a double's range.
    fn decimal_value() -> impl Strategy<Value = Bson> {
        prop_oneof![
            (any::<i64>(), -40i32..40).prop_map(|(c, e)| decimal(&format!("{c}E{e}"))),
            (-3i64..3, -2i32..2).prop_map(|(c, e)| decimal(&format!("{c}E{e}"))),
            (any::<bool>(), 1u64..10, 0u64..1000).prop_map(|(neg, a, b)| {
                let sign = if neg { "-" } else { "" };
                decimal(&format!("{sign}{a}.{b:0>30}1"))
            }),
            (-6100i32..6100).prop_map(|e| decimal(&format!("1.5E{e}"))),
            any::<f64>().prop_map(|f| decimal(&format!("{f:e}"))),
            prop_oneof![Just("NaN"), Just("Infinity"), Just("-Infinity"), Just("-0")]
                .prop_map(decimal),
        ]
    }

    /// Random BSON values of the kinds `_id`s and index keys hold.
    fn value() -> impl Strategy<Value = Bson> {
        let leaf = prop_oneof![
            decimal_value(),
            Just(Bson::Null),
            Just(Bson::MinKey),
            Just(Bson::MaxKey),
            any::<i32>().prop_map(Bson::Int32),
            any::<i64>().prop_map(Bson::Int64),
            any::<f64>().prop_map(Bson::Double),
            (-3i32..3).prop_map(|n| Bson::Double(n as f64 / 2.0)),
            "[a-c\\x00]{0,3}".prop_map(Bson::String),
            any::<bool>().prop_map(Bson::Boolean),
            any::<[u8; 12]>().prop_map(|b| Bson::ObjectId(ObjectId::from_bytes(b))),
            any::<i64>().prop_map(|t| Bson::DateTime(bson::DateTime::from_millis(t))),
            (any::<u32>(), any::<u32>())
                .prop_map(|(time, increment)| Bson::Timestamp(bson::Timestamp { time, increment })),
            (0u8..3, proptest::collection::vec(any::<u8>(), 0..3)).prop_map(|(st, bytes)| {
                Bson::Binary(bson::Binary {
                    subtype: bson::spec::BinarySubtype::from(st),
                    bytes,
                })
            }),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Bson::Array),
                proptest::collection::vec(("[ab]{1,2}", inner), 0..3)
                    .prop_map(|fields| Bson::Document(fields.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn byte_order_is_bson_order(a in value(), b in value()) {
            let expected = crate::query::order::compare(&a, &b);
            prop_assert_eq!(encode(&a).cmp(&encode(&b)), expected, "{:?} vs {:?}", a, b);
            prop_assert_eq!(encode_descending(&a).cmp(&encode_descending(&b)), expected.reverse());
        }
    }

    #[test]
    fn decimals_are_exact_and_equal_to_equal_numbers() {
        // Two decimals whose nearest double is the same are two keys, in order.
        let a = decimal("0.1000000000000000000000000000000001");
        let b = decimal("0.1000000000000000000000000000000002");
        assert!(encode(&a) < encode(&b));
        // The double 0.1 is 0.1000000000000000055...: above both.
        assert!(encode(&b) < encode(&Bson::Double(0.1)));
        assert!(
            encode(&decimal("-0.1000000000000000000000000000000002"))
                < encode(&decimal("-0.1000000000000000000000000000000001"))
        );
        // Equal values of other types are one key.
        assert_eq!(encode(&decimal("1.0")), encode(&Bson::Int32(1)));
        assert_eq!(encode(&decimal("-2.5")), encode(&Bson::Double(-2.5)));
        assert_eq!(
            encode(&decimal("9007199254740993")),
            encode(&Bson::Int64((1 << 53) + 1))
        );
        assert_eq!(encode(&decimal("0E-10")), encode(&Bson::Int32(0)));
        assert_eq!(
            encode(&decimal("Infinity")),
            encode(&Bson::Double(f64::INFINITY))
        );
        // Beyond a double's range, both ways.
        assert!(encode(&decimal("1E400")) < encode(&decimal("2E400")));
        assert!(encode(&decimal("2E400")) < encode(&Bson::Double(f64::INFINITY)));
        assert!(encode(&Bson::Int32(0)) < encode(&decimal("1E-400")));
        assert!(encode(&decimal("1E-400")) < encode(&decimal("2E-400")));
        assert!(encode(&decimal("2E-400")) < encode(&Bson::Double(5e-324)));
    }

    fn sorted_by_encoding(values: &[Bson]) -> Vec<Bson> {
        let mut v = values.to_vec();
        v.sort_by_key(encode);
        v
    }

    #[test]
    fn numbers_of_every_type_compare_as_numbers() {
        let values = vec![
            Bson::Double(f64::NAN),
            Bson::Double(f64::NEG_INFINITY),
            Bson::Int64(i64::MIN),
            Bson::Double(-2.5),
            Bson::Int32(-2),
            Bson::Double(-1e-300),
            Bson::Int32(0),
            Bson::Double(5e-324),
            Bson::Double(0.5),
            Bson::Int64(1),
            Bson::Double(1.5),
            Bson::Int32(2),
            Bson::Int64((1 << 53) + 1),
            Bson::Double(1e300),
            Bson::Double(f64::INFINITY),
        ];
        // Debug strings: NaN is not == NaN.
        assert_eq!(
            format!("{:?}", sorted_by_encoding(&values)),
            format!("{values:?}")
        );
        assert_eq!(encode(&Bson::Int32(1)), encode(&Bson::Double(1.0)));
        assert_eq!(encode(&Bson::Double(-0.0)), encode(&Bson::Int64(0)));
        assert_ne!(
            encode(&Bson::Int64(1 << 53)),
            encode(&Bson::Int64((1 << 53) + 1))
        );
    }

    #[test]
    fn brackets_strings_documents_and_arrays_order_as_mongod() {
        let values = vec![
            Bson::MinKey,
            Bson::Null,
            Bson::Int32(7),
            Bson::String(String::new()),
            Bson::String("a".into()),
            Bson::String("a\0".into()),
            Bson::String("b".into()),
            Bson::Document(doc! {}),
            Bson::Document(doc! {"a": 1}),
            Bson::Document(doc! {"a": 1, "b": 1}),
            // The type bracket of a field comes before its name.
            Bson::Document(doc! {"b": 0}),
            Bson::Document(doc! {"a": "x"}),
            Bson::Array(vec![]),
            Bson::Array(vec![Bson::Int32(1)]),
            Bson::Array(vec![Bson::Int32(1), Bson::Int32(0)]),
            Bson::Array(vec![Bson::Int32(2)]),
            Bson::ObjectId(ObjectId::from_bytes([0; 12])),
            Bson::ObjectId(ObjectId::from_bytes([1; 12])),
            Bson::Boolean(false),
            Bson::Boolean(true),
            Bson::DateTime(bson::DateTime::from_millis(-1)),
            Bson::DateTime(bson::DateTime::from_millis(1)),
            Bson::MaxKey,
        ];
        assert_eq!(sorted_by_encoding(&values), values);
    }

    #[test]
    fn descending_reverses_the_order() {
        let a = Bson::String("a".into());
        let ab = Bson::String("ab".into());
        assert!(encode(&a) < encode(&ab));
        assert!(encode_descending(&a) > encode_descending(&ab));
        let k1 = encode_compound(&[(&Bson::Int32(1), true), (&Bson::Int32(5), false)]);
        let k2 = encode_compound(&[(&Bson::Int32(1), true), (&Bson::Int32(6), false)]);
        assert!(k1 > k2);
    }
}
