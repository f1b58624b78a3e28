//! Documents on disk: namespaces, collections of raw BSON keyed by an order-preserving
//! encoding of `_id`, and their indexes, in the embedded store under `--dbpath`.
//!
//! Documents live in the catalog's redb database (one file), in tables of their own: the
//! namespace table (one metadata document per collection: its options, uuid and
//! indexes) and one records table per collection, keyed by [`key_string`] of `_id`
//! (which makes the records table the `_id` index: unique, in BSON order). Sharing the
//! database lets a replicated apply write an entry's documents and the record of having
//! applied it in one transaction, so a restart neither loses nor repeats an entry.
//!
//! Every change is a [`DocWrite`] batch, the resulting document images (never the
//! operators), applied atomically by [`apply_in`]: the same function on a standalone
//! (through [`Storage::commit`]) and on every member of a replica set (from the log).

pub mod capped;
pub mod check;
pub mod cursors;
pub mod index;
pub mod key_string;
pub mod planner;
pub mod sessions;

use crate::catalog::{bson_bytes, CatalogError};
use bson::{doc, Bson, Document};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableHandle,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One metadata document per collection, keyed by its namespace (`db.coll`).
const NAMESPACES: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("documents.namespaces");

/// The records table of a collection, named by its uuid (so that a drop and a new
/// collection of the same name never share a table).
fn records_name(uuid: &str) -> String {
    format!("documents.records.{uuid}")
}

fn records(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// A change to the documents, as it travels through the replication log: the images to
/// store, worked out by the primary, so every member stores the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DocWrite {
    /// Creates a collection (`uuid` chosen by the writer); refused if it exists.
    CreateCollection {
        ns: String,
        uuid: String,
        #[serde(with = "bson_bytes")]
        options: Document,
    },
    /// Drops a collection and its documents (nothing if it does not exist).
    DropCollection { ns: String },
    /// Adds a document; refused (the whole batch) if its `_id` exists.
    Insert {
        ns: String,
        #[serde(with = "bson_bytes")]
        doc: Document,
    },
    /// Stores a document under its `_id`, replacing any there.
    Put {
        ns: String,
        #[serde(with = "bson_bytes")]
        doc: Document,
    },
    /// Removes the document with `_id` `id` (given as `{_id: id}`).
    Delete {
        ns: String,
        #[serde(with = "bson_bytes")]
        id: Document,
    },
    /// Replaces a collection's options (collMod).
    SetOptions {
        ns: String,
        #[serde(with = "bson_bytes")]
        options: Document,
    },
    /// Renames a collection to `to`; its uuid and documents move with it. A collection
    /// at `to` is dropped first when `drop_target`, else the batch is refused.
    Rename {
        ns: String,
        to: String,
        drop_target: bool,
    },
    /// Adds indexes (`{indexes: [spec...]}`, validated by the writer) and builds their
    /// entries over the documents; refused whole on a duplicate key of a unique one.
    CreateIndexes {
        ns: String,
        #[serde(with = "bson_bytes")]
        specs: Document,
    },
    /// Removes the indexes named `names` and their entries.
    DropIndexes { ns: String, names: Vec<String> },
    /// Records statements of a retryable write of the session `lsid` (see [`sessions`]):
    /// `stmts` is `{"<stmtId>": result}`, written with the write itself.
    SessionTxn {
        #[serde(with = "bson_bytes")]
        lsid: Document,
        txn_number: i64,
        #[serde(with = "bson_bytes")]
        stmts: Document,
        last_write_millis: i64,
    },
}

impl DocWrite {
    pub fn ns(&self) -> &str {
        match self {
            DocWrite::CreateCollection { ns, .. }
            | DocWrite::DropCollection { ns }
            | DocWrite::Insert { ns, .. }
            | DocWrite::Put { ns, .. }
            | DocWrite::Delete { ns, .. }
            | DocWrite::SetOptions { ns, .. }
            | DocWrite::Rename { ns, .. }
            | DocWrite::CreateIndexes { ns, .. }
            | DocWrite::DropIndexes { ns, .. } => ns,
            DocWrite::SessionTxn { .. } => "config.transactions",
        }
    }
}

