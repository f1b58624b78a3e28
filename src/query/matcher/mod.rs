//! The query filter: parsed once with mongod's errors (expression_parser.cpp), then
//! matched against documents with mongod's semantics (expression_leaf.cpp,
//! expression_array.cpp, path.cpp via `path`).
//!
//! Regular expressions use `fancy-regex` (the `regex` crate's engine, plus PCRE's
//! look-around and back-references by backtracking): flags i, m, s, x map to its flags of
//! the same meaning; patterns it cannot compile (possessive quantifiers, `\Z`, callouts
//! and other PCRE-only syntax) are refused with 51091 rather than matched differently. A
//! match that exceeds the backtracking limit counts as no match. Known difference: PCRE's
//! `$` without `m` also matches before a final newline; here it matches only at the end.

mod schema;

use super::expr::Expr;
use super::order::{canonical_rank, compare, is_number};
use super::path::{FieldPath, LeafArrays};
use crate::error::{Code, CommandError};
use bson::{Bson, Document};
use std::cmp::Ordering;

/// Nesting mongod accepts in a filter (kMaximumExprDepth-like bound), so that a deep
/// filter cannot exhaust the stack.
const MAX_DEPTH: usize = 100;

fn bad(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::BadValue, msg)
}

/// A parsed query filter.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
    let_vars: Document,
}

/// What the positional `$` operator needs from a match (mongod's MatchDetails).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchDetails {
    pub array_position: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Nor(Vec<Node>),
    Not(Box<Node>),
    Always(bool),
    /// A leaf operator applied to every value a path yields.
    Path {
        path: FieldPath,
        op: Leaf,
    },
    Expr(Box<Expr>),
    Schema(Box<schema::Schema>),
}

