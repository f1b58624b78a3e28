//! The query planner: which access path reads the documents a filter may match. An
//! index bounds the scan by the filter's top-level equalities, `$in` and ranges on its
//! first field; the filter is still applied to every fetched document, so a plan only
//! has to return a superset of the matches, and results are those of a collection scan.
//!
//! Bounds stay inside the value's type bracket (mongod's type bracketing). On a multikey index the bounds of one predicate only are used (different
//! elements may satisfy different predicates), as mongod does.

use super::index::{prefix_end, IndexSpec};
use super::key_string;
use super::{decode_doc, CollectionInfo, Scan, ScanError, Storage};
use crate::catalog::CatalogError;
use crate::error::{bad_value, CommandResult};
use crate::query::matcher::{Filter, IndexablePredicate};
use bson::{Bson, Document};
use redb::ReadableDatabase;

/// A scan range of encoded first-field keys: `[start, end)` (`end` None: to the end).
pub type Range = (Vec<u8>, Option<Vec<u8>>);

/// How the documents are read.
#[derive(Debug, Clone)]
pub enum Plan {
    /// The one document with this `_id`.
    IdHack(Bson),
    CollScan,
    IxScan {
        spec: Box<IndexSpec>,
        ranges: Vec<Range>,
        /// For explain: `{field: ["[1, 1]", ...]}`.
        bounds: Document,
    },
}

/// A value an index bound may use: one whose matches all carry it as a key.
fn boundable(v: &Bson) -> bool {
    !matches!(
        v,
        Bson::Array(_)
            | Bson::Null
            | Bson::Undefined
            | Bson::MinKey
            | Bson::MaxKey
            | Bson::RegularExpression(_)
    )
}

fn fmt(v: &Bson) -> String {
    crate::error::shell_format(v)
}

/// A value's encoding in a field's direction.
fn enc(v: &Bson, ascending: bool) -> Vec<u8> {
    if ascending {
        key_string::encode(v)
    } else {
        key_string::encode_descending(v)
    }
}

/// The range of the keys from `lo` (None: the bracket's start) to `hi` (None: its end),
/// each inclusive or not, in a field's direction (a descending field stores
/// complements, so its keys run from `hi` down to `lo`). A decimal bound is always
/// inclusive: it is placed by its nearest double, which it may share with others.
fn span(
    lo: Option<(&Bson, bool)>,
    hi: Option<(&Bson, bool)>,
    bracket: &Bson,
    ascending: bool,
) -> Range {
    let first = enc(bracket, ascending)[0];
    let (from, to) = if ascending { (lo, hi) } else { (hi, lo) };
    let inclusive = |v: &Bson, incl: bool| incl || matches!(v, Bson::Decimal128(_));
    let start = match from {
        None => vec![first],
        Some((v, incl)) if inclusive(v, incl) => enc(v, ascending),
        Some((v, _)) => prefix_end(&enc(v, ascending)).unwrap_or_default(),
    };
    let end = match to {
        None => prefix_end(&[first]),
        Some((v, incl)) if inclusive(v, incl) => prefix_end(&enc(v, ascending)),
        Some((v, _)) => Some(enc(v, ascending)),
    };
    (start, end)
}

/// mongod's names for a bracket's ends in explain bounds.
fn bracket_min(v: &Bson) -> String {
    match v {
        Bson::String(_) | Bson::Symbol(_) => "\"\"".into(),
        Bson::Document(_) => "{}".into(),
        b if crate::query::order::is_number(b) => "-inf.0".into(),
        _ => "MinKey".into(),
    }
}

fn bracket_max(v: &Bson) -> String {
    match v {
        Bson::String(_) | Bson::Symbol(_) => "{}".into(),
        Bson::Document(_) => "[]".into(),
        b if crate::query::order::is_number(b) => "inf.0".into(),
        _ => "MaxKey".into(),
    }
}

/// Ranges over the whole index.
fn full_range() -> Vec<Range> {
    vec![(Vec::new(), None)]
}

