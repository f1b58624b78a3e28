//! find's projection as mongod 7.0 parses and applies it (src/mongo/db/query/projection*):
//! inclusion or exclusion, `_id` included unless excluded, dotted paths through arrays,
//! the positional `$`, `$slice`, `$elemMatch` and computed fields. The projection's
//! type and its errors follow projection_parser.cpp (31253, 31254, 31249/31250, ...).

use super::update::repr;
use crate::error::{type_name, Code, CommandError};
use bson::{Bson, Document};

use super::expr::Expr;
use super::matcher::Filter;
pub use super::matcher::MatchDetails;

type Result<T> = std::result::Result<T, CommandError>;

fn err(code: Code, msg: impl Into<String>) -> CommandError {
    CommandError::new(code, msg)
}

/// find's projection operators (positional `$` is the path suffix `.$`); anything else
/// whose name starts with `$` is an aggregation expression.
pub const OPERATORS: &[&str] = &["$", "$elemMatch", "$slice"];

/// Refused with BadValue (2): ferrod has no text search or search scores.
pub const REFUSED: &[&str] = &["$meta"];

#[derive(Clone, Debug)]
pub struct Projection {
    root: Vec<(String, Node)>,
    inclusion: bool,
}

#[derive(Clone, Debug)]
enum Node {
    Internal(Vec<(String, Node)>),
    Include,
    Exclude,
    /// A computed field: a literal or an aggregation expression.
    Expr(Expr),
    Slice {
        skip: Option<i64>,
        limit: i64,
    },
    /// `$elemMatch`: a filter `{x: {$elemMatch: ...}}` tried on `{x: [element]}`.
    ElemMatch(Filter),
    /// `a.$`: the element the query matched.
    Positional,
}

const WRAP: &str = "x";

#[derive(Default)]
struct ParseCx<'a> {
    query: Option<&'a Document>,
    /// `$project` in a pipeline: no positional, `$slice` is the expression, no `$elemMatch`.
    aggregation: bool,
    kind: Option<bool>,
    id_included: bool,
    id_excluded: bool,
    id_specified: bool,
    has_positional: bool,
    has_elem_match: bool,
    has_slice: bool,
}

impl Projection {
    /// find's projection with mongod's rules and codes (31254 mixing inclusion/exclusion, ...).
    /// The positional `$` is accepted without checking it against a query; see
    /// [`Projection::parse_with_query`].
    pub fn parse(spec: &Document) -> Result<Projection> {
        Self::parse_inner(spec, None)
    }

    /// As `parse`, with mongod's checks of a positional projection against the query
    /// (31277 when no query path starts with the projected field).
    pub fn parse_with_query(spec: &Document, query: &Document) -> Result<Projection> {
        Self::parse_inner(spec, Some(query))
    }

    /// A pipeline's `$project` (mongod's aggregation projection policies): find-only
    /// features are refused or read as expressions.
    pub fn parse_aggregation(spec: &Document) -> Result<Projection> {
        Self::parse_with(spec, None, true)
    }

    fn parse_inner(spec: &Document, query: Option<&Document>) -> Result<Projection> {
        Self::parse_with(spec, query, false)
    }

    fn parse_with(
        spec: &Document,
        query: Option<&Document>,
        aggregation: bool,
    ) -> Result<Projection> {
        let mut cx = ParseCx {
            query,
            aggregation,
            ..Default::default()
        };
        let mut root = Vec::new();
        for (name, value) in spec {
            cx.id_specified |= name == "_id" || name.starts_with("_id.");
            parse_element(&mut cx, name, value, None, &mut root)?;
        }
        let inclusion = match cx.kind {
            Some(k) => k,
            None if cx.has_slice => cx.id_included,
            None if cx.has_elem_match => true,
            None => cx.id_included,
        };
        if inclusion && !cx.id_specified {
            root.insert(0, ("_id".to_string(), Node::Include));
        }
        if !inclusion && cx.id_included {
            root.retain(|(k, n)| !(k == "_id" && matches!(n, Node::Include)));
        }
        Ok(Projection { root, inclusion })
    }

    pub fn is_inclusion(&self) -> bool {
        self.inclusion
    }