/// Operators on one value (`matchesSingleElement`).
#[derive(Debug, Clone)]
pub(crate) enum Leaf {
    Cmp(CmpOp, Bson),
    In {
        values: Vec<Bson>,
        regexes: Vec<Re>,
        has_null: bool,
    },
    Regex(Re),
    Exists,
    Type(Vec<TypeSel>),
    Mod(i64, i64),
    Size(i64),
    Bits(BitsOp, Vec<u32>),
    /// `$elemMatch` with a filter over the elements (object form).
    ElemMatchObject(Box<Node>),
    /// `$elemMatch` with operators on the elements themselves (value form).
    ElemMatchValue(Vec<Leaf>),
    /// `$all`: every one of these matches somewhere on the path.
    All(Vec<Leaf>),
    /// `$not` / `$ne` / `$nin` inside `$elemMatch` value form.
    Negated(Vec<Leaf>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BitsOp {
    AllSet,
    AnySet,
    AllClear,
    AnyClear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeSel {
    Number,
    Code(i32),
}

/// A compiled regular expression with its source, for matching stored regexes.
#[derive(Debug, Clone)]
pub(crate) struct Re {
    pattern: String,
    flags: String,
    re: fancy_regex::Regex,
}

impl Re {
    pub(crate) fn new(pattern: &str, flags: &str) -> Result<Re, CommandError> {
        if pattern.contains('\0') {
            return Err(bad(
                "Regular expression cannot contain an embedded null byte",
            ));
        }
        let mut b = fancy_regex::RegexBuilder::new(pattern);
        for c in flags.chars() {
            match c {
                'i' => {
                    b.case_insensitive(true);
                }
                'm' => {
                    b.multi_line(true);
                }
                's' => {
                    b.dot_matches_new_line(true);
                }
                'x' => {
                    b.ignore_whitespace(true);
                }
                // PCRE's UTF-8 mode is always on here.
                'u' => {}
                other => {
                    return Err(CommandError::new(
                        Code::Location51108,
                        format!("invalid flag in regex options: {other}"),
                    ))
                }
            }
        }
        let re = b.delegate_size_limit(1 << 22).build().map_err(|e| {
            CommandError::new(
                Code::Location51091,
                format!("Regular expression is invalid: {}", regex_error(&e)),
            )
        })?;
        Ok(Re {
            pattern: pattern.to_string(),
            flags: flags.to_string(),
            re,
        })
    }

    pub(crate) fn matches(&self, v: &Bson) -> bool {
        match v {
            Bson::String(s) | Bson::Symbol(s) => self.re.is_match(s).unwrap_or(false),
            Bson::RegularExpression(r) => r.pattern == self.pattern && r.options == self.flags,
            _ => false,
        }
    }
}

fn regex_error(e: &fancy_regex::Error) -> String {
    e.to_string()
}

impl Filter {
    /// Parses a query filter with mongod's errors.
    pub fn parse(filter: &Document) -> Result<Filter, CommandError> {
        Filter::parse_with_vars(filter, &Document::new())
    }

    /// As `parse`; `let_vars` are the command's `let` variables for `$expr`.
    pub fn parse_with_vars(filter: &Document, let_vars: &Document) -> Result<Filter, CommandError> {
        let root = parse_top(filter, 0)?;
        Ok(Filter {
            root,
            let_vars: let_vars.clone(),
        })
    }

    /// Whether the document matches; a `$expr` that fails to evaluate matches nothing
    /// (use `try_matches` to fail the operation instead, as mongod does).
    pub fn matches(&self, doc: &Document) -> bool {
        self.root.matches(doc, &self.let_vars, &mut None)
    }

    /// As `matches`, with the error of a `$expr` that fails to evaluate.
    pub fn try_matches(&self, doc: &Document) -> Result<bool, CommandError> {
        self.root.try_matches(doc, &self.let_vars, &mut None)
    }

    /// Whether the filter has a `$expr` (the only part whose evaluation can fail).
    pub fn has_expr(&self) -> bool {
        fn walk(n: &Node) -> bool {
            match n {
                Node::And(c) | Node::Or(c) | Node::Nor(c) => c.iter().any(walk),
                Node::Not(inner) => walk(inner),
                Node::Expr(_) => true,
                _ => false,
            }
        }
        walk(&self.root)
    }

    /// `Some` when the document matches, with the array offset for the positional `$`.
    pub fn matches_with_details(&self, doc: &Document) -> Option<MatchDetails> {
        let mut pos = None;
        let mut details = Some(&mut pos);
        if self.root.matches(doc, &self.let_vars, &mut details) {
            Some(MatchDetails {
                array_position: pos,
            })
        } else {
            None
        }
    }

    /// True for `{}` (a filter that matches every document).
    pub fn is_empty(&self) -> bool {
        matches!(&self.root, Node::And(v) if v.is_empty())
    }

    /// Top-level `path: value` equalities (from `{a: 1}`, `{a: {$eq: 1}}`, `$and` of them).
    pub fn equalities(&self) -> Vec<(String, Bson)> {
        let mut out = Vec::new();
        collect_equalities(&self.root, &mut out);
        out
    }
}

/// A top-level predicate an index can bound (what the planner reads of a filter).
#[derive(Debug, Clone, PartialEq)]
pub enum IndexablePredicate {
    Eq(Bson),
    In(Vec<Bson>),
    Lt(Bson),
    Lte(Bson),
    Gt(Bson),
    Gte(Bson),
}

impl Filter {
    /// The `path: predicate` pairs of the filter's top-level conjunction that an index
    /// can bound: comparisons and `$in` of values (no regexes).
    pub fn indexable_predicates(&self) -> Vec<(String, IndexablePredicate)> {
        let mut out = Vec::new();
        collect_indexable(&self.root, &mut out);
        out
    }
}

fn collect_indexable(n: &Node, out: &mut Vec<(String, IndexablePredicate)>) {
    match n {
        Node::And(children) => children.iter().for_each(|c| collect_indexable(c, out)),
        Node::Path {
            path,
            op: Leaf::Cmp(op, v),
        } => {
            let v = v.clone();
            let p = match op {
                CmpOp::Eq => IndexablePredicate::Eq(v),
                CmpOp::Lt => IndexablePredicate::Lt(v),
                CmpOp::Lte => IndexablePredicate::Lte(v),
                CmpOp::Gt => IndexablePredicate::Gt(v),
                CmpOp::Gte => IndexablePredicate::Gte(v),
            };
            out.push((path.dotted().to_string(), p));
        }
        Node::Path {
            path,
            op: Leaf::In {
                values, regexes, ..
            },
        } if regexes.is_empty() => out.push((
            path.dotted().to_string(),
            IndexablePredicate::In(values.clone()),
        )),
        _ => {}
    }
}

fn collect_equalities(n: &Node, out: &mut Vec<(String, Bson)>) {
    match n {
        Node::And(children) => children.iter().for_each(|c| collect_equalities(c, out)),
        Node::Path {
            path,
            op: Leaf::Cmp(CmpOp::Eq, v),
        } => out.push((path.dotted().to_string(), v.clone())),
        // `{a: {$in: [x]}}` is an equality too (mongod rewrites one-element $in to $eq).
        Node::Path {
            path,
            op: Leaf::In {
                values, regexes, ..
            },
        } if values.len() == 1 && regexes.is_empty() => {
            out.push((path.dotted().to_string(), values[0].clone()))
        }
        _ => {}
    }
}

// ---------------------------------------------------------------- parsing

fn parse_top(filter: &Document, depth: usize) -> Result<Node, CommandError> {
    parse_doc(filter, depth, true)
}

/// `top_level` is false inside `$elemMatch`, whose documents are array elements.
fn parse_doc(filter: &Document, depth: usize, top_level: bool) -> Result<Node, CommandError> {
    if depth > MAX_DEPTH {
        return Err(bad(format!(
            "exceeded maximum query tree depth of {MAX_DEPTH}"
        )));
    }
    let mut children = Vec::new();
    for (key, value) in filter {
        if let Some(op) = key.strip_prefix('$') {
            match op {
                "and" | "or" | "nor" => {
                    let list = parse_logical_list(key, value, depth, top_level)?;
                    children.push(match op {
                        "and" => Node::And(list),
                        "or" => Node::Or(list),
                        _ => Node::Nor(list),
                    });
                }
                "comment" => {}
                "expr" if !top_level => {
                    return Err(bad("$expr can only be applied to the top-level document"))
                }
                "expr" => children.push(Node::Expr(Box::new(Expr::parse(value)?))),
                "jsonSchema" => {
                    let Bson::Document(schema) = value else {
                        return Err(CommandError::new(
                            Code::TypeMismatch,
                            "$jsonSchema must be an object",
                        ));
                    };
                    children.push(Node::Schema(Box::new(
                        schema::Schema::parse(schema)?,
                    )));
                }
                "alwaysTrue" | "alwaysFalse" => {
                    if crate::error::whole_number(value) != Some(1) {
                        return Err(bad(format!("{key} must be an integer value of 1")));
                    }
                    children.push(Node::Always(op == "alwaysTrue"));
                }
                "where" => {
                    return Err(CommandError::new(
                        Code::BadValue,
                        "$where is not supported by ferrod (server-side JavaScript is not available)",
                    ))
                }
                "text" => {
                    return Err(CommandError::new(
                        Code::BadValue,
                        "$text is not supported by ferrod (text search is not available)",
                    ))
                }
                _ => {
                    return Err(bad(format!(
                        "unknown top level operator: {key}. If you have a field name that starts with a '$' symbol, consider using $getField or $setField."
                    )))
                }
            }
            continue;
        }
        children.extend(parse_path(key, value, depth)?);
    }
    Ok(Node::And(children))
}

fn parse_logical_list(
    key: &str,
    value: &Bson,
    depth: usize,
    top_level: bool,
) -> Result<Vec<Node>, CommandError> {
    let Bson::Array(items) = value else {
        return Err(bad(format!("{key} must be an array")));
    };
    if items.is_empty() {
        return Err(bad("$and/$or/$nor must be a nonempty array"));
    }
    items
        .iter()
        .map(|item| match item {
            Bson::Document(d) => parse_doc(d, depth + 1, top_level),
            _ => Err(bad("$or/$and/$nor entries need to be full objects")),
        })
        .collect()
}

/// Whether a value is an operator document (`isExpressionDocument`): its first field
/// starts with `$` and is not a DBRef field.
fn is_operator_doc(d: &Document) -> bool {
    match d.keys().next() {
        Some(k) => k.starts_with('$') && !matches!(k.as_str(), "$ref" | "$id" | "$db"),
        None => false,
    }
}

fn path_node(path: &str, op: Leaf) -> Node {
    Node::Path {
        path: FieldPath::new(path),
        op,
    }
}

fn parse_path(path: &str, value: &Bson, depth: usize) -> Result<Vec<Node>, CommandError> {
    match value {
        Bson::RegularExpression(r) => Ok(vec![path_node(
            path,
            Leaf::Regex(Re::new(&r.pattern, &r.options)?),
        )]),
        Bson::Document(d) if is_operator_doc(d) => parse_operators(path, d, depth),
        _ => Ok(vec![path_node(path, eq_leaf(value)?)]),
    }
}

fn eq_leaf(value: &Bson) -> Result<Leaf, CommandError> {
    if matches!(value, Bson::Undefined) {
        return Err(bad("cannot compare to undefined"));
    }
    Ok(Leaf::Cmp(CmpOp::Eq, value.clone()))
}

/// `{path: {$op: v, ...}}`: one node per operator.
fn parse_operators(path: &str, ops: &Document, depth: usize) -> Result<Vec<Node>, CommandError> {
    let mut nodes = Vec::new();
    let leaves = parse_leaf_ops(ops, depth, true)?;
    for l in leaves {
        nodes.push(match l {
            LeafOrNot::Leaf(op) => path_node(path, op),
            LeafOrNot::Not(ops) => {
                let inner: Vec<Node> = ops.into_iter().map(|op| path_node(path, op)).collect();
                Node::Not(Box::new(Node::And(inner)))
            }
        });
    }
    Ok(nodes)
}

enum LeafOrNot {
    Leaf(Leaf),
    /// Matches when not all of these match (`$ne`, `$nin`, `$not`, `$exists: false`).
    Not(Vec<Leaf>),
}

/// The operators of one operator document. `allow_regex_options` is false inside
/// `$not` when... (kept for symmetry with mongod, which allows `$options` there too).
fn parse_leaf_ops(
    ops: &Document,
    depth: usize,
    _allow_regex_options: bool,
) -> Result<Vec<LeafOrNot>, CommandError> {
    if depth > MAX_DEPTH {
        return Err(bad(format!(
            "exceeded maximum query tree depth of {MAX_DEPTH}"
        )));
    }
    let mut out = Vec::new();
    // $regex and $options combine into one operator wherever they are.
    let mut regex: Option<(String, String, bool)> = None;
    let mut options: Option<String> = None;
    for (key, v) in ops {
        let Some(name) = key.strip_prefix('$') else {
            return Err(bad(format!("unknown operator: {key}")));
        };
        match name {
            "eq" => out.push(LeafOrNot::Leaf(eq_leaf(v)?)),
            "ne" => {
                if matches!(v, Bson::RegularExpression(_)) {
                    return Err(bad("Can't have regex as arg to $ne."));
                }
                out.push(LeafOrNot::Not(vec![eq_leaf(v)?]))
            }
            "lt" | "lte" | "gt" | "gte" => {
                if matches!(v, Bson::Undefined) {
                    return Err(bad("cannot compare to undefined"));
                }
                let op = match name {
                    "lt" => CmpOp::Lt,
                    "lte" => CmpOp::Lte,
                    "gt" => CmpOp::Gt,
                    _ => CmpOp::Gte,
                };
                out.push(LeafOrNot::Leaf(Leaf::Cmp(op, v.clone())));
            }
            "in" => out.push(LeafOrNot::Leaf(parse_in(v, "$in")?)),
            "nin" => out.push(LeafOrNot::Not(vec![parse_in(v, "$nin")?])),
            "exists" => {
                if truthy(v) {
                    out.push(LeafOrNot::Leaf(Leaf::Exists));
                } else {
                    out.push(LeafOrNot::Not(vec![Leaf::Exists]));
                }
            }
            "type" => out.push(LeafOrNot::Leaf(Leaf::Type(parse_type(v)?))),
            "regex" => match v {
                Bson::String(s) => regex = Some((s.clone(), String::new(), false)),
                Bson::RegularExpression(r) => {
                    regex = Some((r.pattern.clone(), r.options.clone(), !r.options.is_empty()))
                }
                _ => return Err(bad("$regex has to be a string")),
            },
            "options" => match v {
                Bson::String(s) => options = Some(s.clone()),
                _ => return Err(bad("$options has to be a string")),
            },
            "mod" => out.push(LeafOrNot::Leaf(parse_mod(v)?)),
            "size" => out.push(LeafOrNot::Leaf(parse_size(v)?)),
            "all" => out.push(LeafOrNot::Leaf(parse_all(v, depth)?)),
            "elemMatch" => out.push(LeafOrNot::Leaf(parse_elem_match(v, depth)?)),
            "not" => out.push(LeafOrNot::Not(parse_not(v, depth)?)),
            "bitsAllSet" | "bitsAnySet" | "bitsAllClear" | "bitsAnyClear" => {
                let op = match name {
                    "bitsAllSet" => BitsOp::AllSet,
                    "bitsAnySet" => BitsOp::AnySet,
                    "bitsAllClear" => BitsOp::AllClear,
                    _ => BitsOp::AnyClear,
                };
                out.push(LeafOrNot::Leaf(Leaf::Bits(op, parse_bits(key, v)?)));
            }
            "comment" => {}
            _ if GEO_OPERATORS.contains(&key.as_str()) => {
                return Err(CommandError::new(
                    Code::BadValue,
                    format!(
                        "{key} is not supported by ferrod (geospatial queries are not available)"
                    ),
                ))
            }
            "where" | "text" | "expr" | "and" | "or" | "nor" | "jsonSchema" => {
                return Err(bad(format!("unknown operator: {key}")))
            }
            _ => return Err(bad(format!("unknown operator: {key}"))),
        }
    }
    match (regex, options) {
        (Some((pattern, flags, had_flags)), Some(opts)) => {
            if had_flags {
                return Err(bad("options set in both $regex and $options"));
            }
            let _ = flags;
            out.push(LeafOrNot::Leaf(Leaf::Regex(Re::new(&pattern, &opts)?)));
        }
        (Some((pattern, flags, _)), None) => {
            out.push(LeafOrNot::Leaf(Leaf::Regex(Re::new(&pattern, &flags)?)))
        }
        (None, Some(_)) => return Err(bad("$options needs a $regex")),
        (None, None) => {}
    }
    Ok(out)
}

fn truthy(v: &Bson) -> bool {
    match v {
        Bson::Boolean(b) => *b,
        Bson::Int32(n) => *n != 0,
        Bson::Int64(n) => *n != 0,
        Bson::Double(f) => *f != 0.0,
        Bson::Decimal128(_) => compare(v, &Bson::Int32(0)) != Ordering::Equal,
        Bson::Null | Bson::Undefined => false,
        _ => true,
    }
}

/// The query operators ferrod evaluates (top-level and per field), for the
/// compatibility page (docs/compatibility.md, checked by tests/compatibility_page.rs).
pub const OPERATORS: &[&str] = &[
    "$all",
    "$alwaysFalse",
    "$alwaysTrue",
    "$and",
    "$bitsAllClear",
    "$bitsAllSet",
    "$bitsAnyClear",
    "$bitsAnySet",
    "$comment",
    "$elemMatch",
    "$eq",
    "$exists",
    "$expr",
    "$gt",
    "$gte",
    "$in",
    "$jsonSchema",
    "$lt",
    "$lte",
    "$mod",
    "$ne",
    "$nin",
    "$nor",
    "$not",
    "$options",
    "$or",
    "$regex",
    "$size",
    "$type",
];

/// Geospatial operators: refused with BadValue (2) naming them.
pub const GEO_OPERATORS: &[&str] = &[
    "$near",
    "$nearSphere",
    "$geoWithin",
    "$geoIntersects",
    "$within",
    "$geoNear",
];

/// Refused with BadValue (2): server-side JavaScript and text search.
pub const REFUSED_OPERATORS: &[&str] = &["$where", "$text"];

fn parse_in(v: &Bson, name: &str) -> Result<Leaf, CommandError> {
    let Bson::Array(items) = v else {
        return Err(bad(format!("{name} needs an array")));
    };
    let mut values = Vec::new();
    let mut regexes = Vec::new();
    let mut has_null = false;
    for item in items {
        match item {
            Bson::RegularExpression(r) => regexes.push(Re::new(&r.pattern, &r.options)?),
            Bson::Document(d) if is_operator_doc(d) => {
                return Err(bad(format!("cannot nest $ under {name}")))
            }
            Bson::Undefined => return Err(bad("InMatchExpression equality cannot be undefined")),
            _ => {
                has_null |= matches!(item, Bson::Null);
                values.push(item.clone());
            }
        }
    }
    values.sort_by(compare);
    values.dedup_by(|a, b| compare(a, b) == Ordering::Equal);
    Ok(Leaf::In {
        values,
        regexes,
        has_null,
    })
}

const TYPE_ALIASES: &[(&str, i32)] = &[
    ("double", 1),
    ("string", 2),
    ("object", 3),
    ("array", 4),
    ("binData", 5),
    ("undefined", 6),
    ("objectId", 7),
    ("bool", 8),
    ("date", 9),
    ("null", 10),
    ("regex", 11),
    ("dbPointer", 12),
    ("javascript", 13),
    ("symbol", 14),
    ("javascriptWithScope", 15),
    ("int", 16),
    ("timestamp", 17),
    ("long", 18),
    ("decimal", 19),
    ("minKey", -1),
    ("maxKey", 127),
];

/// The numeric BSON type of a value, as `$type` numbers it.
pub fn type_code(v: &Bson) -> i32 {
    match v {
        Bson::MinKey => -1,
        Bson::MaxKey => 127,
        other => other.element_type() as u8 as i32,
    }
}

pub(crate) fn parse_type_one(v: &Bson) -> Result<TypeSel, CommandError> {
    match v {
        Bson::String(s) => {
            if s == "number" {
                return Ok(TypeSel::Number);
            }
            TYPE_ALIASES
                .iter()
                .find(|(n, _)| n == s)
                .map(|(_, c)| TypeSel::Code(*c))
                .ok_or_else(|| bad(format!("Unknown type name alias: {s}")))
        }
        _ if is_number(v) => {
            let n = crate::error::whole_number(v).unwrap_or(i64::MIN);
            if n == -1 || n == 127 || (1..=19).contains(&n) {
                Ok(TypeSel::Code(n as i32))
            } else {
                Err(bad(format!(
                    "Invalid numerical type code: {}",
                    display_number(v)
                )))
            }
        }
        _ => Err(CommandError::new(
            Code::TypeMismatch,
            "type must be represented as a number or a string",
        )),
    }
}

fn display_number(v: &Bson) -> String {
    match v {
        Bson::Double(f) => format!("{f}"),
        Bson::Int32(n) => n.to_string(),
        Bson::Int64(n) => n.to_string(),
        Bson::Decimal128(d) => d.to_string(),
        other => format!("{other}"),
    }
}

fn parse_type(v: &Bson) -> Result<Vec<TypeSel>, CommandError> {
    match v {
        Bson::Array(items) => items.iter().map(parse_type_one).collect(),
        _ => Ok(vec![parse_type_one(v)?]),
    }
}

pub(crate) fn type_matches(sel: &[TypeSel], v: &Bson) -> bool {
    sel.iter().any(|s| match s {
        TypeSel::Number => is_number(v),
        TypeSel::Code(c) => type_code(v) == *c,
    })
}

/// A number truncated to a long, as `$mod` and `$size` read their arguments.
fn to_long_truncated(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(n) => Some(*n as i64),
        Bson::Int64(n) => Some(*n),
        Bson::Double(f) if f.is_finite() && f.trunc().abs() < 9.223_372_036_854_776e18 => {
            Some(f.trunc() as i64)
        }
        Bson::Decimal128(_) => decimal_to_f64(v).and_then(|f| to_long_truncated(&Bson::Double(f))),
        _ => None,
    }
}

fn decimal_to_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Decimal128(d) => d.to_string().parse::<f64>().ok(),
        _ => None,
    }
}

