//! The checks a collection's options put on the documents written to it: the validator
//! (`validator`, `validationLevel`, `validationAction`, skipped with
//! `bypassDocumentValidation`) and a capped collection's size, plus the trimming of a
//! capped collection's oldest documents when inserts take it past its limits.

use super::doc_query::Filter;
use super::documents as d;
use crate::error::{bad_value, type_name, Code, CommandError, CommandResult};
use crate::storage::{capped, CollectionInfo, DocWrite, Scan, Storage};
use bson::{doc, Bson, Document};

const LEVELS: &[&str] = &["off", "strict", "moderate"];
const ACTIONS: &[&str] = &["error", "warn"];

/// Checks the validator options of `create` or `collMod` (`name`), as mongod's parser
/// does: a document validator that parses as a filter, and the enumerations.
pub fn check_options(cmd: &Document, name: &str) -> CommandResult<()> {
    if let Some(v) = d::doc_arg(cmd, name, "validator")? {
        parse_validator(&v)?;
    }
    for (field, allowed) in [("validationLevel", LEVELS), ("validationAction", ACTIONS)] {
        match cmd.get(field) {
            None => {}
            Some(Bson::String(s)) if allowed.contains(&s.as_str()) => {}
            Some(Bson::String(s)) => {
                return Err(bad_value(format!(
                    "Enumeration value '{s}' for field '{field}' is not a valid value."
                )))
            }
            Some(other) => {
                return Err(CommandError::new(
                    Code::TypeMismatch,
                    format!(
                    "BSON field '{name}.{field}' is the wrong type '{}', expected type 'string'",
                    type_name(other)
                ),
                ))
            }
        }
    }
    Ok(())
}

fn parse_validator(v: &Document) -> CommandResult<Filter> {
    for op in ["$where", "$near", "$nearSphere", "$geoNear", "$text"] {
        if v.contains_key(op) {
            return Err(CommandError::new(
                Code::QueryFeatureNotAllowed,
                format!("{op} is not allowed in this context"),
            ));
        }
    }
    Filter::parse(v)
}

/// What a write to one collection must satisfy.
pub struct WriteChecks {
    validator: Option<(Filter, Document)>,
    moderate: bool,
    warn: bool,
    capped_size: Option<u64>,
}

impl WriteChecks {
    /// The checks of writes by `cmd` to the collection `info` (None: a collection the
    /// write creates, which has no options).
    pub fn new(cmd: &Document, info: Option<&CollectionInfo>) -> CommandResult<WriteChecks> {
        let mut checks = WriteChecks {
            validator: None,
            moderate: false,
            warn: false,
            capped_size: None,
        };
        let Some(info) = info else {
            return Ok(checks);
        };
        let options = &info.options;
        if capped::is_capped(options) {
            checks.capped_size = Some(capped::limits(options).0);
        }
        let bypass = d::bool_arg(cmd, "", "bypassDocumentValidation", false).unwrap_or(false);
        let level = options.get_str("validationLevel").unwrap_or("strict");
        if let (Ok(v), false, false) = (options.get_document("validator"), bypass, level == "off") {
            if !v.is_empty() {
                checks.validator = Some((parse_validator(v)?, v.clone()));
            }
        }
        checks.moderate = level == "moderate";
        checks.warn = options.get_str("validationAction") == Ok("warn");
        Ok(checks)
    }

    /// A new document (insert, upsert).
    pub fn insert(&self, doc: &Document) -> CommandResult<()> {
        if let Some(max) = self.capped_size {
            let size = d::bson_size(doc) as u64;
            if size > max {
                return Err(bad_value(format!(
                    "object to insert exceeds cappedMaxSize: {size} > {max}"
                )));
            }
        }
        self.validate(doc)
    }

    /// The update of `old` into `new`: with `validationLevel: "moderate"`, a document
    /// that already failed the validator may stay invalid.
    pub fn update(&self, old: Option<&Document>, new: &Document) -> CommandResult<()> {
        if let (true, Some((filter, _)), Some(old)) = (self.moderate, &self.validator, old) {
            if !filter.matches(old) {
                return Ok(());
            }
        }
        self.validate(new)
    }