/// The bounds an index's first field gets from `preds`, with a score (equalities
/// first), or None when nothing bounds it.
fn bound_first_field(
    spec: &IndexSpec,
    preds: &[(String, IndexablePredicate)],
    multikey: bool,
) -> Option<(u8, Vec<Range>, Vec<String>)> {
    let (field, asc) = spec.fields.first()?;
    let asc = *asc;
    let on_field: Vec<&IndexablePredicate> = preds
        .iter()
        .filter(|(path, _)| path == field)
        .map(|(_, p)| p)
        .collect();
    let point = |v: &Bson| {
        (
            span(Some((v, true)), Some((v, true)), v, asc),
            format!("[{}, {}]", fmt(v), fmt(v)),
        )
    };
    for p in &on_field {
        if let IndexablePredicate::Eq(v) = p {
            if boundable(v) {
                let (r, b) = point(v);
                return Some((3, vec![r], vec![b]));
            }
        }
    }
    for p in &on_field {
        if let IndexablePredicate::In(values) = p {
            if !values.is_empty() && values.iter().all(boundable) {
                let mut sorted = values.clone();
                sorted.sort_by(crate::query::order::compare);
                sorted.dedup_by(|a, b| crate::query::order::compare(a, b).is_eq());
                if !asc {
                    sorted.reverse();
                }
                let (ranges, bounds) = sorted.iter().map(point).unzip();
                return Some((2, ranges, bounds));
            }
        }
    }
    let lower = on_field.iter().find_map(|p| match p {
        IndexablePredicate::Gt(v) if boundable(v) => Some((v, "(")),
        IndexablePredicate::Gte(v) if boundable(v) => Some((v, "[")),
        _ => None,
    });
    let upper = on_field.iter().find_map(|p| match p {
        IndexablePredicate::Lt(v) if boundable(v) => Some((v, ")")),
        IndexablePredicate::Lte(v) if boundable(v) => Some((v, "]")),
        _ => None,
    });
    let same_bracket = |a: &Bson, b: &Bson| {
        crate::query::order::canonical_rank(a) == crate::query::order::canonical_rank(b)
    };
    let (range, text) = match (lower, upper) {
        (Some((lo, open)), Some((hi, close))) if !multikey && same_bracket(lo, hi) => (
            span(Some((lo, open == "[")), Some((hi, close == "]")), lo, asc),
            format!("{open}{}, {}{close}", fmt(lo), fmt(hi)),
        ),
        (Some((lo, open)), _) => (
            span(Some((lo, open == "[")), None, lo, asc),
            format!("{open}{}, {}]", fmt(lo), bracket_max(lo)),
        ),
        (None, Some((hi, close))) => (
            span(None, Some((hi, close == "]")), hi, asc),
            format!("[{}, {}{close}", bracket_min(hi), fmt(hi)),
        ),
        (None, None) => return None,
    };
    let text = if asc { text } else { reverse_bound(&text) };
    Some((1, vec![range], vec![text]))
}

/// A bound as a descending index shows it (`[1, 5)` becomes `(5, 1]`).
fn reverse_bound(text: &str) -> String {
    let open = &text[..1];
    let close = &text[text.len() - 1..];
    let inner = &text[1..text.len() - 1];
    let (a, b) = inner.split_once(", ").unwrap_or((inner, inner));
    let new_open = if close == ")" { "(" } else { "[" };
    let new_close = if open == "(" { ")" } else { "]" };
    format!("{new_open}{b}, {a}{new_close}")
}

/// The index a `hint` names (by name or key pattern), or a collection scan for
/// `{$natural: ...}`.
fn hinted(info: &CollectionInfo, hint: &Bson) -> CommandResult<Option<IndexSpec>> {
    let specs: Vec<IndexSpec> = info
        .indexes
        .iter()
        .filter_map(|s| IndexSpec::parse(s).ok())
        .filter(|s| !s.hidden)
        .collect();
    let found = match hint {
        Bson::String(name) => specs.into_iter().find(|s| &s.name == name),
        Bson::Document(d) if d.contains_key("$natural") => return Ok(None),
        Bson::Document(d) => specs.into_iter().find(|s| {
            let k = s.key_pattern();
            k.len() == d.len()
                && k.iter()
                    .zip(d.iter())
                    .all(|((a, x), (b, y))| a == b && crate::query::order::compare(x, y).is_eq())
        }),
        _ => None,
    };
    found
        .map(Some)
        .ok_or_else(|| bad_value("hint provided does not correspond to an existing index"))
}

