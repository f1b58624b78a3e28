//! Secondary indexes: their specifications (kept in the collection's namespace record,
//! `_id_` first), the keys a document gives (mongod's key generation: one key per array
//! element, parallel arrays refused), and their entries, one redb table per index.
//!
//! An entry's key is [`key_string`] of the key values (each field ascending or
//! descending) followed by the document's record key, so equal keys of different
//! documents are distinct entries; its value is the record key. Entries are maintained
//! by [`super::apply_in`] in the transaction that writes the documents, so a replicated
//! apply derives them on every member from the document images alone.

use super::key_string;
use crate::catalog::CatalogError;
use crate::query::matcher::Filter;
use bson::{doc, Bson, Document};
use redb::{ReadableTable, TableDefinition};

/// The entries table of index `name` of the collection with uuid `uuid`.
pub fn table_name(uuid: &str, name: &str) -> String {
    format!("documents.index.{uuid}.{name}")
}

pub fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// The indexes (by entries table name) that have seen an array on a key path: their
/// scans may not intersect the bounds of two predicates, and explain shows them
/// `isMultiKey`.
pub const MULTIKEY: TableDefinition<'static, &'static str, bool> =
    TableDefinition::new("documents.multikey");

/// Drops an index's entries table and its multikey mark.
pub fn drop_table(txn: &redb::WriteTransaction, name: &str) -> Result<(), CatalogError> {
    let storage = |e: redb::Error| CatalogError::Storage(e.to_string());
    txn.delete_table(table(name))
        .map_err(|e| storage(e.into()))?;
    let mut t = txn.open_table(MULTIKEY).map_err(|e| storage(e.into()))?;
    t.remove(name).map_err(|e| storage(e.into()))?;
    Ok(())
}

/// An index specification, parsed from its stored form.
#[derive(Debug, Clone)]
pub struct IndexSpec {
    pub name: String,
    /// `(path, ascending)` per key field.
    pub fields: Vec<(String, bool)>,
    pub unique: bool,
    pub sparse: bool,
    pub hidden: bool,
    pub partial: Option<Filter>,
    pub expire_after_seconds: Option<i64>,
    /// The stored specification (`{v, key, name, ...options}`).
    pub spec: Document,
}

fn bad(msg: impl Into<String>) -> CatalogError {
    CatalogError::Storage(msg.into())
}

fn truthy(v: Option<&Bson>) -> bool {
    match v {
        Some(Bson::Boolean(b)) => *b,
        Some(Bson::Int32(n)) => *n != 0,
        Some(Bson::Int64(n)) => *n != 0,
        Some(Bson::Double(d)) => *d != 0.0,
        _ => false,
    }
}

/// Whether a key pattern's direction is descending (`-1`).
pub fn is_descending(v: &Bson) -> bool {
    match v {
        Bson::Int32(n) => *n < 0,
        Bson::Int64(n) => *n < 0,
        Bson::Double(d) => *d < 0.0,
        _ => false,
    }
}

impl IndexSpec {
    /// Parses a stored (already validated) specification.
    pub fn parse(spec: &Document) -> Result<IndexSpec, CatalogError> {
        let name = spec
            .get_str("name")
            .map_err(|_| bad("an index without a name"))?
            .to_owned();
        let key = spec
            .get_document("key")
            .map_err(|_| bad("an index without a key"))?;
        let fields = key
            .iter()
            .map(|(k, v)| (k.clone(), !is_descending(v)))
            .collect();
        let partial = match spec.get_document("partialFilterExpression") {
            Ok(f) => Some(Filter::parse(f).map_err(|e| bad(e.message))?),
            Err(_) => None,
        };
        Ok(IndexSpec {
            name,
            fields,
            unique: truthy(spec.get("unique")),
            sparse: truthy(spec.get("sparse")),
            hidden: truthy(spec.get("hidden")),
            partial,
            expire_after_seconds: spec
                .get("expireAfterSeconds")
                .and_then(crate::error::whole_number),
            spec: spec.clone(),
        })
    }

    pub fn is_id(&self) -> bool {
        self.name == "_id_"
    }

    pub fn key_pattern(&self) -> Document {
        self.spec.get_document("key").cloned().unwrap_or_default()
    }

    /// The key values of `doc` (one vector per entry), or why it cannot be indexed.
    /// Empty when the index leaves the document out (sparse, partial).
    pub fn keys(&self, doc: &Document) -> Result<Vec<Vec<Bson>>, KeyError> {
        self.keys_multikey(doc).map(|(keys, _)| keys)
    }