    /// Checks every image in `writes` (an update's or findAndModify's), reading the
    /// documents they replace when the level needs them.
    pub fn writes(
        &self,
        storage: &Storage,
        info: Option<&CollectionInfo>,
        writes: &[DocWrite],
    ) -> CommandResult<()> {
        if self.validator.is_none() && self.capped_size.is_none() {
            return Ok(());
        }
        for w in writes {
            match w {
                DocWrite::Insert { doc, .. } => self.insert(doc)?,
                DocWrite::Put { doc, .. } => {
                    let old = match (self.moderate, info) {
                        (true, Some(info)) => storage
                            .get(info, doc.get("_id").unwrap_or(&Bson::Null))
                            .map_err(d::storage_error)?,
                        _ => None,
                    };
                    self.update(old.as_ref(), doc)?
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn validate(&self, doc: &Document) -> CommandResult<()> {
        let Some((filter, spec)) = &self.validator else {
            return Ok(());
        };
        if filter.matches(doc) {
            return Ok(());
        }
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        if self.warn {
            tracing::warn!(target: "STORAGE", id = 20294, ctx = "conn", failingDocumentId = %id,
                "Document would fail validation");
            return Ok(());
        }
        let mut e = CommandError::new(
            Code::DocumentValidationFailure,
            "Document failed validation",
        );
        e.extra = Some(doc! {"errInfo": {"failingDocumentId": id, "details": details(spec, doc)}});
        Err(e)
    }
}

/// mongod's `errInfo.details` in outline: the top-level clauses of the validator that
/// the document does not satisfy (mongod also explains each operator inside them).
fn details(spec: &Document, doc: &Document) -> Document {
    let failing: Vec<(usize, String, Bson)> = spec
        .iter()
        .enumerate()
        .filter(|(_, (k, v))| {
            Filter::parse(&doc! {(*k).clone(): (*v).clone()}).is_ok_and(|f| !f.matches(doc))
        })
        .map(|(i, (k, v))| (i, k.clone(), v.clone()))
        .collect();
    let clause = |key: &str, value: &Bson| -> Document {
        if key.starts_with('$') {
            doc! {"operatorName": key, "specifiedAs": {key: value.clone()}, "reason": "expression did not match"}
        } else {
            doc! {
                "operatorName": "$eq",
                "specifiedAs": {key: value.clone()},
                "reason": "field did not match",
                "propertyName": key,
            }
        }
    };
    if spec.len() == 1 {
        if let Some((_, k, v)) = failing.first() {
            return clause(k, v);
        }
    }
    doc! {
        "operatorName": "$and",
        "clausesNotSatisfied": failing
            .iter()
            .map(|(i, k, v)| Bson::Document(doc! {"index": *i as i32, "details": clause(k, v)}))
            .collect::<Vec<_>>(),
    }
}

/// Adds to `writes` the deletes of the oldest documents of every capped collection its
/// inserts take past `size` bytes or `max` documents (mongod replicates these deletes
/// too, so every member removes the same documents).
pub fn add_capped_trims(storage: &Storage, writes: &mut Vec<DocWrite>) -> CommandResult<()> {
    let mut namespaces: Vec<&str> = Vec::new();
    for w in writes.iter() {
        if let DocWrite::Insert { ns, .. } = w {
            if !namespaces.contains(&ns.as_str()) {
                namespaces.push(ns);
            }
        }
    }
    let mut trims = Vec::new();
    for ns in namespaces {
        let created = writes.iter().find_map(|w| match w {
            DocWrite::CreateCollection { ns: n, options, .. } if n == ns => Some(options.clone()),
            _ => None,
        });
        let info = match created {
            Some(_) => None,
            None => d::collection(storage, ns)?,
        };
        let Some(options) = created.or_else(|| info.as_ref().map(|i| i.options.clone())) else {
            continue;
        };
        if !capped::is_capped(&options) {
            continue;
        }
        let (max_size, max_docs) = capped::limits(&options);
        let inserted: Vec<(Bson, u64)> = writes
            .iter()
            .filter_map(|w| match w {
                DocWrite::Insert { ns: n, doc } if n == ns => Some((
                    doc.get("_id").cloned().unwrap_or(Bson::Null),
                    d::bson_size(doc) as u64,
                )),
                _ => None,
            })
            .collect();
        let (mut count, mut bytes) = match &info {
            Some(info) => storage.capped_totals(info).map_err(d::storage_error)?,
            None => (0, 0),
        };
        count += inserted.len() as u64;
        bytes += inserted.iter().map(|(_, s)| s).sum::<u64>();
        let over = |count: u64, bytes: u64| {
            (max_size > 0 && bytes > max_size) || (max_docs > 0 && count > max_docs)
        };
        if !over(count, bytes) {
            continue;
        }
        let mut victims = Vec::new();
        if let Some(info) = &info {
            storage
                .scan(info, None, |doc| {
                    if !over(count, bytes) {
                        return Ok(Scan::Stop);
                    }
                    count -= 1;
                    bytes -= (d::bson_size(&doc) as u64).min(bytes);
                    victims.push(doc.get("_id").cloned().unwrap_or(Bson::Null));
                    Ok(Scan::Continue)
                })
                .map_err(|e| match e {
                    crate::storage::ScanError::Storage(e) => d::storage_error(e),
                    crate::storage::ScanError::Command(e) => e,
                })?;
        }
        // The batch's own first documents, when it alone passes the limits (the last
        // one always stays).
        for (id, size) in &inserted[..inserted.len().saturating_sub(1)] {
            if !over(count, bytes) {
                break;
            }
            count -= 1;
            bytes -= (*size).min(bytes);
            victims.push(id.clone());
        }
        trims.extend(victims.into_iter().map(|id| DocWrite::Delete {
            ns: ns.to_owned(),
            id: doc! {"_id": id},
        }));
    }
    writes.extend(trims);
    Ok(())
}
