//! The update language of mongod 7.0 (src/mongo/db/update): replacement documents,
//! operator documents applied as a tree of paths (so conflicts are found at parse time
//! and fields are created in mongod's order), and aggregation-pipeline updates.
//!
//! An operator update is parsed into a tree whose internal nodes are path components
//! (object fields, the positional `$`, or `$[]`/`$[<id>]` array nodes) and whose leaves
//! are the modifiers. Applying walks the tree over the document: children in mongod's
//! field order (numeric names numerically, others bytewise), existing paths updated in
//! place, missing ones created when the modifier creates (`$set`, `$inc`, `$push`, ...).

mod arith;
mod pipeline;
pub mod repr;

use self::arith::{BitOp, Num};
use super::field_names;
pub use super::matcher::{Filter, MatchDetails};
use super::order::{compare, values_equal};
use crate::error::{type_name, Code, CommandError};
use bson::{Bson, Document};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

type Result<T> = std::result::Result<T, CommandError>;

/// What an update needs from its write: the time for `$currentDate` and whether the
/// document is being inserted by an upsert (`$setOnInsert`, `_id` may be set).
#[derive(Clone, Debug)]
pub struct UpdateContext {
    pub now: bson::DateTime,
    pub now_timestamp: bson::Timestamp,
    pub is_insert: bool,
    /// The command's `let` variables, for pipeline updates.
    pub let_vars: Document,
}

/// The document after an update, and whether it differs (`nModified`).
#[derive(Clone, Debug, PartialEq)]
pub struct Updated {
    pub doc: Document,
    pub modified: bool,
}

/// A parsed update: a replacement, an operator document, or a pipeline.
#[derive(Clone, Debug)]
pub struct Update {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Replacement(Document),
    Modifiers(Box<Modifiers>),
    Pipeline(pipeline::Pipeline),
}

/// mongod's limit on array padding when a path names an index past the end.
const MAX_PADDING: usize = 1_500_000;
/// mongod's BSONObjMaxUserSize.
const MAX_USER_SIZE: usize = 16 * 1024 * 1024;
/// mongod's BSONDepth::getMaxDepthForUserStorage().
const MAX_DEPTH: usize = 100;

fn err(code: Code, msg: impl Into<String>) -> CommandError {
    CommandError::new(code, msg)
}

impl Update {
    /// A replacement document, an operator document, or an aggregation pipeline (array).
    pub fn parse(update: &Bson, array_filters: Option<&[Document]>) -> Result<Update> {
        let kind = match update {
            Bson::Array(stages) => {
                if array_filters.is_some() {
                    return Err(err(
                        Code::FailedToParse,
                        "arrayFilters may not be specified for pipeline-syle updates",
                    ));
                }
                Kind::Pipeline(pipeline::Pipeline::parse(stages)?)
            }
            Bson::Document(doc) => {
                let is_replacement = doc.keys().next().is_none_or(|k| !k.starts_with('$'));
                if is_replacement {
                    if array_filters.is_some() {
                        return Err(err(
                            Code::FailedToParse,
                            "arrayFilters may not be specified for replacement-style updates",
                        ));
                    }
                    Kind::Replacement(doc.clone())
                } else {
                    Kind::Modifiers(Box::new(Modifiers::parse(doc, array_filters)?))
                }
            }
            _ => {
                return Err(err(
                    Code::FailedToParse,
                    "Update argument must be either an object or an array",
                ))
            }
        };
        Ok(Update { kind })
    }

    pub fn is_replacement(&self) -> bool {
        matches!(self.kind, Kind::Replacement(_))
    }

    pub fn is_pipeline(&self) -> bool {
        matches!(self.kind, Kind::Pipeline(_))
    }

    /// True when the update uses the positional `$` (and so needs the query's match).
    pub fn uses_positional(&self) -> bool {
        matches!(&self.kind, Kind::Modifiers(m) if m.positional)
    }

    /// Applies to `doc` (`details` from the query match for positional `$`); enforces `_id`
    /// immutability (66), conflicting paths (40), field-name rules.
    pub fn apply(
        &self,
        doc: &Document,
        details: Option<&MatchDetails>,
        ctx: &UpdateContext,
    ) -> Result<Updated> {
        let updated = match &self.kind {
            Kind::Replacement(replacement) => apply_replacement(replacement, doc)?,
            Kind::Modifiers(m) => {
                let matched = details
                    .and_then(|d| d.array_position)
                    .map(|p| p.to_string());
                m.apply(doc, matched, ctx)?
            }
            // The pipeline's output replaces the document, `_id` kept as for a replacement.
            Kind::Pipeline(p) => apply_replacement(&p.apply(doc, ctx)?, doc)?,
        };
        if updated.modified {
            validate_result(&updated.doc, doc, ctx, &self.kind)?;
        }
        Ok(updated)
    }
}

/// `_id` kept when the replacement omits it, and refused when it changes (66).
fn apply_replacement(replacement: &Document, original: &Document) -> Result<Updated> {
    let mut new = Document::new();
    match (original.get("_id"), replacement.get("_id")) {
        (Some(old), None) => {
            new.insert("_id", old.clone());
            new.extend(replacement.clone());
        }
        (Some(old), Some(given)) if compare(old, given) != Ordering::Equal => {
            return Err(err(
                Code::ImmutableField,
                format!(
                    "After applying the update, the (immutable) field '_id' was found to have been altered to {}",
                    repr::element("_id", given)
                ),
            ));
        }
        _ => new = replacement.clone(),
    }
    let modified = !identical_docs(&new, original);
    Ok(Updated { doc: new, modified })
}

/// Storage checks on a changed document (mongod's storage_validation): `_id` type on
/// insert, nesting depth and size.
fn validate_result(
    doc: &Document,
    original: &Document,
    ctx: &UpdateContext,
    kind: &Kind,
) -> Result<()> {
    match kind {
        // A replacement is checked whole, an operator update where it wrote.
        Kind::Replacement(_) => field_names::check_updated(doc, |_| true)?,
        Kind::Modifiers(_) => {
            field_names::check_updated(doc, |k| original.get(k) != doc.get(k))?;
        }
        // Stages cannot be mistaken for operators: top-level `$` names are allowed.
        Kind::Pipeline(_) => {}
    }
    if ctx.is_insert {
        if let Some(id) = doc.get("_id") {
            if matches!(
                id,
                Bson::RegularExpression(_) | Bson::Array(_) | Bson::Undefined
            ) {
                return Err(err(
                    Code::InvalidIdField,
                    format!("The '_id' value cannot be of type {}", type_name(id)),
                ));
            }
        }
    }
    if depth_of_doc(doc) > MAX_DEPTH {
        return Err(err(
            Code::Overflow,
            format!("Document exceeds maximum nesting depth of {MAX_DEPTH}"),
        ));
    }
    let size = bson::to_vec(doc).map(|b| b.len()).unwrap_or(usize::MAX);
    if size > MAX_USER_SIZE {
        return Err(err(
            Code::Location17419,
            format!("Resulting document after update is larger than {MAX_USER_SIZE}"),
        ));
    }
    Ok(())
}