    /// [`Self::keys`], and whether an array was on a key path.
    pub fn keys_multikey(&self, doc: &Document) -> Result<(Vec<Vec<Bson>>, bool), KeyError> {
        if let Some(p) = &self.partial {
            if !p.matches(doc) {
                return Ok((Vec::new(), false));
            }
        }
        let mut per_field = Vec::with_capacity(self.fields.len());
        let mut array_fields = Vec::new();
        let mut all_missing = true;
        for (path, _) in &self.fields {
            let parts: Vec<&str> = path.split('.').collect();
            let mut out = Vec::new();
            let mut multikey = false;
            let mut found = false;
            field_keys(
                Some(&Bson::Document(doc.clone())),
                &parts,
                true,
                &mut out,
                &mut multikey,
                &mut found,
            );
            if found {
                all_missing = false;
            }
            if out.is_empty() {
                out.push(Bson::Null);
            }
            dedup(&mut out);
            if multikey {
                array_fields.push(path.clone());
            }
            per_field.push(out);
        }
        if self.sparse && all_missing {
            return Ok((Vec::new(), false));
        }
        if array_fields.len() > 1 {
            return Err(KeyError::ParallelArrays(
                array_fields[1].clone(),
                array_fields[0].clone(),
            ));
        }
        // The cartesian product (at most one field has more than one value).
        let mut keys: Vec<Vec<Bson>> = vec![Vec::new()];
        for values in per_field {
            let mut next = Vec::with_capacity(keys.len() * values.len());
            for k in &keys {
                for v in &values {
                    let mut k = k.clone();
                    k.push(v.clone());
                    next.push(k);
                }
            }
            keys = next;
        }
        Ok((keys, !array_fields.is_empty()))
    }

    /// The encoded key of `values` (without the record key).
    pub fn encode(&self, values: &[Bson]) -> Vec<u8> {
        let parts: Vec<(&Bson, bool)> = values
            .iter()
            .zip(&self.fields)
            .map(|(v, (_, asc))| (v, *asc))
            .collect();
        key_string::encode_compound(&parts)
    }

    /// `keyValue` of a duplicate key error: the key pattern's fields with their values.
    pub fn key_value(&self, values: &[Bson]) -> Document {
        let mut d = Document::new();
        for ((path, _), v) in self.fields.iter().zip(values) {
            d.insert(path.clone(), v.clone());
        }
        d
    }
}

fn dedup(values: &mut Vec<Bson>) {
    let mut seen = std::collections::HashSet::new();
    values.retain(|v| seen.insert(key_string::encode(v)));
}

/// The values a path yields for an index (mongod's BtreeKeyGenerator): arrays on the
/// path are expanded (their documents followed, a numeric component also taken as a
/// position), a leaf array gives its elements (an empty one: undefined).
fn field_keys(
    value: Option<&Bson>,
    parts: &[&str],
    top: bool,
    out: &mut Vec<Bson>,
    multikey: &mut bool,
    found: &mut bool,
) {
    let Some(value) = value else { return };
    if parts.is_empty() {
        *found = true;
        match value {
            Bson::Array(items) => {
                *multikey = true;
                if items.is_empty() {
                    out.push(Bson::Undefined);
                } else {
                    out.extend(items.iter().cloned());
                }
            }
            v => out.push(v.clone()),
        }
        return;
    }
    match value {
        Bson::Document(d) => field_keys(d.get(parts[0]), &parts[1..], false, out, multikey, found),
        Bson::Array(items) if !top => {
            *multikey = true;
            if let Ok(pos) = parts[0].parse::<usize>() {
                if parts[0] == "0" || !parts[0].starts_with('0') {
                    field_keys(items.get(pos), &parts[1..], false, out, multikey, found);
                }
            }
            for item in items {
                if let Bson::Document(_) = item {
                    field_keys(Some(item), parts, false, out, multikey, found);
                }
            }
        }
        _ => {}
    }
}

/// Why a document cannot be indexed.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyError {
    /// Two key fields hold arrays (mongod's 171).
    ParallelArrays(String, String),
}

/// The duplicate key refusal of a unique index, as [`CatalogError::DuplicateKey`]
/// carries it: `{ns, index, keyPattern, keyValue}`.
pub fn duplicate(ns: &str, spec: &IndexSpec, values: &[Bson]) -> CatalogError {
    CatalogError::DuplicateKey(doc! {
        "ns": ns,
        "index": &spec.name,
        "keyPattern": spec.key_pattern(),
        "keyValue": spec.key_value(values),
    })
}

/// The refusal of a document with parallel arrays.
pub fn key_error(e: KeyError) -> CatalogError {
    match e {
        KeyError::ParallelArrays(a, b) => {
            CatalogError::Invalid(171, format!("cannot index parallel arrays [{a}] [{b}]"))
        }
    }
}

