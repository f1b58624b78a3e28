//! The aggregation expression evaluator (mongod's src/mongo/db/pipeline/expression.cpp):
//! field paths, variables, literals and the operators listed in `OPERATORS`. Shared by
//! `$expr`, projection expressions, pipeline updates and `aggregate`.
//!
//! Values are `Option<Bson>` inside, `None` being "missing" (a field path that resolves
//! to nothing, `$$REMOVE`), which several operators tell apart from null.
//! `$add`, `$subtract`, `$multiply` and `$divide` with a Decimal128 operand are exact
//! decimal128 arithmetic (`query::decimal`); other numeric operators on decimals go
//! through f64. Comparisons of decimals stay exact (`order`).

use super::decimal;
use super::order::{canonical_rank, compare, is_number};
use crate::error::{Code, CommandError};
use bson::{oid::ObjectId, Bson, DateTime, Decimal128, Document};
use chrono::{Datelike, TimeZone, Timelike};
use std::cmp::Ordering;
use std::str::FromStr;

type V = Option<Bson>;
type R<T = V> = Result<T, CommandError>;

fn err(code: Code, msg: impl Into<String>) -> CommandError {
    CommandError::new(code, msg)
}

/// A parsed aggregation expression.
#[derive(Debug, Clone)]
pub struct Expr {
    node: Node,
}

#[derive(Debug, Clone)]
enum Node {
    Literal(Bson),
    /// `$a.b`: a path from $$CURRENT.
    Field(Vec<String>),
    /// `$$name.a.b`.
    Var(String, Vec<String>),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Op(&'static str, Vec<Node>),
    /// Operators with named arguments.
    Named(&'static str, Vec<(String, Node)>),
}

/// Every operator this evaluator knows; anything else is refused with 168.
pub const OPERATORS: &[&str] = &[
    "$abs",
    "$add",
    "$subtract",
    "$multiply",
    "$divide",
    "$mod",
    "$ceil",
    "$floor",
    "$round",
    "$trunc",
    "$sqrt",
    "$pow",
    "$exp",
    "$ln",
    "$log",
    "$log10",
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$cmp",
    "$and",
    "$or",
    "$not",
    "$cond",
    "$ifNull",
    "$switch",
    "$concat",
    "$substr",
    "$substrBytes",
    "$substrCP",
    "$toLower",
    "$toUpper",
    "$strLenBytes",
    "$strLenCP",
    "$split",
    "$trim",
    "$ltrim",
    "$rtrim",
    "$indexOfBytes",
    "$indexOfCP",
    "$regexMatch",
    "$size",
    "$arrayElemAt",
    "$first",
    "$last",
    "$in",
    "$concatArrays",
    "$filter",
    "$map",
    "$reduce",
    "$slice",
    "$isArray",
    "$range",
    "$reverseArray",
    "$indexOfArray",
    "$type",
    "$toString",
    "$toInt",
    "$toLong",
    "$toDouble",
    "$toDecimal",
    "$toBool",
    "$toObjectId",
    "$toDate",
    "$convert",
    "$isNumber",
    "$year",
    "$month",
    "$dayOfMonth",
    "$hour",
    "$minute",
    "$second",
    "$millisecond",
    "$dayOfWeek",
    "$dayOfYear",
    "$dateToString",
    "$mergeObjects",
    "$getField",
    "$setField",
    "$objectToArray",
    "$arrayToObject",
    "$let",
    "$literal",
];

/// Operators whose argument is a document of named arguments.
const NAMED: &[&str] = &[
    "$switch",
    "$trim",
    "$ltrim",
    "$rtrim",
    "$regexMatch",
    "$filter",
    "$map",
    "$reduce",
    "$convert",
    "$dateToString",
    "$setField",
    "$let",
];

const DATE_PARTS: &[&str] = &[
    "$year",
    "$month",
    "$dayOfMonth",
    "$hour",
    "$minute",
    "$second",
    "$millisecond",
    "$dayOfWeek",
    "$dayOfYear",
];

impl Expr {
    pub fn parse(value: &Bson) -> Result<Expr, CommandError> {
        Ok(Expr {
            node: parse(value, 0)?,
        })
    }

    /// `root` is $$ROOT/$$CURRENT; `vars` the user variables. A missing result is null.
    pub fn evaluate(&self, root: &Document, vars: &Document) -> Result<Bson, CommandError> {
        Ok(self.evaluate_opt(root, vars)?.unwrap_or(Bson::Null))
    }

    /// As `evaluate`, with `None` for a missing result (a projection leaves the field out).
    pub fn evaluate_opt(
        &self,
        root: &Document,
        vars: &Document,
    ) -> Result<Option<Bson>, CommandError> {
        let mut ctx = Ctx {
            root,
            user: vars,
            scoped: Vec::new(),
        };
        eval(&self.node, &mut ctx)
    }

    /// The constant value, when the expression does not depend on the document.
    pub fn as_literal(&self) -> Option<&Bson> {
        match &self.node {
            Node::Literal(v) => Some(v),
            _ => None,
        }
    }
}

const MAX_DEPTH: usize = 150;

fn parse(value: &Bson, depth: usize) -> R<Node> {
    if depth > MAX_DEPTH {
        return Err(err(Code::Overflow, "expression nesting is too deep"));
    }
    match value {
        Bson::String(s) if s.starts_with("$$") => parse_var(&s[2..]),
        Bson::String(s) if s.starts_with('$') => Ok(Node::Field(parse_field_path(&s[1..])?)),
        Bson::Array(items) => Ok(Node::Array(
            items
                .iter()
                .map(|i| parse(i, depth + 1))
                .collect::<R<_>>()?,
        )),
        Bson::Document(d) => parse_object(d, depth),
        other => Ok(Node::Literal(other.clone())),
    }
}

fn parse_field_path(path: &str) -> R<Vec<String>> {
    if path.is_empty() {
        return Err(err(
            Code::Location16872,
            "'$' by itself is not a valid FieldPath",
        ));
    }
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    for p in &parts {
        if p.is_empty() {
            return Err(err(
                Code::Location15998,
                "FieldPath field names may not be empty strings.",
            ));
        }
        if p.starts_with('$') {
            return Err(err(
                Code::Location16410,
                "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
            ));
        }
    }
    Ok(parts)
}

fn parse_var(s: &str) -> R<Node> {
    let (name, rest) = match s.split_once('.') {
        Some((n, r)) => (n, parse_field_path(r)?),
        None => (s, Vec::new()),
    };
    if name.is_empty() {
        return Err(err(
            Code::FailedToParse,
            "empty variable names are not allowed",
        ));
    }
    Ok(Node::Var(name.to_string(), rest))
}

fn parse_object(d: &Document, depth: usize) -> R<Node> {
    let Some(first) = d.keys().next() else {
        return Ok(Node::Object(Vec::new()));
    };
    if first.starts_with('$') {
        if d.len() != 1 {
            return Err(err(
                Code::Location15983,
                format!(
                    "An object representing an expression must have exactly one field: {}",
                    Bson::Document(d.clone())
                ),
            ));
        }
        let (name, arg) = d.iter().next().expect("one field");
        return parse_operator(name, arg, depth);
    }
    let mut fields = Vec::new();
    for (k, v) in d {
        if k.starts_with('$') {
            return Err(err(
                Code::Location16410,
                "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
            ));
        }
        fields.push((k.clone(), parse(v, depth + 1)?));
    }
    Ok(Node::Object(fields))
}

fn arity(name: &str, args: &[Node], min: usize, max: usize) -> R<()> {
    if args.len() < min || args.len() > max {
        let msg = if min == max {
            format!(
                "Expression {name} takes exactly {min} arguments. {} were passed in.",
                args.len()
            )
        } else if max == usize::MAX {
            format!(
                "Expression {name} takes at least {min} arguments, and {} were passed in.",
                args.len()
            )
        } else {
            format!(
                "Expression {name} takes at least {min} arguments, and at most {max}, but {} were passed in.",
                args.len()
            )
        };
        return Err(err(Code::Location16020, msg));
    }
    Ok(())
}

fn parse_operator(name: &str, arg: &Bson, depth: usize) -> R<Node> {
    let Some(&name) = OPERATORS.iter().find(|o| **o == name) else {
        return Err(err(
            Code::InvalidPipelineOperator,
            format!("Unrecognized expression '{name}'"),
        ));
    };
    if name == "$literal" {
        return Ok(Node::Literal(arg.clone()));
    }
    let named_form = NAMED.contains(&name)
        || (name == "$cond" && matches!(arg, Bson::Document(_)))
        || (DATE_PARTS.contains(&name)
            && matches!(arg, Bson::Document(d) if d.contains_key("date")))
        || (name == "$getField" && matches!(arg, Bson::Document(d) if d.contains_key("field")));
    if named_form {
        let Bson::Document(d) = arg else {
            return Err(err(
                Code::FailedToParse,
                format!("{name} only supports an object as its argument"),
            ));
        };
        let mut fields = Vec::new();
        for (k, v) in d {
            // $let's `vars` and $switch's `branches` are parsed as expressions too.
            fields.push((k.clone(), parse(v, depth + 1)?));
        }
        let allowed: &[&str] = match name {
            "$cond" => &["if", "then", "else"],
            "$switch" => &["branches", "default"],
            "$trim" | "$ltrim" | "$rtrim" => &["input", "chars"],
            "$regexMatch" => &["input", "regex", "options"],
            "$filter" => &["input", "as", "cond", "limit"],
            "$map" => &["input", "as", "in"],
            "$reduce" => &["input", "initialValue", "in"],
            "$convert" => &["input", "to", "onError", "onNull"],
            "$dateToString" => &["date", "format", "timezone", "onNull"],
            "$setField" => &["field", "input", "value"],
            "$getField" => &["field", "input"],
            "$let" => &["vars", "in"],
            _ => &["date", "timezone"],
        };
        for (k, _) in &fields {
            if !allowed.contains(&k.as_str()) {
                return Err(err(
                    Code::FailedToParse,
                    format!("Unrecognized parameter to {name}: {k}"),
                ));
            }
        }
        let required: &[&str] = match name {
            "$cond" => &["if", "then", "else"],
            "$switch" => &["branches"],
            "$trim" | "$ltrim" | "$rtrim" | "$regexMatch" | "$filter" | "$map" => &["input"],
            "$reduce" => &["input", "initialValue", "in"],
            "$convert" => &["input", "to"],
            "$dateToString" => &["date"],
            "$setField" => &["field", "input", "value"],
            "$getField" => &["field"],
            "$let" => &["vars", "in"],
            _ => &["date"],
        };
        for r in required {
            if !fields.iter().any(|(k, _)| k == r) {
                return Err(err(
                    Code::FailedToParse,
                    format!("Missing '{r}' parameter to {name}"),
                ));
            }
        }
        if name == "$map" && !fields.iter().any(|(k, _)| k == "in") {
            return Err(err(Code::FailedToParse, "Missing 'in' parameter to $map"));
        }
        if name == "$filter" && !fields.iter().any(|(k, _)| k == "cond") {
            return Err(err(
                Code::FailedToParse,
                "Missing 'cond' parameter to $filter",
            ));
        }
        if name == "$let" && !matches!(d.get("vars"), Some(Bson::Document(_))) {
            return Err(err(
                Code::FailedToParse,
                "invalid parameter: expected an object (vars)",
            ));
        }
        if name == "$switch" {
            let Some(Bson::Array(branches)) = d.get("branches") else {
                return Err(err(
                    Code::Location40068,
                    "$switch expected an array for 'branches'",
                ));
            };
            if branches.is_empty() {
                return Err(err(
                    Code::Location40068,
                    "$switch requires at least one branch.",
                ));
            }
            for b in branches {
                let Bson::Document(b) = b else {
                    return Err(err(
                        Code::Location40068,
                        "$switch expected each branch to be an object",
                    ));
                };
                if !b.contains_key("case") {
                    return Err(err(
                        Code::Location40068,
                        "$switch requires each branch have a 'case' expression",
                    ));
                }
                if !b.contains_key("then") {
                    return Err(err(
                        Code::Location40068,
                        "$switch requires each branch have a 'then' expression.",
                    ));
                }
            }
        }
        return Ok(Node::Named(name, fields));
    }
    let args: Vec<Node> = match arg {
        Bson::Array(items) => items
            .iter()
            .map(|i| parse(i, depth + 1))
            .collect::<R<_>>()?,
        other => vec![parse(other, depth + 1)?],
    };
    let (min, max) = match name {
        "$abs" | "$ceil" | "$floor" | "$sqrt" | "$exp" | "$ln" | "$log10" | "$not" | "$toLower"
        | "$toUpper" | "$strLenBytes" | "$strLenCP" | "$size" | "$first" | "$last" | "$isArray"
        | "$reverseArray" | "$type" | "$toString" | "$toInt" | "$toLong" | "$toDouble"
        | "$toDecimal" | "$toBool" | "$toObjectId" | "$toDate" | "$isNumber" | "$objectToArray"
        | "$arrayToObject" | "$getField" => (1, 1),
        "$year" | "$month" | "$dayOfMonth" | "$hour" | "$minute" | "$second" | "$millisecond"
        | "$dayOfWeek" | "$dayOfYear" => (1, 1),
        "$subtract" | "$divide" | "$mod" | "$pow" | "$log" | "$eq" | "$ne" | "$gt" | "$gte"
        | "$lt" | "$lte" | "$cmp" | "$split" | "$arrayElemAt" | "$in" => (2, 2),
        "$round" | "$trunc" => (1, 2),
        "$cond" | "$substr" | "$substrBytes" | "$substrCP" => (3, 3),
        "$ifNull" => (2, usize::MAX),
        "$indexOfBytes" | "$indexOfCP" => (2, 4),
        "$indexOfArray" => (2, 4),
        "$slice" => (2, 3),
        "$range" => (2, 3),
        _ => (0, usize::MAX),
    };
    arity(name, &args, min, max)?;
    Ok(Node::Op(name, args))
}

// ---------------------------------------------------------------- evaluation

struct Ctx<'a> {
    root: &'a Document,
    user: &'a Document,
    scoped: Vec<(String, V)>,
}

impl Ctx<'_> {
    fn var(&self, name: &str) -> R {
        if let Some((_, v)) = self.scoped.iter().rev().find(|(n, _)| n == name) {
            return Ok(v.clone());
        }
        match name {
            "ROOT" | "CURRENT" => return Ok(Some(Bson::Document(self.root.clone()))),
            "REMOVE" => return Ok(None),
            "NOW" if !self.user.contains_key("NOW") => {
                return Ok(Some(Bson::DateTime(DateTime::now())))
            }
            _ => {}
        }
        match self.user.get(name) {
            Some(v) => Ok(Some(v.clone())),
            None => Err(err(
                Code::Location17276,
                format!("Use of undefined variable: {name}"),
            )),
        }
    }
}