/// Nesting depth as mongod counts it for storage: top-level fields are at depth 1.
fn depth_of_doc(doc: &Document) -> usize {
    doc.values().map(depth_of).max().unwrap_or(0)
}

fn depth_of(value: &Bson) -> usize {
    match value {
        Bson::Document(d) => 1 + depth_of_doc(d),
        Bson::Array(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        _ => 1,
    }
}

/// Binary equality (same types, same values, same field order): mongod's no-op test.
pub(crate) fn identical(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => x.to_bits() == y.to_bits(),
        (Bson::Document(x), Bson::Document(y)) => identical_docs(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| identical(p, q))
        }
        _ => a == b,
    }
}

pub(crate) fn identical_docs(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && identical(va, vb))
}

/// A field name as an array index: digits only, no leading zero (mongod's
/// parseUnsignedBase10Integer as path support uses it).
fn array_index(field: &str) -> Option<usize> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if field.len() > 1 && field.starts_with('0') {
        return None;
    }
    field.parse().ok()
}

/// The order mongod applies sibling paths in (pathsupport::cmpPathsAndArrayIndexes):
/// two numeric names numerically, anything else bytewise.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldKey(String);

impl Ord for FieldKey {
    fn cmp(&self, other: &Self) -> Ordering {
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if numeric(&self.0) && numeric(&other.0) {
            let a = self.0.trim_start_matches('0');
            let b = other.0.trim_start_matches('0');
            a.len().cmp(&b.len()).then_with(|| a.cmp(b))
        } else {
            self.0.cmp(&other.0)
        }
    }
}

impl PartialOrd for FieldKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn is_positional(part: &str) -> bool {
    part == "$"
}

fn is_array_filter_id(part: &str) -> bool {
    part.len() >= 3 && part.starts_with("$[") && part.ends_with(']')
}

// ---------------------------------------------------------------------------------------
// The tree.

#[derive(Clone, Debug)]
enum Node {
    Object(ObjectNode),
    Array(ArrayNode),
    Leaf(Box<Leaf>),
}

#[derive(Clone, Debug, Default)]
struct ObjectNode {
    children: BTreeMap<FieldKey, Node>,
    positional: Option<Box<Node>>,
}

/// The node under a path followed by `$[]` (identifier "") or `$[<id>]`.
#[derive(Clone, Debug, Default)]
struct ArrayNode {
    children: BTreeMap<String, Node>,
}

impl Node {
    fn child_mut(&mut self, name: &str) -> Option<&mut Node> {
        match self {
            Node::Object(o) => {
                if is_positional(name) {
                    o.positional.as_deref_mut()
                } else {
                    o.children.get_mut(&FieldKey(name.to_string()))
                }
            }
            Node::Array(a) => a.children.get_mut(name),
            Node::Leaf(_) => None,
        }
    }

    fn insert_child(&mut self, name: String, child: Node) {
        match self {
            Node::Object(o) if is_positional(&name) => o.positional = Some(Box::new(child)),
            Node::Object(o) => {
                o.children.insert(FieldKey(name), child);
            }
            Node::Array(a) => {
                a.children.insert(name, child);
            }
            Node::Leaf(_) => {}
        }
    }

    /// Paths of the leaves under this node, relative to it (for merge conflicts).
    fn leaf_paths(&self, prefix: &str, out: &mut Vec<String>) {
        let join = |name: &str| {
            if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            }
        };
        match self {
            Node::Leaf(_) => out.push(prefix.to_string()),
            Node::Object(o) => {
                for (k, c) in &o.children {
                    c.leaf_paths(&join(&k.0), out);
                }
                if let Some(p) = &o.positional {
                    p.leaf_paths(&join("$"), out);
                }
            }
            Node::Array(a) => {
                for (k, c) in &a.children {
                    c.leaf_paths(&join(&format!("$[{k}]")), out);
                }
            }
        }
    }
}

/// True when two sets of relative paths overlap (one equal to or a prefix of another).
fn paths_conflict(a: &[String], b: &[String]) -> Option<String> {
    for p in a {
        for q in b {
            let (short, long) = if p.len() <= q.len() { (p, q) } else { (q, p) };
            if short.is_empty()
                || long == short
                || (long.starts_with(short.as_str()) && long.as_bytes()[short.len()] == b'.')
            {
                return Some(short.clone());
            }
        }
    }
    None
}

#[derive(Clone, Debug)]
struct Leaf {
    op: Op,
}

#[derive(Clone, Debug)]
enum Op {
    Set(Bson),
    SetOnInsert(Bson),
    Unset,
    Inc(Num),
    Mul(Num),
    Min(Bson),
    Max(Bson),
    CurrentDate {
        timestamp: bool,
    },
    Push(Push),
    AddToSet(Vec<Bson>),
    Pop {
        first: bool,
    },
    Pull(PullMatcher),
    PullAll(Vec<Bson>),
    Bit(Vec<(BitOp, Num)>),
    /// Holds the source path of a `$rename` so nothing else may touch it.
    RenameSource,
    RenameDest {
        from: String,
    },
}

#[derive(Clone, Debug)]
struct Push {
    values: Vec<Bson>,
    slice: Option<i64>,
    sort: Option<PushSort>,
    position: Option<i64>,
}

#[derive(Clone, Debug)]
enum PushSort {
    /// `$sort: 1/-1` on whole elements.
    Whole(bool),
    /// `$sort: {field: 1/-1, ...}`.
    Fields(Vec<(String, bool)>),
}

#[derive(Clone, Debug)]
enum PullMatcher {
    Equality(Bson),
    /// A query on each element that is a document (`{$pull: {a: {b: 1}}}`).
    Object(Filter),
    /// A condition on the element itself (`{$gte: 6}`, a regex), matched as `{x: elem}`.
    Wrapped(Filter),
}

const WRAP: &str = "x";

impl PullMatcher {
    fn matches(&self, elem: &Bson) -> bool {
        match self {
            PullMatcher::Equality(v) => values_equal(v, elem),
            PullMatcher::Object(f) => match elem {
                Bson::Document(d) => f.matches(d),
                _ => false,
            },
            PullMatcher::Wrapped(f) => {
                let mut wrapped = Document::new();
                wrapped.insert(WRAP, elem.clone());
                f.matches(&wrapped)
            }
        }
    }
}

#[derive(Clone, Debug)]
struct ArrayFilter {
    id: String,
    filter: Filter,
}

impl ArrayFilter {
    fn matches(&self, elem: &Bson) -> bool {
        let mut wrapped = Document::new();
        wrapped.insert(self.id.clone(), elem.clone());
        self.filter.matches(&wrapped)
    }
}

// ---------------------------------------------------------------------------------------
// Parsing.

#[derive(Clone, Debug)]
struct Modifiers {
    root: Node,
    renames: Vec<(String, String)>,
    filters: BTreeMap<String, ArrayFilter>,
    positional: bool,
}