/// A collection as the namespace table records it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    pub ns: String,
    pub uuid: String,
    /// `create`'s options as given (capped, size, max...).
    pub options: Document,
    /// Index specifications (`{v, key, name}`), the `_id` index first.
    pub indexes: Vec<Document>,
}

impl CollectionInfo {
    pub fn db(&self) -> &str {
        self.ns
            .split_once('.')
            .map_or(self.ns.as_str(), |(db, _)| db)
    }

    pub fn name(&self) -> &str {
        self.ns.split_once('.').map_or("", |(_, c)| c)
    }

    fn to_document(&self) -> Document {
        doc! {
            "ns": &self.ns,
            "uuid": &self.uuid,
            "options": self.options.clone(),
            "indexes": self.indexes.iter().cloned().map(Bson::Document).collect::<Vec<_>>(),
        }
    }

    fn from_document(d: &Document) -> Result<CollectionInfo, CatalogError> {
        let bad = || CatalogError::Storage("a bad namespace record".into());
        Ok(CollectionInfo {
            ns: d.get_str("ns").map_err(|_| bad())?.to_owned(),
            uuid: d.get_str("uuid").map_err(|_| bad())?.to_owned(),
            options: d.get_document("options").map_err(|_| bad())?.clone(),
            indexes: d
                .get_array("indexes")
                .map_err(|_| bad())?
                .iter()
                .filter_map(|i| i.as_document().cloned())
                .collect(),
        })
    }

    /// The uuid as BSON binary (subtype 4), as listCollections shows it.
    pub fn uuid_bson(&self) -> Bson {
        match bson::Uuid::parse_str(&self.uuid) {
            Ok(u) => Bson::Binary(bson::Binary::from_uuid(u)),
            Err(_) => Bson::String(self.uuid.clone()),
        }
    }
}

/// The `_id` index every collection has.
pub fn id_index_spec() -> Document {
    doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"}
}

fn storage(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Storage(e.to_string())
}

/// The record key of a document: [`key_string`] of its `_id`.
pub fn record_key(id: &Bson) -> Vec<u8> {
    key_string::encode(id)
}

fn encode_doc(doc: &Document) -> Result<Vec<u8>, CatalogError> {
    let mut out = Vec::new();
    doc.to_writer(&mut out).map_err(storage)?;
    Ok(out)
}

fn decode_doc(bytes: &[u8]) -> Result<Document, CatalogError> {
    crate::catalog::decode_stored(bytes).map_err(storage)
}

/// Why a batch was refused: an `_id` that exists (the same on every member, which all
/// apply the same log).
pub fn duplicate(id: &Bson) -> CatalogError {
    CatalogError::Duplicate(format!("{{ _id: {id} }}"))
}

fn namespace_in(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    ns: &str,
) -> Result<Option<CollectionInfo>, CatalogError> {
    match t.get(ns).map_err(storage)? {
        Some(v) => Ok(Some(CollectionInfo::from_document(&decode_doc(
            v.value(),
        )?)?)),
        None => Ok(None),
    }
}