/// Picks the plan for `filter` on `info`; `multikey(name)` says whether an index has
/// seen an array.
pub fn choose(
    info: &CollectionInfo,
    filter: &Filter,
    id_equality: Option<Bson>,
    hint: Option<&Bson>,
    multikey: &dyn Fn(&str) -> bool,
) -> CommandResult<Plan> {
    let preds = filter.indexable_predicates();
    if let Some(hint) = hint.filter(|h| !matches!(h, Bson::Document(d) if d.is_empty())) {
        let Some(spec) = hinted(info, hint)? else {
            return Ok(Plan::CollScan);
        };
        let mk = multikey(&spec.name);
        let (ranges, bounds) = match bound_first_field(&spec, &preds, mk) {
            Some((_, r, b)) => (r, b),
            None => (full_range(), vec!["[MinKey, MaxKey]".to_owned()]),
        };
        return Ok(ix(spec, ranges, bounds));
    }
    if let Some(id) = id_equality {
        return Ok(Plan::IdHack(id));
    }
    let mut best: Option<(u8, IndexSpec, Vec<Range>, Vec<String>)> = None;
    for spec in info.indexes.iter().filter_map(|s| IndexSpec::parse(s).ok()) {
        // A partial index holds only some documents; a hidden one is not planned with.
        if spec.hidden || spec.partial.is_some() {
            continue;
        }
        let mk = !spec.is_id() && multikey(&spec.name);
        if let Some((score, ranges, bounds)) = bound_first_field(&spec, &preds, mk) {
            if best.as_ref().is_none_or(|b| score > b.0) {
                best = Some((score, spec, ranges, bounds));
            }
        }
    }
    Ok(match best {
        Some((_, spec, ranges, bounds)) => ix(spec, ranges, bounds),
        None => Plan::CollScan,
    })
}

fn ix(spec: IndexSpec, ranges: Vec<Range>, first_bounds: Vec<String>) -> Plan {
    let mut bounds = Document::new();
    for (i, (field, ascending)) in spec.fields.iter().enumerate() {
        let b: Vec<Bson> = if i == 0 {
            first_bounds.iter().cloned().map(Bson::String).collect()
        } else if *ascending {
            vec![Bson::String("[MinKey, MaxKey]".into())]
        } else {
            vec![Bson::String("[MaxKey, MinKey]".into())]
        };
        bounds.insert(field.clone(), b);
    }
    Plan::IxScan {
        spec: Box::new(spec),
        ranges,
        bounds,
    }
}

/// What a plan read: index entries and documents (explain's executionStats).
#[derive(Debug, Default, Clone, Copy)]
pub struct ScanStats {
    pub keys_examined: u64,
    pub docs_examined: u64,
}

fn st(e: impl std::fmt::Display) -> ScanError {
    ScanError::Storage(crate::catalog::CatalogError::Storage(e.to_string()))
}