fn parse_mod(v: &Bson) -> Result<Leaf, CommandError> {
    let Bson::Array(items) = v else {
        return Err(bad("malformed mod, needs to be an array"));
    };
    if items.len() < 2 {
        return Err(bad("malformed mod, not enough elements"));
    }
    if items.len() > 2 {
        return Err(bad("malformed mod, too many elements"));
    }
    if !is_number(&items[0]) {
        return Err(bad("malformed mod, divisor not a number"));
    }
    if !is_number(&items[1]) {
        return Err(bad("malformed mod, remainder not a number"));
    }
    let divisor = to_long_truncated(&items[0])
        .ok_or_else(|| bad("malformed mod, divisor value is invalid"))?;
    let remainder = to_long_truncated(&items[1])
        .ok_or_else(|| bad("malformed mod, remainder value is invalid"))?;
    if divisor == 0 {
        return Err(bad("divisor cannot be 0"));
    }
    Ok(Leaf::Mod(divisor, remainder))
}

fn parse_size(v: &Bson) -> Result<Leaf, CommandError> {
    if !is_number(v) {
        return Err(bad("$size needs a number"));
    }
    let f = match v {
        Bson::Double(f) => *f,
        Bson::Decimal128(_) => decimal_to_f64(v).unwrap_or(f64::NAN),
        _ => 0.0,
    };
    if matches!(v, Bson::Double(_) | Bson::Decimal128(_)) && f.fract() != 0.0 {
        return Err(bad(format!(
            "Failed to parse $size. Expected an integer, but found {}",
            display_number(v)
        )));
    }
    let n = to_long_truncated(v).ok_or_else(|| bad("$size needs a number"))?;
    if n < 0 {
        return Err(bad(format!(
            "Failed to parse $size. Expected a non-negative number in: $size: {n}"
        )));
    }
    Ok(Leaf::Size(n))
}

