//! Numbers as mongod's `SafeNum` combines them for `$inc`, `$mul` and `$bit`: an int32
//! result that overflows widens to int64, an int64 overflow is an error (no silent
//! wrap), anything with a double is a double, anything with a decimal a decimal
//! (`query::decimal`).

use bson::Bson;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    I32(i32),
    I64(i64),
    F64(f64),
    Dec(bson::Decimal128),
}

impl Num {
    pub fn of(value: &Bson) -> Option<Num> {
        match value {
            Bson::Int32(n) => Some(Num::I32(*n)),
            Bson::Int64(n) => Some(Num::I64(*n)),
            Bson::Double(f) => Some(Num::F64(*f)),
            Bson::Decimal128(d) => Some(Num::Dec(*d)),
            _ => None,
        }
    }

    pub fn to_bson(self) -> Bson {
        match self {
            Num::I32(n) => Bson::Int32(n),
            Num::I64(n) => Bson::Int64(n),
            Num::F64(f) => Bson::Double(f),
            Num::Dec(d) => Bson::Decimal128(d),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::I32(n) => n as f64,
            Num::I64(n) => n as f64,
            Num::F64(f) => f,
            Num::Dec(_) => f64::NAN,
        }
    }

    fn as_i64(self) -> Option<i64> {
        match self {
            Num::I32(n) => Some(n as i64),
            Num::I64(n) => Some(n),
            Num::F64(_) | Num::Dec(_) => None,
        }
    }

    /// The same type and the same value (SafeNum::isIdentical): a no-op test.
    pub fn identical(self, other: Num) -> bool {
        match (self, other) {
            (Num::I32(a), Num::I32(b)) => a == b,
            (Num::I64(a), Num::I64(b)) => a == b,
            (Num::F64(a), Num::F64(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Num::Dec(a), Num::Dec(b)) => a.bytes() == b.bytes(),
            _ => false,
        }
    }

    /// mongod's debug form for overflow messages: `(NumberLong)9223372036854775807`.
    pub fn debug_string(self) -> String {
        match self {
            Num::I32(n) => format!("(NumberInt){n}"),
            Num::I64(n) => format!("(NumberLong){n}"),
            Num::F64(f) => format!("(NumberDouble){f}"),
            Num::Dec(d) => format!("(NumberDecimal){d}"),
        }
    }

    /// The zero of this number's type ($mul creating a field).
    pub fn zero_like(self) -> Num {
        match self {
            Num::I32(_) => Num::I32(0),
            Num::I64(_) => Num::I64(0),
            Num::F64(_) => Num::F64(0.0),
            Num::Dec(_) => Num::Dec(bson::Decimal128::from_bytes(ZERO_DECIMAL)),
        }
    }
}

/// Decimal128 0 (coefficient 0, exponent 0: the biased exponent 6176 in bits 49..63).
const ZERO_DECIMAL: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x30];

/// A result with a decimal operand is a decimal (SafeNum's decimal branch).
fn decimal(a: Num, b: Num, op: fn(&Bson, &Bson) -> Option<Bson>) -> Option<Num> {
    match op(&a.to_bson(), &b.to_bson())? {
        Bson::Decimal128(d) => Some(Num::Dec(d)),
        _ => None,
    }
}

/// `None` when an int64 result overflows (mongod's invalid SafeNum).
pub fn add(a: Num, b: Num) -> Option<Num> {
    match (a, b) {
        (Num::Dec(_), _) | (_, Num::Dec(_)) => decimal(a, b, crate::query::decimal::add),
        (Num::I32(x), Num::I32(y)) => Some(match x.checked_add(y) {
            Some(n) => Num::I32(n),
            None => Num::I64(x as i64 + y as i64),
        }),
        (Num::F64(_), _) | (_, Num::F64(_)) => Some(Num::F64(a.as_f64() + b.as_f64())),
        _ => a.as_i64()?.checked_add(b.as_i64()?).map(Num::I64),
    }
}

pub fn mul(a: Num, b: Num) -> Option<Num> {
    match (a, b) {
        (Num::Dec(_), _) | (_, Num::Dec(_)) => decimal(a, b, crate::query::decimal::multiply),
        (Num::I32(x), Num::I32(y)) => Some(match x.checked_mul(y) {
            Some(n) => Num::I32(n),
            None => Num::I64(x as i64 * y as i64),
        }),
        (Num::F64(_), _) | (_, Num::F64(_)) => Some(Num::F64(a.as_f64() * b.as_f64())),
        _ => a.as_i64()?.checked_mul(b.as_i64()?).map(Num::I64),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BitOp {
    And,
    Or,
    Xor,
}

/// Bitwise ops on integers: int32 with int32 stays int32, anything with an int64 is int64.
pub fn bit(op: BitOp, a: Num, b: Num) -> Option<Num> {
    let f = |x: i64, y: i64| match op {
        BitOp::And => x & y,
        BitOp::Or => x | y,
        BitOp::Xor => x ^ y,
    };
    match (a, b) {
        (Num::I32(x), Num::I32(y)) => Some(Num::I32(f(x as i64, y as i64) as i32)),
        (Num::F64(_) | Num::Dec(_), _) | (_, Num::F64(_) | Num::Dec(_)) => None,
        _ => Some(Num::I64(f(a.as_i64()?, b.as_i64()?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_follows_safenum() {
        assert_eq!(
            add(Num::I32(i32::MAX), Num::I32(1)),
            Some(Num::I64(1 << 31))
        );
        assert_eq!(add(Num::I64(i64::MAX), Num::I32(1)), None);
        assert_eq!(add(Num::I32(1), Num::F64(0.5)), Some(Num::F64(1.5)));
        assert_eq!(
            mul(Num::I32(1 << 20), Num::I32(1 << 20)),
            Some(Num::I64(1 << 40))
        );
        assert_eq!(mul(Num::I64(i64::MAX), Num::I32(2)), None);
        assert_eq!(bit(BitOp::Or, Num::I32(1), Num::I64(2)), Some(Num::I64(3)));
        assert!(Num::I32(1).identical(Num::I32(1)));
        assert!(!Num::I32(1).identical(Num::I64(1)));
        let dec = |s: &str| Num::Dec(s.parse().unwrap());
        assert_eq!(add(dec("0.1"), Num::I32(1)), Some(dec("1.1")));
        assert_eq!(mul(Num::I64(3), dec("0.5")), Some(dec("1.5")));
        assert_eq!(Num::I32(7).zero_like(), Num::I32(0));
        assert_eq!(dec("7").zero_like(), dec("0"));
    }
}