/// A field path from a value, as aggregation resolves it: arrays map the rest of the path
/// over their documents (and nested arrays), dropping what resolves to nothing.
fn get_path(v: &Bson, parts: &[String]) -> V {
    if parts.is_empty() {
        return Some(v.clone());
    }
    match v {
        Bson::Document(d) => d.get(&parts[0]).and_then(|x| get_path(x, &parts[1..])),
        Bson::Array(items) => Some(Bson::Array(
            items
                .iter()
                .filter(|i| matches!(i, Bson::Document(_) | Bson::Array(_)))
                .filter_map(|i| get_path(i, parts))
                .collect(),
        )),
        _ => None,
    }
}

fn named<'n>(fields: &'n [(String, Node)], key: &str) -> Option<&'n Node> {
    fields.iter().find(|(k, _)| k == key).map(|(_, n)| n)
}

fn eval(node: &Node, ctx: &mut Ctx) -> R {
    match node {
        Node::Literal(v) => Ok(Some(v.clone())),
        Node::Field(parts) => Ok(ctx
            .root
            .get(&parts[0])
            .and_then(|v| get_path(v, &parts[1..]))),
        Node::Var(name, parts) => {
            if (name == "CURRENT" || name == "ROOT")
                && !parts.is_empty()
                && !ctx.scoped.iter().any(|(n, _)| n == name)
            {
                return Ok(ctx
                    .root
                    .get(&parts[0])
                    .and_then(|v| get_path(v, &parts[1..])));
            }
            Ok(ctx.var(name)?.and_then(|v| get_path(&v, parts)))
        }
        Node::Object(fields) => {
            let mut out = Document::new();
            for (k, n) in fields {
                if let Some(v) = eval(n, ctx)? {
                    out.insert(k.clone(), v);
                }
            }
            Ok(Some(Bson::Document(out)))
        }
        Node::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for n in items {
                // Missing values inside an array literal become null.
                out.push(eval(n, ctx)?.unwrap_or(Bson::Null));
            }
            Ok(Some(Bson::Array(out)))
        }
        Node::Op(name, args) => eval_op(name, args, ctx),
        Node::Named(name, fields) => eval_named(name, fields, ctx),
    }
}

fn nullish(v: &V) -> bool {
    matches!(v, None | Some(Bson::Null) | Some(Bson::Undefined))
}

fn truthy(v: &V) -> bool {
    match v {
        None => false,
        Some(v) => super::matcher::coerce_to_bool(v),
    }
}

fn type_name(v: &V) -> &'static str {
    match v {
        None => "missing",
        Some(v) => crate::error::type_name(v),
    }
}

fn cmp_values(a: &V, b: &V) -> Ordering {
    let a = a.clone().unwrap_or(Bson::Undefined);
    let b = b.clone().unwrap_or(Bson::Undefined);
    compare(&a, &b)
}

// ---------------------------------------------------------------- numbers

#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i32),
    Long(i64),
    Double(f64),
    Dec(Decimal128),
}

fn num(v: &Bson) -> Option<Num> {
    match v {
        Bson::Int32(n) => Some(Num::Int(*n)),
        Bson::Int64(n) => Some(Num::Long(*n)),
        Bson::Double(f) => Some(Num::Double(*f)),
        Bson::Decimal128(d) => Some(Num::Dec(*d)),
        _ => None,
    }
}

fn dec_to_f64(d: &Decimal128) -> f64 {
    let s = d.to_string();
    match s.as_str() {
        "NaN" | "-NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or(f64::NAN),
    }
}

fn f64_to_dec(f: f64) -> Bson {
    let s = if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        format!("{f:e}")
    };
    Bson::Decimal128(Decimal128::from_str(&s).unwrap_or_else(|_| Decimal128::from_bytes([0; 16])))
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::Int(n) => n as f64,
            Num::Long(n) => n as f64,
            Num::Double(f) => f,
            Num::Dec(d) => dec_to_f64(&d),
        }
    }
    fn rank(self) -> u8 {
        match self {
            Num::Int(_) => 0,
            Num::Long(_) => 1,
            Num::Double(_) => 2,
            Num::Dec(_) => 3,
        }
    }
    fn i(self) -> Option<i64> {
        match self {
            Num::Int(n) => Some(n as i64),
            Num::Long(n) => Some(n),
            _ => None,
        }
    }
}