impl Storage {
    /// The names of the indexes of `info` that are multikey.
    pub fn multikey_indexes(&self, info: &CollectionInfo) -> Result<Vec<String>, CatalogError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| CatalogError::Storage(e.to_string()))?;
        let t = match txn.open_table(super::index::MULTIKEY) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(CatalogError::Storage(e.to_string())),
        };
        let mut out = Vec::new();
        for spec in &info.indexes {
            let Ok(name) = spec.get_str("name") else {
                continue;
            };
            let table = super::index::table_name(&info.uuid, name);
            if t.get(table.as_str())
                .map_err(|e| CatalogError::Storage(e.to_string()))?
                .is_some()
            {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }

    /// Reads the documents of an index scan: the record keys in `ranges` of `spec`'s
    /// entries, in record (`_id`) order and each once, as a collection scan yields them.
    pub fn index_scan(
        &self,
        info: &CollectionInfo,
        spec: &IndexSpec,
        ranges: &[Range],
        mut each: impl FnMut(Document) -> Result<Scan, crate::error::CommandError>,
    ) -> Result<ScanStats, ScanError> {
        let mut stats = ScanStats::default();
        let txn = self.db.begin_read().map_err(st)?;
        let records = match txn.open_table(super::records(&super::records_name(&info.uuid))) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(stats),
            Err(e) => return Err(st(e)),
        };
        let bounds = |start: &Vec<u8>, end: &Option<Vec<u8>>| {
            (
                std::ops::Bound::Included(start.clone()),
                end.clone()
                    .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
            )
        };
        if spec.is_id() {
            // The records table is the `_id` index.
            for (start, end) in ranges {
                let (lo, hi) = bounds(start, end);
                let lo = lo.as_ref().map(|v| v.as_slice());
                let hi = hi.as_ref().map(|v| v.as_slice());
                for entry in records.range::<&[u8]>((lo, hi)).map_err(st)? {
                    let (_, v) = entry.map_err(st)?;
                    stats.keys_examined += 1;
                    stats.docs_examined += 1;
                    let doc = decode_doc(v.value()).map_err(ScanError::Storage)?;
                    if let Scan::Stop = each(doc).map_err(ScanError::Command)? {
                        return Ok(stats);
                    }
                }
            }
            return Ok(stats);
        }
        let name = super::index::table_name(&info.uuid, &spec.name);
        let entries = match txn.open_table(super::index::table(&name)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(stats),
            Err(e) => return Err(st(e)),
        };
        let mut keys = Vec::new();
        for (start, end) in ranges {
            let (lo, hi) = bounds(start, end);
            let lo = lo.as_ref().map(|v| v.as_slice());
            let hi = hi.as_ref().map(|v| v.as_slice());
            for entry in entries.range::<&[u8]>((lo, hi)).map_err(st)? {
                let (_, v) = entry.map_err(st)?;
                stats.keys_examined += 1;
                keys.push(v.value().to_vec());
            }
        }
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let Some(v) = records.get(key.as_slice()).map_err(st)? else {
                continue;
            };
            stats.docs_examined += 1;
            let doc = decode_doc(v.value()).map_err(ScanError::Storage)?;
            if let Scan::Stop = each(doc).map_err(ScanError::Command)? {
                break;
            }
        }
        Ok(stats)
    }
}

/// Checks a batch of new documents against the indexes (keys, unique ones' duplicates) of a collection before
/// it is committed (insert's per-document write errors), seeing the batch's own
/// earlier documents.
pub struct UniqueChecker {
    ns: String,
    specs: Vec<IndexSpec>,
    txn: Option<redb::ReadTransaction>,
    uuid: String,
    pending: std::collections::HashSet<(String, Vec<u8>)>,
}

impl UniqueChecker {
    pub fn new(storage: &Storage, info: &CollectionInfo) -> Result<UniqueChecker, CatalogError> {
        let specs: Vec<IndexSpec> = super::index::secondary(&info.indexes)?;
        let txn = if specs.is_empty() {
            None
        } else {
            Some(
                storage
                    .db
                    .begin_read()
                    .map_err(|e| CatalogError::Storage(e.to_string()))?,
            )
        };
        Ok(UniqueChecker {
            ns: info.ns.clone(),
            specs,
            txn,
            uuid: info.uuid.clone(),
            pending: Default::default(),
        })
    }

    /// Refuses `doc` (a duplicate key, parallel arrays) or records its keys as taken.
    pub fn admit(&mut self, doc: &Document) -> Result<(), CatalogError> {
        let Some(txn) = &self.txn else {
            return Ok(());
        };
        let record = super::record_key(doc.get("_id").unwrap_or(&Bson::Null));
        let mut taken = Vec::new();
        for spec in &self.specs {
            let keys = spec.keys(doc).map_err(super::index::key_error)?;
            if !spec.unique {
                continue;
            }
            let name = super::index::table_name(&self.uuid, &spec.name);
            let table = match txn.open_table(super::index::table(&name)) {
                Ok(t) => Some(t),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(CatalogError::Storage(e.to_string())),
            };
            for values in keys {
                let key = spec.encode(&values);
                let in_store = match &table {
                    Some(t) => super::index::conflicts(t, &key, &record)?,
                    None => false,
                };
                if in_store || self.pending.contains(&(spec.name.clone(), key.clone())) {
                    return Err(super::index::duplicate(&self.ns, spec, &values));
                }
                taken.push((spec.name.clone(), key));
            }
        }
        self.pending.extend(taken);
        Ok(())
    }
}