/// The update operators (all of mongod 7.0's).
pub const MODIFIERS: &[&str] = &[
    "$addToSet",
    "$bit",
    "$currentDate",
    "$inc",
    "$max",
    "$min",
    "$mul",
    "$pop",
    "$pull",
    "$pullAll",
    "$push",
    "$rename",
    "$set",
    "$setOnInsert",
    "$unset",
];

impl Modifiers {
    fn parse(update: &Document, array_filters: Option<&[Document]>) -> Result<Modifiers> {
        let filters = parse_array_filters(array_filters.unwrap_or(&[]))?;
        let mut m = Modifiers {
            root: Node::Object(ObjectNode::default()),
            renames: Vec::new(),
            filters,
            positional: false,
        };
        let mut found = BTreeSet::new();
        for (name, arg) in update {
            if !MODIFIERS.contains(&name.as_str()) {
                return Err(err(
                    Code::FailedToParse,
                    format!(
                        "Unknown modifier: {name}. Expected a valid update modifier or pipeline-style update specified as an array"
                    ),
                ));
            }
            let Bson::Document(fields) = arg else {
                return Err(err(
                    Code::FailedToParse,
                    format!(
                        "Modifiers operate on fields but we found type {} instead. For example: {{$mod: {{<field>: ...}}}} not {{{}}}",
                        type_name(arg),
                        repr::element(name, arg)
                    ),
                ));
            };
            for (path, value) in fields {
                if name == "$rename" {
                    m.parse_rename(path, value, &mut found)?;
                } else {
                    check_updatable(path)?;
                    let op = parse_op(name, path, value)?;
                    m.merge(path, Leaf { op }, &mut found)?;
                }
            }
        }
        for id in m.filters.keys() {
            if !found.contains(id) {
                return Err(err(
                    Code::FailedToParse,
                    format!(
                        "The array filter for identifier '{id}' was not used in the update {}",
                        repr::document(update)
                    ),
                ));
            }
        }
        Ok(m)
    }

    fn parse_rename(&mut self, from: &str, to: &Bson, found: &mut BTreeSet<String>) -> Result<()> {
        check_updatable(from)?;
        self.merge(
            from,
            Leaf {
                op: Op::RenameSource,
            },
            found,
        )?;
        let Bson::String(to) = to else {
            return Err(err(
                Code::BadValue,
                format!(
                    "The 'to' field for $rename must be a string: {}",
                    repr::element(from, to)
                ),
            ));
        };
        check_updatable(to)?;
        let elem = repr::element(from, &Bson::String(to.clone()));
        if from == to {
            return Err(err(
                Code::BadValue,
                format!("The source and target field for $rename must differ: {elem}"),
            ));
        }
        let prefix =
            |a: &str, b: &str| b.starts_with(a) && b.as_bytes().get(a.len()) == Some(&b'.');
        if prefix(from, to) || prefix(to, from) {
            return Err(err(
                Code::BadValue,
                format!(
                    "The source and target field for $rename must not be on the same path: {elem}"
                ),
            ));
        }
        let dynamic = |p: &str| {
            p.split('.')
                .any(|c| is_positional(c) || is_array_filter_id(c))
        };
        if dynamic(from) {
            return Err(err(
                Code::BadValue,
                format!("The source field for $rename may not be dynamic: {from}"),
            ));
        }
        if dynamic(to) {
            return Err(err(
                Code::BadValue,
                format!("The destination field for $rename may not be dynamic: {to}"),
            ));
        }
        self.merge(
            to,
            Leaf {
                op: Op::RenameDest {
                    from: from.to_string(),
                },
            },
            found,
        )?;
        self.renames.push((from.to_string(), to.clone()));
        Ok(())
    }

    /// Adds a leaf at `path` (mongod's UpdateObjectNode::parseAndMerge).
    fn merge(&mut self, path: &str, leaf: Leaf, found: &mut BTreeSet<String>) -> Result<()> {
        let parts: Vec<&str> = path.split('.').collect();
        let positional: Vec<usize> = (0..parts.len())
            .filter(|&i| is_positional(parts[i]))
            .collect();
        if positional.len() > 1 {
            return Err(err(
                Code::BadValue,
                format!("Too many positional (i.e. '$') elements found in path '{path}'"),
            ));
        }
        if positional.first() == Some(&0) {
            return Err(err(
                Code::BadValue,
                format!(
                    "Cannot have positional (i.e. '$') element in the first position in path '{path}'"
                ),
            ));
        }
        self.positional |= !positional.is_empty();
        let conflict = |at: usize| {
            err(
                Code::ConflictingUpdateOperators,
                format!(
                    "Updating the path '{path}' would create a conflict at '{}'",
                    parts[..=at].join(".")
                ),
            )
        };
        let names = (0..parts.len())
            .map(|i| self.child_name(parts[i], i, path, found))
            .collect::<Result<Vec<_>>>()?;
        let mut current = &mut self.root;
        for i in 0..parts.len() {
            let name = names[i].clone();
            if i == parts.len() - 1 {
                if current.child_mut(&name).is_some() {
                    return Err(conflict(i));
                }
                current.insert_child(name, Node::Leaf(Box::new(leaf)));
                return Ok(());
            }
            let wants_array = is_array_filter_id(parts[i + 1]);
            match current.child_mut(&name) {
                Some(Node::Array(_)) if wants_array => {}
                Some(Node::Object(_)) if !wants_array => {}
                Some(_) => return Err(conflict(i)),
                None => {
                    let node = if wants_array {
                        Node::Array(ArrayNode::default())
                    } else {
                        Node::Object(ObjectNode::default())
                    };
                    current.insert_child(name.clone(), node);
                }
            }
            current = current.child_mut(&name).expect("just inserted");
        }
        Ok(())
    }

    fn child_name(
        &self,
        part: &str,
        position: usize,
        path: &str,
        found: &mut BTreeSet<String>,
    ) -> Result<String> {
        if !is_array_filter_id(part) {
            return Ok(part.to_string());
        }
        if position == 0 {
            return Err(err(
                Code::BadValue,
                format!(
                    "Cannot have array filter identifier (i.e. '$[<id>]') element in the first position in path '{path}'"
                ),
            ));
        }
        let id = &part[2..part.len() - 1];
        if !id.is_empty() {
            if !self.filters.contains_key(id) {
                return Err(err(
                    Code::BadValue,
                    format!("No array filter found for identifier '{id}' in path '{path}'"),
                ));
            }
            found.insert(id.to_string());
        }
        Ok(id.to_string())
    }
}

/// mongod's fieldchecker::isUpdatable.
fn check_updatable(path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(err(
            Code::EmptyFieldName,
            "An empty update path is not valid.",
        ));
    }
    if path.split('.').any(str::is_empty) {
        return Err(err(
            Code::EmptyFieldName,
            format!("The update path '{path}' contains an empty field name, which is not allowed."),
        ));
    }
    Ok(())
}