/// An integer result in the narrowest of int/long that holds it (`widest` the widest input).
fn int_result(n: i128, widest: u8) -> Bson {
    if widest == 0 && n >= i32::MIN as i128 && n <= i32::MAX as i128 {
        Bson::Int32(n as i32)
    } else if n >= i64::MIN as i128 && n <= i64::MAX as i128 {
        Bson::Int64(n as i64)
    } else {
        Bson::Double(n as f64)
    }
}

fn float_result(f: f64, widest: u8) -> Bson {
    if widest == 3 {
        f64_to_dec(f)
    } else {
        Bson::Double(f)
    }
}

fn arith(name: &str, a: Num, b: Num) -> Bson {
    let widest = a.rank().max(b.rank());
    if widest <= 1 {
        let (x, y) = (a.i().unwrap_or(0) as i128, b.i().unwrap_or(0) as i128);
        let r = match name {
            "$add" => x + y,
            "$subtract" => x - y,
            _ => x * y,
        };
        return int_result(r, widest);
    }
    if widest == 3 {
        let op = match name {
            "$add" => decimal::add,
            "$subtract" => decimal::subtract,
            _ => decimal::multiply,
        };
        return op(&num_to_bson(a), &num_to_bson(b)).unwrap_or(Bson::Null);
    }
    let (x, y) = (a.f(), b.f());
    let r = match name {
        "$add" => x + y,
        "$subtract" => x - y,
        _ => x * y,
    };
    float_result(r, widest)
}

fn single_numeric(name: &str, v: &V) -> R<Option<Num>> {
    if nullish(v) {
        return Ok(None);
    }
    let v = v.as_ref().expect("not missing");
    num(v).map(Some).ok_or_else(|| {
        err(
            Code::Location28765,
            format!(
                "{name} only supports numeric types, not {}",
                crate::error::type_name(v)
            ),
        )
    })
}

fn round_to(f: f64, place: i64, trunc: bool) -> f64 {
    let m = 10f64.powi(place as i32);
    let x = f * m;
    // Beyond a double's precision there is nothing to round.
    if !x.is_finite() || x.abs() >= 4.5e15 {
        return f;
    }
    let r = if trunc {
        x.trunc()
    } else {
        // mongod rounds half to even.
        let r = x.round();
        if (x - x.trunc()).abs() == 0.5 {
            2.0 * (x / 2.0).round()
        } else {
            r
        }
    };
    r / m
}

// ---------------------------------------------------------------- strings and dates

fn string_arg(name: &str, v: &V, code: Code) -> R<String> {
    match v {
        Some(Bson::String(s)) | Some(Bson::Symbol(s)) => Ok(s.clone()),
        _ => Err(err(
            code,
            format!("{name} requires a string argument, found: {}", type_name(v)),
        )),
    }
}

fn int_arg(name: &str, v: &V) -> R<i64> {
    match v.as_ref().and_then(num) {
        Some(Num::Int(n)) => Ok(n as i64),
        Some(Num::Long(n)) => Ok(n),
        Some(n @ (Num::Double(_) | Num::Dec(_))) if n.f().fract() == 0.0 && n.f().is_finite() => {
            Ok(n.f() as i64)
        }
        _ => Err(err(
            Code::Location16034,
            format!(
                "{name} requires an integral argument, found: {}",
                type_name(v)
            ),
        )),
    }
}

fn to_millis(v: &Bson) -> R<i64> {
    match v {
        Bson::DateTime(d) => Ok(d.timestamp_millis()),
        Bson::Timestamp(t) => Ok(t.time as i64 * 1000),
        Bson::ObjectId(o) => Ok(o.timestamp().timestamp_millis()),
        other => Err(err(
            Code::Location16006,
            format!(
                "can't convert from BSON type {} to Date",
                crate::error::type_name(other)
            ),
        )),
    }
}

/// A timezone: UTC or a fixed offset (`+hh:mm`, `+hhmm`, `+hh`); Olson names need a
/// time-zone database ferrod does not carry.
fn parse_tz(v: &V) -> R<Option<i32>> {
    match v {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(s)) => {
            if s == "UTC" || s == "Z" || s == "GMT" || s == "Etc/UTC" {
                return Ok(Some(0));
            }
            let bad = || {
                err(
                    Code::Location40485,
                    format!("unrecognized time zone identifier: \"{s}\""),
                )
            };
            let (sign, rest) = match s.as_bytes().first() {
                Some(b'+') => (1, &s[1..]),
                Some(b'-') => (-1, &s[1..]),
                _ => return Err(bad()),
            };
            let digits: String = rest.chars().filter(|c| *c != ':').collect();
            if !digits.chars().all(|c| c.is_ascii_digit())
                || !(digits.len() == 2 || digits.len() == 4)
            {
                return Err(bad());
            }
            let h: i32 = digits[..2].parse().map_err(|_| bad())?;
            let m: i32 = if digits.len() == 4 {
                digits[2..].parse().map_err(|_| bad())?
            } else {
                0
            };
            Ok(Some(sign * (h * 3600 + m * 60)))
        }
        Some(other) => Err(err(
            Code::Location40485,
            format!(
                "timezone must evaluate to a string, found {}",
                crate::error::type_name(other)
            ),
        )),
    }
}

fn datetime(ms: i64, tz: Option<i32>) -> R<chrono::DateTime<chrono::FixedOffset>> {
    let off = chrono::FixedOffset::east_opt(tz.unwrap_or(0))
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
    off.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| err(Code::Location18537, "date is out of range"))
}

fn iso_date(ms: i64) -> String {
    match datetime(ms, None) {
        Ok(d) => d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => ms.to_string(),
    }
}

fn date_to_string(ms: i64, format: &str, tz: Option<i32>) -> R<String> {
    let d = datetime(ms, tz)?;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            return Err(err(
                Code::Location18535,
                "Unmatched '%' at end of format string",
            ));
        };
        let piece = match spec {
            'Y' => format!("{:04}", d.year()),
            'm' => format!("{:02}", d.month()),
            'd' => format!("{:02}", d.day()),
            'H' => format!("{:02}", d.hour()),
            'M' => format!("{:02}", d.minute()),
            'S' => format!("{:02}", d.second()),
            'L' => format!("{:03}", d.timestamp_subsec_millis()),
            'j' => format!("{:03}", d.ordinal()),
            'w' => format!("{}", d.weekday().num_days_from_sunday() + 1),
            'u' => format!("{}", d.weekday().number_from_monday()),
            'U' => format!(
                "{:02}",
                (d.ordinal() + 6 - d.weekday().num_days_from_sunday()) / 7
            ),
            'V' => format!("{:02}", d.iso_week().week()),
            'G' => format!("{:04}", d.iso_week().year()),
            'b' => d.format("%b").to_string(),
            'B' => d.format("%B").to_string(),
            'z' => {
                let s = tz.unwrap_or(0);
                format!(
                    "{}{:02}{:02}",
                    if s < 0 { '-' } else { '+' },
                    s.abs() / 3600,
                    (s.abs() % 3600) / 60
                )
            }
            'Z' => format!("{}", tz.unwrap_or(0) / 60),
            '%' => "%".to_string(),
            other => {
                return Err(err(
                    Code::Location18536,
                    format!("Invalid format character '%{other}' in format string"),
                ))
            }
        };
        out.push_str(&piece);
    }
    Ok(out)
}

fn format_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if f == f.trunc() && f.abs() < 1e15 {
        return format!("{}", f as i64);
    }
    let s = format!("{f}");
    if s.len() > 20 {
        format!("{f:e}").replace('e', "e+").replace("e+-", "e-")
    } else {
        s
    }
}

// ---------------------------------------------------------------- conversion

fn conversion_error(from: &V, to: &str) -> CommandError {
    err(
        Code::ConversionFailure,
        format!(
            "Unsupported conversion from {} to {to} in $convert with no onError value",
            type_name(from)
        ),
    )
}

fn parse_failure(s: &str, to: &str) -> CommandError {
    let _ = to;
    err(
        Code::ConversionFailure,
        format!("Failed to parse number '{s}' in $convert with no onError value: Did not consume whole string."),
    )
}

fn overflow(to: &str, v: &Bson) -> CommandError {
    let _ = to;
    err(
        Code::ConversionFailure,
        format!("Conversion would overflow target type in $convert with no onError value: {v}"),
    )
}

