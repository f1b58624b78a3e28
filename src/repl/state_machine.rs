//! The replicated state machine (openraft's [`RaftStateMachine`]): the catalog.
//!
//! Entries are applied to every member's catalog in log order; what has been applied
//! ([`Applied`]) is written in the same catalog transaction as the entry's own writes,
//! so a restart re-applies nothing twice. Each applied entry gets a cluster time,
//! deterministically: the proposer's wall-clock hint, or one increment after the
//! previous entry's, whichever is later, so every member computes the same monotonic
//! times (also across elections).
//!
//! A snapshot is every replicated catalog document and the applied record, read in one
//! catalog read transaction, as a stream of BSON documents; installing one replaces the
//! replicated collections in one catalog transaction.

use super::codec;
use super::config::ReplSetConfig;
use super::raft::{ApplyOutcome, ReplOp, TypeConfig};
use crate::catalog::{catalog_id, Catalog, CatalogError, Collection, Write};
use crate::clock::{unpack, LogicalClock};
use bson::{Bson, Document};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

/// What the state machine has applied; the coordinator watches it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogId<u64>>,
    pub membership: StoredMembership<u64, BasicNode>,
    pub config: Option<ReplSetConfig>,
    /// Wall-clock milliseconds when the last entry was applied here (for optimeDate).
    pub wall_millis: i64,
    /// The cluster time (packed Timestamp) of the last applied entry.
    #[serde(default)]
    pub time: u64,
}

/// The catalog document that records [`Applied`].
const APPLIED_ID: &str = "applied";

fn applied_write(applied: &Applied) -> Write {
    let json = serde_json::to_vec(applied).expect("Applied serializes");
    Write::Upsert {
        collection: Collection::ReplSetConfig,
        id: APPLIED_ID.into(),
        doc: bson::doc! {"_id": APPLIED_ID, "json": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: json }},
    }
}

fn applied_from(doc: Option<&Document>) -> Result<Applied, CatalogError> {
    match doc {
        None => Ok(Applied::default()),
        Some(doc) => match doc.get("json") {
            Some(Bson::Binary(b)) => {
                serde_json::from_slice(&b.bytes).map_err(|e| CatalogError::Storage(e.to_string()))
            }
            _ => Err(CatalogError::Storage("bad applied record".into())),
        },
    }
}

/// The collections a snapshot carries (with the applied record).
const REPLICATED: [Collection; 3] = [Collection::Users, Collection::Roles, Collection::Keys];

/// A snapshot record that is not a catalog [`Write`]: the collections and documents.
#[derive(Serialize, Deserialize)]
enum SnapshotRecord {
    Documents(crate::storage::DocWrite),
}

/// A snapshot's metadata and data.
type StoredSnapshot = (SnapshotMeta<u64, BasicNode>, Arc<Vec<u8>>);

struct Machine {
    applied: watch::Sender<Applied>,
    /// The catalog; attached once it is open.
    catalog: OnceLock<Arc<dyn Catalog>>,
    clock: Arc<LogicalClock>,
    /// The last snapshot built or installed here.
    snapshot: Mutex<Option<StoredSnapshot>>,
    snapshot_seq: AtomicU64,
}

/// The state machine; clones share it (the snapshot builder is one).
#[derive(Clone)]
pub struct StateMachine(Arc<Machine>);

fn sm_error(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::read_state_machine(&e).into()
}

fn catalog_not_open() -> StorageError<u64> {
    sm_error(CatalogError::Storage("the catalog is not open".into()))
}

impl StateMachine {
    pub fn new(clock: Arc<LogicalClock>) -> (StateMachine, watch::Receiver<Applied>) {
        let (tx, rx) = watch::channel(Applied::default());
        let machine = Machine {
            applied: tx,
            catalog: OnceLock::new(),
            clock,
            snapshot: Mutex::new(None),
            snapshot_seq: AtomicU64::new(0),
        };
        (StateMachine(Arc::new(machine)), rx)
    }