fn parse_array_filters(filters: &[Document]) -> Result<BTreeMap<String, ArrayFilter>> {
    let mut out = BTreeMap::new();
    for spec in filters {
        let wrap = |e: CommandError| {
            err(
                e.code,
                format!("Error parsing array filter :: caused by :: {}", e.message),
            )
        };
        let filter = Filter::parse(spec).map_err(wrap)?;
        let mut ids = BTreeSet::new();
        collect_placeholders(spec, &mut ids);
        let mut ids = ids.into_iter();
        let Some(id) = ids.next() else {
            return Err(err(
                Code::FailedToParse,
                "Cannot use an expression without a top-level field name in arrayFilters",
            ));
        };
        if let Some(other) = ids.next() {
            return Err(wrap(err(
                Code::FailedToParse,
                format!("Expected a single top-level field name, found '{id}' and '{other}'"),
            )));
        }
        let valid = id.starts_with(|c: char| c.is_ascii_lowercase())
            && id.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(wrap(err(
                Code::BadValue,
                format!(
                    "The top-level field name must be an alphanumeric string beginning with a lowercase letter, found '{id}'"
                ),
            )));
        }
        if out.contains_key(&id) {
            return Err(err(
                Code::FailedToParse,
                format!("Found multiple array filters with the same top-level field name {id}"),
            ));
        }
        out.insert(id.clone(), ArrayFilter { id, filter });
    }
    Ok(out)
}

/// The top-level field names of a filter, looking through `$and`/`$or`/`$nor`.
fn collect_placeholders(spec: &Document, out: &mut BTreeSet<String>) {
    for (key, value) in spec {
        if matches!(key.as_str(), "$and" | "$or" | "$nor") {
            if let Bson::Array(items) = value {
                for item in items {
                    if let Bson::Document(d) = item {
                        collect_placeholders(d, out);
                    }
                }
            }
        } else if !key.starts_with('$') {
            out.insert(key.split('.').next().unwrap_or_default().to_string());
        }
    }
}

fn whole_number(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(n) => Some(*n as i64),
        Bson::Int64(n) => Some(*n),
        Bson::Double(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
        _ => None,
    }
}

fn parse_op(name: &str, path: &str, value: &Bson) -> Result<Op> {
    let elem = || repr::element(path, value);
    Ok(match name {
        "$set" => Op::Set(value.clone()),
        "$setOnInsert" => Op::SetOnInsert(value.clone()),
        "$unset" => Op::Unset,
        "$min" => Op::Min(value.clone()),
        "$max" => Op::Max(value.clone()),
        "$inc" | "$mul" => {
            let Some(n) = Num::of(value) else {
                let verb = if name == "$inc" {
                    "increment"
                } else {
                    "multiply"
                };
                return Err(err(
                    Code::TypeMismatch,
                    format!("Cannot {verb} with non-numeric argument: {{{}}}", elem()),
                ));
            };
            if name == "$inc" {
                Op::Inc(n)
            } else {
                Op::Mul(n)
            }
        }
        "$currentDate" => parse_current_date(value)?,
        "$pop" => {
            let n = match value {
                Bson::Int32(n) => *n as f64,
                Bson::Int64(n) => *n as f64,
                Bson::Double(f) => *f,
                _ => {
                    return Err(err(
                        Code::FailedToParse,
                        format!("Expected a number in: {}", elem()),
                    ))
                }
            };
            if n != 1.0 && n != -1.0 {
                return Err(err(
                    Code::FailedToParse,
                    format!("$pop expects 1 or -1, found: {}", repr::value_repr(value)),
                ));
            }
            Op::Pop { first: n == -1.0 }
        }
        "$pullAll" => match value {
            Bson::Array(items) => Op::PullAll(items.clone()),
            other => {
                return Err(err(
                    Code::BadValue,
                    format!(
                        "$pullAll requires an array argument but was given a {}",
                        type_name(other)
                    ),
                ))
            }
        },
        "$pull" => Op::Pull(parse_pull(value)?),
        "$addToSet" => Op::AddToSet(parse_add_to_set(value)?),
        "$push" => Op::Push(parse_push(value)?),
        "$bit" => Op::Bit(parse_bit(value)?),
        _ => unreachable!("checked against MODIFIERS"),
    })
}

fn parse_current_date(value: &Bson) -> Result<Op> {
    match value {
        Bson::Boolean(_) => Ok(Op::CurrentDate { timestamp: false }),
        Bson::Document(spec) => {
            let mut timestamp = None;
            for (k, v) in spec {
                if k != "$type" {
                    return Err(err(Code::BadValue, format!("Unrecognized $currentDate option: {k}")));
                }
                timestamp = match v {
                    Bson::String(s) if s == "date" => Some(false),
                    Bson::String(s) if s == "timestamp" => Some(true),
                    _ => None,
                };
            }
            match timestamp {
                Some(timestamp) => Ok(Op::CurrentDate { timestamp }),
                None => Err(err(
                    Code::BadValue,
                    "The '$type' string field is required to be 'date' or 'timestamp': {$currentDate: {field : {$type: 'date'}}}",
                )),
            }
        }
        other => Err(err(
            Code::BadValue,
            format!(
                "{} is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({{$type: 'timestamp/date'}}).",
                type_name(other)
            ),
        )),
    }
}

/// Operators that take a path's value (mongod's parsePathAcceptingKeyword): a `$pull`
/// object starting with one is a condition on the element itself.
const PATH_KEYWORDS: &[&str] = &[
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$not",
    "$exists",
    "$type",
    "$regex",
    "$options",
    "$mod",
    "$all",
    "$elemMatch",
    "$size",
    "$bitsAllSet",
    "$bitsAnySet",
    "$bitsAllClear",
    "$bitsAnyClear",
    "$geoWithin",
    "$geoIntersects",
    "$near",
    "$nearSphere",
    "$within",
    "$_internalSchemaType",
];

fn parse_pull(value: &Bson) -> Result<PullMatcher> {
    match value {
        Bson::Document(d) => {
            let first_is_keyword = d
                .keys()
                .next()
                .is_some_and(|k| PATH_KEYWORDS.contains(&k.as_str()));
            if first_is_keyword {
                let mut wrapped = Document::new();
                wrapped.insert(WRAP, value.clone());
                Ok(PullMatcher::Wrapped(Filter::parse(&wrapped)?))
            } else {
                Ok(PullMatcher::Object(Filter::parse(d)?))
            }
        }
        Bson::RegularExpression(_) => {
            let mut wrapped = Document::new();
            wrapped.insert(WRAP, value.clone());
            Ok(PullMatcher::Wrapped(Filter::parse(&wrapped)?))
        }
        other => Ok(PullMatcher::Equality(other.clone())),
    }
}

fn parse_add_to_set(value: &Bson) -> Result<Vec<Bson>> {
    let Bson::Document(d) = value else {
        return Ok(vec![value.clone()]);
    };
    match d.iter().next() {
        Some((k, each)) if k == "$each" => {
            let Bson::Array(items) = each else {
                return Err(err(
                    Code::BadValue,
                    format!(
                        "The argument to $each in $addToSet must be an array but it was of type {}",
                        type_name(each)
                    ),
                ));
            };
            if d.len() > 1 {
                return Err(err(
                    Code::BadValue,
                    format!(
                        "Found unexpected fields after $each in $addToSet: {}",
                        repr::document(d)
                    ),
                ));
            }
            // mongod drops duplicates among the values to add.
            let mut unique: Vec<Bson> = Vec::new();
            for item in items {
                if !unique.iter().any(|u| values_equal(u, item)) {
                    unique.push(item.clone());
                }
            }
            Ok(unique)
        }
        _ => Ok(vec![value.clone()]),
    }
}