fn parse_bits(key: &str, v: &Bson) -> Result<Vec<u32>, CommandError> {
    let mut positions = Vec::new();
    match v {
        Bson::Array(items) => {
            for item in items {
                let p = match item {
                    _ if is_number(item) => crate::error::whole_number(item),
                    _ => {
                        return Err(bad(format!(
                            "bit positions must be an integer but got: {}",
                            display_number(item)
                        )))
                    }
                };
                match p {
                    Some(p) if p >= 0 => {
                        if p < (1 << 31) {
                            positions.push(p as u32)
                        }
                    }
                    Some(p) => return Err(bad(format!("bit positions must be >= 0 but got: {p}"))),
                    None => {
                        return Err(bad(format!(
                            "bit positions must be an integer but got: {}",
                            display_number(item)
                        )))
                    }
                }
            }
        }
        Bson::Binary(b) => {
            for (i, byte) in b.bytes.iter().enumerate() {
                for bit in 0..8 {
                    if byte & (1 << bit) != 0 {
                        positions.push((i * 8 + bit) as u32);
                    }
                }
            }
        }
        _ if is_number(v) => {
            let n = match crate::error::whole_number(v) {
                Some(n) => n,
                None => {
                    return Err(bad(format!(
                        "{key} cannot represent value as a 64-bit integer: {}",
                        display_number(v)
                    )))
                }
            };
            if n < 0 {
                return Err(bad(format!("{key} cannot take a negative number: {n}")));
            }
            for bit in 0..63 {
                if n & (1 << bit) != 0 {
                    positions.push(bit);
                }
            }
        }
        _ => {
            return Err(bad(format!(
                "{key} takes an Array, a number, or a BinData but received: {key}: {v}"
            )))
        }
    }
    Ok(positions)
}

