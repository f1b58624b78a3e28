//! Stand-ins, with the contract's names and signatures, for the filter matcher, the sort
//! specification and the expression evaluator that `query::matcher`, `query::sort` and
//! `query::expr` provide once they land. They hold only what the pipeline's own tests
//! need (equality, comparisons, `$in`, `$exists`, `$and/$or/$nor`, `$expr`; a few
//! expression operators); `pipeline::lang` switches to the real modules by changing its
//! `use` lines, nothing else in the pipeline names these types.

use super::group::add_numbers;
use crate::error::{Code, CommandError};
use crate::query::order::{canonical_rank, compare, is_number, values_equal};
use bson::{Bson, Document};
use std::cmp::Ordering;

fn bad_value(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::BadValue, msg)
}

/// The values a dotted path reaches, arrays along the way expanded as a query does
/// (the array itself and each of its elements are candidates).
fn path_candidates(value: &Bson, path: &[&str], out: &mut Vec<Bson>) {
    let Some((first, rest)) = path.split_first() else {
        if let Bson::Array(items) = value {
            out.extend(items.iter().cloned());
        }
        out.push(value.clone());
        return;
    };
    match value {
        Bson::Document(d) => {
            if let Some(v) = d.get(*first) {
                path_candidates(v, rest, out)
            }
        }
        Bson::Array(items) => {
            if let Ok(i) = first.parse::<usize>() {
                if let Some(v) = items.get(i) {
                    path_candidates(v, rest, out);
                }
            }
            for item in items {
                if let Bson::Document(_) = item {
                    path_candidates(item, path, out);
                }
            }
        }
        _ => {}
    }
}

fn candidates(doc: &Document, path: &str) -> Vec<Bson> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    path_candidates(&Bson::Document(doc.clone()), &parts, &mut out);
    out
}

#[derive(Clone, Debug)]
enum Pred {
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Nor(Vec<Pred>),
    Field(String, FieldOp),
    Expr(Box<Expr>, Document),
}

#[derive(Clone, Debug)]
enum FieldOp {
    Cmp(Ordering, bool, Bson),
    Ne(Bson),
    In(Vec<Bson>),
    Nin(Vec<Bson>),
    Exists(bool),
}

/// A query filter (stand-in for `query::matcher::Filter`).
#[derive(Clone, Debug)]
pub struct Filter {
    pred: Pred,
    empty: bool,
}

impl Filter {
    pub fn parse(filter: &Document) -> Result<Filter, CommandError> {
        Self::parse_with_vars(filter, &Document::new())
    }

    pub fn parse_with_vars(filter: &Document, let_vars: &Document) -> Result<Filter, CommandError> {
        Ok(Filter {
            pred: parse_pred(filter, let_vars)?,
            empty: filter.is_empty(),
        })
    }

    pub fn matches(&self, doc: &Document) -> bool {
        eval_pred(&self.pred, doc)
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }
}

fn parse_list(value: &Bson, op: &str, vars: &Document) -> Result<Vec<Pred>, CommandError> {
    let Bson::Array(items) = value else {
        return Err(bad_value(format!("{op} must be an array")));
    };
    if items.is_empty() {
        return Err(bad_value(
            "$and/$or/$nor must be a nonempty array".to_string(),
        ));
    }
    items
        .iter()
        .map(|i| match i {
            Bson::Document(d) => parse_pred(d, vars),
            _ => Err(bad_value("$or/$and/$nor entries need to be full objects")),
        })
        .collect()
}