    pub fn apply(&self, doc: &Document, details: Option<&MatchDetails>) -> Result<Document> {
        let position = details.and_then(|d| d.array_position);
        if self.inclusion {
            include(doc, doc, &self.root, position)
        } else {
            exclude(doc, &self.root, position)
        }
    }
}

/// mongod's findFirstPositionalOperator: `.$.` inside, `.$` at the end, or just `$`.
fn positional_at(path: &str) -> Option<(usize, usize)> {
    if let Some(i) = path.find(".$.") {
        return Some((i, i + 3));
    }
    if path.ends_with(".$") {
        return Some((path.len() - 2, path.len()));
    }
    (path == "$").then_some((0, path.len()))
}

fn check_field_path(path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(err(
            Code::Location40352,
            "FieldPath cannot be constructed with empty string",
        ));
    }
    if path.ends_with('.') {
        return Err(err(
            Code::Location40353,
            "FieldPath must not end with a '.'.",
        ));
    }
    for part in path.split('.') {
        if part.is_empty() {
            return Err(err(
                Code::Location15998,
                "FieldPath field names may not be empty strings.",
            ));
        }
        if part.starts_with('$') {
            return Err(err(
                Code::Location16410,
                "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
            ));
        }
    }
    Ok(())
}

fn add_node(root: &mut Vec<(String, Node)>, path: &str, node: Node) -> Result<()> {
    check_field_path(path)?;
    let parts: Vec<&str> = path.split('.').collect();
    let tail = parts[1..].join(".");
    let mut current = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        let existing = current.iter().position(|(k, _)| k == part);
        if last {
            if existing.is_some() {
                return Err(err(
                    Code::Location31250,
                    format!("Path collision at {path}"),
                ));
            }
            current.push((part.to_string(), node));
            return Ok(());
        }
        let index = match existing {
            Some(i) => i,
            None => {
                current.push((part.to_string(), Node::Internal(Vec::new())));
                current.len() - 1
            }
        };
        match &mut current[index].1 {
            Node::Internal(children) => current = children,
            _ => {
                return Err(err(
                    Code::Location31249,
                    format!("Path collision at {path} remaining portion {tail}"),
                ))
            }
        }
    }
    Ok(())
}