fn parse_all(v: &Bson, depth: usize) -> Result<Leaf, CommandError> {
    let Bson::Array(items) = v else {
        return Err(bad("$all needs an array"));
    };
    let elem_match_first = matches!(items.first(),
        Some(Bson::Document(d)) if d.keys().next().map(String::as_str) == Some("$elemMatch"));
    if elem_match_first {
        let mut subs = Vec::new();
        for item in items {
            match item {
                Bson::Document(d) if d.keys().next().map(String::as_str) == Some("$elemMatch") => {
                    let (_, inner) = d
                        .iter()
                        .next()
                        .ok_or_else(|| bad("$all/$elemMatch has to be consistent"))?;
                    subs.push(parse_elem_match(inner, depth)?);
                }
                _ => return Err(bad("$all/$elemMatch has to be consistent")),
            }
        }
        return Ok(Leaf::All(subs));
    }
    let mut leaves = Vec::new();
    for item in items {
        match item {
            Bson::RegularExpression(r) => {
                leaves.push(Leaf::Regex(Re::new(&r.pattern, &r.options)?))
            }
            Bson::Document(d) if is_operator_doc(d) => return Err(bad("no $ expressions in $all")),
            _ => leaves.push(eq_leaf(item)?),
        }
    }
    if leaves.is_empty() {
        // `$all: []` matches nothing.
        return Ok(Leaf::In {
            values: Vec::new(),
            regexes: Vec::new(),
            has_null: false,
        });
    }
    Ok(Leaf::All(leaves))
}