fn parse_pred(filter: &Document, vars: &Document) -> Result<Pred, CommandError> {
    let mut preds = Vec::new();
    for (key, value) in filter {
        match key.as_str() {
            "$and" => preds.push(Pred::And(parse_list(value, key, vars)?)),
            "$or" => preds.push(Pred::Or(parse_list(value, key, vars)?)),
            "$nor" => preds.push(Pred::Nor(parse_list(value, key, vars)?)),
            "$expr" => preds.push(Pred::Expr(Box::new(Expr::parse(value)?), vars.clone())),
            "$comment" => {}
            k if k.starts_with('$') => {
                return Err(bad_value(format!("unknown top level operator: {k}")))
            }
            _ => match value {
                Bson::Document(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$')) => {
                    let mut field = Vec::new();
                    for (op, arg) in ops {
                        let fop = match op.as_str() {
                            "$eq" => FieldOp::Cmp(Ordering::Equal, true, arg.clone()),
                            "$gt" => FieldOp::Cmp(Ordering::Greater, false, arg.clone()),
                            "$gte" => FieldOp::Cmp(Ordering::Greater, true, arg.clone()),
                            "$lt" => FieldOp::Cmp(Ordering::Less, false, arg.clone()),
                            "$lte" => FieldOp::Cmp(Ordering::Less, true, arg.clone()),
                            "$ne" => FieldOp::Ne(arg.clone()),
                            "$in" | "$nin" => {
                                let Bson::Array(items) = arg else {
                                    return Err(bad_value("$in needs an array"));
                                };
                                if op == "$in" {
                                    FieldOp::In(items.clone())
                                } else {
                                    FieldOp::Nin(items.clone())
                                }
                            }
                            "$exists" => FieldOp::Exists(
                                !(matches!(arg, Bson::Boolean(false) | Bson::Null)
                                    || is_number(arg)
                                        && compare(arg, &Bson::Int32(0)) == Ordering::Equal),
                            ),
                            other => return Err(bad_value(format!("unknown operator: {other}"))),
                        };
                        field.push(Pred::Field(key.clone(), fop));
                    }
                    preds.push(Pred::And(field));
                }
                _ => preds.push(Pred::Field(
                    key.clone(),
                    FieldOp::Cmp(Ordering::Equal, true, value.clone()),
                )),
            },
        }
    }
    Ok(Pred::And(preds))
}

fn cmp_matches(candidate: &Bson, ord: Ordering, or_equal: bool, arg: &Bson) -> bool {
    let c = compare(candidate, arg);
    if c == Ordering::Equal {
        return or_equal;
    }
    // Type bracketing: ranges only match values of the argument's bracket.
    c == ord && canonical_rank(candidate) == canonical_rank(arg)
}

fn field_matches(doc: &Document, path: &str, op: &FieldOp) -> bool {
    let found = candidates(doc, path);
    let eq_any = |arg: &Bson| {
        if matches!(arg, Bson::Null) && found.iter().all(|v| !matches!(v, Bson::Null)) {
            // null matches a missing field.
            return found.is_empty() || found.iter().any(|v| matches!(v, Bson::Null));
        }
        found.iter().any(|v| values_equal(v, arg))
    };
    match op {
        FieldOp::Cmp(Ordering::Equal, _, arg) => eq_any(arg),
        FieldOp::Cmp(ord, or_equal, arg) => {
            found.iter().any(|v| cmp_matches(v, *ord, *or_equal, arg))
        }
        FieldOp::Ne(arg) => !eq_any(arg),
        FieldOp::In(items) => items.iter().any(eq_any),
        FieldOp::Nin(items) => !items.iter().any(eq_any),
        FieldOp::Exists(want) => found.is_empty() != *want,
    }
}

fn eval_pred(pred: &Pred, doc: &Document) -> bool {
    match pred {
        Pred::And(ps) => ps.iter().all(|p| eval_pred(p, doc)),
        Pred::Or(ps) => ps.iter().any(|p| eval_pred(p, doc)),
        Pred::Nor(ps) => !ps.iter().any(|p| eval_pred(p, doc)),
        Pred::Field(path, op) => field_matches(doc, path, op),
        Pred::Expr(e, vars) => e.evaluate(doc, vars).map(|v| truthy(&v)).unwrap_or(false),
    }
}

/// mongod's truth of a value in expressions: false, null, undefined, missing and zero are false.
pub fn truthy(v: &Bson) -> bool {
    match v {
        Bson::Boolean(b) => *b,
        Bson::Null | Bson::Undefined => false,
        n if is_number(n) => compare(n, &Bson::Int32(0)) != Ordering::Equal,
        _ => true,
    }
}

/// A sort specification (stand-in for `query::sort::SortSpec`).
#[derive(Clone, Debug)]
pub struct SortSpec {
    fields: Vec<(String, bool)>,
}

impl SortSpec {
    pub fn parse(spec: &Document) -> Result<SortSpec, CommandError> {
        let mut fields = Vec::new();
        for (k, v) in spec {
            let ascending = match v {
                v if is_number(v) && compare(v, &Bson::Int32(1)) == Ordering::Equal => true,
                v if is_number(v) && compare(v, &Bson::Int32(-1)) == Ordering::Equal => false,
                _ => {
                    return Err(CommandError::new(
                        Code::Location15975,
                        "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
                    ))
                }
            };
            fields.push((k.clone(), ascending));
        }
        Ok(SortSpec { fields })
    }

