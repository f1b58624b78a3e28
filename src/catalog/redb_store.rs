//! The catalog on disk: one redb file, `catalog.redb`, with one table per collection.
//! Values are BSON documents; every batch is one redb write transaction, committed with
//! redb's default (immediate, fsync'd) durability.

use super::{Catalog, CatalogError, Collection, DbPathLock, Write};
use bson::Document;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use std::path::Path;

pub const CATALOG_FILE: &str = "catalog.redb";

fn table(collection: Collection) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(collection.table_name())
}

fn storage(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Storage(e.to_string())
}

pub struct RedbCatalog {
    /// Shared with the document store (see [`Catalog::database`]).
    db: std::sync::Arc<Database>,
    /// Held for the life of the catalog; `None` for the in-memory store.
    _lock: Option<DbPathLock>,
}

impl RedbCatalog {
    /// Locks `dbpath` and opens (or creates) the catalog file in it.
    pub fn open(dbpath: &Path) -> Result<RedbCatalog, String> {
        let lock = DbPathLock::acquire(dbpath)?;
        let file = dbpath.join(CATALOG_FILE);
        let db = Database::create(&file)
            .map_err(|e| format!("cannot open the catalog {}: {e}", file.display()))?;
        Ok(RedbCatalog {
            db: std::sync::Arc::new(db),
            _lock: Some(lock),
        })
    }

    /// A catalog that lives in memory only (library use and unit tests).
    pub fn in_memory() -> RedbCatalog {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("in-memory redb");
        RedbCatalog {
            db: std::sync::Arc::new(db),
            _lock: None,
        }
    }

    /// Runs `read` on a collection's table; a table never written to reads as empty
    /// (tables are created by their first write, so opening costs no commit).
    fn read<T>(
        &self,
        collection: Collection,
        empty: T,
        read: impl FnOnce(&redb::ReadOnlyTable<&'static str, &'static [u8]>) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        match txn.open_table(table(collection)) {
            Ok(t) => read(&t),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(empty),
            Err(e) => Err(storage(e)),
        }
    }
}

fn decode(bytes: &[u8]) -> Result<Document, CatalogError> {
    super::decode_stored(bytes).map_err(storage)
}

/// [`Catalog::version`] read from a table: SHA-256 of the stored bytes, which are the same
/// on every member that applied the same batches.
fn version_in<T: ReadableTable<&'static str, &'static [u8]>>(
    t: &T,
    id: Option<&str>,
) -> Result<Option<String>, CatalogError> {
    use sha2::{Digest, Sha256};
    let Some(id) = id else {
        let mut hash = Sha256::new();
        for entry in t.iter().map_err(storage)? {
            let (key, value) = entry.map_err(storage)?;
            for part in [key.value().as_bytes(), value.value()] {
                hash.update((part.len() as u64).to_le_bytes());
                hash.update(part);
            }
        }
        return Ok(Some(hex::encode(hash.finalize())));
    };
    Ok(t.get(id)
        .map_err(storage)?
        .map(|value| hex::encode(Sha256::digest(value.value()))))
}

fn encode(doc: &Document) -> Result<Vec<u8>, CatalogError> {
    let mut out = Vec::new();
    doc.to_writer(&mut out).map_err(storage)?;
    Ok(out)
}

impl Catalog for RedbCatalog {
    fn get(&self, collection: Collection, id: &str) -> Result<Option<Document>, CatalogError> {
        self.read(collection, None, |t| match t.get(id).map_err(storage)? {
            Some(value) => decode(value.value()).map(Some),
            None => Ok(None),
        })
    }

    fn list(&self, collection: Collection) -> Result<Vec<Document>, CatalogError> {
        self.read(collection, Vec::new(), |t| {
            let mut docs = Vec::new();
            for entry in t.iter().map_err(storage)? {
                let (_, value) = entry.map_err(storage)?;
                docs.push(decode(value.value())?);
            }
            Ok(docs)
        })
    }

    fn is_empty(&self, collection: Collection) -> Result<bool, CatalogError> {
        self.read(collection, true, |t| t.is_empty().map_err(storage))
    }

    fn version(
        &self,
        collection: Collection,
        id: Option<&str>,
    ) -> Result<Option<String>, CatalogError> {
        // A table never written to holds what an empty one does.
        let empty = match id {
            Some(_) => None,
            None => Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest([]))),
        };
        self.read(collection, empty, |t| version_in(t, id))
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), CatalogError> {
        // The commit waits for fsync: not on an async worker.
        crate::blocking::in_place(|| self.commit(writes, Durability::Immediate))
    }

    fn apply_unsynced(&self, writes: Vec<Write>) -> Result<(), CatalogError> {
        crate::blocking::in_place(|| self.commit(writes, Durability::None))
    }

    fn database(&self) -> Option<std::sync::Arc<Database>> {
        Some(self.db.clone())
    }

    fn apply_with(
        &self,
        writes: Vec<Write>,
        durable: bool,
        also: &mut dyn FnMut(&redb::WriteTransaction) -> Result<(), CatalogError>,
    ) -> Result<(), CatalogError> {
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        crate::blocking::in_place(|| self.commit_with(writes, durability, also))
    }

    fn read_consistent(
        &self,
        collections: &[Collection],
    ) -> Result<Vec<Vec<Document>>, CatalogError> {
        self.read_consistent_with(collections, &mut |_| Ok(()))
    }

    fn read_consistent_with(
        &self,
        collections: &[Collection],
        also: &mut dyn FnMut(&redb::ReadTransaction) -> Result<(), CatalogError>,
    ) -> Result<Vec<Vec<Document>>, CatalogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        also(&txn)?;
        let mut out = Vec::with_capacity(collections.len());
        for &collection in collections {
            let mut docs = Vec::new();
            match txn.open_table(table(collection)) {
                Ok(t) => {
                    for entry in t.iter().map_err(storage)? {
                        docs.push(decode(entry.map_err(storage)?.1.value())?);
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(storage(e)),
            }
            out.push(docs);
        }
        Ok(out)
    }
}