fn parse_push(value: &Bson) -> Result<Push> {
    let plain = Push {
        values: vec![value.clone()],
        slice: None,
        sort: None,
        position: None,
    };
    let Bson::Document(d) = value else {
        return Ok(plain);
    };
    if !d.contains_key("$each") {
        return Ok(plain);
    }
    let mut push = Push {
        values: Vec::new(),
        slice: None,
        sort: None,
        position: None,
    };
    for (clause, arg) in d {
        match clause.as_str() {
            "$each" => match arg {
                Bson::Array(items) => push.values = items.clone(),
                other => {
                    return Err(err(
                        Code::BadValue,
                        format!(
                        "The argument to $each in $push must be an array but it was of type: {}",
                        type_name(other)
                    ),
                    ))
                }
            },
            "$slice" => {
                push.slice = Some(whole_number(arg).ok_or_else(|| {
                    err(
                        Code::BadValue,
                        format!(
                            "The value for $slice must be an integer value but was given type: {}",
                            type_name(arg)
                        ),
                    )
                })?)
            }
            "$position" => {
                push.position = Some(whole_number(arg).ok_or_else(|| {
                    err(
                        Code::BadValue,
                        format!(
                            "The value for $position must be an integer value, not of type: {}",
                            type_name(arg)
                        ),
                    )
                })?)
            }
            "$sort" => push.sort = Some(parse_push_sort(arg)?),
            other => {
                return Err(err(
                    Code::BadValue,
                    format!("Unrecognized clause in $push: {other}"),
                ))
            }
        }
    }
    Ok(push)
}

fn sort_direction(value: &Bson) -> Result<bool> {
    let n = match value {
        Bson::Int32(n) => *n as f64,
        Bson::Int64(n) => *n as f64,
        Bson::Double(f) => *f,
        _ => 0.0,
    };
    if n == 1.0 || n == -1.0 {
        Ok(n == 1.0)
    } else {
        Err(err(
            Code::BadValue,
            "The $sort element value must be either 1 or -1",
        ))
    }
}

fn parse_push_sort(arg: &Bson) -> Result<PushSort> {
    match arg {
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => Ok(PushSort::Whole(sort_direction(arg)?)),
        Bson::Document(spec) => {
            if spec.is_empty() {
                return Err(err(Code::BadValue, "The $sort pattern is empty when it should be a set of fields."));
            }
            let mut fields = Vec::new();
            for (field, dir) in spec {
                let asc = sort_direction(dir)?;
                if field.is_empty() {
                    return Err(err(Code::BadValue, "The $sort field cannot be empty"));
                }
                if field.split('.').any(str::is_empty) {
                    return Err(err(
                        Code::BadValue,
                        format!("The $sort field is a dotted field but has an empty part: {field}"),
                    ));
                }
                fields.push((field.clone(), asc));
            }
            Ok(PushSort::Fields(fields))
        }
        _ => Err(err(
            Code::BadValue,
            "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort embedded fields",
        )),
    }
}

fn parse_bit(value: &Bson) -> Result<Vec<(BitOp, Num)>> {
    let Bson::Document(spec) = value else {
        return Err(err(
            Code::BadValue,
            format!(
                "The $bit modifier is not compatible with a {}. You must pass in an embedded document: {{$bit: {{field: {{and/or/xor: #}}}}",
                type_name(value)
            ),
        ));
    };
    let mut ops = Vec::new();
    for (name, arg) in spec {
        let op = match name.as_str() {
            "and" => BitOp::And,
            "or" => BitOp::Or,
            "xor" => BitOp::Xor,
            _ => {
                return Err(err(
                    Code::BadValue,
                    format!(
                        "The $bit modifier only supports 'and', 'or', and 'xor', not '{name}' which is an unknown operator: {{{}}}",
                        repr::element(name, arg)
                    ),
                ))
            }
        };
        let n = match arg {
            Bson::Int32(n) => Num::I32(*n),
            Bson::Int64(n) => Num::I64(*n),
            other => {
                return Err(err(
                    Code::BadValue,
                    format!(
                        "The $bit modifier field must be an Integer(32/64 bit); a '{}' is not supported here: {{{}}}",
                        type_name(other),
                        repr::element(name, arg)
                    ),
                ))
            }
        };
        ops.push((op, n));
    }
    if ops.is_empty() {
        return Err(err(
            Code::BadValue,
            "You must pass in at least one bitwise operation. The format is: {$bit: {field: {and/or/xor: #}}}",
        ));
    }
    Ok(ops)
}

// ---------------------------------------------------------------------------------------
// Applying.

struct Cx<'a> {
    ctx: &'a UpdateContext,
    matched: Option<String>,
    filters: &'a BTreeMap<String, ArrayFilter>,
    id_repr: String,
    /// `$rename` sources found in the document, by source path.
    renamed: BTreeMap<String, Bson>,
    /// `_id` is immutable unless the document is being inserted.
    id_immutable: bool,
}

impl Modifiers {
    fn apply(
        &self,
        doc: &Document,
        matched: Option<String>,
        ctx: &UpdateContext,
    ) -> Result<Updated> {
        let mut cx = Cx {
            ctx,
            matched,
            filters: &self.filters,
            id_repr: repr::id_of(doc),
            renamed: BTreeMap::new(),
            // An upsert's `_id` from the query is as immutable as a stored one.
            id_immutable: doc.contains_key("_id"),
        };
        for (from, to) in &self.renames {
            if let Some(value) = rename_source(doc, from, to, &cx)? {
                cx.renamed.insert(from.clone(), value);
            }
        }
        let mut root = Bson::Document(doc.clone());
        let mut modified = false;
        let Node::Object(node) = &self.root else {
            unreachable!("the root is an object node")
        };
        let mut path = Vec::new();
        apply_object(node, &mut root, "", &mut path, &cx, &mut modified)?;
        let Bson::Document(mut new) = root else {
            unreachable!("the root stays a document")
        };
        for from in cx.renamed.keys() {
            if cx.id_immutable && (from == "_id" || from.starts_with("_id.")) {
                return Err(err(
                    Code::ImmutableField,
                    format!(
                        "Unsetting the path '{from}' using $rename would modify the immutable field '_id'"
                    ),
                ));
            }
            remove_path(&mut new, from);
            modified = true;
        }
        Ok(Updated { doc: new, modified })
    }
}

