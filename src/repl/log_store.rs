//! The durable part of the Raft store: the vote, the committed id, the last purged id and
//! the log entries, in an embedded redb database beside the catalog. Each change is one
//! small write transaction (redb's immediate, fsync'd durability), so the cost of an
//! append is that of its own entries, not of the whole log as when it was one JSON file
//! rewritten on every change. A dbpath holding only that older file is moved over once.

use super::raft::TypeConfig;
use openraft::{Entry, LogId, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// The file, in the dbpath.
pub const LOG_FILE: &str = "ferrod-repl-log.redb";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// What the store holds when it opens.
#[derive(Default)]
pub struct Loaded {
    pub vote: Option<Vote<u64>>,
    pub committed: Option<LogId<u64>>,
    pub last_purged: Option<LogId<u64>>,
    pub log: BTreeMap<u64, Entry<TypeConfig>>,
}

pub struct DurableLog {
    db: Database,
}

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io_error)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    serde_json::from_slice(bytes).map_err(io_error)
}

impl DurableLog {
    /// Opens (or creates) the store at `path` and reads it back.
    pub fn open(path: &Path) -> io::Result<(DurableLog, Loaded)> {
        let db = Database::create(path).map_err(io_error)?;
        let store = DurableLog { db };
        let loaded = store.load()?;
        Ok((store, loaded))
    }

    fn load(&self) -> io::Result<Loaded> {
        let txn = self.db.begin_read().map_err(io_error)?;
        let mut loaded = Loaded::default();
        match txn.open_table(META) {
            Ok(meta) => {
                let get = |key: &str| -> io::Result<Option<Vec<u8>>> {
                    Ok(meta.get(key).map_err(io_error)?.map(|v| v.value().to_vec()))
                };
                loaded.vote = get(VOTE)?.map(|b| decode(&b)).transpose()?;
                loaded.committed = get(COMMITTED)?.map(|b| decode(&b)).transpose()?.flatten();
                loaded.last_purged = get(LAST_PURGED)?.map(|b| decode(&b)).transpose()?;
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(io_error(e)),
        }
        match txn.open_table(LOG) {
            Ok(log) => {
                for item in log.iter().map_err(io_error)? {
                    let (index, bytes) = item.map_err(io_error)?;
                    loaded.log.insert(index.value(), decode(bytes.value())?);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(io_error(e)),
        }
        Ok(loaded)
    }

    /// One write transaction: `change` gets the two tables.
    fn write(
        &self,
        change: impl FnOnce(
            &mut redb::Table<&str, &[u8]>,
            &mut redb::Table<u64, &[u8]>,
        ) -> Result<(), redb::StorageError>,
    ) -> io::Result<()> {
        let txn = self.db.begin_write().map_err(io_error)?;
        {
            let mut meta = txn.open_table(META).map_err(io_error)?;
            let mut log = txn.open_table(LOG).map_err(io_error)?;
            change(&mut meta, &mut log).map_err(io_error)?;
        }
        txn.commit().map_err(io_error)
    }

    pub fn save_vote(&self, vote: &Vote<u64>) -> io::Result<()> {
        let bytes = encode(vote)?;
        self.write(|meta, _| meta.insert(VOTE, bytes.as_slice()).map(drop))
    }

    pub fn save_committed(&self, committed: Option<LogId<u64>>) -> io::Result<()> {
        let bytes = encode(&committed)?;
        self.write(|meta, _| meta.insert(COMMITTED, bytes.as_slice()).map(drop))
    }

    /// Adds (or replaces) entries, and with `vote` saves it in the same transaction.
    pub fn append(
        &self,
        entries: &[Entry<TypeConfig>],
        vote: Option<&Vote<u64>>,
    ) -> io::Result<()> {
        let encoded = entries
            .iter()
            .map(|e| Ok((e.log_id.index, encode(e)?)))
            .collect::<io::Result<Vec<_>>>()?;
        let vote = vote.map(encode).transpose()?;
        self.write(|meta, log| {
            for (index, bytes) in &encoded {
                log.insert(*index, bytes.as_slice())?;
            }
            if let Some(vote) = &vote {
                meta.insert(VOTE, vote.as_slice())?;
            }
            Ok(())
        })
    }

    /// Removes the entries from `index` on (a conflicting suffix).
    pub fn truncate_from(&self, index: u64) -> io::Result<()> {
        self.write(|_, log| log.retain_in(index.., |_, _| false))
    }

    /// Removes the entries up to `log_id` and records it as the last purged.
    pub fn purge_upto(&self, log_id: LogId<u64>) -> io::Result<()> {
        let bytes = encode(&log_id)?;
        self.write(|meta, log| {
            log.retain_in(..=log_id.index, |_, _| false)?;
            meta.insert(LAST_PURGED, bytes.as_slice()).map(drop)
        })
    }

    /// Writes everything `loaded` holds (moving an older store over).
    pub fn replace_all(&self, loaded: &Loaded) -> io::Result<()> {
        let entries: Vec<_> = loaded.log.values().cloned().collect();
        self.write(|_, log| log.retain(|_, _| false))?;
        self.append(&entries, loaded.vote.as_ref())?;
        self.save_committed(loaded.committed)?;
        if let Some(purged) = loaded.last_purged {
            let bytes = encode(&purged)?;
            self.write(|meta, _| meta.insert(LAST_PURGED, bytes.as_slice()).map(drop))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repl::raft::{ReplEntry, ReplOp};
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(ReplEntry {
                time_hint: index,
                op: ReplOp::Noop,
            }),
        }
    }

    #[test]
    fn every_change_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        {
            let (log, loaded) = DurableLog::open(&path).unwrap();
            assert!(loaded.vote.is_none() && loaded.log.is_empty());
            log.append(
                &(1..=10).map(entry).collect::<Vec<_>>(),
                Some(&Vote::new(3, 1)),
            )
            .unwrap();
            log.save_committed(Some(entry(6).log_id)).unwrap();
            log.truncate_from(9).unwrap();
            log.purge_upto(entry(4).log_id).unwrap();
        }
        let (_, loaded) = DurableLog::open(&path).unwrap();
        assert_eq!(loaded.vote, Some(Vote::new(3, 1)));
        assert_eq!(loaded.committed, Some(entry(6).log_id));
        assert_eq!(loaded.last_purged, Some(entry(4).log_id));
        assert_eq!(loaded.log.keys().copied().collect::<Vec<_>>(), [5, 6, 7, 8]);
        assert_eq!(loaded.log[&7], entry(7));
    }
}