/// Applies `writes` inside `txn`, all or nothing (an error leaves the caller to drop
/// the transaction).
pub fn apply_in(txn: &redb::WriteTransaction, writes: &[DocWrite]) -> Result<(), CatalogError> {
    let mut namespaces = txn.open_table(NAMESPACES).map_err(storage)?;
    for write in writes {
        let ns = write.ns();
        let info = namespace_in(&namespaces, ns)?;
        match (write, info) {
            (DocWrite::CreateCollection { uuid, options, .. }, None) => {
                let info = CollectionInfo {
                    ns: ns.to_owned(),
                    uuid: uuid.clone(),
                    options: options.clone(),
                    indexes: vec![id_index_spec()],
                };
                namespaces
                    .insert(ns, encode_doc(&info.to_document())?.as_slice())
                    .map_err(storage)?;
                txn.open_table(records(&records_name(uuid)))
                    .map_err(storage)?;
            }
            (DocWrite::CreateCollection { .. }, Some(_)) => {
                return Err(CatalogError::Duplicate(ns.to_owned()))
            }
            (DocWrite::DropCollection { .. }, None) => {}
            (DocWrite::DropCollection { .. }, Some(info)) => {
                namespaces.remove(ns).map_err(storage)?;
                txn.delete_table(records(&records_name(&info.uuid)))
                    .map_err(storage)?;
                capped::dropped(txn, &info.uuid)?;
                for spec in index::secondary(&info.indexes)? {
                    index::drop_table(txn, &index::table_name(&info.uuid, &spec.name))?;
                }
            }
            // Not a collection: its own table, whatever the namespace table holds.
            (DocWrite::SessionTxn { .. }, _) => sessions::apply_in(txn, write)?,
            (_, None) => return Err(CatalogError::NotFound(ns.to_owned())),
            (DocWrite::Insert { doc, .. }, Some(info)) => {
                let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
                let mut t = txn
                    .open_table(records(&records_name(&info.uuid)))
                    .map_err(storage)?;
                let key = record_key(&id);
                if t.get(key.as_slice()).map_err(storage)?.is_some() {
                    return Err(duplicate(&id));
                }
                let bytes = encode_doc(doc)?;
                t.insert(key.as_slice(), bytes.as_slice())
                    .map_err(storage)?;
                capped::appended(txn, &info, &key, bytes.len() as u64, None)?;
                for spec in index::secondary(&info.indexes)? {
                    index::add_entries(txn, ns, &info.uuid, &spec, doc, &key)?;
                }
            }
            (DocWrite::Put { doc, .. }, Some(info)) => {
                let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
                let mut t = txn
                    .open_table(records(&records_name(&info.uuid)))
                    .map_err(storage)?;
                let key = record_key(&id);
                let bytes = encode_doc(doc)?;
                let old = t
                    .insert(key.as_slice(), bytes.as_slice())
                    .map_err(storage)?
                    .map(|old| old.value().to_vec());
                let old_len = old.as_ref().map(|o| o.len() as u64);
                capped::appended(txn, &info, &key, bytes.len() as u64, old_len)?;
                let old = old.map(|o| decode_doc(&o)).transpose()?;
                for spec in index::secondary(&info.indexes)? {
                    if let Some(old) = &old {
                        index::remove_entries(txn, &info.uuid, &spec, old, &key)?;
                    }
                    index::add_entries(txn, ns, &info.uuid, &spec, doc, &key)?;
                }
            }
            (DocWrite::Delete { id, .. }, Some(info)) => {
                let id = id.get("_id").cloned().unwrap_or(Bson::Null);
                let mut t = txn
                    .open_table(records(&records_name(&info.uuid)))
                    .map_err(storage)?;
                let key = record_key(&id);
                let old = t
                    .remove(key.as_slice())
                    .map_err(storage)?
                    .map(|old| old.value().to_vec());
                capped::removed(txn, &info, &key, old.as_ref().map(|o| o.len() as u64))?;
                if let Some(old) = old {
                    let old = decode_doc(&old)?;
                    for spec in index::secondary(&info.indexes)? {
                        index::remove_entries(txn, &info.uuid, &spec, &old, &key)?;
                    }
                }
            }
            (DocWrite::SetOptions { options, .. }, Some(mut info)) => {
                info.options = options.clone();
                namespaces
                    .insert(ns, encode_doc(&info.to_document())?.as_slice())
                    .map_err(storage)?;
            }
            (DocWrite::CreateIndexes { specs, .. }, Some(mut info)) => {
                let new: Vec<Document> = specs
                    .get_array("indexes")
                    .map(|a| a.iter().filter_map(|s| s.as_document().cloned()).collect())
                    .unwrap_or_default();
                let t = txn
                    .open_table(records(&records_name(&info.uuid)))
                    .map_err(storage)?;
                for spec in &new {
                    let parsed = index::IndexSpec::parse(spec)?;
                    txn.open_table(index::table(&index::table_name(&info.uuid, &parsed.name)))
                        .map_err(storage)?;
                    // The build over the documents there.
                    for entry in t.iter().map_err(storage)? {
                        let (k, v) = entry.map_err(storage)?;
                        let doc = decode_doc(v.value())?;
                        index::add_entries(txn, ns, &info.uuid, &parsed, &doc, k.value())?;
                    }
                    info.indexes.push(spec.clone());
                }
                namespaces
                    .insert(ns, encode_doc(&info.to_document())?.as_slice())
                    .map_err(storage)?;
            }
            (
                DocWrite::Rename {
                    to, drop_target, ..
                },
                Some(mut info),
            ) => {
                if let Some(target) = namespace_in(&namespaces, to)? {
                    if !drop_target {
                        return Err(CatalogError::Duplicate(to.clone()));
                    }
                    namespaces.remove(to.as_str()).map_err(storage)?;
                    txn.delete_table(records(&records_name(&target.uuid)))
                        .map_err(storage)?;
                    capped::dropped(txn, &target.uuid)?;
                    for spec in index::secondary(&target.indexes)? {
                        index::drop_table(txn, &index::table_name(&target.uuid, &spec.name))?;
                    }
                }
                namespaces.remove(ns).map_err(storage)?;
                info.ns = to.clone();
                namespaces
                    .insert(to.as_str(), encode_doc(&info.to_document())?.as_slice())
                    .map_err(storage)?;
            }
            (DocWrite::DropIndexes { names, .. }, Some(mut info)) => {
                for name in names {
                    index::drop_table(txn, &index::table_name(&info.uuid, name))?;
                }
                info.indexes.retain(|s| {
                    !s.get_str("name")
                        .is_ok_and(|n| names.iter().any(|x| x == n))
                });
                namespaces
                    .insert(ns, encode_doc(&info.to_document())?.as_slice())
                    .map_err(storage)?;
            }
        }
    }
    Ok(())
}