/// The value at a `$rename` source, refusing sources and destinations inside arrays
/// as mongod's RenameNode does.
fn rename_source(doc: &Document, from: &str, to: &str, cx: &Cx) -> Result<Option<Bson>> {
    let root = Bson::Document(doc.clone());
    let mut current = &root;
    let mut array_parent: Option<String> = None;
    let mut name = String::new();
    for part in from.split('.') {
        let next = match current {
            Bson::Document(d) => d.get(part),
            Bson::Array(items) => {
                array_parent = Some(name.clone());
                match array_index(part) {
                    Some(i) => items.get(i),
                    None => return Err(untraversable(part, from, &name, current)),
                }
            }
            _ => return Err(untraversable(part, from, &name, current)),
        };
        match next {
            Some(v) => current = v,
            None => return Ok(None),
        }
        name = part.to_string();
    }
    let current = current.clone();
    if let Some(array) = array_parent {
        return Err(err(
            Code::BadValue,
            format!(
                "The source field cannot be an array element, '{from}' in doc with {} has an array field called '{array}'",
                cx.id_repr
            ),
        ));
    }
    let mut dest = &root;
    let mut dest_name = String::new();
    for part in to.split('.') {
        let next = match dest {
            Bson::Document(d) => d.get(part),
            Bson::Array(_) => {
                return Err(err(
                    Code::BadValue,
                    format!(
                        "The destination field cannot be an array element, '{to}' in doc with {} has an array field called '{dest_name}'",
                        cx.id_repr
                    ),
                ))
            }
            _ => None,
        };
        match next {
            Some(v) => dest = v,
            None => break,
        }
        dest_name = part.to_string();
    }
    Ok(Some(current))
}

fn remove_path(doc: &mut Document, path: &str) {
    match path.split_once('.') {
        None => {
            doc.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Bson::Document(inner)) = doc.get_mut(head) {
                remove_path(inner, rest);
            }
        }
    }
}

/// A `$rename` source through a scalar or a non-index into an array (PathNotViable).
fn untraversable(part: &str, path: &str, name: &str, value: &Bson) -> CommandError {
    err(
        Code::PathNotViable,
        format!(
            "cannot use the part ({part} of {path}) to traverse the element ({{{}}})",
            repr::element(name, value)
        ),
    )
}

/// `_id` may not change on an update (ImmutableField 66).
fn check_immutable(cx: &Cx, path: &[String]) -> Result<()> {
    if cx.id_immutable && path.first().is_some_and(|p| p == "_id") {
        return Err(err(
            Code::ImmutableField,
            format!(
                "Performing an update on the path '{}' would modify the immutable field '_id'",
                path.join(".")
            ),
        ));
    }
    Ok(())
}

fn conflict_at(path: &[String], extra: &str) -> CommandError {
    let mut full = path.join(".");
    if !extra.is_empty() {
        if !full.is_empty() {
            full.push('.');
        }
        full.push_str(extra);
    }
    err(
        Code::ConflictingUpdateOperators,
        format!("Update created a conflict at '{full}'"),
    )
}

fn apply_object(
    node: &ObjectNode,
    container: &mut Bson,
    name: &str,
    path: &mut Vec<String>,
    cx: &Cx,
    modified: &mut bool,
) -> Result<()> {
    let mut entries: Vec<(String, &Node)> = node
        .children
        .iter()
        .map(|(k, v)| (k.0.clone(), v))
        .collect();
    if let Some(positional) = &node.positional {
        let Some(matched) = &cx.matched else {
            return Err(err(
                Code::BadValue,
                "The positional operator did not find the match needed from the query.",
            ));
        };
        if let Some(other) = node.children.get(&FieldKey(matched.clone())) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            other.leaf_paths("", &mut a);
            positional.leaf_paths("", &mut b);
            if let Some(at) = paths_conflict(&a, &b) {
                path.push(matched.clone());
                let e = conflict_at(path, &at);
                path.pop();
                return Err(e);
            }
        }
        let at = entries
            .iter()
            .position(|(k, _)| FieldKey(k.clone()) > FieldKey(matched.clone()))
            .unwrap_or(entries.len());
        entries.insert(at, (matched.clone(), positional));
    }
    for (field, child) in entries {
        path.push(field.clone());
        let result = apply_child(child, container, name, &field, path, cx, modified);
        path.pop();
        result?;
    }
    Ok(())
}

fn apply_child(
    child: &Node,
    container: &mut Bson,
    name: &str,
    field: &str,
    path: &mut Vec<String>,
    cx: &Cx,
    modified: &mut bool,
) -> Result<()> {
    let unset = matches!(child, Node::Leaf(leaf) if matches!(leaf.op, Op::Unset));
    match container {
        Bson::Document(d) => {
            if unset {
                if d.contains_key(field) {
                    check_immutable(cx, path)?;
                    d.remove(field);
                    *modified = true;
                }
                return Ok(());
            }
            if let Some(existing) = d.get_mut(field) {
                return apply_existing(child, existing, field, false, path, cx, modified);
            }
            if let Some(value) = create(child, field, path, cx)? {
                check_created(cx, path)?;
                d.insert(field, value);
                *modified = true;
            }
            Ok(())
        }
        Bson::Array(items) => {
            let index = array_index(field);
            if let Some(i) = index.filter(|&i| i < items.len()) {
                return apply_existing(child, &mut items[i], field, true, path, cx, modified);
            }
            if unset {
                return Ok(());
            }
            let Some(value) = create(child, field, path, cx)? else {
                return Ok(());
            };
            let Some(i) = index else {
                return Err(not_viable(field, name, container));
            };
            let Bson::Array(items) = container else {
                unreachable!()
            };
            if i - items.len() > MAX_PADDING {
                return Err(err(
                    Code::CannotBackfillArray,
                    format!("can't backfill more than {MAX_PADDING} elements"),
                ));
            }
            check_created(cx, path)?;
            items.resize(i, Bson::Null);
            items.push(value);
            *modified = true;
            Ok(())
        }
        _ => {
            if unset {
                return Ok(());
            }
            match create(child, field, path, cx)? {
                Some(_) => Err(not_viable(field, name, container)),
                None => Ok(()),
            }
        }
    }
}

fn not_viable(field: &str, name: &str, container: &Bson) -> CommandError {
    err(
        Code::PathNotViable,
        format!(
            "Cannot create field '{field}' in element {{{}}}",
            repr::element(name, container)
        ),
    )
}

/// Creating below an existing `_id` changes it.
fn check_created(cx: &Cx, path: &[String]) -> Result<()> {
    if path.len() > 1 {
        check_immutable(cx, path)?;
    }
    Ok(())
}

/// The value a node creates at a missing path, or None when it creates nothing.
fn create(node: &Node, field: &str, path: &mut Vec<String>, cx: &Cx) -> Result<Option<Bson>> {
    match node {
        Node::Leaf(leaf) => leaf.create(cx),
        Node::Object(o) => {
            let mut value = Bson::Document(Document::new());
            let mut ignored = false;
            apply_object(o, &mut value, field, path, cx, &mut ignored)?;
            Ok(match &value {
                Bson::Document(d) if d.is_empty() => None,
                _ => Some(value),
            })
        }
        Node::Array(_) => Err(err(
            Code::BadValue,
            format!(
                "The path '{}' must exist in the document in order to apply array updates.",
                path.join(".")
            ),
        )),
    }
}

