//! What `validate` and `dbHash` read: every record of a collection with its key, checked
//! against the document it holds.

use super::{records, records_name, storage, CollectionInfo, Storage};
use crate::catalog::CatalogError;
use md5::{Digest, Md5};
use redb::{ReadableDatabase, ReadableTable};

/// What a walk over a collection's records found.
#[derive(Debug, Default)]
pub struct Checked {
    pub records: u64,
    /// Records that do not decode as BSON, or whose key is not the key of their `_id`.
    pub errors: Vec<String>,
    /// A capped collection's insertion order disagrees with its records.
    pub order_errors: Vec<String>,
}

impl Storage {
    /// Walks every record of `info`, checking each one.
    pub fn check(&self, info: &CollectionInfo) -> Result<Checked, CatalogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let mut out = Checked::default();
        let mut bytes = 0u64;
        let t = match txn.open_table(records(&records_name(&info.uuid))) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(out),
            Err(e) => return Err(storage(e)),
        };
        for entry in t.iter().map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            out.records += 1;
            bytes += v.value().len() as u64;
            match super::decode_doc(v.value()) {
                Err(e) => out.errors.push(format!(
                    "record {} does not decode: {e}",
                    hex::encode(k.value())
                )),
                Ok(doc) => {
                    let id = doc.get("_id").cloned().unwrap_or(bson::Bson::Null);
                    if super::record_key(&id) != k.value() {
                        out.errors
                            .push(format!("record of _id {id} is stored under another key"));
                    }
                }
            }
        }
        if super::capped::is_capped(&info.options) {
            let mut placed = 0u64;
            super::capped::walk(&txn, info, None, true, |_, key| {
                placed += 1;
                if t.get(key.as_slice()).map_err(storage)?.is_none() {
                    out.order_errors.push(format!(
                        "insertion order names a missing record {}",
                        hex::encode(&key)
                    ));
                }
                Ok(true)
            })?;
            let (_, counted) = self.capped_totals(info)?;
            if counted != bytes {
                out.order_errors.push(format!(
                    "the collection's size is kept as {counted} bytes, its records hold {bytes}"
                ));
            }
            if placed != out.records {
                out.order_errors.push(format!(
                    "insertion order holds {placed} records, the collection {}",
                    out.records
                ));
            }
        }
        Ok(out)
    }

    /// The md5 of a collection's documents' BSON bytes in `_id` order (every member of a
    /// set stores the same bytes under the same keys, so caught-up members agree).
    pub fn content_md5(&self, info: &CollectionInfo) -> Result<[u8; 16], CatalogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let mut hasher = Md5::new();
        match txn.open_table(records(&records_name(&info.uuid))) {
            Ok(t) => {
                for entry in t.iter().map_err(storage)? {
                    hasher.update(entry.map_err(storage)?.1.value());
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(storage(e)),
        }
        Ok(hasher.finalize().into())
    }
}