    /// Makes `catalog` the state machine and loads what it records as applied.
    pub fn attach_catalog(&self, catalog: Arc<dyn Catalog>) -> Result<(), CatalogError> {
        let applied = applied_from(catalog.get(Collection::ReplSetConfig, APPLIED_ID)?.as_ref())?;
        self.0.clock.advance_to(unpack(applied.time));
        self.0.applied.send_replace(applied);
        let _ = self.0.catalog.set(catalog);
        Ok(())
    }

    pub(super) fn catalog(&self) -> Option<Arc<dyn Catalog>> {
        self.0.catalog.get().cloned()
    }

    /// Signing keys are read from the catalog when they change.
    fn reload_keys(&self, catalog: &dyn Catalog) {
        if let Some(keys) = self.0.clock.keys() {
            keys.load(catalog);
        }
    }

    fn current(&self) -> Option<Snapshot<TypeConfig>> {
        self.0.snapshot.lock().clone().map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.to_vec())),
        })
    }
}

/// The snapshot's documents, read in one catalog transaction: the applied record, then
/// every replicated document.
fn read_snapshot(catalog: &dyn Catalog) -> Result<(Applied, Vec<u8>), CatalogError> {
    let mut collections = vec![Collection::ReplSetConfig];
    collections.extend(REPLICATED);
    let mut documents = Vec::new();
    let read = catalog.read_consistent_with(&collections, &mut |txn| {
        documents = crate::storage::dump_in(txn)?;
        Ok(())
    })?;
    let mut applied = Applied::default();
    let mut data = Vec::new();
    for (collection, docs) in collections.into_iter().zip(read) {
        for doc in docs {
            let id = catalog_id(&doc);
            if collection == Collection::ReplSetConfig {
                if id != APPLIED_ID {
                    continue;
                }
                applied = applied_from(Some(&doc))?;
            }
            let write = Write::Upsert {
                collection,
                id,
                doc,
            };
            let bytes = bson::to_vec(&write).map_err(|e| CatalogError::Storage(e.to_string()))?;
            data.extend(bytes);
        }
    }
    for write in documents {
        let record = SnapshotRecord::Documents(write);
        let bytes = bson::to_vec(&record).map_err(|e| CatalogError::Storage(e.to_string()))?;
        data.extend(bytes);
    }
    Ok((applied, data))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let catalog = self.catalog().ok_or_else(catalog_not_open)?;
        let (applied, data) = crate::blocking::io(move || read_snapshot(catalog.as_ref()))
            .await
            .map_err(sm_error)?;
        let seq = self.0.snapshot_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                applied.last_applied.map(|l| l.index).unwrap_or(0),
                seq
            ),
        };
        tracing::info!(target: "REPL", id = 7_000_061, ctx = "ReplCoord",
            lastIndex = meta.last_log_id.map_or(0, |l| l.index), bytes = data.len(),
            "Built a snapshot of the replicated catalog");
        let data = Arc::new(data);
        *self.0.snapshot.lock() = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.to_vec())),
        })
    }
}

