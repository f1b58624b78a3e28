//! Capped collections: the insertion order of their documents. Two tables per capped
//! collection, kept by [`super::apply_in`] in the same transaction as the records: the
//! order (a sequence number, assigned in log order so that every member assigns the
//! same ones, to the record key) and its reverse (record key to sequence number), which
//! a delete of any document needs.

use super::{storage, CollectionInfo};
use crate::catalog::CatalogError;
use redb::{ReadableTable, TableDefinition};

fn order_name(uuid: &str) -> String {
    format!("documents.capped.{uuid}")
}

fn position_name(uuid: &str) -> String {
    format!("documents.cappedpos.{uuid}")
}

fn order(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

fn position(name: &str) -> TableDefinition<'_, &'static [u8], u64> {
    TableDefinition::new(name)
}

/// Whether `create` made the collection capped.
pub fn is_capped(options: &bson::Document) -> bool {
    match options.get("capped") {
        Some(bson::Bson::Boolean(b)) => *b,
        Some(v) => crate::error::whole_number(v).is_some_and(|n| n != 0),
        None => false,
    }
}

/// The limits of a capped collection: bytes (at least 4096, as mongod's storage engine
/// gives) and documents (0: none).
pub fn limits(options: &bson::Document) -> (u64, u64) {
    let number = |f: &str| {
        options
            .get(f)
            .and_then(crate::error::whole_number)
            .unwrap_or(0)
            .max(0) as u64
    };
    (number("size").max(4096), number("max"))
}

/// Where the position table keeps the collection's total BSON bytes (no record key is
/// empty), so that an insert need not read the collection to know its size.
const BYTES: &[u8] = b"";

fn add_bytes(
    pos: &mut redb::Table<&'static [u8], u64>,
    added: u64,
    removed: u64,
) -> Result<(), CatalogError> {
    let total = pos.get(BYTES).map_err(storage)?.map_or(0, |v| v.value());
    pos.insert(BYTES, (total + added).saturating_sub(removed))
        .map_err(storage)?;
    Ok(())
}

/// Records that the document with record key `key` (`size` bytes, replacing one of
/// `old` bytes) was added last; a replacement keeps its place.
pub fn appended(
    txn: &redb::WriteTransaction,
    info: &CollectionInfo,
    key: &[u8],
    size: u64,
    old: Option<u64>,
) -> Result<(), CatalogError> {
    if !is_capped(&info.options) {
        return Ok(());
    }
    let pos_name = position_name(&info.uuid);
    let mut pos = txn.open_table(position(&pos_name)).map_err(storage)?;
    add_bytes(&mut pos, size, old.unwrap_or(0))?;
    if pos.get(key).map_err(storage)?.is_some() {
        return Ok(());
    }
    let order_name = order_name(&info.uuid);
    let mut ord = txn.open_table(order(&order_name)).map_err(storage)?;
    let next = ord
        .last()
        .map_err(storage)?
        .map_or(0, |(k, _)| k.value() + 1);
    ord.insert(next, key).map_err(storage)?;
    pos.insert(key, next).map_err(storage)?;
    Ok(())
}

/// Forgets the place of a removed document (of `old` bytes, None: there was none).
pub fn removed(
    txn: &redb::WriteTransaction,
    info: &CollectionInfo,
    key: &[u8],
    old: Option<u64>,
) -> Result<(), CatalogError> {
    if !is_capped(&info.options) {
        return Ok(());
    }
    let pos_name = position_name(&info.uuid);
    let mut pos = txn.open_table(position(&pos_name)).map_err(storage)?;
    if let Some(old) = old {
        add_bytes(&mut pos, 0, old)?;
    }
    let seq = pos.remove(key).map_err(storage)?.map(|v| v.value());
    if let Some(seq) = seq {
        let order_name = order_name(&info.uuid);
        txn.open_table(order(&order_name))
            .map_err(storage)?
            .remove(seq)
            .map_err(storage)?;
    }
    Ok(())
}

/// Removes the order tables of a dropped collection.
pub fn dropped(txn: &redb::WriteTransaction, uuid: &str) -> Result<(), CatalogError> {
    txn.delete_table(order(&order_name(uuid)))
        .map_err(storage)?;
    txn.delete_table(position(&position_name(uuid)))
        .map_err(storage)?;
    Ok(())
}

/// The record keys of a capped collection in insertion order, after the position
/// `after` (8 big-endian bytes, what [`resume_key`] gives); `forward: false` from the
/// newest. Calls `each` with the position and record key until it answers false.
pub fn walk(
    txn: &redb::ReadTransaction,
    info: &CollectionInfo,
    after: Option<&[u8]>,
    forward: bool,
    mut each: impl FnMut(Vec<u8>, Vec<u8>) -> Result<bool, CatalogError>,
) -> Result<(), CatalogError> {
    let name = order_name(&info.uuid);
    let t = match txn.open_table(order(&name)) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(storage(e)),
    };
    let after = after.and_then(|a| <[u8; 8]>::try_from(a).ok().map(u64::from_be_bytes));
    let range = match (after, forward) {
        (Some(a), true) => t.range(a.saturating_add(1)..),
        (Some(a), false) => t.range(..a),
        (None, _) => t.range(0..),
    }
    .map_err(storage)?;
    let mut step = |entry: Result<(redb::AccessGuard<u64>, redb::AccessGuard<&[u8]>), _>| {
        let (k, v) = entry.map_err(storage)?;
        each(resume_key(k.value()), v.value().to_vec())
    };
    if forward {
        for entry in range {
            if !step(entry)? {
                break;
            }
        }
    } else {
        for entry in range.rev() {
            if !step(entry)? {
                break;
            }
        }
    }
    Ok(())
}

/// A position as a scan's resume key.
pub fn resume_key(seq: u64) -> Vec<u8> {
    seq.to_be_bytes().to_vec()
}

impl super::Storage {
    /// A capped collection's documents and BSON bytes, read from its order tables
    /// without walking the records (what an insert checks against `max` and `size`).
    pub fn capped_totals(&self, info: &CollectionInfo) -> Result<(u64, u64), CatalogError> {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        let txn = self.db.begin_read().map_err(storage)?;
        let count = match txn.open_table(order(&order_name(&info.uuid))) {
            Ok(t) => t.len().map_err(storage)?,
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(storage(e)),
        };
        let bytes = match txn.open_table(position(&position_name(&info.uuid))) {
            Ok(t) => t.get(BYTES).map_err(storage)?.map_or(0, |v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(storage(e)),
        };
        Ok((count, bytes))
    }
}