    pub fn key(&self, doc: &Document) -> Vec<Bson> {
        self.fields
            .iter()
            .map(|(path, ascending)| {
                let parts: Vec<&str> = path.split('.').collect();
                let mut found = Vec::new();
                path_candidates(&Bson::Document(doc.clone()), &parts, &mut found);
                let found = found.into_iter().filter(|v| !matches!(v, Bson::Array(_)));
                let best = if *ascending {
                    found.min_by(compare)
                } else {
                    found.max_by(compare)
                };
                best.unwrap_or(Bson::Null)
            })
            .collect()
    }

    pub fn compare_keys(&self, a: &[Bson], b: &[Bson]) -> Ordering {
        for ((x, y), (_, ascending)) in a.iter().zip(b).zip(&self.fields) {
            let c = compare(x, y);
            if c != Ordering::Equal {
                return if *ascending { c } else { c.reverse() };
            }
        }
        Ordering::Equal
    }

    pub fn compare(&self, a: &Document, b: &Document) -> Ordering {
        self.compare_keys(&self.key(a), &self.key(b))
    }
}

/// An aggregation expression (stand-in for `query::expr::Expr`).
#[derive(Clone, Debug)]
pub enum Expr {
    Literal(Bson),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Object(Vec<(String, Expr)>),
    Array(Vec<Expr>),
    Op(String, Vec<Expr>),
}

const OPERATORS: &[&str] = &[
    "$add",
    "$subtract",
    "$multiply",
    "$divide",
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
    "$concat",
    "$toUpper",
    "$toLower",
    "$size",
    "$arrayElemAt",
    "$in",
    "$isArray",
    "$type",
];

impl Expr {
    pub fn parse(value: &Bson) -> Result<Expr, CommandError> {
        match value {
            Bson::String(s) if s.starts_with("$$") => {
                let mut parts = s[2..].split('.').map(str::to_string);
                let name = parts.next().unwrap_or_default();
                Ok(Expr::Var(name, parts.collect()))
            }
            Bson::String(s) if s.starts_with('$') => {
                Ok(Expr::Field(s[1..].split('.').map(str::to_string).collect()))
            }
            Bson::Array(items) => Ok(Expr::Array(
                items.iter().map(Expr::parse).collect::<Result<_, _>>()?,
            )),
            Bson::Document(d) => match d.keys().next() {
                Some(op) if op.starts_with('$') => {
                    if d.len() != 1 {
                        return Err(CommandError::new(
                            Code::BadValue,
                            format!(
                                "An object representing an expression must have exactly one field: {d}"
                            ),
                        ));
                    }
                    let arg = d.get(op).expect("one field");
                    if op == "$literal" {
                        return Ok(Expr::Literal(arg.clone()));
                    }
                    if !OPERATORS.contains(&op.as_str()) {
                        return Err(CommandError::new(
                            Code::InvalidPipelineOperator,
                            format!("Unrecognized expression '{op}'"),
                        ));
                    }
                    let args = match (op.as_str(), arg) {
                        ("$cond", Bson::Document(c)) => ["if", "then", "else"]
                            .iter()
                            .map(|k| Expr::parse(c.get(*k).unwrap_or(&Bson::Null)))
                            .collect::<Result<_, _>>()?,
                        (_, Bson::Array(items)) => {
                            items.iter().map(Expr::parse).collect::<Result<_, _>>()?
                        }
                        (_, other) => vec![Expr::parse(other)?],
                    };
                    Ok(Expr::Op(op.clone(), args))
                }
                _ => Ok(Expr::Object(
                    d.iter()
                        .map(|(k, v)| Ok((k.clone(), Expr::parse(v)?)))
                        .collect::<Result<_, CommandError>>()?,
                )),
            },
            other => Ok(Expr::Literal(other.clone())),
        }
    }

    /// The value; a missing one is null.
    pub fn evaluate(&self, root: &Document, vars: &Document) -> Result<Bson, CommandError> {
        Ok(self.eval(root, vars)?.unwrap_or(Bson::Null))
    }

    /// As `evaluate`, with `None` for a missing result.
    pub fn evaluate_opt(
        &self,
        root: &Document,
        vars: &Document,
    ) -> Result<Option<Bson>, CommandError> {
        self.eval(root, vars)
    }