/// The smallest byte string greater than every string starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Whether an entry table holds a key `key` for a record other than `record`.
pub fn conflicts(
    t: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
    record: &[u8],
) -> Result<bool, CatalogError> {
    let storage = |e: redb::StorageError| CatalogError::Storage(e.to_string());
    let range = match prefix_end(key) {
        Some(end) => t.range::<&[u8]>(key..end.as_slice()),
        None => t.range::<&[u8]>(key..),
    }
    .map_err(storage)?;
    for entry in range {
        let (_, v) = entry.map_err(storage)?;
        if v.value() != record {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Adds the entries of `doc` (record key `record`) to index `spec`'s table, refusing a
/// duplicate of a unique index.
pub fn add_entries(
    txn: &redb::WriteTransaction,
    ns: &str,
    uuid: &str,
    spec: &IndexSpec,
    doc: &Document,
    record: &[u8],
) -> Result<(), CatalogError> {
    let storage = |e: redb::Error| CatalogError::Storage(e.to_string());
    let (keys, multikey) = spec.keys_multikey(doc).map_err(key_error)?;
    if keys.is_empty() {
        return Ok(());
    }
    let name = table_name(uuid, &spec.name);
    if multikey {
        let mut t = txn.open_table(MULTIKEY).map_err(|e| storage(e.into()))?;
        if t.get(name.as_str())
            .map_err(|e| storage(e.into()))?
            .is_none()
        {
            t.insert(name.as_str(), true)
                .map_err(|e| storage(e.into()))?;
        }
    }
    let mut t = txn
        .open_table(table(&name))
        .map_err(|e| storage(e.into()))?;
    for values in keys {
        let key = spec.encode(&values);
        if spec.unique && conflicts(&t, &key, record)? {
            return Err(duplicate(ns, spec, &values));
        }
        let mut entry = key;
        entry.extend_from_slice(record);
        t.insert(entry.as_slice(), record)
            .map_err(|e| storage(e.into()))?;
    }
    Ok(())
}

/// Removes the entries of `doc` (record key `record`) from index `spec`'s table.
pub fn remove_entries(
    txn: &redb::WriteTransaction,
    uuid: &str,
    spec: &IndexSpec,
    doc: &Document,
    record: &[u8],
) -> Result<(), CatalogError> {
    let storage = |e: redb::Error| CatalogError::Storage(e.to_string());
    // A stored document was indexable when it was written.
    let keys = spec.keys(doc).unwrap_or_default();
    if keys.is_empty() {
        return Ok(());
    }
    let name = table_name(uuid, &spec.name);
    let mut t = txn
        .open_table(table(&name))
        .map_err(|e| storage(e.into()))?;
    for values in keys {
        let mut entry = spec.encode(&values);
        entry.extend_from_slice(record);
        t.remove(entry.as_slice()).map_err(|e| storage(e.into()))?;
    }
    Ok(())
}

/// The secondary indexes (all but `_id_`) of a collection's specifications.
pub fn secondary(specs: &[Document]) -> Result<Vec<IndexSpec>, CatalogError> {
    specs
        .iter()
        .map(IndexSpec::parse)
        .filter(|s| !matches!(s, Ok(s) if s.is_id()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: Document) -> IndexSpec {
        IndexSpec::parse(&doc! {"v": 2, "key": key, "name": "x"}).unwrap()
    }

    #[test]
    fn keys_expand_arrays_and_refuse_parallel_ones() {
        let s = spec(doc! {"a": 1});
        assert_eq!(
            s.keys(&doc! {"a": [1, 2, 1]}).unwrap(),
            vec![vec![Bson::Int32(1)], vec![Bson::Int32(2)]]
        );
        assert_eq!(s.keys(&doc! {"b": 1}).unwrap(), vec![vec![Bson::Null]]);
        assert_eq!(
            s.keys(&doc! {"a": []}).unwrap(),
            vec![vec![Bson::Undefined]]
        );
        let s = spec(doc! {"a.b": 1});
        assert_eq!(
            s.keys(&doc! {"a": [{"b": 1}, {"b": [2, 3]}]}).unwrap(),
            vec![
                vec![Bson::Int32(1)],
                vec![Bson::Int32(2)],
                vec![Bson::Int32(3)]
            ]
        );
        let s = spec(doc! {"a": 1, "b": -1});
        assert_eq!(s.keys(&doc! {"a": [1, 2], "b": 3}).unwrap().len(), 2);
        assert!(matches!(
            s.keys(&doc! {"a": [1], "b": [2]}),
            Err(KeyError::ParallelArrays(_, _))
        ));
        let sparse =
            IndexSpec::parse(&doc! {"v": 2, "key": {"a": 1}, "name": "a_1", "sparse": true})
                .unwrap();
        assert!(sparse.keys(&doc! {"b": 1}).unwrap().is_empty());
    }
}