fn is_number_or_bool(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Boolean(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

fn truthy(v: &Bson) -> bool {
    match v {
        Bson::Boolean(b) => *b,
        Bson::Int32(n) => *n != 0,
        Bson::Int64(n) => *n != 0,
        Bson::Double(f) => *f != 0.0,
        Bson::Decimal128(_) => {
            super::order::compare_numbers(v, &Bson::Int32(0)) != std::cmp::Ordering::Equal
        }
        _ => true,
    }
}

fn parse_element(
    cx: &mut ParseCx,
    name: &str,
    value: &Bson,
    parent_path: Option<&str>,
    parent: &mut Vec<(String, Node)>,
) -> Result<()> {
    let positional = positional_at(name);
    if positional.is_some() && cx.aggregation {
        return Err(err(
            Code::Location31324,
            "Cannot use positional projection in aggregation projection",
        ));
    }
    match value {
        Bson::Document(sub) => {
            if positional.is_some() {
                return Err(err(
                    Code::Location31271,
                    "positional projection cannot be used with an expression or sub object",
                ));
            }
            parse_sub_object(cx, name, sub, parent_path, parent)
        }
        v if is_number_or_bool(v) => {
            let top_id = name == "_id" && parent_path.is_none();
            if truthy(v) {
                match positional {
                    None => {
                        add_node(parent, name, Node::Include)?;
                        if top_id {
                            cx.id_included = true;
                        }
                    }
                    Some((begin, end)) => {
                        parse_positional(cx, name, begin, end, parent_path, parent)?
                    }
                }
                if !top_id {
                    if cx.kind == Some(false) {
                        return Err(err(
                            Code::Location31253,
                            format!("Cannot do inclusion on field {name} in exclusion projection"),
                        ));
                    }
                    cx.kind = Some(true);
                }
            } else {
                if positional.is_some() {
                    return Err(err(
                        Code::Location31395,
                        "positional projection cannot be used with exclusion",
                    ));
                }
                add_node(parent, name, Node::Exclude)?;
                if top_id {
                    cx.id_excluded = true;
                } else {
                    if cx.kind == Some(true) {
                        return Err(err(
                            Code::Location31254,
                            format!("Cannot do exclusion on field {name} in inclusion projection"),
                        ));
                    }
                    cx.kind = Some(false);
                }
            }
            Ok(())
        }
        literal => {
            if positional.is_some() {
                return Err(err(
                    Code::Location31308,
                    "positional projection cannot be used with a literal",
                ));
            }
            add_node(parent, name, Node::Expr(Expr::parse(literal)?))?;
            if cx.kind == Some(false) {
                return Err(err(
                    Code::Location31310,
                    format!(
                        "Cannot use an expression {} in an exclusion projection",
                        repr::element(name, literal)
                    ),
                ));
            }
            cx.kind = Some(true);
            Ok(())
        }
    }
}

fn parse_positional(
    cx: &mut ParseCx,
    name: &str,
    begin: usize,
    end: usize,
    parent_path: Option<&str>,
    parent: &mut Vec<(String, Node)>,
) -> Result<()> {
    if cx.has_positional {
        return Err(err(
            Code::Location31276,
            "Cannot specify more than one positional projection per query.",
        ));
    }
    if cx.has_elem_match {
        return Err(err(
            Code::Location31256,
            "Cannot specify positional operator and $elemMatch.",
        ));
    }
    let match_field = match parent_path {
        Some(p) => p.split('.').next().unwrap_or_default(),
        None => name.split('.').next().unwrap_or_default(),
    };
    if let Some(query) = cx.query {
        let mut paths = Vec::new();
        query_paths(query, &mut paths);
        if !paths
            .iter()
            .any(|p| p.split('.').next() == Some(match_field))
        {
            return Err(err(
                Code::Location31277,
                format!("Positional projection '{name}' does not match the query document."),
            ));
        }
    }
    if name.ends_with(".$.") {
        return Err(err(Code::Location31270, "Path cannot end with '.$.'"));
    }
    let rest = &name[end..];
    if positional_at(rest).is_some() || rest == "$" {
        return Err(err(
            Code::Location31287,
            format!("Cannot use positional operator twice: {name}"),
        ));
    }
    add_node(parent, &name[..begin], Node::Positional)?;
    cx.has_positional = true;
    Ok(())
}

/// The field paths a query names, through `$and`/`$or`/`$nor` (hasPositionalOperatorMatch).
fn query_paths(query: &Document, out: &mut Vec<String>) {
    for (k, v) in query {
        if matches!(k.as_str(), "$and" | "$or" | "$nor") {
            if let Bson::Array(items) = v {
                for item in items {
                    if let Bson::Document(d) = item {
                        query_paths(d, out);
                    }
                }
            }
        } else if !k.starts_with('$') {
            out.push(k.clone());
        }
    }
}

fn parse_sub_object(
    cx: &mut ParseCx,
    name: &str,
    sub: &Document,
    parent_path: Option<&str>,
    parent: &mut Vec<(String, Node)>,
) -> Result<()> {
    if sub.len() == 1 {
        let (op, arg) = sub.iter().next().expect("one field");
        if op.starts_with('$') {
            return parse_operator(cx, name, op, arg, sub, parent_path, parent);
        }
    }
    if sub.is_empty() {
        return Err(err(
            Code::Location51270,
            format!(
                "An empty sub-projection is not a valid value. Found empty object at path {}",
                full(parent_path, name)
            ),
        ));
    }
    let mut children = Vec::new();
    let path = full(parent_path, name);
    for (k, v) in sub {
        parse_element(cx, k, v, Some(&path), &mut children)?;
    }
    add_node(parent, name, Node::Internal(children))
}

fn full(parent: Option<&str>, name: &str) -> String {
    match parent {
        Some(p) => format!("{p}.{name}"),
        None => name.to_string(),
    }
}

fn whole(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(n) => Some(*n as i64),
        Bson::Int64(n) => Some(*n),
        Bson::Double(f) if f.is_finite() => Some(*f as i64),
        _ => None,
    }
}

fn parse_operator(
    cx: &mut ParseCx,
    name: &str,
    op: &str,
    arg: &Bson,
    sub: &Document,
    parent_path: Option<&str>,
    parent: &mut Vec<(String, Node)>,
) -> Result<()> {
    match op {
        "$elemMatch" if cx.aggregation => Err(err(
            Code::InvalidPipelineOperator,
            "Cannot use $elemMatch in this context",
        )),
        "$slice" if !cx.aggregation => {
            let node = match arg {
                a if whole(a).is_some() => Node::Slice { skip: None, limit: whole(a).unwrap_or(0) },
                Bson::Array(items) => {
                    if items.len() != 2 {
                        return Err(err(Code::Location31272, "$slice array argument should be of form [skip, limit]"));
                    }
                    let Some(skip) = whole(&items[0]) else {
                        return Err(err(
                            Code::Location31257,
                            format!("$slice expects the skip argument to be a number, got {}", type_name(&items[0])),
                        ));
                    };
                    let Some(limit) = whole(&items[1]) else {
                        return Err(err(
                            Code::Location31258,
                            format!("$slice expects the limit argument to be a number, got {}", type_name(&items[1])),
                        ));
                    };
                    if limit <= 0 {
                        return Err(err(Code::Location31259, format!("$slice limit must be positive, got {limit}")));
                    }
                    Node::Slice { skip: Some(skip), limit }
                }
                _ => {
                    return Err(err(Code::Location31273, "$slice only supports numbers and [skip, limit] arrays"))
                }
            };
            add_node(parent, name, node)?;
            cx.has_slice = true;
            Ok(())
        }
        "$elemMatch" => {
            let Bson::Document(cond) = arg else {
                return Err(err(
                    Code::Location31274,
                    format!("elemMatch: Invalid argument, object required, but got {}", type_name(arg)),
                ));
            };
            if cx.has_positional {
                return Err(err(Code::Location31255, "Cannot specify positional operator and $elemMatch."));
            }
            if name.contains('.') || parent_path.is_some() {
                return Err(err(Code::Location31275, "Cannot use $elemMatch projection on a nested field."));
            }
            let mut wrapped = Document::new();
            let mut elem_match = Document::new();
            elem_match.insert("$elemMatch", Bson::Document(cond.clone()));
            wrapped.insert(WRAP, elem_match);
            add_node(parent, name, Node::ElemMatch(Filter::parse(&wrapped)?))?;
            cx.has_elem_match = true;
            Ok(())
        }
        "$meta" => Err(err(
            Code::BadValue,
            format!(
                "$meta projections are not supported by ferrod (no text search or search scores): {}",
                repr::element(name, &Bson::Document(sub.clone()))
            ),
        )),
        _ => {
            if cx.kind == Some(false) {
                return Err(err(
                    Code::Location31252,
                    "Cannot use expression other than $meta in exclusion projection",
                ));
            }
            cx.kind = Some(true);
            let expr = Expr::parse(&Bson::Document(sub.clone())).map_err(|e| {
                // mongod: a `$name` that is no expression is an unknown expression (31325).
                if e.code == Code::InvalidPipelineOperator && e.message.contains(&format!("'{op}'")) {
                    err(Code::Location31325, format!("Unknown expression {op}"))
                } else {
                    e
                }
            })?;
            add_node(parent, name, Node::Expr(expr))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Applying.

fn find_child<'a>(children: &'a [(String, Node)], name: &str) -> Option<&'a Node> {
    children.iter().find(|(k, _)| k == name).map(|(_, n)| n)
}

fn include(
    root: &Document,
    doc: &Document,
    children: &[(String, Node)],
    position: Option<usize>,
) -> Result<Document> {
    let mut out = Document::new();
    for (k, v) in doc {
        match find_child(children, k) {
            Some(Node::Include) => {
                out.insert(k.clone(), v.clone());
            }
            Some(Node::Slice { skip, limit }) => {
                out.insert(k.clone(), slice(v, *skip, *limit));
            }
            Some(Node::Positional) => {
                out.insert(k.clone(), positional(v, position)?);
            }
            Some(Node::Internal(sub)) => match v {
                Bson::Document(d) => {
                    out.insert(k.clone(), Bson::Document(include(root, d, sub, position)?));
                }
                Bson::Array(items) => {
                    out.insert(
                        k.clone(),
                        Bson::Array(include_array(root, items, sub, position)?),
                    );
                }
                _ => {}
            },
            _ => {}
        }
    }
    // Computed fields come after the included ones, in the projection's order.
    for (k, node) in children {
        match node {
            Node::Expr(e) => {
                if let Some(value) = e.evaluate_opt(root, &Document::new())? {
                    out.insert(k.clone(), value);
                }
            }
            Node::ElemMatch(filter) => {
                if let Some(Bson::Array(items)) = doc.get(k) {
                    if let Some(first) = items.iter().find(|item| {
                        let mut wrapped = Document::new();
                        wrapped.insert(WRAP, Bson::Array(vec![(*item).clone()]));
                        filter.matches(&wrapped)
                    }) {
                        out.insert(k.clone(), Bson::Array(vec![first.clone()]));
                    }
                }
            }
            Node::Internal(sub)
                if has_computed(sub)
                    && !matches!(doc.get(k), Some(Bson::Document(_) | Bson::Array(_))) =>
            {
                let computed = include(root, &Document::new(), sub, position)?;
                out.insert(k.clone(), Bson::Document(computed));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn has_computed(children: &[(String, Node)]) -> bool {
    children.iter().any(|(_, n)| match n {
        Node::Expr(_) => true,
        Node::Internal(sub) => has_computed(sub),
        _ => false,
    })
}

fn include_array(
    root: &Document,
    items: &[Bson],
    sub: &[(String, Node)],
    position: Option<usize>,
) -> Result<Vec<Bson>> {
    let mut out = Vec::new();
    for item in items {
        match item {
            Bson::Document(d) => out.push(Bson::Document(include(root, d, sub, position)?)),
            Bson::Array(inner) => out.push(Bson::Array(include_array(root, inner, sub, position)?)),
            _ if has_computed(sub) => out.push(Bson::Document(include(
                root,
                &Document::new(),
                sub,
                position,
            )?)),
            _ => {}
        }
    }
    Ok(out)
}

fn exclude(
    doc: &Document,
    children: &[(String, Node)],
    position: Option<usize>,
) -> Result<Document> {
    let mut out = Document::new();
    for (k, v) in doc {
        match find_child(children, k) {
            Some(Node::Exclude) => {}
            Some(Node::Slice { skip, limit }) => {
                out.insert(k.clone(), slice(v, *skip, *limit));
            }
            Some(Node::Internal(sub)) => {
                let value = match v {
                    Bson::Document(d) => Bson::Document(exclude(d, sub, position)?),
                    Bson::Array(items) => Bson::Array(exclude_array(items, sub, position)?),
                    other => other.clone(),
                };
                out.insert(k.clone(), value);
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(out)
}

fn exclude_array(
    items: &[Bson],
    sub: &[(String, Node)],
    position: Option<usize>,
) -> Result<Vec<Bson>> {
    items
        .iter()
        .map(|item| {
            Ok(match item {
                Bson::Document(d) => Bson::Document(exclude(d, sub, position)?),
                Bson::Array(inner) => Bson::Array(exclude_array(inner, sub, position)?),
                other => other.clone(),
            })
        })
        .collect()
}

/// find's `$slice`: `n` first (or last when negative) elements, or `[skip, limit]`.
fn slice(value: &Bson, skip: Option<i64>, limit: i64) -> Bson {
    let Bson::Array(items) = value else {
        return value.clone();
    };
    let len = items.len() as i64;
    let (start, count) = match skip {
        None if limit >= 0 => (0, limit),
        None => ((len + limit).max(0), len),
        Some(s) if s >= 0 => (s.min(len), limit),
        Some(s) => ((len + s).max(0), limit),
    };
    let end = start.saturating_add(count).min(len);
    Bson::Array(items[start as usize..end as usize].to_vec())
}

fn positional(value: &Bson, position: Option<usize>) -> Result<Bson> {
    let Bson::Array(items) = value else {
        return Err(err(
            Code::Location51247,
            "positional operator '.$' element mismatch",
        ));
    };
    match position.and_then(|p| items.get(p)) {
        Some(item) => Ok(Bson::Array(vec![item.clone()])),
        None => Err(err(
            Code::Location51246,
            "positional operator '.$' couldn't find a matching element in the array",
        )),
    }
}