/// Applies `entries` to the catalog, one transaction each. Only the last transaction waits
/// for fsync (which makes the earlier ones durable too), so a member catching up on many
/// entries pays one fsync per batch, not per entry; a crash before it only loses applies
/// that the log still holds and openraft replays from the last durable applied record.
fn apply_entries(
    catalog: &dyn Catalog,
    mut next: Applied,
    entries: Vec<Entry<TypeConfig>>,
    clock: &LogicalClock,
) -> Result<(Applied, Vec<ApplyOutcome>, bool), CatalogError> {
    let mut outcomes = Vec::with_capacity(entries.len());
    let mut keys_changed = false;
    let last = entries.len().saturating_sub(1);
    for (i, entry) in entries.into_iter().enumerate() {
        let commit = |writes: Vec<Write>| {
            if i == last {
                catalog.apply(writes)
            } else {
                catalog.apply_unsynced(writes)
            }
        };
        next.last_applied = Some(entry.log_id);
        let mut hint = 0;
        let mut writes = Vec::new();
        let mut documents = Vec::new();
        let mut in_oplog = false;
        match entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Normal(e) => {
                hint = e.time_hint;
                match e.op {
                    ReplOp::SetConfig(mut config) => {
                        config.term = entry.log_id.leader_id.term as i64;
                        next.config = Some(config);
                    }
                    ReplOp::Catalog(batch) => {
                        keys_changed |= batch.iter().any(Write::touches_keys);
                        writes = batch;
                    }
                    ReplOp::Noop => in_oplog = true,
                    ReplOp::Documents(batch) => {
                        documents = batch;
                        in_oplog = true;
                    }
                }
            }
            EntryPayload::Membership(m) => {
                next.membership = StoredMembership::new(Some(entry.log_id), m);
            }
        }
        next.time = hint.max(next.time + 1);
        next.wall_millis = bson::DateTime::now().timestamp_millis();
        // The entry's writes and the record of having applied it, in one transaction.
        writes.push(applied_write(&next));
        let applied = if !in_oplog {
            commit(writes)
        } else {
            catalog.apply_with(writes, i == last, &mut |txn| {
                crate::storage::apply_in(txn, &documents)?;
                super::oplog::record_in(txn, entry.log_id.index, next.time)
            })
        };
        let error = match applied {
            Ok(()) => {
                crate::op_counters::applied(&documents);
                None
            }
            Err(e @ CatalogError::Storage(_)) => return Err(e),
            // A refused batch changed nothing; only the record is written.
            Err(refused) => {
                commit(vec![applied_write(&next)])?;
                Some(refused)
            }
        };
        clock.advance_to(unpack(next.time));
        outcomes.push(ApplyOutcome {
            time: next.time,
            error,
        });
    }
    Ok((next, outcomes, keys_changed))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let applied = self.0.applied.borrow();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyOutcome>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let catalog = self.catalog().ok_or_else(catalog_not_open)?;
        let next = self.0.applied.borrow().clone();
        let entries: Vec<_> = entries.into_iter().collect();
        let (next, outcomes, keys_changed) =
            apply_entries(catalog.as_ref(), next, entries, &self.0.clock).map_err(sm_error)?;
        self.0.applied.send_replace(next);
        if keys_changed {
            self.reload_keys(catalog.as_ref());
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let catalog = self.catalog().ok_or_else(catalog_not_open)?;
        let install = {
            let catalog = catalog.clone();
            let data = data.clone();
            move || install(catalog.as_ref(), &data)
        };
        let (applied, documents) = crate::blocking::io(install).await.map_err(sm_error)?;
        tracing::info!(target: "REPL", id = 7_000_062, ctx = "ReplCoord",
            lastIndex = meta.last_log_id.map_or(0, |l| l.index), documents,
            "Installed a snapshot of the replicated catalog");
        self.0.clock.advance_to(unpack(applied.time));
        self.reload_keys(catalog.as_ref());
        self.0.applied.send_replace(applied);
        *self.0.snapshot.lock() = Some((meta.clone(), Arc::new(data)));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self.current())
    }
}