fn parse_elem_match(v: &Bson, depth: usize) -> Result<Leaf, CommandError> {
    let Bson::Document(d) = v else {
        return Err(bad("$elemMatch needs an Object"));
    };
    let value_form = match d.keys().next() {
        Some(k) if k.starts_with('$') && !matches!(k.as_str(), "$ref" | "$id" | "$db") => {
            !matches!(
                k.as_str(),
                "$and"
                    | "$or"
                    | "$nor"
                    | "$where"
                    | "$expr"
                    | "$jsonSchema"
                    | "$alwaysTrue"
                    | "$alwaysFalse"
                    | "$comment"
                    | "$text"
            )
        }
        _ => false,
    };
    if value_form {
        let mut leaves = Vec::new();
        for l in parse_leaf_ops(d, depth + 1, true)? {
            leaves.push(match l {
                LeafOrNot::Leaf(op) => op,
                LeafOrNot::Not(ops) => Leaf::Negated(ops),
            });
        }
        Ok(Leaf::ElemMatchValue(leaves))
    } else {
        if d.contains_key("$where") {
            return Err(bad("$elemMatch cannot contain $where expression"));
        }
        Ok(Leaf::ElemMatchObject(Box::new(parse_doc(
            d,
            depth + 1,
            false,
        )?)))
    }
}