    fn eval(&self, root: &Document, vars: &Document) -> Result<Option<Bson>, CommandError> {
        Ok(match self {
            Expr::Literal(v) => Some(v.clone()),
            Expr::Field(path) => field_path(&Bson::Document(root.clone()), path),
            Expr::Var(name, path) => {
                let base = match name.as_str() {
                    "ROOT" | "CURRENT" => Some(Bson::Document(root.clone())),
                    other => vars.get(other).cloned(),
                };
                match base {
                    None => {
                        return Err(CommandError::new(
                            Code::BadValue,
                            format!("Use of undefined variable: {name}"),
                        ))
                    }
                    Some(b) => field_path(&b, path),
                }
            }
            Expr::Object(fields) => {
                let mut out = Document::new();
                for (k, e) in fields {
                    if let Some(v) = e.eval(root, vars)? {
                        out.insert(k.clone(), v);
                    }
                }
                Some(Bson::Document(out))
            }
            Expr::Array(items) => Some(Bson::Array(
                items
                    .iter()
                    .map(|e| Ok(e.eval(root, vars)?.unwrap_or(Bson::Null)))
                    .collect::<Result<_, CommandError>>()?,
            )),
            Expr::Op(op, args) => {
                let vals: Vec<Bson> = args
                    .iter()
                    .map(|e| Ok(e.eval(root, vars)?.unwrap_or(Bson::Undefined)))
                    .collect::<Result<_, CommandError>>()?;
                apply_op(op, &vals)?
            }
        })
    }
}

fn field_path(value: &Bson, path: &[String]) -> Option<Bson> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value.clone());
    };
    match value {
        Bson::Document(d) => field_path(d.get(first)?, rest),
        Bson::Array(items) => Some(Bson::Array(
            items
                .iter()
                .filter(|i| matches!(i, Bson::Document(_) | Bson::Array(_)))
                .filter_map(|i| field_path(i, path))
                .collect(),
        )),
        _ => None,
    }
}

fn nullish(v: &Bson) -> bool {
    matches!(v, Bson::Null | Bson::Undefined)
}

fn as_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(n) => Some(*n as f64),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(f) => Some(*f),
        _ => None,
    }
}

fn arith(op: &str, vals: &[Bson]) -> Result<Option<Bson>, CommandError> {
    if vals.iter().any(nullish) {
        return Ok(Some(Bson::Null));
    }
    let not_number = |v: &Bson| {
        CommandError::new(
            Code::TypeMismatch,
            format!(
                "{op} only supports numeric types, not {}",
                crate::error::type_name(v)
            ),
        )
    };
    if let Some(v) = vals.iter().find(|v| as_f64(v).is_none()) {
        return Err(not_number(v));
    }
    Ok(Some(match op {
        "$add" => vals
            .iter()
            .try_fold(Bson::Int32(0), |acc, v| add_numbers(&acc, v))
            .unwrap_or(Bson::Null),
        "$multiply" => {
            let all_int = vals.iter().all(|v| !matches!(v, Bson::Double(_)));
            let product: f64 = vals.iter().filter_map(as_f64).product();
            if all_int
                && product.abs() < i32::MAX as f64
                && vals.iter().all(|v| matches!(v, Bson::Int32(_)))
            {
                Bson::Int32(product as i32)
            } else if all_int && product.abs() < i64::MAX as f64 {
                Bson::Int64(product as i64)
            } else {
                Bson::Double(product)
            }
        }
        "$subtract" | "$divide" => {
            let [a, b] = vals else {
                return Err(CommandError::new(
                    Code::BadValue,
                    format!(
                        "Expression {op} takes exactly 2 arguments. {} were passed in.",
                        vals.len()
                    ),
                ));
            };
            if op == "$divide" {
                let d = as_f64(b).unwrap_or(0.0);
                if d == 0.0 {
                    return Err(CommandError::new(Code::BadValue, "can't $divide by zero"));
                }
                Bson::Double(as_f64(a).unwrap_or(0.0) / d)
            } else {
                let neg = match b {
                    Bson::Int32(n) => Bson::Int64(-(*n as i64)),
                    Bson::Int64(n) => Bson::Double(-(*n as f64)),
                    other => Bson::Double(-as_f64(other).unwrap_or(0.0)),
                };
                let r = add_numbers(a, &neg).unwrap_or(Bson::Null);
                match (a, b, r) {
                    (Bson::Int32(_), Bson::Int32(_), Bson::Int64(n))
                        if i32::try_from(n).is_ok() =>
                    {
                        Bson::Int32(n as i32)
                    }
                    (_, _, r) => r,
                }
            }
        }
        _ => Bson::Null,
    }))
}