/// Replaces every replicated document (and the applied record) with the snapshot's, in
/// one catalog transaction.
fn install(catalog: &dyn Catalog, data: &[u8]) -> Result<(Applied, usize), CatalogError> {
    let bad = |e: String| CatalogError::Storage(format!("a bad snapshot: {e}"));
    let mut incoming = Vec::new();
    let mut documents = Vec::new();
    let mut applied = None;
    for doc in codec::documents(data) {
        let doc = doc.map_err(bad)?;
        let write: Write = match bson::from_slice(doc) {
            Ok(write) => write,
            Err(e) => match bson::from_slice::<SnapshotRecord>(doc) {
                Ok(SnapshotRecord::Documents(write)) => {
                    documents.push(write);
                    continue;
                }
                Err(_) => return Err(bad(e.to_string())),
            },
        };
        let Write::Upsert {
            collection,
            id,
            doc,
        } = &write
        else {
            return Err(bad("a snapshot holds only documents".into()));
        };
        match collection {
            Collection::ReplSetConfig if id == APPLIED_ID => {
                applied = Some(applied_from(Some(doc))?)
            }
            Collection::ReplSetConfig => return Err(bad("an unexpected document".into())),
            _ => {}
        }
        incoming.push(write);
    }
    let applied = applied.ok_or_else(|| bad("no applied record".into()))?;
    let current = catalog.read_consistent(&REPLICATED)?;
    let mut writes: Vec<Write> = REPLICATED
        .into_iter()
        .zip(current)
        .flat_map(|(collection, docs)| {
            docs.into_iter().map(move |doc| Write::Delete {
                collection,
                id: catalog_id(&doc),
            })
        })
        .collect();
    let count = incoming.len() + documents.len();
    writes.extend(incoming);
    // The documents are replaced in the same transaction as the catalog.
    catalog.apply_with(writes, true, &mut |txn| {
        crate::storage::clear_in(txn)?;
        crate::storage::apply_in(txn, &documents)
    })?;
    Ok((applied, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::RedbCatalog;
    use crate::repl::log_store::LogStore;
    use openraft::testing::{StoreBuilder, Suite};

    /// A log store in a temporary directory and a state machine over an in-memory
    /// catalog, as the server runs them.
    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
            let io = |e: std::io::Error| StorageError::from(StorageIOError::write_logs(&e));
            let dir = tempfile::tempdir().map_err(io)?;
            let log = LogStore::open(Some(dir.path())).map_err(io)?;
            let (machine, _) = StateMachine::new(Arc::new(LogicalClock::new()));
            machine
                .attach_catalog(Arc::new(RedbCatalog::in_memory()))
                .map_err(sm_error)?;
            Ok((dir, log, machine))
        }
    }

    /// A catalog that records which applies waited for fsync.
    struct Recording(RedbCatalog, Mutex<Vec<bool>>);

    impl Catalog for Recording {
        fn get(&self, c: Collection, id: &str) -> Result<Option<Document>, CatalogError> {
            self.0.get(c, id)
        }
        fn list(&self, c: Collection) -> Result<Vec<Document>, CatalogError> {
            self.0.list(c)
        }
        fn is_empty(&self, c: Collection) -> Result<bool, CatalogError> {
            self.0.is_empty(c)
        }
        fn version(&self, c: Collection, id: Option<&str>) -> Result<Option<String>, CatalogError> {
            self.0.version(c, id)
        }
        fn apply(&self, writes: Vec<Write>) -> Result<(), CatalogError> {
            self.1.lock().push(true);
            self.0.apply(writes)
        }
        fn apply_unsynced(&self, writes: Vec<Write>) -> Result<(), CatalogError> {
            self.1.lock().push(false);
            self.0.apply_unsynced(writes)
        }
        fn read_consistent(&self, c: &[Collection]) -> Result<Vec<Vec<Document>>, CatalogError> {
            self.0.read_consistent(c)
        }
        // No-ops and document batches record their oplog time in the same transaction.
        fn apply_with(
            &self,
            writes: Vec<Write>,
            durable: bool,
            also: &mut dyn FnMut(&redb::WriteTransaction) -> Result<(), CatalogError>,
        ) -> Result<(), CatalogError> {
            self.1.lock().push(durable);
            self.0.apply_with(writes, durable, also)
        }
    }

    /// A batch of entries costs one fsync, at its end: a member catching up after a
    /// snapshot applies thousands of entries, and one fsync each made that take seconds.
    #[test]
    fn a_batch_of_entries_waits_for_one_fsync_at_its_end() {
        let catalog = Recording(RedbCatalog::in_memory(), Mutex::new(Vec::new()));
        let entries = (1..=3)
            .map(|index| Entry {
                log_id: LogId::new(openraft::CommittedLeaderId::new(1, 0), index),
                payload: EntryPayload::Normal(crate::repl::raft::ReplEntry {
                    time_hint: index,
                    op: ReplOp::Noop,
                }),
            })
            .collect();
        let (applied, outcomes, _) =
            apply_entries(&catalog, Applied::default(), entries, &LogicalClock::new()).unwrap();
        assert_eq!(outcomes.len(), 3);
        assert_eq!(applied.last_applied.map(|l| l.index), Some(3));
        assert_eq!(*catalog.1.lock(), [false, false, true]);
        let stored = catalog.get(Collection::ReplSetConfig, APPLIED_ID);
        assert!(matches!(stored, Ok(Some(_))), "{stored:?}");
    }

    #[test]
    fn openraft_storage_suite_passes() {
        Suite::test_all(Builder).unwrap();
    }
}