fn parse_not(v: &Bson, depth: usize) -> Result<Vec<Leaf>, CommandError> {
    match v {
        Bson::RegularExpression(r) => Ok(vec![Leaf::Regex(Re::new(&r.pattern, &r.options)?)]),
        Bson::Document(d) => {
            if d.is_empty() {
                return Err(bad("$not cannot be empty"));
            }
            if !is_operator_doc(d) {
                return Err(bad("$not needs a regex or a document"));
            }
            let mut leaves = Vec::new();
            for l in parse_leaf_ops(d, depth + 1, true)? {
                leaves.push(match l {
                    LeafOrNot::Leaf(op) => op,
                    LeafOrNot::Not(ops) => Leaf::Negated(ops),
                });
            }
            Ok(leaves)
        }
        _ => Err(bad("$not needs a regex or a document")),
    }
}

// ---------------------------------------------------------------- matching

type Details<'a> = Option<&'a mut Option<usize>>;

impl Node {
    /// Inside `$elemMatch` (where `$expr` is refused at parse time) nothing can fail.
    fn matches(&self, doc: &Document, vars: &Document, details: &mut Details) -> bool {
        self.try_matches(doc, vars, details).unwrap_or(false)
    }

    /// Only `$expr` can fail (an expression error fails the query, as in mongod).
    fn try_matches(
        &self,
        doc: &Document,
        vars: &Document,
        details: &mut Details,
    ) -> Result<bool, CommandError> {
        Ok(match self {
            Node::And(children) => {
                for c in children {
                    if !c.try_matches(doc, vars, details)? {
                        return Ok(false);
                    }
                }
                true
            }
            Node::Or(children) => {
                for c in children {
                    if c.try_matches(doc, vars, &mut None)? {
                        return Ok(true);
                    }
                }
                false
            }
            Node::Nor(children) => {
                for c in children {
                    if c.try_matches(doc, vars, &mut None)? {
                        return Ok(false);
                    }
                }
                true
            }
            Node::Not(inner) => !inner.try_matches(doc, vars, &mut None)?,
            Node::Always(b) => *b,
            Node::Path { path, op } => op.matches_path(path, doc, vars, details),
            Node::Expr(e) => truthy(&e.evaluate(doc, vars)?),
            Node::Schema(s) => s.matches(doc),
        })
    }
}

impl Leaf {
    fn leaf_arrays(&self) -> LeafArrays {
        match self {
            Leaf::Size(_) | Leaf::ElemMatchObject(_) | Leaf::ElemMatchValue(_) => {
                LeafArrays::NoTraversal
            }
            _ => LeafArrays::Traverse,
        }
    }

    fn matches_path(
        &self,
        path: &FieldPath,
        doc: &Document,
        vars: &Document,
        details: &mut Details,
    ) -> bool {
        match self {
            Leaf::Negated(inner) => !inner
                .iter()
                .all(|l| l.matches_path(path, doc, vars, &mut None)),
            Leaf::All(subs) => subs
                .iter()
                .all(|l| l.matches_path(path, doc, vars, details)),
            _ => {
                let mut found_offset = None;
                let hit = path.any(doc, self.leaf_arrays(), &mut |v, offset| {
                    if self.matches_value(v, vars) {
                        // The outer array's offset wins over $elemMatch's own (mongod's
                        // PathMatchExpression records it after matchesSingleElement).
                        found_offset = offset.or_else(|| self.elem_match_position(v, vars));
                        true
                    } else {
                        false
                    }
                });
                if hit {
                    if let (Some(d), Some(o)) = (details.as_deref_mut(), found_offset) {
                        *d = Some(o);
                    }
                }
                hit
            }
        }
    }

    /// The index of the first element `$elemMatch` accepts, for the positional `$`.
    fn elem_match_position(&self, v: Option<&Bson>, vars: &Document) -> Option<usize> {
        let Some(Bson::Array(items)) = v else {
            return None;
        };
        match self {
            Leaf::ElemMatchObject(filter) => items.iter().position(|item| match item {
                Bson::Document(d) => filter.matches(d, vars, &mut None),
                Bson::Array(a) => filter.matches(&array_as_document(a), vars, &mut None),
                _ => false,
            }),
            Leaf::ElemMatchValue(leaves) => items
                .iter()
                .position(|item| leaves.iter().all(|l| l.matches_single(item, vars))),
            _ => None,
        }
    }