fn convert(v: &V, to: &str) -> R {
    let Some(x) = v else {
        return Ok(Some(Bson::Null));
    };
    if matches!(x, Bson::Null | Bson::Undefined) {
        return Ok(Some(Bson::Null));
    }
    let out = match to {
        "double" => Bson::Double(match x {
            Bson::Boolean(b) => *b as i32 as f64,
            Bson::DateTime(d) => d.timestamp_millis() as f64,
            Bson::String(s) => {
                let t = s.trim();
                if t != s.as_str() || t.is_empty() {
                    return Err(parse_failure(s, to));
                }
                match t.to_ascii_lowercase().as_str() {
                    "nan" => f64::NAN,
                    "inf" | "infinity" => f64::INFINITY,
                    "-inf" | "-infinity" => f64::NEG_INFINITY,
                    _ => t.parse::<f64>().map_err(|_| parse_failure(s, to))?,
                }
            }
            _ => match num(x) {
                Some(n) => n.f(),
                None => return Err(conversion_error(v, to)),
            },
        }),
        "int" | "long" => {
            let (lo, hi) = if to == "int" {
                (i32::MIN as i64, i32::MAX as i64)
            } else {
                (i64::MIN, i64::MAX)
            };
            let n: i64 = match x {
                Bson::Boolean(b) => *b as i64,
                Bson::DateTime(d) if to == "long" => d.timestamp_millis(),
                Bson::String(s) => s.parse::<i64>().map_err(|_| parse_failure(s, to))?,
                Bson::Int32(n) => *n as i64,
                Bson::Int64(n) => *n,
                Bson::Double(_) | Bson::Decimal128(_) => {
                    let f = num(x).map(Num::f).unwrap_or(f64::NAN);
                    if !f.is_finite() {
                        return Err(err(
                            Code::ConversionFailure,
                            format!("Attempt to convert NaN or infinity value to integer type in $convert with no onError value: {x}"),
                        ));
                    }
                    let t = f.trunc();
                    if t < lo as f64 || t >= (hi as f64) + 1.0 {
                        return Err(overflow(to, x));
                    }
                    t as i64
                }
                _ => return Err(conversion_error(v, to)),
            };
            if n < lo || n > hi {
                return Err(overflow(to, x));
            }
            if to == "int" {
                Bson::Int32(n as i32)
            } else {
                Bson::Int64(n)
            }
        }
        "decimal" => match x {
            Bson::Decimal128(_) => x.clone(),
            Bson::Int32(n) => Bson::Decimal128(Decimal128::from_str(&n.to_string()).map_err(|_| conversion_error(v, to))?),
            Bson::Int64(n) => Bson::Decimal128(Decimal128::from_str(&n.to_string()).map_err(|_| conversion_error(v, to))?),
            Bson::Double(f) => f64_to_dec(*f),
            Bson::Boolean(b) => Bson::Decimal128(Decimal128::from_str(if *b { "1" } else { "0" }).map_err(|_| conversion_error(v, to))?),
            Bson::DateTime(d) => Bson::Decimal128(Decimal128::from_str(&d.timestamp_millis().to_string()).map_err(|_| conversion_error(v, to))?),
            Bson::String(s) => Bson::Decimal128(Decimal128::from_str(s).map_err(|_| parse_failure(s, to))?),
            _ => return Err(conversion_error(v, to)),
        },
        "bool" => Bson::Boolean(match x {
            Bson::Boolean(b) => *b,
            _ if is_number(x) => compare(x, &Bson::Int32(0)) != Ordering::Equal,
            _ => true,
        }),
        "string" => Bson::String(match x {
            Bson::String(s) | Bson::Symbol(s) => s.clone(),
            Bson::Boolean(b) => b.to_string(),
            Bson::Int32(n) => n.to_string(),
            Bson::Int64(n) => n.to_string(),
            Bson::Double(f) => format_double(*f),
            Bson::Decimal128(d) => d.to_string(),
            Bson::ObjectId(o) => o.to_hex(),
            Bson::DateTime(d) => iso_date(d.timestamp_millis()),
            _ => return Err(conversion_error(v, to)),
        }),
        "objectId" => match x {
            Bson::ObjectId(_) => x.clone(),
            Bson::String(s) => Bson::ObjectId(ObjectId::parse_str(s).map_err(|_| {
                err(
                    Code::ConversionFailure,
                    format!("Failed to parse objectId '{s}' in $convert with no onError value: Invalid string length for parsing to OID, expected 24 but found {}", s.len()),
                )
            })?),
            _ => return Err(conversion_error(v, to)),
        },
        "date" => match x {
            Bson::DateTime(_) => x.clone(),
            Bson::Int64(n) => Bson::DateTime(DateTime::from_millis(*n)),
            Bson::Double(f) if f.is_finite() => Bson::DateTime(DateTime::from_millis(f.trunc() as i64)),
            Bson::Decimal128(d) => Bson::DateTime(DateTime::from_millis(dec_to_f64(d).trunc() as i64)),
            Bson::ObjectId(o) => Bson::DateTime(o.timestamp()),
            Bson::Timestamp(t) => Bson::DateTime(DateTime::from_millis(t.time as i64 * 1000)),
            Bson::String(s) => Bson::DateTime(DateTime::parse_rfc3339_str(s).map_err(|_| {
                err(
                    Code::ConversionFailure,
                    format!("Error parsing date string '{s}'"),
                )
            })?),
            _ => return Err(conversion_error(v, to)),
        },
        other => {
            return Err(err(
                Code::BadValue,
                format!("Unknown type name: {other}"),
            ))
        }
    };
    Ok(Some(out))
}

fn convert_target(v: &V) -> R<String> {
    match v {
        Some(Bson::String(s)) => Ok(s.clone()),
        Some(n) if is_number(n) => {
            let code = crate::error::whole_number(n).unwrap_or(-100);
            let name = match code {
                1 => "double",
                2 => "string",
                7 => "objectId",
                8 => "bool",
                9 => "date",
                16 => "int",
                18 => "long",
                19 => "decimal",
                _ => return Err(err(Code::BadValue, format!("In $convert, numeric value for 'to' does not correspond to a BSON type: {code}"))),
            };
            Ok(name.to_string())
        }
        _ => Err(err(
            Code::FailedToParse,
            format!(
                "$convert's 'to' argument must be a string or number, but is {}",
                type_name(v)
            ),
        )),
    }
}

// ---------------------------------------------------------------- operators

fn eval_args(args: &[Node], ctx: &mut Ctx) -> R<Vec<V>> {
    args.iter().map(|a| eval(a, ctx)).collect()
}

