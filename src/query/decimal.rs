//! Decimal128 arithmetic as mongod does it: IEEE 754-2008 decimal128 with 34 digits,
//! rounding half to even (mongod uses Intel's decimal library; ferrod uses libdecnumber,
//! the IEEE reference implementation, through the `dec` crate). Values cross between
//! bson's and dec's types as their decimal strings, which both read and write exactly.
//!
//! Mixed operands follow mongod's Decimal128 constructors: int32 and int64 exactly, a
//! double rounded to 15 significant digits (`Decimal128(double)`'s default
//! `kRoundTo15Digits`), so `NumberDecimal("1") + 0.1` is `NumberDecimal("1.100000000000000")`.

use bson::Bson;
use dec::Decimal128 as Dec;
use std::str::FromStr;

/// A number as a decimal, for arithmetic with a Decimal128; `None` for non-numbers.
pub fn of(v: &Bson) -> Option<Dec> {
    match v {
        Bson::Int32(n) => Some(Dec::from(*n)),
        Bson::Int64(n) => Some(Dec::from(*n)),
        Bson::Double(f) => Some(from_f64(*f)),
        Bson::Decimal128(d) => Some(Dec::from_str(&d.to_string()).unwrap_or(Dec::NAN)),
        _ => None,
    }
}

fn from_f64(f: f64) -> Dec {
    if f.is_nan() {
        Dec::NAN
    } else if f.is_infinite() {
        if f > 0.0 {
            Dec::from_str("Infinity").unwrap_or(Dec::NAN)
        } else {
            Dec::from_str("-Infinity").unwrap_or(Dec::NAN)
        }
    } else {
        Dec::from_str(&format!("{f:.14e}")).unwrap_or(Dec::NAN)
    }
}

/// The BSON Decimal128 of `d`.
pub fn to_bson(d: Dec) -> Bson {
    let text = d.to_string();
    let value = bson::Decimal128::from_str(&text)
        .or_else(|_| bson::Decimal128::from_str("NaN"))
        .unwrap_or_else(|_| bson::Decimal128::from_bytes([0; 16]));
    Bson::Decimal128(value)
}

/// True when either operand is a Decimal128 (the result then is one).
pub fn involved(a: &Bson, b: &Bson) -> bool {
    matches!(a, Bson::Decimal128(_)) || matches!(b, Bson::Decimal128(_))
}

fn binary(a: &Bson, b: &Bson, op: fn(Dec, Dec) -> Dec) -> Option<Bson> {
    Some(to_bson(op(of(a)?, of(b)?)))
}

pub fn add(a: &Bson, b: &Bson) -> Option<Bson> {
    binary(a, b, |x, y| x + y)
}

pub fn subtract(a: &Bson, b: &Bson) -> Option<Bson> {
    binary(a, b, |x, y| x - y)
}

pub fn multiply(a: &Bson, b: &Bson) -> Option<Bson> {
    binary(a, b, |x, y| x * y)
}

pub fn divide(a: &Bson, b: &Bson) -> Option<Bson> {
    binary(a, b, |x, y| x / y)
}

/// The decimal `n` (a count, for averages).
pub fn from_count(n: u64) -> Bson {
    to_bson(Dec::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Bson {
        Bson::Decimal128(bson::Decimal128::from_str(s).unwrap())
    }

    #[test]
    fn arithmetic_is_exact_decimal128() {
        assert_eq!(add(&d("0.1"), &d("0.2")), Some(d("0.3")));
        assert_eq!(add(&d("1"), &Bson::Int32(2)), Some(d("3")));
        assert_eq!(
            add(&d("1"), &Bson::Double(0.1)),
            Some(d("1.100000000000000"))
        );
        assert_eq!(
            multiply(&d("1.5"), &Bson::Int64(i64::MAX)),
            Some(d("13835058055282163710.5"))
        );
        assert_eq!(subtract(&d("1E-6176"), &d("1E-6176")), Some(d("0E-6176")));
        assert_eq!(
            divide(&d("1"), &d("3")),
            Some(d("0.3333333333333333333333333333333333"))
        );
        assert_eq!(add(&d("Infinity"), &Bson::Int32(1)), Some(d("Infinity")));
        assert_eq!(add(&Bson::String("x".into()), &d("1")), None);
    }
}