/// What a scan callback answers for each document.
pub enum Scan {
    Continue,
    Stop,
}

/// The document store.
pub struct Storage {
    db: Arc<Database>,
    /// Held by every writer from its reads to its commit (or, on a replica set, until
    /// its entry is applied here), so that what it read is still what it writes over.
    write_lock: tokio::sync::Mutex<()>,
    /// Woken after a committed write (tailable cursors waiting with awaitData).
    pub changed: tokio::sync::Notify,
}

impl Storage {
    pub fn new(db: Arc<Database>) -> Storage {
        Storage {
            db,
            write_lock: tokio::sync::Mutex::new(()),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Serializes writers; see the field.
    pub async fn lock_writes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().await
    }

    /// Applies `writes` in one transaction; `durable`: returns once they are on disk.
    pub fn commit(&self, writes: &[DocWrite], durable: bool) -> Result<(), CatalogError> {
        crate::blocking::in_place(|| {
            let mut txn = self.db.begin_write().map_err(storage)?;
            txn.set_durability(if durable {
                Durability::Immediate
            } else {
                Durability::None
            })
            .map_err(storage)?;
            apply_in(&txn, writes)?;
            txn.commit().map_err(storage)
        })
    }

    /// Every collection, in namespace order.
    pub fn collections(&self) -> Result<Vec<CollectionInfo>, CatalogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let t = match txn.open_table(NAMESPACES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut out = Vec::new();
        for entry in t.iter().map_err(storage)? {
            let (_, v) = entry.map_err(storage)?;
            out.push(CollectionInfo::from_document(&decode_doc(v.value())?)?);
        }
        Ok(out)
    }

    pub fn collection(&self, ns: &str) -> Result<Option<CollectionInfo>, CatalogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        match txn.open_table(NAMESPACES) {
            Ok(t) => namespace_in(&t, ns),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(storage(e)),
        }
    }

    /// The document with `_id` `id`.
    pub fn get(&self, info: &CollectionInfo, id: &Bson) -> Result<Option<Document>, CatalogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let t = match txn.open_table(records(&records_name(&info.uuid))) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        match t.get(record_key(id).as_slice()).map_err(storage)? {
            Some(v) => decode_doc(v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Which of the record keys `keys` exist, read in one transaction (insert's
    /// duplicate check for a whole batch).
    pub fn existing(
        &self,
        info: &CollectionInfo,
        keys: &[Vec<u8>],
    ) -> Result<Vec<bool>, CatalogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let t = match txn.open_table(records(&records_name(&info.uuid))) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![false; keys.len()]),
            Err(e) => return Err(storage(e)),
        };
        keys.iter()
            .map(|k| Ok(t.get(k.as_slice()).map_err(storage)?.is_some()))
            .collect()
    }