fn eval_op(name: &'static str, args: &[Node], ctx: &mut Ctx) -> R {
    // Operators that short-circuit evaluate their own arguments.
    match name {
        "$and" => {
            for a in args {
                if !truthy(&eval(a, ctx)?) {
                    return Ok(Some(Bson::Boolean(false)));
                }
            }
            return Ok(Some(Bson::Boolean(true)));
        }
        "$or" => {
            for a in args {
                if truthy(&eval(a, ctx)?) {
                    return Ok(Some(Bson::Boolean(true)));
                }
            }
            return Ok(Some(Bson::Boolean(false)));
        }
        "$cond" => {
            let branch = if truthy(&eval(&args[0], ctx)?) {
                &args[1]
            } else {
                &args[2]
            };
            return eval(branch, ctx);
        }
        "$ifNull" => {
            let (last, rest) = args.split_last().expect("arity checked");
            for a in rest {
                let v = eval(a, ctx)?;
                if !nullish(&v) {
                    return Ok(v);
                }
            }
            return eval(last, ctx);
        }
        _ => {}
    }
    let v = eval_args(args, ctx)?;
    let a0 = v.first().cloned().flatten();
    match name {
        "$add" => {
            let mut date: Option<i64> = None;
            let mut acc = Num::Int(0);
            for x in &v {
                match x {
                    None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(Some(Bson::Null)),
                    Some(Bson::DateTime(d)) => {
                        if date.is_some() {
                            return Err(err(
                                Code::Location16612,
                                "only one date allowed in an $add expression",
                            ));
                        }
                        date = Some(d.timestamp_millis());
                    }
                    Some(b) => match num(b) {
                        Some(n) => {
                            acc = match arith("$add", acc, n) {
                                Bson::Int32(i) => Num::Int(i),
                                Bson::Int64(i) => Num::Long(i),
                                Bson::Double(f) => Num::Double(f),
                                Bson::Decimal128(d) => Num::Dec(d),
                                _ => acc,
                            }
                        }
                        None => {
                            return Err(err(
                                Code::Location16554,
                                format!(
                                    "$add only supports numeric or date types, not {}",
                                    crate::error::type_name(b)
                                ),
                            ))
                        }
                    },
                }
            }
            Ok(Some(match date {
                Some(ms) => Bson::DateTime(DateTime::from_millis(
                    ms.saturating_add(acc.f().round() as i64),
                )),
                None => num_to_bson(acc),
            }))
        }
        "$multiply" => {
            let mut acc = Num::Int(1);
            for x in &v {
                if nullish(x) {
                    return Ok(Some(Bson::Null));
                }
                let b = x.as_ref().expect("not missing");
                let n = num(b).ok_or_else(|| {
                    err(
                        Code::Location16555,
                        format!(
                            "$multiply only supports numeric types, not {}",
                            crate::error::type_name(b)
                        ),
                    )
                })?;
                acc = bson_to_num(&arith("$multiply", acc, n));
            }
            Ok(Some(num_to_bson(acc)))
        }
        "$subtract" => {
            if nullish(&v[0]) || nullish(&v[1]) {
                return Ok(Some(Bson::Null));
            }
            let (x, y) = (v[0].as_ref().expect("set"), v[1].as_ref().expect("set"));
            match (x, y) {
                (Bson::DateTime(a), Bson::DateTime(b)) => Ok(Some(Bson::Int64(
                    a.timestamp_millis().wrapping_sub(b.timestamp_millis()),
                ))),
                (Bson::DateTime(a), n) if is_number(n) => {
                    Ok(Some(Bson::DateTime(DateTime::from_millis(
                        a.timestamp_millis()
                            .saturating_sub(num(n).map(Num::f).unwrap_or(0.0).round() as i64),
                    ))))
                }
                _ => match (num(x), num(y)) {
                    (Some(a), Some(b)) => Ok(Some(arith("$subtract", a, b))),
                    _ => Err(err(
                        Code::Location16556,
                        format!(
                            "cant $subtract a {} from a {}",
                            crate::error::type_name(y),
                            crate::error::type_name(x)
                        ),
                    )),
                },
            }
        }
        "$divide" => {
            if nullish(&v[0]) || nullish(&v[1]) {
                return Ok(Some(Bson::Null));
            }
            let (x, y) = (v[0].as_ref().expect("set"), v[1].as_ref().expect("set"));
            let (Some(a), Some(b)) = (num(x), num(y)) else {
                return Err(err(
                    Code::Location16609,
                    format!(
                        "$divide only supports numeric types, not {} and {}",
                        crate::error::type_name(x),
                        crate::error::type_name(y)
                    ),
                ));
            };
            if b.f() == 0.0 {
                return Err(err(Code::Location16608, "can't $divide by zero"));
            }
            if a.rank().max(b.rank()) == 3 {
                return Ok(decimal::divide(&num_to_bson(a), &num_to_bson(b)));
            }
            Ok(Some(Bson::Double(a.f() / b.f())))
        }
        "$mod" => {
            if nullish(&v[0]) || nullish(&v[1]) {
                return Ok(Some(Bson::Null));
            }
            let (x, y) = (v[0].as_ref().expect("set"), v[1].as_ref().expect("set"));
            let (Some(a), Some(b)) = (num(x), num(y)) else {
                return Err(err(
                    Code::Location16611,
                    format!(
                        "$mod only supports numeric types, not {} and {}",
                        crate::error::type_name(x),
                        crate::error::type_name(y)
                    ),
                ));
            };
            if b.f() == 0.0 && b.rank() <= 1 || b.f() == 0.0 {
                return Err(err(Code::Location16610, "can't $mod by zero"));
            }
            let widest = a.rank().max(b.rank());
            if widest <= 1 {
                let r = (a.i().unwrap_or(0) as i128) % (b.i().unwrap_or(1) as i128);
                return Ok(Some(int_result(r, widest)));
            }
            Ok(Some(float_result(a.f() % b.f(), widest)))
        }
        "$abs" | "$ceil" | "$floor" | "$sqrt" | "$exp" | "$ln" | "$log10" => {
            let Some(n) = single_numeric(name, &v[0])? else {
                return Ok(Some(Bson::Null));
            };
            Ok(Some(match (name, n) {
                ("$abs", Num::Int(i)) => int_result((i as i128).abs(), 0),
                ("$abs", Num::Long(i)) => {
                    if i == i64::MIN {
                        return Err(err(Code::Location28680, "can't take $abs of long long min"));
                    }
                    Bson::Int64(i.abs())
                }
                ("$abs", _) => float_result(n.f().abs(), n.rank()),
                ("$ceil" | "$floor", Num::Int(_) | Num::Long(_)) => num_to_bson(n),
                ("$ceil", _) => float_result(n.f().ceil(), n.rank()),
                ("$floor", _) => float_result(n.f().floor(), n.rank()),
                ("$sqrt", _) => {
                    if n.f() < 0.0 {
                        return Err(err(
                            Code::Location28714,
                            "$sqrt's argument must be greater than or equal to 0",
                        ));
                    }
                    float_result(n.f().sqrt(), n.rank().max(2))
                }
                ("$exp", _) => float_result(n.f().exp(), n.rank().max(2)),
                ("$ln", _) => {
                    if n.f() <= 0.0 {
                        return Err(err(
                            Code::Location28766,
                            format!("$ln's argument must be a positive number, but is {}", n.f()),
                        ));
                    }
                    float_result(n.f().ln(), n.rank().max(2))
                }
                _ => {
                    if n.f() <= 0.0 {
                        return Err(err(
                            Code::Location28761,
                            format!(
                                "$log10's argument must be a positive number, but is {}",
                                n.f()
                            ),
                        ));
                    }
                    float_result(n.f().log10(), n.rank().max(2))
                }
            }))
        }
        "$log" => {
            if nullish(&v[0]) || nullish(&v[1]) {
                return Ok(Some(Bson::Null));
            }
            let (Some(x), Some(b)) = (single_numeric(name, &v[0])?, single_numeric(name, &v[1])?)
            else {
                return Ok(Some(Bson::Null));
            };
            if x.f() <= 0.0 {
                return Err(err(
                    Code::Location28758,
                    format!(
                        "$log's argument must be a positive number, but is {}",
                        x.f()
                    ),
                ));
            }
            if b.f() <= 0.0 || b.f() == 1.0 {
                return Err(err(
                    Code::Location28759,
                    format!(
                        "$log's base must be a positive number not equal to 1, but is {}",
                        b.f()
                    ),
                ));
            }
            Ok(Some(float_result(
                x.f().ln() / b.f().ln(),
                x.rank().max(b.rank()).max(2),
            )))
        }
        "$pow" => {
            if nullish(&v[0]) || nullish(&v[1]) {
                return Ok(Some(Bson::Null));
            }
            let (Some(x), Some(e)) = (single_numeric(name, &v[0])?, single_numeric(name, &v[1])?)
            else {
                return Ok(Some(Bson::Null));
            };
            if x.f() == 0.0 && e.f() < 0.0 {
                return Err(err(
                    Code::Location28764,
                    "$pow cannot take a base of 0 and a negative exponent",
                ));
            }
            let widest = x.rank().max(e.rank());
            if widest <= 1 {
                if let (Some(b), Some(p)) = (x.i(), e.i()) {
                    if p >= 0 {
                        if let Some(r) = u32::try_from(p)
                            .ok()
                            .and_then(|p| (b as i128).checked_pow(p))
                        {
                            if r >= i64::MIN as i128 && r <= i64::MAX as i128 {
                                return Ok(Some(int_result(r, widest)));
                            }
                        }
                    } else if b == 1 || b == -1 {
                        return Ok(Some(int_result(
                            if p % 2 == 0 { 1 } else { b as i128 },
                            widest,
                        )));
                    }
                }
                return Ok(Some(Bson::Double(x.f().powf(e.f()))));
            }
            Ok(Some(float_result(x.f().powf(e.f()), widest)))
        }
        "$round" | "$trunc" => {
            let Some(n) = single_numeric(name, &v[0])? else {
                return Ok(Some(Bson::Null));
            };
            let place = match v.get(1) {
                None => 0,
                Some(p) if nullish(p) => return Ok(Some(Bson::Null)),
                Some(p) => {
                    let p = int_arg(name, p)?;
                    if !(-20..100).contains(&p) {
                        return Err(err(Code::Location51083, format!("cannot apply {name} with precision value {p} value must be in [-20, 100]")));
                    }
                    p
                }
            };
            match n {
                Num::Int(_) | Num::Long(_) if place >= 0 => Ok(Some(num_to_bson(n))),
                Num::Int(_) | Num::Long(_) => {
                    let r = round_to(n.f(), place, name == "$trunc");
                    Ok(Some(int_result(r as i128, n.rank())))
                }
                _ => Ok(Some(float_result(
                    round_to(n.f(), place, name == "$trunc"),
                    n.rank(),
                ))),
            }
        }
        "$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte" | "$cmp" => {
            let o = cmp_values(&v[0], &v[1]);
            Ok(Some(match name {
                "$eq" => Bson::Boolean(o == Ordering::Equal),
                "$ne" => Bson::Boolean(o != Ordering::Equal),
                "$gt" => Bson::Boolean(o == Ordering::Greater),
                "$gte" => Bson::Boolean(o != Ordering::Less),
                "$lt" => Bson::Boolean(o == Ordering::Less),
                "$lte" => Bson::Boolean(o != Ordering::Greater),
                _ => Bson::Int32(o as i32),
            }))
        }
        "$not" => Ok(Some(Bson::Boolean(!truthy(&v[0])))),
        "$concat" => {
            let mut out = String::new();
            for x in &v {
                match x {
                    None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(Some(Bson::Null)),
                    Some(Bson::String(s)) | Some(Bson::Symbol(s)) => out.push_str(s),
                    Some(b) => {
                        return Err(err(
                            Code::Location16702,
                            format!(
                                "$concat only supports strings, not {}",
                                crate::error::type_name(b)
                            ),
                        ))
                    }
                }
            }
            Ok(Some(Bson::String(out)))
        }
        "$substr" | "$substrBytes" | "$substrCP" => {
            let s = match &v[0] {
                None | Some(Bson::Null) | Some(Bson::Undefined) => String::new(),
                Some(Bson::String(s)) | Some(Bson::Symbol(s)) => s.clone(),
                Some(b) if is_number(b) || matches!(b, Bson::DateTime(_)) => {
                    match convert(&v[0], "string")? {
                        Some(Bson::String(s)) => s,
                        _ => String::new(),
                    }
                }
                Some(b) => {
                    return Err(err(
                        Code::Location16007,
                        format!(
                            "can't convert from BSON type {} to String",
                            crate::error::type_name(b)
                        ),
                    ))
                }
            };
            let start = int_arg(name, &v[1])?;
            let len = int_arg(name, &v[2])?;
            if name == "$substrCP" {
                if start < 0 {
                    return Err(err(
                        Code::Location34455,
                        format!("$substrCP: starting index must be non-negative (got: {start})"),
                    ));
                }
                if len < 0 {
                    return Err(err(
                        Code::Location34456,
                        format!("$substrCP: length must be a nonnegative integer (got: {len})"),
                    ));
                }
                let out: String = s.chars().skip(start as usize).take(len as usize).collect();
                return Ok(Some(Bson::String(out)));
            }
            let bytes = s.as_bytes();
            let start = (start.max(0) as usize).min(bytes.len());
            let end = if len < 0 {
                bytes.len()
            } else {
                start.saturating_add(len as usize).min(bytes.len())
            };
            if !s.is_char_boundary(start) {
                return Err(err(
                    Code::Location28656,
                    format!("{name}:  Invalid range, starting index is a UTF-8 continuation byte."),
                ));
            }
            if !s.is_char_boundary(end) {
                return Err(err(Code::Location28657, format!("{name}:  Invalid range, ending index is in the middle of a UTF-8 character.")));
            }
            Ok(Some(Bson::String(s[start..end].to_string())))
        }
        "$toLower" | "$toUpper" => {
            let s = match &v[0] {
                None | Some(Bson::Null) | Some(Bson::Undefined) => String::new(),
                Some(Bson::String(s)) | Some(Bson::Symbol(s)) => s.clone(),
                Some(_) => match convert(&v[0], "string") {
                    Ok(Some(Bson::String(s))) => s,
                    _ => {
                        return Err(err(
                            Code::Location16007,
                            format!(
                                "can't convert from BSON type {} to String",
                                type_name(&v[0])
                            ),
                        ))
                    }
                },
            };
            // mongod changes the case of ASCII letters only.
            Ok(Some(Bson::String(if name == "$toLower" {
                s.to_ascii_lowercase()
            } else {
                s.to_ascii_uppercase()
            })))
        }
        "$strLenBytes" => {
            let s = string_arg(name, &v[0], Code::Location34473).map_err(|_| {
                err(
                    Code::Location34473,
                    format!(
                        "$strLenBytes requires a string argument, found: {}",
                        type_name(&v[0])
                    ),
                )
            })?;
            Ok(Some(Bson::Int32(s.len() as i32)))
        }
        "$strLenCP" => {
            let s = string_arg(name, &v[0], Code::Location34471).map_err(|_| {
                err(
                    Code::Location34471,
                    format!(
                        "$strLenCP requires a string argument, found: {}",
                        type_name(&v[0])
                    ),
                )
            })?;
            Ok(Some(Bson::Int32(s.chars().count() as i32)))
        }
        "$split" => {
            if nullish(&v[0]) {
                return Ok(Some(Bson::Null));
            }
            let s = match &v[0] {
                Some(Bson::String(s)) => s.clone(),
                _ => return Err(err(Code::Location40085, format!("$split requires an expression that evaluates to a string as a first argument, found: {}", type_name(&v[0])))),
            };
            let sep = match &v[1] {
                Some(Bson::String(s)) => s.clone(),
                _ => return Err(err(Code::Location40086, format!("$split requires an expression that evaluates to a string as a second argument, found: {}", type_name(&v[1])))),
            };
            if sep.is_empty() {
                return Err(err(
                    Code::Location40087,
                    "$split requires a non-empty separator",
                ));
            }
            Ok(Some(Bson::Array(
                s.split(sep.as_str())
                    .map(|p| Bson::String(p.to_string()))
                    .collect(),
            )))
        }
        "$indexOfBytes" | "$indexOfCP" => {
            if nullish(&v[0]) {
                return Ok(Some(Bson::Null));
            }
            let s = match &v[0] {
                Some(Bson::String(s)) => s.clone(),
                _ => {
                    return Err(err(
                        Code::Location40091,
                        format!(
                            "{name} requires a string as the first argument, found: {}",
                            type_name(&v[0])
                        ),
                    ))
                }
            };
            let sub = match &v[1] {
                Some(Bson::String(s)) => s.clone(),
                _ => {
                    return Err(err(
                        Code::Location40092,
                        format!(
                            "{name} requires a string as the second argument, found: {}",
                            type_name(&v[1])
                        ),
                    ))
                }
            };
            let start = match v.get(2) {
                Some(x) => int_arg(name, x)?,
                None => 0,
            };
            if start < 0 {
                return Err(err(
                    Code::Location40097,
                    format!("{name} requires a nonnegative start index, found: {start}"),
                ));
            }
            if name == "$indexOfBytes" {
                let end = match v.get(3) {
                    Some(x) => int_arg(name, x)?.max(0) as usize,
                    None => s.len(),
                }
                .min(s.len());
                let start = start as usize;
                if start > end {
                    return Ok(Some(Bson::Int32(-1)));
                }
                let hay = &s.as_bytes()[start..end];
                let pos = hay
                    .windows(sub.len().max(1))
                    .position(|w| w == sub.as_bytes());
                let pos = if sub.is_empty() { Some(0) } else { pos };
                return Ok(Some(Bson::Int32(pos.map_or(-1, |p| (p + start) as i32))));
            }
            let chars: Vec<char> = s.chars().collect();
            let subc: Vec<char> = sub.chars().collect();
            let end = match v.get(3) {
                Some(x) => int_arg(name, x)?.max(0) as usize,
                None => chars.len(),
            }
            .min(chars.len());
            let start = start as usize;
            if start > end {
                return Ok(Some(Bson::Int32(-1)));
            }
            if subc.is_empty() {
                return Ok(Some(Bson::Int32(start as i32)));
            }
            let pos = chars[start..end]
                .windows(subc.len())
                .position(|w| w == subc.as_slice());
            Ok(Some(Bson::Int32(pos.map_or(-1, |p| (p + start) as i32))))
        }
        "$size" => match &a0 {
            Some(Bson::Array(a)) => Ok(Some(Bson::Int32(a.len() as i32))),
            _ => Err(err(
                Code::Location17124,
                format!(
                    "The argument to $size must be an array. Type of argument: {}",
                    type_name(&v[0])
                ),
            )),
        },
        "$arrayElemAt" => {
            if nullish(&v[0]) || nullish(&v[1]) {
                return Ok(Some(Bson::Null));
            }
            let Some(Bson::Array(a)) = &v[0] else {
                return Err(err(
                    Code::Location28689,
                    format!(
                        "$arrayElemAt's first argument must be an array, but is {}",
                        type_name(&v[0])
                    ),
                ));
            };
            let idx = match v[1].as_ref().and_then(num) {
                Some(n) => match n {
                    Num::Int(i) => i as i64,
                    Num::Long(i) if i >= i32::MIN as i64 && i <= i32::MAX as i64 => i,
                    n @ (Num::Double(_) | Num::Dec(_))
                        if n.f().fract() == 0.0
                            && n.f() >= i32::MIN as f64
                            && n.f() <= i32::MAX as f64 =>
                    {
                        n.f() as i64
                    }
                    _ => return Err(err(
                        Code::Location28691,
                        "$arrayElemAt's second argument must be representable as a 32-bit integer",
                    )),
                },
                None => {
                    return Err(err(
                        Code::Location28690,
                        format!(
                            "$arrayElemAt's second argument must be a numeric value, but is {}",
                            type_name(&v[1])
                        ),
                    ))
                }
            };
            let i = if idx < 0 { a.len() as i64 + idx } else { idx };
            Ok(if i < 0 {
                None
            } else {
                a.get(i as usize).cloned()
            })
        }
        "$first" | "$last" => {
            if nullish(&v[0]) {
                return Ok(Some(Bson::Null));
            }
            let Some(Bson::Array(a)) = &v[0] else {
                return Err(err(
                    Code::Location28689,
                    format!(
                        "{name}'s argument must be an array, but is {}",
                        type_name(&v[0])
                    ),
                ));
            };
            Ok(if name == "$first" {
                a.first().cloned()
            } else {
                a.last().cloned()
            })
        }
        "$in" => {
            let Some(Bson::Array(a)) = &v[1] else {
                return Err(err(
                    Code::Location40081,
                    format!(
                        "$in requires an array as a second argument, found: {}",
                        type_name(&v[1])
                    ),
                ));
            };
            Ok(Some(Bson::Boolean(a.iter().any(|x| {
                cmp_values(&Some(x.clone()), &v[0]) == Ordering::Equal
            }))))
        }
        "$concatArrays" => {
            let mut out = Vec::new();
            for x in &v {
                match x {
                    None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(Some(Bson::Null)),
                    Some(Bson::Array(a)) => out.extend(a.iter().cloned()),
                    Some(b) => {
                        return Err(err(
                            Code::Location28664,
                            format!(
                                "$concatArrays only supports arrays, not {}",
                                crate::error::type_name(b)
                            ),
                        ))
                    }
                }
            }
            Ok(Some(Bson::Array(out)))
        }
        "$slice" => {
            if v.iter().any(nullish) {
                return Ok(Some(Bson::Null));
            }
            let Some(Bson::Array(a)) = &v[0] else {
                return Err(err(
                    Code::Location28724,
                    format!(
                        "First argument to $slice must be an array, but is of type: {}",
                        type_name(&v[0])
                    ),
                ));
            };
            let len = a.len() as i64;
            let (start, n) = if v.len() == 2 {
                let n = int_arg(name, &v[1])?;
                if n >= 0 {
                    (0, n)
                } else {
                    ((len + n).max(0), -n)
                }
            } else {
                let pos = int_arg(name, &v[1])?;
                let n = int_arg(name, &v[2])?;
                if n <= 0 {
                    return Err(err(
                        Code::Location28729,
                        format!("Third argument to $slice must be positive: {n}"),
                    ));
                }
                let start = if pos < 0 {
                    (len + pos).max(0)
                } else {
                    pos.min(len)
                };
                (start, n)
            };
            let start = start.min(len) as usize;
            let end = (start as i64 + n).min(len) as usize;
            Ok(Some(Bson::Array(a[start..end].to_vec())))
        }
        "$isArray" => Ok(Some(Bson::Boolean(matches!(a0, Some(Bson::Array(_)))))),
        "$range" => {
            // Each bound must be a 32-bit integer, as mongod requires.
            let bound = |x: &V, which: &str, code: Code| -> R<i64> {
                match x.as_ref().and_then(num) {
                    Some(n) => match int_arg(name, x) {
                        Ok(i) if i >= i32::MIN as i64 && i <= i32::MAX as i64 => Ok(i),
                        _ => Err(err(
                            code,
                            format!("$range requires a {which} value that can be represented as a 32-bit integer, found value: {}", num_to_bson(n)),
                        )),
                    },
                    None => Err(err(
                        code,
                        format!("$range requires a numeric {which} value, found value of type: {}", type_name(x)),
                    )),
                }
            };
            let start = bound(&v[0], "starting", Code::Location34443)?;
            let end = bound(&v[1], "ending", Code::Location34445)?;
            let step = match v.get(2) {
                Some(x) => bound(x, "step", Code::Location34447)?,
                None => 1,
            };
            if step == 0 {
                return Err(err(
                    Code::Location34449,
                    "$range requires a non-zero step value",
                ));
            }
            let mut out = Vec::new();
            let mut i = start;
            while (step > 0 && i < end) || (step < 0 && i > end) {
                out.push(Bson::Int32(i as i32));
                if out.len() > 10_000_000 {
                    return Err(err(
                        Code::ExceededMemoryLimit,
                        "$range would use too much memory",
                    ));
                }
                i += step;
            }
            Ok(Some(Bson::Array(out)))
        }
        "$reverseArray" => match &v[0] {
            None | Some(Bson::Null) | Some(Bson::Undefined) => Ok(Some(Bson::Null)),
            Some(Bson::Array(a)) => Ok(Some(Bson::Array(a.iter().rev().cloned().collect()))),
            _ => Err(err(
                Code::Location34435,
                format!(
                    "The argument to $reverseArray must be an array, but was of type: {}",
                    type_name(&v[0])
                ),
            )),
        },
        "$indexOfArray" => {
            if nullish(&v[0]) {
                return Ok(Some(Bson::Null));
            }
            let Some(Bson::Array(a)) = &v[0] else {
                return Err(err(
                    Code::Location40090,
                    format!(
                        "$indexOfArray requires an array as a first argument, found: {}",
                        type_name(&v[0])
                    ),
                ));
            };
            let start = match v.get(2) {
                Some(x) => int_arg(name, x)?.max(0) as usize,
                None => 0,
            };
            let end = match v.get(3) {
                Some(x) => int_arg(name, x)?.max(0) as usize,
                None => a.len(),
            }
            .min(a.len());
            let pos =
                (start..end).find(|&i| cmp_values(&Some(a[i].clone()), &v[1]) == Ordering::Equal);
            Ok(Some(Bson::Int32(pos.map_or(-1, |p| p as i32))))
        }
        "$type" => Ok(Some(Bson::String(type_name(&v[0]).to_string()))),
        "$isNumber" => Ok(Some(Bson::Boolean(a0.as_ref().is_some_and(is_number)))),
        "$toString" => convert(&v[0], "string"),
        "$toInt" => convert(&v[0], "int"),
        "$toLong" => convert(&v[0], "long"),
        "$toDouble" => convert(&v[0], "double"),
        "$toDecimal" => convert(&v[0], "decimal"),
        "$toBool" => convert(&v[0], "bool"),
        "$toObjectId" => convert(&v[0], "objectId"),
        "$toDate" => convert(&v[0], "date"),
        "$year" | "$month" | "$dayOfMonth" | "$hour" | "$minute" | "$second" | "$millisecond"
        | "$dayOfWeek" | "$dayOfYear" => date_part(name, &v[0], None),
        "$mergeObjects" => {
            let mut out = Document::new();
            for x in &v {
                match x {
                    None | Some(Bson::Null) | Some(Bson::Undefined) => {}
                    Some(Bson::Document(d)) => {
                        for (k, val) in d {
                            out.insert(k.clone(), val.clone());
                        }
                    }
                    Some(b) => {
                        return Err(err(
                            Code::Location40400,
                            format!(
                                "$mergeObjects requires object inputs, but input {b} is of type {}",
                                crate::error::type_name(b)
                            ),
                        ))
                    }
                }
            }
            Ok(Some(Bson::Document(out)))
        }
        "$getField" => {
            let Some(Bson::String(f)) = &v[0] else {
                return Err(err(
                    Code::Location5654602,
                    "$getField requires 'field' to evaluate to type String",
                ));
            };
            Ok(ctx.root.get(f).cloned())
        }
        "$objectToArray" => match &v[0] {
            None | Some(Bson::Null) | Some(Bson::Undefined) => Ok(Some(Bson::Null)),
            Some(Bson::Document(d)) => Ok(Some(Bson::Array(
                d.iter()
                    .map(|(k, x)| Bson::Document(bson::doc! {"k": k.clone(), "v": x.clone()}))
                    .collect(),
            ))),
            _ => Err(err(
                Code::Location40390,
                format!(
                    "$objectToArray requires a document input, found: {}",
                    type_name(&v[0])
                ),
            )),
        },
        "$arrayToObject" => {
            let a = match &v[0] {
                None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(Some(Bson::Null)),
                Some(Bson::Array(a)) => a,
                _ => {
                    return Err(err(
                        Code::Location40386,
                        format!(
                            "$arrayToObject requires an array input, found: {}",
                            type_name(&v[0])
                        ),
                    ))
                }
            };
            let mut out = Document::new();
            for item in a {
                match item {
                    Bson::Array(pair) if pair.len() == 2 => {
                        let Bson::String(k) = &pair[0] else {
                            return Err(err(Code::Location40395, "$arrayToObject requires an array of key-value pairs, where the key must be of type string"));
                        };
                        out.insert(k.clone(), pair[1].clone());
                    }
                    Bson::Document(d)
                        if d.len() == 2 && d.contains_key("k") && d.contains_key("v") =>
                    {
                        let Some(Bson::String(k)) = d.get("k") else {
                            return Err(err(Code::Location40394, "$arrayToObject requires an object with keys 'k' and 'v', where the value of 'k' must be of type string"));
                        };
                        out.insert(k.clone(), d.get("v").cloned().unwrap_or(Bson::Null));
                    }
                    _ => {
                        return Err(err(
                            Code::Location40398,
                            "Unrecognised input type format for $arrayToObject",
                        ))
                    }
                }
            }
            Ok(Some(Bson::Document(out)))
        }
        other => Err(err(
            Code::InvalidPipelineOperator,
            format!("Unrecognized expression '{other}'"),
        )),
    }
}

