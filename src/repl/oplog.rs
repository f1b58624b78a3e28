//! The source of the `local.oplog.rs` view: the applied entries of the Raft log that
//! still exist (a purge after a snapshot drops the oldest, as a capped oplog loses its
//! oldest entries), with the cluster time each got when it was applied here.
//!
//! An entry's time depends on every entry before it (see [`super::state_machine`]), so
//! it cannot be worked out from the kept log alone once the log's head is purged: the
//! state machine records it, in the apply's own transaction, in a small table of the
//! catalog's file ([`record_in`]), pruned well behind the log's length.

use super::raft::{ReplOp, TypeConfig};
use super::ReplCoordinator;
use crate::catalog::CatalogError;
use crate::error::{Code, CommandError, CommandResult};
use crate::storage::DocWrite;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::{Entry, EntryPayload};
use redb::TableDefinition;
use std::collections::BTreeMap;

/// The log's file in the dbpath (the oplog's size on disk).
pub const LOG_FILE: &str = super::log_store::LOG_FILE;

/// Log index -> the packed cluster time the entry was applied at.
const TIMES: TableDefinition<u64, u64> = TableDefinition::new("repl.oplog_times");

/// Entries read from the log at a time.
const CHUNK: u64 = 256;

fn storage_error(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Storage(e.to_string())
}

/// Records that the entry at `index` was applied at `time` (in the apply's transaction),
/// and forgets the times of entries far older than the log keeps.
pub(super) fn record_in(
    txn: &redb::WriteTransaction,
    index: u64,
    time: u64,
) -> Result<(), CatalogError> {
    let mut t = txn.open_table(TIMES).map_err(storage_error)?;
    t.insert(index, time).map_err(storage_error)?;
    // The log holds at most about 1.1 snapshot intervals; twice that is kept here.
    let keep = 2 * super::raft::entries_per_snapshot() + CHUNK;
    if let Some(cut) = index.checked_sub(keep) {
        t.retain_in(..cut, |_, _| false).map_err(storage_error)?;
    }
    Ok(())
}

/// What one oplog entry records.
#[derive(Debug, Clone)]
pub enum OplogOp {
    /// mongod's "new primary" no-op.
    Noop,
    /// A batch of document writes (their resulting images).
    Documents(Vec<DocWrite>),
}

/// One applied entry of the log, as the oplog view shows it.
#[derive(Debug, Clone)]
pub struct OplogEntry {
    pub index: u64,
    pub term: u64,
    /// The packed cluster time (`ts`).
    pub time: u64,
    pub op: OplogOp,
}

fn oplog_error(e: impl std::fmt::Display) -> CommandError {
    CommandError::new(Code::InternalError, format!("cannot read the oplog: {e}"))
}

impl ReplCoordinator {
    /// Calls `each` on the applied document and no-op entries the log still holds,
    /// oldest first (or newest first with `reverse`), until it answers false. Reads the
    /// log store and the catalog: call it off the async workers.
    pub fn read_oplog(
        &self,
        reverse: bool,
        each: &mut dyn FnMut(OplogEntry) -> CommandResult<bool>,
    ) -> CommandResult<()> {
        let (mut log, catalog) = self.store.oplog_parts();
        let Some(catalog) = catalog else {
            return Ok(());
        };
        let state = futures::executor::block_on(log.get_log_state()).map_err(oplog_error)?;
        let first = state.last_purged_log_id.map_or(1, |l| l.index + 1);
        let last = self.applied().last_applied.map_or(0, |l| l.index);
        if last < first {
            return Ok(());
        }
        let mut next = if reverse { last } else { first };
        loop {
            let (lo, hi) = if reverse {
                (next.saturating_sub(CHUNK - 1).max(first), next)
            } else {
                (next, next.saturating_add(CHUNK - 1).min(last))
            };
            let entries: Vec<Entry<TypeConfig>> =
                futures::executor::block_on(log.try_get_log_entries(lo..=hi))
                    .map_err(oplog_error)?;
            let mut times = BTreeMap::new();
            catalog
                .read_consistent_with(&[], &mut |txn| {
                    match txn.open_table(TIMES) {
                        Ok(t) => {
                            for item in t.range(lo..=hi).map_err(storage_error)? {
                                let (k, v) = item.map_err(storage_error)?;
                                times.insert(k.value(), v.value());
                            }
                        }
                        Err(redb::TableError::TableDoesNotExist(_)) => {}
                        Err(e) => return Err(storage_error(e)),
                    }
                    Ok(())
                })
                .map_err(oplog_error)?;
            let mut chunk: Vec<OplogEntry> = entries
                .into_iter()
                .filter_map(|e| {
                    let op = match e.payload {
                        EntryPayload::Normal(n) => match n.op {
                            ReplOp::Documents(w) => OplogOp::Documents(w),
                            ReplOp::Noop => OplogOp::Noop,
                            _ => return None,
                        },
                        _ => return None,
                    };
                    // An entry without a recorded time was applied by an older build.
                    let time = *times.get(&e.log_id.index)?;
                    Some(OplogEntry {
                        index: e.log_id.index,
                        term: e.log_id.leader_id.term,
                        time,
                        op,
                    })
                })
                .collect();
            if reverse {
                chunk.reverse();
            }
            for entry in chunk {
                if !each(entry)? {
                    return Ok(());
                }
            }
            if reverse {
                if lo <= first {
                    return Ok(());
                }
                next = lo - 1;
            } else {
                if hi >= last {
                    return Ok(());
                }
                next = hi + 1;
            }
        }
    }
}

impl ReplCoordinator {
    /// The cluster time (packed) of the last entry applied here.
    pub fn applied_time(&self) -> u64 {
        self.applied.borrow().time
    }

    /// Waits until this member has applied an entry at `time` (packed) or later: the
    /// wait of readConcern's afterClusterTime. A primary that has applied nothing that
    /// late (the time came from a read, not a write) writes a no-op, which gets a later
    /// time, as mongod's primary does for a secondary's appendOplogNote; a secondary
    /// waits for the primary's entries (its periodic no-op included).
    pub async fn wait_applied_time(
        &self,
        server: &dyn super::ReplHost,
        time: u64,
    ) -> CommandResult<()> {
        let mut applied = self.applied.clone();
        if applied.borrow().time >= time {
            return Ok(());
        }
        if self.my_state(server) == super::MemberState::Primary {
            self.propose(server, ReplOp::Noop).await?;
        }
        applied
            .wait_for(|a| a.time >= time)
            .await
            .map(|_| ())
            .map_err(|_| CommandError::new(Code::InterruptedAtShutdown, "interrupted at shutdown"))
    }
}