fn apply_existing(
    node: &Node,
    value: &mut Bson,
    field: &str,
    in_array: bool,
    path: &mut Vec<String>,
    cx: &Cx,
    modified: &mut bool,
) -> Result<()> {
    match node {
        Node::Object(o) => apply_object(o, value, field, path, cx, modified),
        Node::Array(a) => apply_array(a, value, field, path, cx, modified),
        Node::Leaf(leaf) => {
            let changed = if matches!(leaf.op, Op::Unset) {
                // Only reached for array elements: mongod sets them to null.
                debug_assert!(in_array);
                *value = Bson::Null;
                true
            } else {
                leaf.update(value, field, path, cx)?
            };
            if changed {
                check_immutable(cx, path)?;
                *modified = true;
            }
            Ok(())
        }
    }
}

fn apply_array(
    node: &ArrayNode,
    value: &mut Bson,
    field: &str,
    path: &mut Vec<String>,
    cx: &Cx,
    modified: &mut bool,
) -> Result<()> {
    let Bson::Array(items) = value else {
        return Err(err(
            Code::BadValue,
            format!(
                "Cannot apply array updates to non-array element {}",
                repr::element(field, value)
            ),
        ));
    };
    // Which children apply to which element is decided before any of them runs.
    let mut plan: Vec<Vec<&Node>> = Vec::with_capacity(items.len());
    for item in items.iter() {
        let mut matching = Vec::new();
        for (id, child) in &node.children {
            let applies = id.is_empty() || cx.filters.get(id).is_some_and(|f| f.matches(item));
            if applies {
                matching.push(child);
            }
        }
        plan.push(matching);
    }
    for (i, children) in plan.into_iter().enumerate() {
        let index = i.to_string();
        path.push(index.clone());
        if children.len() > 1 {
            let mut seen: Vec<String> = Vec::new();
            for child in &children {
                let mut mine = Vec::new();
                child.leaf_paths("", &mut mine);
                if let Some(at) = paths_conflict(&seen, &mine) {
                    let e = conflict_at(path, &at);
                    path.pop();
                    return Err(e);
                }
                seen.extend(mine);
            }
        }
        for child in children {
            if let Err(e) = apply_existing(child, &mut items[i], &index, true, path, cx, modified) {
                path.pop();
                return Err(e);
            }
        }
        path.pop();
    }
    Ok(())
}

impl Leaf {
    /// The value this modifier gives a missing field (None: it creates nothing).
    fn create(&self, cx: &Cx) -> Result<Option<Bson>> {
        Ok(match &self.op {
            Op::Set(v) => Some(v.clone()),
            Op::SetOnInsert(v) => cx.ctx.is_insert.then(|| v.clone()),
            Op::Unset | Op::Pop { .. } | Op::Pull(_) | Op::PullAll(_) | Op::RenameSource => None,
            Op::Inc(n) => Some(n.to_bson()),
            Op::Mul(n) => Some(n.zero_like().to_bson()),
            Op::Min(v) | Op::Max(v) => Some(v.clone()),
            Op::CurrentDate { timestamp } => Some(current_date(*timestamp, cx)),
            Op::Push(push) => {
                let mut items = Vec::new();
                push.apply(&mut items);
                Some(Bson::Array(items))
            }
            Op::AddToSet(values) => Some(Bson::Array(values.clone())),
            Op::Bit(ops) => {
                let mut n = Num::I32(0);
                for (op, arg) in ops {
                    n = arith::bit(*op, n, *arg).unwrap_or(n);
                }
                Some(n.to_bson())
            }
            Op::RenameDest { from } => cx.renamed.get(from).cloned(),
        })
    }