fn apply_op(op: &str, vals: &[Bson]) -> Result<Option<Bson>, CommandError> {
    let first = vals.first().cloned().unwrap_or(Bson::Undefined);
    let cmp = || compare(&vals[0], &vals[1]);
    let two = |vals: &[Bson]| -> Result<(), CommandError> {
        if vals.len() != 2 {
            return Err(CommandError::new(
                Code::BadValue,
                format!(
                    "Expression {op} takes exactly 2 arguments. {} were passed in.",
                    vals.len()
                ),
            ));
        }
        Ok(())
    };
    Ok(match op {
        "$add" | "$subtract" | "$multiply" | "$divide" => return arith(op, vals),
        "$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte" | "$cmp" => {
            two(vals)?;
            let o = cmp();
            Some(match op {
                "$eq" => Bson::Boolean(o == Ordering::Equal),
                "$ne" => Bson::Boolean(o != Ordering::Equal),
                "$gt" => Bson::Boolean(o == Ordering::Greater),
                "$gte" => Bson::Boolean(o != Ordering::Less),
                "$lt" => Bson::Boolean(o == Ordering::Less),
                "$lte" => Bson::Boolean(o != Ordering::Greater),
                _ => Bson::Int32(o as i32),
            })
        }
        "$and" => Some(Bson::Boolean(vals.iter().all(truthy))),
        "$or" => Some(Bson::Boolean(vals.iter().any(truthy))),
        "$not" => Some(Bson::Boolean(!truthy(&first))),
        "$cond" => Some(if truthy(&first) {
            vals[1].clone()
        } else {
            vals[2].clone()
        }),
        "$ifNull" => vals
            .iter()
            .find(|v| !nullish(v))
            .cloned()
            .or(vals.last().cloned()),
        "$concat" => {
            let mut out = String::new();
            for v in vals {
                match v {
                    Bson::String(s) => out.push_str(s),
                    v if nullish(v) => return Ok(Some(Bson::Null)),
                    v => {
                        return Err(CommandError::new(
                            Code::BadValue,
                            format!(
                                "$concat only supports strings, not {}",
                                crate::error::type_name(v)
                            ),
                        ))
                    }
                }
            }
            Some(Bson::String(out))
        }
        "$toUpper" | "$toLower" => Some(Bson::String(match &first {
            Bson::String(s) if op == "$toUpper" => s.to_uppercase(),
            Bson::String(s) => s.to_lowercase(),
            v if nullish(v) => String::new(),
            v => v.to_string(),
        })),
        "$size" => match &first {
            Bson::Array(a) => Some(Bson::Int32(a.len() as i32)),
            v => {
                return Err(CommandError::new(
                    Code::BadValue,
                    format!(
                        "The argument to $size must be an array. Type of argument was: {}",
                        crate::error::type_name(v)
                    ),
                ))
            }
        },
        "$arrayElemAt" => {
            two(vals)?;
            match (&vals[0], crate::error::whole_number(&vals[1])) {
                (a, _) if nullish(a) => Some(Bson::Null),
                (Bson::Array(a), Some(i)) => {
                    let i = if i < 0 { a.len() as i64 + i } else { i };
                    usize::try_from(i).ok().and_then(|i| a.get(i).cloned())
                }
                _ => return Err(bad_value("$arrayElemAt needs an array and an index")),
            }
        }
        "$in" => {
            two(vals)?;
            match &vals[1] {
                Bson::Array(a) => Some(Bson::Boolean(a.iter().any(|v| values_equal(v, &vals[0])))),
                _ => {
                    return Err(CommandError::new(
                        Code::BadValue,
                        "$in requires an array as a second argument",
                    ))
                }
            }
        }
        "$isArray" => Some(Bson::Boolean(matches!(first, Bson::Array(_)))),
        "$type" => Some(Bson::String(
            if matches!(first, Bson::Undefined) {
                "missing"
            } else {
                crate::error::type_name(&first)
            }
            .to_string(),
        )),
        _ => None,
    })
}
