//! The query pieces the document commands use (filter, sort, projection, update), in one
//! place, so that the commands do not change when `query`'s full implementations
//! (matcher, sort, projection, update language) replace the subset here.
//!
//! The subset: filters of equalities and `$eq $ne $gt $gte $lt $lte $in $nin $exists`
//! on dotted paths (through arrays as mongod: any element, or the array itself);
//! `$and`; sort on dotted paths; top-level inclusion/exclusion projections; updates by
//! replacement or `$set`/`$unset`/`$inc` on top-level fields. Anything else is refused
//! with BadValue naming it.

use crate::error::{bad_value, CommandResult};
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

/// find's projection (`query::projection`).
#[derive(Debug, Clone)]
pub struct Projection(crate::query::projection::Projection);

impl Projection {
    /// With the query, for mongod's checks of a positional projection.
    pub fn parse(spec: &Document, query: &Document) -> CommandResult<Projection> {
        crate::query::projection::Projection::parse_with_query(spec, query).map(Projection)
    }

    pub fn apply(&self, doc: &Document) -> CommandResult<Document> {
        self.0.apply(doc, None)
    }
}

/// An update (`query::update`): a replacement, operators, or a pipeline.
#[derive(Debug, Clone)]
pub struct Update(crate::query::update::Update);

impl Update {
    pub fn parse(update: &Bson, array_filters: Option<&[Document]>) -> CommandResult<Update> {
        crate::query::update::Update::parse(update, array_filters).map(Update)
    }

    pub fn is_replacement(&self) -> bool {
        self.0.is_replacement()
    }

    /// The updated document and whether it changed; `is_insert` for an upsert's new
    /// document (`$setOnInsert`).
    pub fn apply(&self, doc: &Document, is_insert: bool) -> CommandResult<(Document, bool)> {
        let now = bson::DateTime::now();
        let ctx = crate::query::update::UpdateContext {
            now,
            now_timestamp: bson::Timestamp {
                time: (now.timestamp_millis() / 1000) as u32,
                increment: 1,
            },
            is_insert,
        };
        let updated = self.0.apply(doc, None, &ctx)?;
        Ok((updated.doc, updated.modified))
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