fn num_to_bson(n: Num) -> Bson {
    match n {
        Num::Int(i) => Bson::Int32(i),
        Num::Long(i) => Bson::Int64(i),
        Num::Double(f) => Bson::Double(f),
        Num::Dec(d) => Bson::Decimal128(d),
    }
}

fn bson_to_num(b: &Bson) -> Num {
    num(b).unwrap_or(Num::Double(f64::NAN))
}

fn date_part(name: &str, v: &V, tz: Option<i32>) -> R {
    if nullish(v) {
        return Ok(Some(Bson::Null));
    }
    let ms = to_millis(v.as_ref().expect("set"))?;
    let d = datetime(ms, tz)?;
    let n = match name {
        "$year" => d.year(),
        "$month" => d.month() as i32,
        "$dayOfMonth" => d.day() as i32,
        "$hour" => d.hour() as i32,
        "$minute" => d.minute() as i32,
        "$second" => d.second() as i32,
        "$millisecond" => d.timestamp_subsec_millis() as i32,
        "$dayOfWeek" => d.weekday().num_days_from_sunday() as i32 + 1,
        _ => d.ordinal() as i32,
    };
    Ok(Some(Bson::Int32(n)))
}

fn var_name(fields: &[(String, Node)], default: &str) -> R<String> {
    match named(fields, "as") {
        None => Ok(default.to_string()),
        Some(Node::Literal(Bson::String(s))) => Ok(s.clone()),
        Some(_) => Err(err(Code::FailedToParse, "'as' must be a string")),
    }
}