impl RedbCatalog {
    fn commit(&self, writes: Vec<Write>, durability: Durability) -> Result<(), CatalogError> {
        self.commit_with(writes, durability, &mut |_| Ok(()))
    }

    fn commit_with(
        &self,
        writes: Vec<Write>,
        durability: Durability,
        also: &mut dyn FnMut(&redb::WriteTransaction) -> Result<(), CatalogError>,
    ) -> Result<(), CatalogError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(durability).map_err(storage)?;
        also(&txn)?;
        for write in writes {
            match write {
                Write::Insert {
                    collection,
                    id,
                    doc,
                } => {
                    let mut t = txn.open_table(table(collection)).map_err(storage)?;
                    if t.get(id.as_str()).map_err(storage)?.is_some() {
                        return Err(CatalogError::Duplicate(id));
                    }
                    t.insert(id.as_str(), encode(&doc)?.as_slice())
                        .map_err(storage)?;
                }
                Write::Replace {
                    collection,
                    id,
                    doc,
                } => {
                    let mut t = txn.open_table(table(collection)).map_err(storage)?;
                    if t.get(id.as_str()).map_err(storage)?.is_none() {
                        return Err(CatalogError::NotFound(id));
                    }
                    t.insert(id.as_str(), encode(&doc)?.as_slice())
                        .map_err(storage)?;
                }
                Write::Upsert {
                    collection,
                    id,
                    doc,
                } => {
                    let mut t = txn.open_table(table(collection)).map_err(storage)?;
                    t.insert(id.as_str(), encode(&doc)?.as_slice())
                        .map_err(storage)?;
                }
                Write::Delete { collection, id } => {
                    let mut t = txn.open_table(table(collection)).map_err(storage)?;
                    t.remove(id.as_str()).map_err(storage)?;
                }
                Write::Expect {
                    collection,
                    id,
                    version,
                } => {
                    let t = txn.open_table(table(collection)).map_err(storage)?;
                    if version_in(&t, id.as_deref())? != version {
                        return Err(CatalogError::Changed(collection));
                    }
                }
            }
        }
        // Dropping an uncommitted transaction (the early returns above) aborts it.
        txn.commit().map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn batches_are_all_or_nothing_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = RedbCatalog::open(dir.path()).unwrap();
            let insert = |id: &str| Write::Insert {
                collection: Collection::Users,
                id: id.into(),
                doc: doc! {"_id": id},
            };
            c.apply(vec![insert("admin.a")]).unwrap();
            let err = c.apply(vec![insert("admin.b"), insert("admin.a")]);
            assert_eq!(err, Err(CatalogError::Duplicate("admin.a".into())));
            assert!(c.get(Collection::Users, "admin.b").unwrap().is_none());
            assert!(
                RedbCatalog::open(dir.path()).is_err(),
                "second open must be refused"
            );
        }
        let c = RedbCatalog::open(dir.path()).unwrap();
        assert_eq!(c.list(Collection::Users).unwrap().len(), 1);
        assert!(c.is_empty(Collection::Roles).unwrap());
    }

    #[test]
    fn expect_holds_only_while_what_was_read_is_unchanged() {
        let c = RedbCatalog::in_memory();
        let users = Collection::Users;
        let expect = |id: Option<&str>| Write::Expect {
            collection: users,
            id: id.map(str::to_owned),
            version: c.version(users, id).unwrap(),
        };
        let upsert = |n: i32| Write::Upsert {
            collection: users,
            id: "admin.a".into(),
            doc: doc! {"_id": "admin.a", "n": n},
        };
        // A table never written to reads as the empty one it becomes.
        let never_written = expect(None);
        c.apply(vec![
            upsert(1),
            Write::Delete {
                collection: users,
                id: "admin.a".into(),
            },
        ])
        .unwrap();
        c.apply(vec![never_written.clone()]).unwrap();

        let absent = expect(Some("admin.a"));
        c.apply(vec![absent.clone(), upsert(1)]).unwrap();
        let (one, all) = (expect(Some("admin.a")), expect(None));
        assert_eq!(
            c.apply(vec![absent, upsert(2)]),
            Err(CatalogError::Changed(users))
        );
        assert_eq!(
            c.apply(vec![never_written, upsert(2)]),
            Err(CatalogError::Changed(users))
        );
        c.apply(vec![one.clone(), all.clone(), upsert(2)]).unwrap();
        assert_eq!(c.apply(vec![one]), Err(CatalogError::Changed(users)));
        assert_eq!(c.apply(vec![all]), Err(CatalogError::Changed(users)));
        assert_eq!(
            c.get(users, "admin.a").unwrap(),
            Some(doc! {"_id": "admin.a", "n": 2})
        );
    }
}