    /// Calls `each` on the documents in `_id` order, starting after the record key
    /// `after` (a cursor's resume point), until it answers [`Scan::Stop`]. Returns the
    /// key of the last document seen.
    pub fn scan(
        &self,
        info: &CollectionInfo,
        after: Option<&[u8]>,
        mut each: impl FnMut(Document) -> Result<Scan, crate::error::CommandError>,
    ) -> Result<Option<Vec<u8>>, ScanError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| ScanError::Storage(storage(e)))?;
        let t = match txn.open_table(records(&records_name(&info.uuid))) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(ScanError::Storage(storage(e))),
        };
        if capped::is_capped(&info.options) {
            // Insertion order ($natural), resumed by position.
            let mut last = None;
            let mut failed = None;
            capped::walk(&txn, info, after, true, |pos, key| {
                let Some(v) = t.get(key.as_slice()).map_err(storage)? else {
                    return Ok(true);
                };
                let doc = decode_doc(v.value())?;
                last = Some(pos);
                match each(doc) {
                    Ok(Scan::Continue) => Ok(true),
                    Ok(Scan::Stop) => Ok(false),
                    Err(e) => {
                        failed = Some(e);
                        Ok(false)
                    }
                }
            })
            .map_err(ScanError::Storage)?;
            return match failed {
                Some(e) => Err(ScanError::Command(e)),
                None => Ok(last),
            };
        }
        let range = match after {
            Some(key) => {
                t.range::<&[u8]>((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded))
            }
            None => t.range::<&[u8]>(..),
        }
        .map_err(|e| ScanError::Storage(storage(e)))?;
        let mut last = None;
        for entry in range {
            let (k, v) = entry.map_err(|e| ScanError::Storage(storage(e)))?;
            let doc = decode_doc(v.value()).map_err(ScanError::Storage)?;
            last = Some(k.value().to_vec());
            if let Scan::Stop = each(doc).map_err(ScanError::Command)? {
                break;
            }
        }
        Ok(last)
    }

    /// Documents and bytes of BSON in a collection.
    pub fn stats(&self, info: &CollectionInfo) -> Result<(u64, u64), CatalogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let t = match txn.open_table(records(&records_name(&info.uuid))) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, 0)),
            Err(e) => return Err(storage(e)),
        };
        let mut bytes = 0;
        for entry in t.iter().map_err(storage)? {
            bytes += entry.map_err(storage)?.1.value().len() as u64;
        }
        Ok((t.len().map_err(storage)?, bytes))
    }
}