    /// Updates an existing value in place; false when it is a no-op.
    fn update(&self, value: &mut Bson, field: &str, path: &[String], cx: &Cx) -> Result<bool> {
        let set = |value: &mut Bson, new: Bson| {
            if identical(value, &new) {
                false
            } else {
                *value = new;
                true
            }
        };
        match &self.op {
            Op::Set(v) => Ok(set(value, v.clone())),
            Op::SetOnInsert(v) => Ok(cx.ctx.is_insert && set(value, v.clone())),
            Op::Unset | Op::RenameSource => Ok(false),
            Op::RenameDest { from } => match cx.renamed.get(from) {
                Some(v) => {
                    *value = v.clone();
                    Ok(true)
                }
                None => Ok(false),
            },
            Op::Inc(arg) | Op::Mul(arg) => {
                let is_inc = matches!(self.op, Op::Inc(_));
                let op_name = if is_inc { "$inc" } else { "$mul" };
                let Some(current) = Num::of(value) else {
                    return Err(err(
                        Code::TypeMismatch,
                        format!(
                            "Cannot apply {op_name} to a value of non-numeric type. {{{}}} has the field '{field}' of non-numeric type {}",
                            cx.id_repr,
                            type_name(value)
                        ),
                    ));
                };
                let result = if is_inc {
                    arith::add(*arg, current)
                } else {
                    arith::mul(*arg, current)
                };
                let Some(result) = result else {
                    return Err(err(
                        Code::BadValue,
                        format!(
                            "Failed to apply {op_name} operations to current value ({}) for document {{{}}}",
                            current.debug_string(),
                            cx.id_repr
                        ),
                    ));
                };
                if result.identical(current) {
                    return Ok(false);
                }
                *value = result.to_bson();
                Ok(true)
            }
            Op::Min(v) | Op::Max(v) => {
                let want = if matches!(self.op, Op::Min(_)) {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                if compare(v, value) == want {
                    *value = v.clone();
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            Op::CurrentDate { timestamp } => {
                *value = current_date(*timestamp, cx);
                Ok(true)
            }
            Op::Push(push) => {
                let Bson::Array(items) = value else {
                    return Err(err(
                        Code::BadValue,
                        format!(
                            "The field '{}' must be an array but is of type {} in document {{{}}}",
                            path.join("."),
                            type_name(value),
                            cx.id_repr
                        ),
                    ));
                };
                Ok(push.apply(items))
            }
            Op::AddToSet(values) => {
                let Bson::Array(items) = value else {
                    return Err(err(
                        Code::BadValue,
                        format!(
                            "Cannot apply $addToSet to non-array field. Field named '{field}' has non-array type {}",
                            type_name(value)
                        ),
                    ));
                };
                let mut changed = false;
                for v in values {
                    if !items.iter().any(|item| values_equal(item, v)) {
                        items.push(v.clone());
                        changed = true;
                    }
                }
                Ok(changed)
            }
            Op::Pop { first } => {
                let Bson::Array(items) = value else {
                    return Err(err(
                        Code::TypeMismatch,
                        format!(
                            "Path '{}' contains an element of non-array type '{}'",
                            path.join("."),
                            type_name(value)
                        ),
                    ));
                };
                if items.is_empty() {
                    return Ok(false);
                }
                if *first {
                    items.remove(0);
                } else {
                    items.pop();
                }
                Ok(true)
            }
            Op::Pull(matcher) => {
                let Bson::Array(items) = value else {
                    return Err(err(
                        Code::BadValue,
                        "Cannot apply $pull to a non-array value",
                    ));
                };
                let before = items.len();
                items.retain(|item| !matcher.matches(item));
                Ok(items.len() != before)
            }
            Op::PullAll(values) => {
                let Bson::Array(items) = value else {
                    return Err(err(
                        Code::BadValue,
                        "Cannot apply $pullAll to a non-array value",
                    ));
                };
                let before = items.len();
                items.retain(|item| !values.iter().any(|v| values_equal(v, item)));
                Ok(items.len() != before)
            }
            Op::Bit(ops) => {
                let current = match value {
                    Bson::Int32(n) => Num::I32(*n),
                    Bson::Int64(n) => Num::I64(*n),
                    other => {
                        return Err(err(
                            Code::BadValue,
                            format!(
                                "Cannot apply $bit to a value of non-integral type.{{{}}} has the field {field} of non-integer type {}",
                                cx.id_repr,
                                type_name(other)
                            ),
                        ))
                    }
                };
                let mut n = current;
                for (op, arg) in ops {
                    n = arith::bit(*op, n, *arg).unwrap_or(n);
                }
                if n.identical(current) {
                    return Ok(false);
                }
                *value = n.to_bson();
                Ok(true)
            }
        }
    }
}

fn current_date(timestamp: bool, cx: &Cx) -> Bson {
    if timestamp {
        Bson::Timestamp(cx.ctx.now_timestamp)
    } else {
        Bson::DateTime(cx.ctx.now)
    }
}

impl Push {
    /// mongod's PushNode::performPush on an array; false when nothing changed.
    fn apply(&self, items: &mut Vec<Bson>) -> bool {
        let mut changed = false;
        if !self.values.is_empty() {
            let len = items.len() as i64;
            let at = match self.position {
                None => len,
                Some(p) if p > len => len,
                Some(p) if p >= 0 => p,
                Some(p) if -p < len => len + p,
                Some(_) => 0,
            } as usize;
            items.splice(at..at, self.values.iter().cloned());
            changed = true;
        }
        if let Some(sort) = &self.sort {
            items.sort_by(|a, b| sort.compare(a, b));
            changed = true;
        }
        if let Some(slice) = self.slice {
            let keep = slice.unsigned_abs() as usize;
            if items.len() > keep {
                if slice >= 0 {
                    items.truncate(keep);
                } else {
                    items.drain(..items.len() - keep);
                }
                changed = true;
            }
        }
        changed
    }
}

impl PushSort {
    /// mongod's PatternElementCmp: whole elements, or the pattern's fields of each element
    /// (missing ones as null, non-documents wrapped under an empty name).
    fn compare(&self, a: &Bson, b: &Bson) -> Ordering {
        match self {
            PushSort::Whole(asc) => {
                let o = compare(a, b);
                if *asc {
                    o
                } else {
                    o.reverse()
                }
            }
            PushSort::Fields(fields) => {
                for (field, asc) in fields {
                    let o = compare(&field_value(a, field), &field_value(b, field));
                    let o = if *asc { o } else { o.reverse() };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            }
        }
    }
}

/// A dotted field of a value (numeric parts index arrays), null when missing.
fn field_value(value: &Bson, path: &str) -> Bson {
    let mut current = value;
    for part in path.split('.') {
        let next = match current {
            Bson::Document(d) => d.get(part),
            Bson::Array(items) => array_index(part).and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(v) => current = v,
            None => return Bson::Null,
        }
    }
    current.clone()
}

// ---------------------------------------------------------------------------------------
// Upserts.

/// The document an upsert inserts (mongod's produceDocumentForUpsert): the query's
/// equality fields (only `_id` for a replacement), the update applied as an insert,
/// `_id` first and generated when missing, and the checks on the result.
pub fn upsert_document(update: &Update, filter: &Filter, ctx: &UpdateContext) -> Result<Document> {
    let seed = if update.is_replacement() {
        let mut seed = Document::new();
        if let Some((_, id)) = filter.equalities().into_iter().find(|(p, _)| p == "_id") {
            seed.insert("_id", id);
        }
        seed
    } else {
        upsert_seed(filter)?
    };
    let insert_ctx = UpdateContext {
        is_insert: true,
        ..ctx.clone()
    };
    let mut doc = update.apply(&seed, None, &insert_ctx)?.doc;
    match doc.remove("_id") {
        Some(Bson::Array(_)) => {
            return Err(err(
                Code::NotSingleValueField,
                "After applying the update to the document, the field '_id' was found to be an array or array descendant.",
            ))
        }
        id => {
            let mut with_id = Document::new();
            with_id.insert("_id", id.unwrap_or_else(|| Bson::ObjectId(bson::oid::ObjectId::new())));
            with_id.extend(doc);
            doc = with_id;
        }
    }
    validate_result(&doc, &Document::new(), &insert_ctx, &update.kind)?;
    let size = bson::to_vec(&doc).map(|b| b.len()).unwrap_or(usize::MAX);
    if size > MAX_USER_SIZE {
        return Err(err(
            Code::Location17420,
            format!("Document to upsert is larger than {MAX_USER_SIZE}"),
        ));
    }
    Ok(doc)
}

/// The document an upsert starts from: the query's equality fields (mongod's rules: `_id` and
/// dotted paths, 54 NotSingleValueField etc.).
pub fn upsert_seed(filter: &Filter) -> Result<Document> {
    let equalities = filter.equalities();
    let mut seen: Vec<&str> = Vec::new();
    for (path, _) in &equalities {
        for other in &seen {
            let prefix =
                |a: &str, b: &str| b.starts_with(a) && b.as_bytes().get(a.len()) == Some(&b'.');
            if other == path {
                return Err(err(
                    Code::NotSingleValueField,
                    format!("cannot infer query fields to set, path '{path}' is matched twice"),
                ));
            }
            if prefix(other, path) || prefix(path, other) {
                let (long, short) = if path.len() > other.len() {
                    (path.as_str(), *other)
                } else {
                    (*other, path.as_str())
                };
                return Err(err(
                    Code::NotSingleValueField,
                    format!("cannot infer query fields to set, both paths '{long}' and '{short}' are matched"),
                ));
            }
        }
        seen.push(path);
    }
    let mut doc = Document::new();
    for (path, value) in equalities {
        set_path(&mut doc, &path, value)?;
    }
    // mongod puts `_id` first in an inserted document.
    if let Some(id) = doc.remove("_id") {
        let mut with_id = Document::new();
        with_id.insert("_id", id);
        with_id.extend(doc);
        doc = with_id;
    }
    Ok(doc)
}

fn set_path(doc: &mut Document, path: &str, value: Bson) -> Result<()> {
    match path.split_once('.') {
        None => {
            doc.insert(path, value);
            Ok(())
        }
        Some((head, rest)) => {
            let entry = doc
                .entry(head.to_string())
                .or_insert_with(|| Bson::Document(Document::new()));
            match entry {
                Bson::Document(inner) => set_path(inner, rest, value),
                other => Err(err(
                    Code::PathNotViable,
                    format!(
                        "Cannot create field '{}' in element {{{}}}",
                        rest.split('.').next().unwrap_or_default(),
                        repr::element(head, other)
                    ),
                )),
            }
        }
    }
}
