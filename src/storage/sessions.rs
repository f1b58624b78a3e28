//! The session table, ferrod's `config.transactions`: per logical session, the latest
//! retryable write's `txnNumber` and, per statement it ran (`stmtId`), the result a retry
//! of that statement answers. A record is written by a [`DocWrite::SessionTxn`] in the
//! same batch as the write it describes, so it replicates with the write and survives a
//! failover or a restart with it.

use super::{decode_doc, encode_doc, storage, DocWrite, Storage};
use crate::catalog::CatalogError;
use bson::{doc, Bson, Document};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// Keyed by the session id's BSON bytes (see [`session_key`]).
const SESSIONS: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("documents.transactions");

/// What the table holds for a session.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionTxn {
    pub txn_number: i64,
    /// `{"<stmtId>": result}` of the statements of `txn_number` that ran.
    pub stmts: Document,
    pub last_write_millis: i64,
}

/// The table key of a session: its `lsid` (`{id, uid?}`) as BSON.
pub fn session_key(lsid: &Document) -> Vec<u8> {
    let mut key = Document::new();
    for field in ["id", "uid"] {
        if let Some(v) = lsid.get(field) {
            key.insert(field, v.clone());
        }
    }
    encode_doc(&key).unwrap_or_default()
}

fn from_document(d: &Document) -> SessionTxn {
    SessionTxn {
        txn_number: d.get_i64("txnNumber").unwrap_or(-1),
        stmts: d.get_document("stmts").cloned().unwrap_or_default(),
        last_write_millis: d
            .get_datetime("lastWriteDate")
            .map(|t| t.timestamp_millis())
            .unwrap_or(0),
    }
}

/// Applies a [`DocWrite::SessionTxn`] inside `txn`: the statements join those of the
/// same `txnNumber`, or start the record afresh for a newer one.
pub(super) fn apply_in(txn: &redb::WriteTransaction, write: &DocWrite) -> Result<(), CatalogError> {
    let DocWrite::SessionTxn {
        lsid,
        txn_number,
        stmts,
        last_write_millis,
    } = write
    else {
        return Ok(());
    };
    let mut t = txn.open_table(SESSIONS).map_err(storage)?;
    let key = session_key(lsid);
    let current = match t.get(key.as_slice()).map_err(storage)? {
        Some(v) => Some(from_document(&decode_doc(v.value())?)),
        None => None,
    };
    let mut merged = match current {
        // The primary checked the order under its write lock; an older record never
        // replaces a newer one.
        Some(c) if c.txn_number > *txn_number => return Ok(()),
        Some(c) if c.txn_number == *txn_number => c.stmts,
        _ => Document::new(),
    };
    merged.extend(stmts.clone());
    let record = doc! {
        "lsid": lsid.clone(),
        "txnNumber": *txn_number,
        "lastWriteDate": bson::DateTime::from_millis(*last_write_millis),
        "stmts": merged,
    };
    t.insert(key.as_slice(), encode_doc(&record)?.as_slice())
        .map_err(storage)?;
    Ok(())
}

/// Every session record as the writes that recreate them (for a Raft snapshot).
pub(super) fn dump_in(
    txn: &redb::ReadTransaction,
    out: &mut Vec<DocWrite>,
) -> Result<(), CatalogError> {
    let t = match txn.open_table(SESSIONS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(storage(e)),
    };
    for entry in t.iter().map_err(storage)? {
        let record = decode_doc(entry.map_err(storage)?.1.value())?;
        let s = from_document(&record);
        out.push(DocWrite::SessionTxn {
            lsid: record.get_document("lsid").cloned().unwrap_or_default(),
            txn_number: s.txn_number,
            stmts: s.stmts,
            last_write_millis: s.last_write_millis,
        });
    }
    Ok(())
}

impl Storage {
    /// The record of the session `lsid`, if it ever ran a retryable write.
    pub fn session_txn(&self, lsid: &Document) -> Result<Option<SessionTxn>, CatalogError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let t = match txn.open_table(SESSIONS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        match t.get(session_key(lsid).as_slice()).map_err(storage)? {
            Some(v) => Ok(Some(from_document(&decode_doc(v.value())?))),
            None => Ok(None),
        }
    }
}

/// The statement result as a retry answers it, when statement `stmt_id` ran.
pub fn executed(record: &SessionTxn, stmt_id: i32) -> Option<Document> {
    match record.stmts.get(stmt_id.to_string()) {
        Some(Bson::Document(d)) => Some(d.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn record(txn_number: i64, stmts: Document) -> DocWrite {
        DocWrite::SessionTxn {
            lsid: doc! {"id": 1},
            txn_number,
            stmts,
            last_write_millis: 0,
        }
    }

    #[test]
    fn statements_of_one_txn_number_merge_and_an_older_record_never_replaces_a_newer() {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let db = Arc::new(db);
        let s = Storage::new(db.clone());
        s.commit(&[record(3, doc! {"0": {"n": 1}})], true).unwrap();
        s.commit(&[record(3, doc! {"1": {"n": 1}})], true).unwrap();
        let got = s.session_txn(&doc! {"id": 1}).unwrap().unwrap();
        assert_eq!(got.txn_number, 3);
        assert_eq!(got.stmts, doc! {"0": {"n": 1}, "1": {"n": 1}});
        s.commit(&[record(2, doc! {"5": {"n": 1}})], true).unwrap();
        assert_eq!(s.session_txn(&doc! {"id": 1}).unwrap().unwrap(), got);
        s.commit(&[record(4, doc! {"2": {"n": 0}})], true).unwrap();
        let newer = s.session_txn(&doc! {"id": 1}).unwrap().unwrap();
        assert_eq!((newer.txn_number, newer.stmts), (4, doc! {"2": {"n": 0}}));

        // A snapshot carries the record, and it survives the log's JSON.
        let dumped = super::super::dump_in(&db.begin_read().unwrap()).unwrap();
        assert_eq!(dumped, vec![record(4, doc! {"2": {"n": 0}})]);
        let json = serde_json::to_string(&dumped[0]).unwrap();
        assert_eq!(serde_json::from_str::<DocWrite>(&json).unwrap(), dumped[0]);
    }
}