    /// mongod's matchesSingleElement; `None` is a missing value.
    fn matches_value(&self, v: Option<&Bson>, vars: &Document) -> bool {
        match self {
            Leaf::Cmp(op, rhs) => cmp_matches(*op, v, rhs),
            Leaf::In {
                values,
                regexes,
                has_null,
            } => {
                let Some(v) = v else { return *has_null };
                if *has_null && matches!(v, Bson::Undefined) {
                    return true;
                }
                values.binary_search_by(|x| compare(x, v)).is_ok()
                    || regexes.iter().any(|r| r.matches(v))
            }
            Leaf::Regex(re) => v.is_some_and(|v| re.matches(v)),
            Leaf::Exists => v.is_some(),
            Leaf::Type(sel) => v.is_some_and(|v| type_matches(sel, v)),
            Leaf::Mod(divisor, remainder) => {
                let Some(v) = v else { return false };
                if !is_number(v) {
                    return false;
                }
                match to_long_truncated(v) {
                    Some(n) => n.wrapping_rem(*divisor) == *remainder,
                    None => false,
                }
            }
            Leaf::Size(n) => matches!(v, Some(Bson::Array(a)) if a.len() as i64 == *n),
            Leaf::Bits(op, positions) => bits_match(*op, positions, v),
            Leaf::ElemMatchObject(filter) => {
                let Some(Bson::Array(items)) = v else {
                    return false;
                };
                items.iter().any(|item| match item {
                    Bson::Document(d) => filter.matches(d, vars, &mut None),
                    Bson::Array(a) => filter.matches(&array_as_document(a), vars, &mut None),
                    _ => false,
                })
            }
            Leaf::ElemMatchValue(leaves) => {
                let Some(Bson::Array(items)) = v else {
                    return false;
                };
                items
                    .iter()
                    .any(|item| leaves.iter().all(|l| l.matches_single(item, vars)))
            }
            Leaf::Negated(inner) => !inner.iter().all(|l| l.matches_value(v, vars)),
            Leaf::All(subs) => subs.iter().all(|l| l.matches_value(v, vars)),
        }
    }

    /// Inside `$elemMatch`'s value form, every operator applies to the element itself
    /// (`matchesSingleElement`): a nested array is compared as a whole, not traversed.
    fn matches_single(&self, item: &Bson, vars: &Document) -> bool {
        self.matches_value(Some(item), vars)
    }
}

fn array_as_document(a: &[Bson]) -> Document {
    a.iter()
        .enumerate()
        .map(|(i, v)| (i.to_string(), v.clone()))
        .collect()
}

fn is_nan(v: &Bson) -> bool {
    match v {
        Bson::Double(f) => f.is_nan(),
        Bson::Decimal128(_) => compare(v, &Bson::Double(f64::NAN)) == Ordering::Equal,
        _ => false,
    }
}

/// ComparisonMatchExpression::matchesSingleElement.
fn cmp_matches(op: CmpOp, v: Option<&Bson>, rhs: &Bson) -> bool {
    // Missing ranks with undefined (0), beside null (5).
    let lr = v.map_or(0, canonical_rank);
    let rr = canonical_rank(rhs);
    if lr != rr {
        if lr + rr == 5 {
            return matches!(op, CmpOp::Eq | CmpOp::Lte | CmpOp::Gte);
        }
        return match rhs {
            Bson::MaxKey => matches!(op, CmpOp::Lt | CmpOp::Lte),
            Bson::MinKey => matches!(op, CmpOp::Gt | CmpOp::Gte),
            _ => false,
        };
    }
    let Some(v) = v else {
        // Missing against undefined cannot be asked (undefined is refused at parse time).
        return false;
    };
    if op != CmpOp::Eq {
        let (ln, rn) = (is_nan(v), is_nan(rhs));
        if ln || rn {
            return matches!(op, CmpOp::Lte | CmpOp::Gte) && ln && rn;
        }
    }
    let o = compare(v, rhs);
    match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Lte => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Gte => o != Ordering::Less,
    }
}

/// BitTestMatchExpression: numbers must be whole and representable as a long (negative
/// numbers in two's complement, bits above 63 copy the sign); binData by its bytes.
fn bits_match(op: BitsOp, positions: &[u32], v: Option<&Bson>) -> bool {
    let bit: Box<dyn Fn(u32) -> bool> = match v {
        Some(Bson::Binary(b)) => {
            let bytes = b.bytes.clone();
            Box::new(move |p: u32| {
                let (i, o) = ((p / 8) as usize, p % 8);
                bytes.get(i).is_some_and(|byte| byte & (1 << o) != 0)
            })
        }
        Some(n) if is_number(n) => {
            let Some(x) = (match n {
                Bson::Double(f) if f.fract() != 0.0 || !f.is_finite() => None,
                Bson::Double(f)
                    if *f >= 9.223_372_036_854_776e18 || *f < -9.223_372_036_854_776e18 =>
                {
                    None
                }
                Bson::Decimal128(_) => decimal_to_f64(n)
                    .filter(|f| f.fract() == 0.0 && f.is_finite() && f.abs() < 9.2e18)
                    .map(|f| f as i64),
                _ => crate::error::whole_number(n),
            }) else {
                return false;
            };
            Box::new(move |p: u32| if p >= 64 { x < 0 } else { x & (1i64 << p) != 0 })
        }
        _ => return false,
    };
    match op {
        BitsOp::AllSet => positions.iter().all(|p| bit(*p)),
        BitsOp::AnySet => positions.iter().any(|p| bit(*p)),
        BitsOp::AllClear => positions.iter().all(|p| !bit(*p)),
        BitsOp::AnyClear => positions.iter().any(|p| !bit(*p)),
    }
}

/// The same truthiness `$expr` applies to its result (Value::coerceToBool).
pub fn coerce_to_bool(v: &Bson) -> bool {
    truthy(v)
}