fn eval_named(name: &'static str, fields: &[(String, Node)], ctx: &mut Ctx) -> R {
    let get = |key: &str| named(fields, key);
    match name {
        "$cond" => {
            let c = eval(get("if").expect("checked"), ctx)?;
            eval(
                get(if truthy(&c) { "then" } else { "else" }).expect("checked"),
                ctx,
            )
        }
        "$switch" => {
            let Some(Node::Array(branches)) = get("branches") else {
                return Err(err(
                    Code::Location40068,
                    "$switch expected an array for 'branches'",
                ));
            };
            for b in branches {
                let Node::Object(parts) = b else { continue };
                let case = named(parts, "case").expect("checked");
                if truthy(&eval(case, ctx)?) {
                    return eval(named(parts, "then").expect("checked"), ctx);
                }
            }
            match get("default") {
                Some(d) => eval(d, ctx),
                None => Err(err(
                    Code::Location40066,
                    "$switch could not find a matching branch for an input, and no default was specified.",
                )),
            }
        }
        "$let" => {
            let Some(Node::Object(vars)) = get("vars") else {
                return Err(err(
                    Code::FailedToParse,
                    "invalid parameter: expected an object (vars)",
                ));
            };
            let mut values = Vec::new();
            for (k, n) in vars {
                values.push((k.clone(), eval(n, ctx)?));
            }
            let depth = ctx.scoped.len();
            ctx.scoped.extend(values);
            let out = eval(get("in").expect("checked"), ctx);
            ctx.scoped.truncate(depth);
            out
        }
        "$filter" | "$map" => {
            let input = eval(get("input").expect("checked"), ctx)?;
            let items = match input {
                None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(Some(Bson::Null)),
                Some(Bson::Array(a)) => a,
                other => {
                    return Err(err(
                        if name == "$map" {
                            Code::Location16883
                        } else {
                            Code::Location28651
                        },
                        format!("input to {name} must be an array not {}", type_name(&other)),
                    ))
                }
            };
            let var = var_name(fields, "this")?;
            let limit = match get("limit") {
                Some(l) => {
                    let l = eval(l, ctx)?;
                    if nullish(&l) {
                        None
                    } else {
                        let n = int_arg(name, &l)?;
                        if n < 1 {
                            return Err(err(
                                Code::Location327391,
                                format!("$filter: limit must be greater than 0: {n}"),
                            ));
                        }
                        Some(n as usize)
                    }
                }
                None => None,
            };
            let body = get(if name == "$map" { "in" } else { "cond" }).expect("checked");
            let mut out = Vec::new();
            for item in items {
                ctx.scoped.push((var.clone(), Some(item.clone())));
                let r = eval(body, ctx);
                ctx.scoped.pop();
                let r = r?;
                if name == "$map" {
                    out.push(r.unwrap_or(Bson::Null));
                } else if truthy(&r) {
                    out.push(item);
                    if limit.is_some_and(|l| out.len() >= l) {
                        break;
                    }
                }
            }
            Ok(Some(Bson::Array(out)))
        }
        "$reduce" => {
            let input = eval(get("input").expect("checked"), ctx)?;
            let items = match input {
                None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(Some(Bson::Null)),
                Some(Bson::Array(a)) => a,
                other => {
                    return Err(err(
                        Code::Location40080,
                        format!(
                            "$reduce requires that 'input' be an array, found: {}",
                            type_name(&other)
                        ),
                    ))
                }
            };
            let mut acc = eval(get("initialValue").expect("checked"), ctx)?;
            let body = get("in").expect("checked");
            for item in items {
                ctx.scoped.push(("value".to_string(), acc.clone()));
                ctx.scoped.push(("this".to_string(), Some(item)));
                let r = eval(body, ctx);
                ctx.scoped.truncate(ctx.scoped.len() - 2);
                acc = r?;
            }
            Ok(acc)
        }
        "$trim" | "$ltrim" | "$rtrim" => {
            let input = eval(get("input").expect("checked"), ctx)?;
            if nullish(&input) {
                return Ok(Some(Bson::Null));
            }
            let Some(Bson::String(s)) = input else {
                return Err(err(
                    Code::Location50699,
                    format!(
                        "{name} requires its input to be a string, got {} instead.",
                        type_name(&input)
                    ),
                ));
            };
            let chars: Option<Vec<char>> = match get("chars") {
                None => None,
                Some(c) => match eval(c, ctx)? {
                    None | Some(Bson::Null) => return Ok(Some(Bson::Null)),
                    Some(Bson::String(c)) => Some(c.chars().collect()),
                    other => {
                        return Err(err(
                            Code::Location50700,
                            format!(
                                "{name} requires 'chars' to be a string, got {} instead.",
                                type_name(&other)
                            ),
                        ))
                    }
                },
            };
            // mongod's default set: whitespace and the null character.
            let is_trim = |c: char| match &chars {
                Some(set) => set.contains(&c),
                None => c == '\0' || c.is_whitespace(),
            };
            let out = match name {
                "$trim" => s.trim_matches(is_trim),
                "$ltrim" => s.trim_start_matches(is_trim),
                _ => s.trim_end_matches(is_trim),
            };
            Ok(Some(Bson::String(out.to_string())))
        }
        "$regexMatch" => {
            let input = eval(get("input").expect("checked"), ctx)?;
            let regex = match get("regex") {
                Some(r) => eval(r, ctx)?,
                None => {
                    return Err(err(
                        Code::Location31022,
                        "$regexMatch requires 'regex' parameter",
                    ))
                }
            };
            let options = match get("options") {
                Some(o) => eval(o, ctx)?,
                None => None,
            };
            let (pattern, mut flags) = match &regex {
                None | Some(Bson::Null) => return Ok(Some(Bson::Boolean(false))),
                Some(Bson::String(p)) => (p.clone(), String::new()),
                Some(Bson::RegularExpression(r)) => (r.pattern.clone(), r.options.clone()),
                other => {
                    return Err(err(
                        Code::Location51105,
                        format!(
                            "$regexMatch needs 'regex' to be of type string or regex, found: {}",
                            type_name(other)
                        ),
                    ))
                }
            };
            match &options {
                None | Some(Bson::Null) => {}
                Some(Bson::String(o)) => {
                    if !flags.is_empty() && !o.is_empty() {
                        return Err(err(Code::Location51075, "$regexMatch: found regex options specified in both 'regex' and 'options' fields"));
                    }
                    flags = o.clone();
                }
                other => {
                    return Err(err(
                        Code::Location51106,
                        format!(
                            "$regexMatch needs 'options' to be of type string, found: {}",
                            type_name(other)
                        ),
                    ))
                }
            }
            let s = match &input {
                None | Some(Bson::Null) => return Ok(Some(Bson::Boolean(false))),
                Some(Bson::String(s)) => s.clone(),
                other => {
                    return Err(err(
                        Code::Location51104,
                        format!(
                            "$regexMatch needs 'input' to be of type string, found: {}",
                            type_name(other)
                        ),
                    ))
                }
            };
            let re = super::matcher::Re::new(&pattern, &flags)?;
            Ok(Some(Bson::Boolean(re.matches(&Bson::String(s)))))
        }
        "$convert" => {
            let input = eval(get("input").expect("checked"), ctx)?;
            let to = convert_target(&eval(get("to").expect("checked"), ctx)?)?;
            if nullish(&input) {
                return match get("onNull") {
                    Some(n) => eval(n, ctx),
                    None => Ok(Some(Bson::Null)),
                };
            }
            match convert(&input, &to) {
                Ok(v) => Ok(v),
                Err(e) if e.code == Code::ConversionFailure => match get("onError") {
                    Some(n) => eval(n, ctx),
                    None => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        "$dateToString" => {
            let date = eval(get("date").expect("checked"), ctx)?;
            let tz = match get("timezone") {
                Some(t) => parse_tz(&eval(t, ctx)?)?,
                None => None,
            };
            let format = match get("format") {
                Some(f) => match eval(f, ctx)? {
                    Some(Bson::String(s)) => Some(s),
                    None | Some(Bson::Null) => return Ok(Some(Bson::Null)),
                    other => return Err(err(Code::Location18533, format!("$dateToString requires that 'format' be a string, found: {} with value {}", type_name(&other), other.unwrap_or(Bson::Null)))),
                },
                None => None,
            };
            if nullish(&date) {
                return match get("onNull") {
                    Some(n) => eval(n, ctx),
                    None => Ok(Some(Bson::Null)),
                };
            }
            let ms = to_millis(date.as_ref().expect("set"))?;
            let format = format.unwrap_or_else(|| {
                if tz.unwrap_or(0) == 0 {
                    "%Y-%m-%dT%H:%M:%S.%LZ".to_string()
                } else {
                    "%Y-%m-%dT%H:%M:%S.%L".to_string()
                }
            });
            Ok(Some(Bson::String(date_to_string(ms, &format, tz)?)))
        }
        "$getField" => {
            let field = eval(get("field").expect("checked"), ctx)?;
            let Some(Bson::String(f)) = field else {
                return Err(err(
                    Code::Location5654602,
                    "$getField requires 'field' to evaluate to type String",
                ));
            };
            let input = match get("input") {
                Some(i) => eval(i, ctx)?,
                None => Some(Bson::Document(ctx.root.clone())),
            };
            match input {
                None | Some(Bson::Null) | Some(Bson::Undefined) => {
                    Ok(Some(Bson::Null)).map(|_| None)
                }
                Some(Bson::Document(d)) => Ok(d.get(&f).cloned()),
                Some(_) => Ok(None),
            }
        }
        "$setField" => {
            let Some(Node::Literal(Bson::String(f))) = get("field") else {
                return Err(err(Code::Location4161106, "$setField requires 'field' to evaluate to a constant, but got a non-constant argument"));
            };
            let input = eval(get("input").expect("checked"), ctx)?;
            let value = eval(get("value").expect("checked"), ctx)?;
            let mut d = match input {
                None | Some(Bson::Null) | Some(Bson::Undefined) => return Ok(Some(Bson::Null)),
                Some(Bson::Document(d)) => d,
                other => {
                    return Err(err(
                        Code::Location4161105,
                        format!(
                            "$setField requires 'input' to evaluate to type Object, found: {}",
                            type_name(&other)
                        ),
                    ))
                }
            };
            match value {
                Some(v) => {
                    d.insert(f.clone(), v);
                }
                None => {
                    d.remove(f);
                }
            }
            Ok(Some(Bson::Document(d)))
        }
        _ => {
            // Date parts in their {date, timezone} form.
            let date = eval(get("date").expect("checked"), ctx)?;
            let tz = match get("timezone") {
                Some(t) => parse_tz(&eval(t, ctx)?)?,
                None => None,
            };
            date_part(name, &date, tz)
        }
    }
}

/// The canonical type rank of an expression value (missing ranks with undefined).
pub fn rank_of(v: &Option<Bson>) -> i32 {
    v.as_ref().map_or(0, canonical_rank)
}