/// Every collection and document, read in `txn`, as the writes that recreate them (what
/// a Raft snapshot carries).
pub fn dump_in(txn: &redb::ReadTransaction) -> Result<Vec<DocWrite>, CatalogError> {
    let infos = match txn.open_table(NAMESPACES) {
        Ok(t) => {
            let mut out = Vec::new();
            for entry in t.iter().map_err(storage)? {
                out.push(CollectionInfo::from_document(&decode_doc(
                    entry.map_err(storage)?.1.value(),
                )?)?);
            }
            out
        }
        Err(redb::TableError::TableDoesNotExist(_)) => Vec::new(),
        Err(e) => return Err(storage(e)),
    };
    let mut out = Vec::new();
    for info in infos {
        out.push(DocWrite::CreateCollection {
            ns: info.ns.clone(),
            uuid: info.uuid.clone(),
            options: info.options.clone(),
        });
        let secondary: Vec<Bson> = info
            .indexes
            .iter()
            .filter(|s| s.get_str("name") != Ok("_id_"))
            .cloned()
            .map(Bson::Document)
            .collect();
        if !secondary.is_empty() {
            out.push(DocWrite::CreateIndexes {
                ns: info.ns.clone(),
                specs: doc! {"indexes": secondary},
            });
        }
        match txn.open_table(records(&records_name(&info.uuid))) {
            Ok(t) if capped::is_capped(&info.options) => {
                // In insertion order, which the install then assigns again.
                capped::walk(txn, &info, None, true, |_, key| {
                    if let Some(v) = t.get(key.as_slice()).map_err(storage)? {
                        out.push(DocWrite::Insert {
                            ns: info.ns.clone(),
                            doc: decode_doc(v.value())?,
                        });
                    }
                    Ok(true)
                })?;
            }
            Ok(t) => {
                for entry in t.iter().map_err(storage)? {
                    out.push(DocWrite::Insert {
                        ns: info.ns.clone(),
                        doc: decode_doc(entry.map_err(storage)?.1.value())?,
                    });
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(storage(e)),
        }
    }
    sessions::dump_in(txn, &mut out)?;
    Ok(out)
}

/// Removes every collection inside `txn` (a snapshot install replaces them).
pub fn clear_in(txn: &redb::WriteTransaction) -> Result<(), CatalogError> {
    let names: Vec<String> = txn
        .list_tables()
        .map_err(storage)?
        .map(|t| t.name().to_owned())
        .filter(|n| n.starts_with("documents."))
        .collect();
    for name in names {
        if name == NAMESPACES.name() {
            txn.delete_table(NAMESPACES).map_err(storage)?;
        } else if name == index::MULTIKEY.name() {
            txn.delete_table(index::MULTIKEY).map_err(storage)?;
        } else {
            txn.delete_table(records(&name)).map_err(storage)?;
        }
    }
    Ok(())
}

/// A scan ends with the store's error or the callback's.
#[derive(Debug)]
pub enum ScanError {
    Storage(CatalogError),
    Command(crate::error::CommandError),
}

/// A new collection uuid.
pub fn new_uuid() -> String {
    bson::Uuid::new().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Storage {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        Storage::new(Arc::new(db))
    }

    fn create(ns: &str) -> DocWrite {
        DocWrite::CreateCollection {
            ns: ns.into(),
            uuid: new_uuid(),
            options: Document::new(),
        }
    }

    #[test]
    fn records_iterate_in_bson_order_of_id_and_ids_are_unique() {
        let s = store();
        let ns = "test.c";
        let insert = |id: Bson| DocWrite::Insert {
            ns: ns.into(),
            doc: doc! {"_id": id},
        };
        s.commit(
            &[
                create(ns),
                insert(Bson::String("a".into())),
                insert(Bson::Int32(10)),
                insert(Bson::Double(2.5)),
                insert(Bson::Null),
            ],
            true,
        )
        .unwrap();
        // 10.0 is the same key as 10: the batch is refused whole.
        let dup = s.commit(&[insert(Bson::Int32(3)), insert(Bson::Double(10.0))], true);
        assert!(matches!(dup, Err(CatalogError::Duplicate(_))), "{dup:?}");
        let info = s.collection(ns).unwrap().unwrap();
        let mut ids = Vec::new();
        s.scan(&info, None, |d| {
            ids.push(d.get("_id").cloned().unwrap());
            Ok(Scan::Continue)
        })
        .unwrap();
        assert_eq!(
            ids,
            vec![
                Bson::Null,
                Bson::Double(2.5),
                Bson::Int32(10),
                Bson::String("a".into())
            ]
        );
        assert_eq!(s.stats(&info).unwrap().0, 4);
        s.commit(&[DocWrite::DropCollection { ns: ns.into() }], true)
            .unwrap();
        assert!(s.collection(ns).unwrap().is_none());
        assert!(matches!(
            s.commit(&[insert(Bson::Int32(1))], true),
            Err(CatalogError::NotFound(_))
        ));
    }

    #[test]
    fn writes_survive_the_replication_log_json() {
        let w = DocWrite::Put {
            ns: "a.b".into(),
            doc: doc! {"_id": 1_i64, "x": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1] }},
        };
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<DocWrite>(&json).unwrap(), w);
    }
}
