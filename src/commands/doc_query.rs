//! The query pieces the document commands use (filter, sort, projection, update), in one
//! place, so that the commands do not change when `query`'s full implementations
//! (matcher, sort, projection, update language) replace the subset here.
//!
//! The subset: filters of equalities and `$eq $ne $gt $gte $lt $lte $in $nin $exists`
//! on dotted paths (through arrays as mongod: any element, or the array itself);
//! `$and`; sort on dotted paths; top-level inclusion/exclusion projections; updates by
//! replacement or `$set`/`$unset`/`$inc` on top-level fields. Anything else is refused
//! with BadValue naming it.

use crate::error::{bad_value, Code, CommandError, CommandResult};
use bson::{Bson, Document};
use std::cmp::Ordering;

pub use crate::query::order::compare;

fn same_bracket(a: &Bson, b: &Bson) -> bool {
    use crate::query::order::canonical_rank;
    canonical_rank(a) == canonical_rank(b)
}

/// The values at a dotted path: each array on the way contributes its elements (and,
/// at the end, the array itself); empty when the path is missing.
pub fn values_at(doc: &Document, path: &str) -> Vec<Bson> {
    let mut out = Vec::new();
    collect(&Bson::Document(doc.clone()), path, &mut out);
    out
}

fn collect(value: &Bson, path: &str, out: &mut Vec<Bson>) {
    if path.is_empty() {
        if let Bson::Array(items) = value {
            out.extend(items.iter().cloned());
        }
        out.push(value.clone());
        return;
    }
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    match value {
        Bson::Document(d) => {
            if let Some(v) = d.get(head) {
                collect(v, rest, out)
            }
        }
        Bson::Array(items) => {
            if let Ok(i) = head.parse::<usize>() {
                if let Some(v) = items.get(i) {
                    collect(v, rest, out)
                }
            }
            for item in items {
                if let Bson::Document(_) = item {
                    collect(item, path, out)
                }
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Cond {
    Eq(Bson),
    Ne(Bson),
    Cmp(Ordering, bool, Bson),
    In(Vec<Bson>),
    Nin(Vec<Bson>),
    Exists(bool),
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    conds: Vec<(String, Cond)>,
}

impl Filter {
    pub fn parse(filter: &Document) -> CommandResult<Filter> {
        let mut f = Filter::default();
        f.add(filter)?;
        Ok(f)
    }

    fn add(&mut self, filter: &Document) -> CommandResult<()> {
        for (key, value) in filter {
            if key == "$and" {
                let Bson::Array(items) = value else {
                    return Err(bad_value("$and must be an array"));
                };
                for item in items {
                    let Bson::Document(d) = item else {
                        return Err(bad_value("$or/$and/$nor entries need to be full objects"));
                    };
                    self.add(d)?;
                }
                continue;
            }
            if key == "$comment" {
                continue;
            }
            if key.starts_with('$') {
                return Err(bad_value(format!("unknown top level operator: {key}")));
            }
            match value {
                Bson::Document(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$')) => {
                    for (op, arg) in ops {
                        let list = || match arg {
                            Bson::Array(a) => Ok(a.clone()),
                            _ => Err(bad_value("$in needs an array")),
                        };
                        let cond = match op.as_str() {
                            "$eq" => Cond::Eq(arg.clone()),
                            "$ne" => Cond::Ne(arg.clone()),
                            "$gt" => Cond::Cmp(Ordering::Greater, false, arg.clone()),
                            "$gte" => Cond::Cmp(Ordering::Greater, true, arg.clone()),
                            "$lt" => Cond::Cmp(Ordering::Less, false, arg.clone()),
                            "$lte" => Cond::Cmp(Ordering::Less, true, arg.clone()),
                            "$in" => Cond::In(list()?),
                            "$nin" => Cond::Nin(list()?),
                            "$exists" => Cond::Exists(truthy(arg)),
                            other => return Err(bad_value(format!("unknown operator: {other}"))),
                        };
                        self.conds.push((key.clone(), cond));
                    }
                }
                Bson::RegularExpression(_) => {
                    return Err(bad_value("regular expressions are not supported yet"))
                }
                v => self.conds.push((key.clone(), Cond::Eq(v.clone()))),
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.conds.is_empty()
    }

    /// `path: value` equalities, for upsert seeding.
    pub fn equalities(&self) -> Vec<(String, Bson)> {
        self.conds
            .iter()
            .filter_map(|(p, c)| match c {
                Cond::Eq(v) => Some((p.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }

    /// The `_id` this filter pins down, if it is `{_id: <scalar>}` (a point lookup).
    pub fn id_equality(&self) -> Option<Bson> {
        match self.conds.as_slice() {
            [(p, Cond::Eq(v))]
                if p == "_id" && !matches!(v, Bson::Array(_) | Bson::Document(_)) =>
            {
                Some(v.clone())
            }
            _ => None,
        }
    }

    pub fn matches(&self, doc: &Document) -> bool {
        self.conds.iter().all(|(path, cond)| {
            let values = values_at(doc, path);
            let eq = |target: &Bson| {
                if matches!(target, Bson::Null) && values.is_empty() {
                    return true;
                }
                values.iter().any(|v| compare(v, target) == Ordering::Equal)
            };
            match cond {
                Cond::Eq(t) => eq(t),
                Cond::Ne(t) => !eq(t),
                Cond::In(ts) => ts.iter().any(eq),
                Cond::Nin(ts) => !ts.iter().any(eq),
                Cond::Exists(want) => values.is_empty() != *want,
                Cond::Cmp(dir, or_equal, t) => values.iter().any(|v| {
                    if !same_bracket(v, t) {
                        return false;
                    }
                    let o = compare(v, t);
                    o == *dir || (*or_equal && o == Ordering::Equal)
                }),
            }
        })
    }
}

fn truthy(v: &Bson) -> bool {
    !matches!(v, Bson::Boolean(false) | Bson::Null | Bson::Undefined)
        && !matches!(v, Bson::Int32(0) | Bson::Int64(0))
        && !matches!(v, Bson::Double(d) if *d == 0.0)
}

#[derive(Debug, Clone, Default)]
pub struct SortSpec {
    keys: Vec<(String, bool)>,
}

impl SortSpec {
    pub fn parse(spec: &Document) -> CommandResult<SortSpec> {
        let mut keys = Vec::new();
        for (k, v) in spec {
            let asc = match v {
                Bson::Int32(1) | Bson::Int64(1) => true,
                Bson::Int32(-1) | Bson::Int64(-1) => false,
                Bson::Double(d) if *d == 1.0 => true,
                Bson::Double(d) if *d == -1.0 => false,
                _ => {
                    return Err(bad_value(
                        "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
                    ))
                }
            };
            keys.push((k.clone(), asc));
        }
        Ok(SortSpec { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn key(&self, doc: &Document, asc: bool, path: &str) -> Bson {
        let mut values: Vec<Bson> = values_at(doc, path)
            .into_iter()
            .filter(|v| !matches!(v, Bson::Array(a) if !a.is_empty()))
            .collect();
        values.sort_by(compare);
        let pick = if asc { values.first() } else { values.last() };
        pick.cloned().unwrap_or(Bson::Null)
    }

    pub fn compare(&self, a: &Document, b: &Document) -> Ordering {
        for (path, asc) in &self.keys {
            let o = compare(&self.key(a, *asc, path), &self.key(b, *asc, path));
            let o = if *asc { o } else { o.reverse() };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

#[derive(Debug, Clone)]
pub struct Projection {
    fields: Vec<String>,
    include: bool,
    id: bool,
}

impl Projection {
    pub fn parse(spec: &Document) -> CommandResult<Projection> {
        let mut include = None;
        let mut id = true;
        let mut fields = Vec::new();
        for (k, v) in spec {
            let on = match v {
                Bson::Boolean(b) => *b,
                Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => truthy(v),
                _ => return Err(bad_value(format!("unsupported projection for {k}"))),
            };
            if k.contains('.') || k.starts_with('$') {
                return Err(bad_value(format!("unsupported projection path {k}")));
            }
            if k == "_id" {
                id = on;
                continue;
            }
            if include.is_some_and(|i| i != on) {
                let (this, other) = if on {
                    ("inclusion", "exclusion")
                } else {
                    ("exclusion", "inclusion")
                };
                return Err(CommandError::new(
                    Code::Location31254,
                    format!("Cannot do {this} on field {k} in {other} projection"),
                ));
            }
            include = Some(on);
            fields.push(k.clone());
        }
        // With only `_id` named, the rest is kept (an exclusion of nothing).
        Ok(Projection {
            fields,
            include: include.unwrap_or(false),
            id,
        })
    }

    pub fn apply(&self, doc: &Document) -> Document {
        let mut out = Document::new();
        for (k, v) in doc {
            let keep = if k == "_id" {
                self.id
            } else if self.include {
                self.fields.contains(k)
            } else {
                !self.fields.contains(k)
            };
            if keep {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }
}

/// An update: a replacement or `$set`/`$unset`/`$inc`.
#[derive(Debug, Clone)]
pub enum Update {
    Replacement(Document),
    Operators(Vec<(String, String, Bson)>),
}

impl Update {
    pub fn parse(update: &Bson) -> CommandResult<Update> {
        let Bson::Document(d) = update else {
            return Err(CommandError::new(
                Code::FailedToParse,
                "updates given as a pipeline are not supported yet",
            ));
        };
        if !d.keys().next().is_some_and(|k| k.starts_with('$')) {
            if let Some(k) = d.keys().find(|k| k.starts_with('$')) {
                return Err(bad_value(format!(
                    "The dollar ($) prefixed field '{k}' in '{k}' is not allowed in the context of an update's replacement document."
                )));
            }
            return Ok(Update::Replacement(d.clone()));
        }
        let mut ops = Vec::new();
        for (op, fields) in d {
            if !matches!(op.as_str(), "$set" | "$unset" | "$inc") {
                return Err(CommandError::new(
                    Code::FailedToParse,
                    format!("Unknown modifier: {op}. Expected a valid update modifier or pipeline-style update specified as an array"),
                ));
            }
            let Bson::Document(fields) = fields else {
                return Err(CommandError::new(
                    Code::FailedToParse,
                    format!("Modifiers operate on fields but we found type {} instead. For example: {{$mod: {{<field>: ...}}}} not {{{op}: {fields}}}", crate::error::type_name(fields)),
                ));
            };
            for (field, value) in fields {
                if field.contains('.') {
                    return Err(bad_value(format!(
                        "dotted update paths are not supported yet: {field}"
                    )));
                }
                if op == "$inc"
                    && !matches!(value, Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))
                {
                    return Err(CommandError::new(
                        Code::TypeMismatch,
                        format!("Cannot increment with non-numeric argument: {{{field}: {value}}}"),
                    ));
                }
                ops.push((op.clone(), field.clone(), value.clone()));
            }
        }
        Ok(Update::Operators(ops))
    }

    pub fn is_replacement(&self) -> bool {
        matches!(self, Update::Replacement(_))
    }

    /// The updated document (its `_id` kept) and whether it changed.
    pub fn apply(&self, doc: &Document) -> CommandResult<(Document, bool)> {
        let id = doc.get("_id").cloned();
        let out = match self {
            Update::Replacement(r) => {
                if let (Some(old), Some(new)) = (&id, r.get("_id")) {
                    if compare(old, new) != Ordering::Equal {
                        return Err(CommandError::new(
                            Code::ImmutableField,
                            format!("After applying the update, the (immutable) field '_id' was found to have been altered to _id: {new}"),
                        ));
                    }
                }
                let mut out = Document::new();
                if let Some(id) = &id {
                    out.insert("_id", id.clone());
                }
                for (k, v) in r {
                    if k != "_id" {
                        out.insert(k.clone(), v.clone());
                    }
                }
                out
            }
            Update::Operators(ops) => {
                let mut out = doc.clone();
                for (op, field, value) in ops {
                    let same_id = op == "$set"
                        && id
                            .as_ref()
                            .is_some_and(|i| compare(i, value) == Ordering::Equal);
                    if field == "_id" && !same_id {
                        return Err(CommandError::new(
                            Code::ImmutableField,
                            "Performing an update on the path '_id' would modify the immutable field '_id'",
                        ));
                    }
                    match op.as_str() {
                        "$set" => {
                            out.insert(field.clone(), value.clone());
                        }
                        "$unset" => {
                            out.remove(field);
                        }
                        _ => {
                            let new = match (out.get(field), value) {
                                (None, v) => v.clone(),
                                (Some(Bson::Int32(a)), Bson::Int32(b)) => a.checked_add(*b).map_or(Bson::Int64(*a as i64 + *b as i64), Bson::Int32),
                                (Some(a), b) if is_number(a) => match (as_i64(a), as_i64(b)) {
                                    (Some(x), Some(y)) => Bson::Int64(x.wrapping_add(y)),
                                    _ => Bson::Double(as_f64(a) + as_f64(b)),
                                },
                                (Some(a), _) => {
                                    return Err(CommandError::new(
                                        Code::TypeMismatch,
                                        format!("Cannot apply $inc to a value of non-numeric type. {{_id: {}}} has the field '{field}' of non-numeric type {}", id.clone().unwrap_or(Bson::Null), crate::error::type_name(a)),
                                    ))
                                }
                            };
                            out.insert(field.clone(), new);
                        }
                    }
                }
                out
            }
        };
        let modified = out != *doc;
        Ok((out, modified))
    }
}

fn is_number(v: &Bson) -> bool {
    matches!(v, Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))
}

fn as_i64(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(n) => Some(*n as i64),
        Bson::Int64(n) => Some(*n),
        _ => None,
    }
}

fn as_f64(v: &Bson) -> f64 {
    match v {
        Bson::Int32(n) => *n as f64,
        Bson::Int64(n) => *n as f64,
        Bson::Double(d) => *d,
        _ => f64::NAN,
    }
}

/// The document an upsert starts from: the filter's equalities on top-level fields.
pub fn upsert_seed(filter: &Filter) -> Document {
    let mut seed = Document::new();
    for (path, value) in filter.equalities() {
        if !path.contains('.') {
            seed.insert(path, value);
        }
    }
    seed
}
