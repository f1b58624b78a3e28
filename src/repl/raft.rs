//! The openraft adapter: type config, the log + state-machine store, and the network
//! that carries Raft RPCs as OP_MSG commands through the [`Transport`].
//!
//! The state machine is the catalog: [`ReplEntry`] carries the replica-set config and
//! catalog batches (users, roles, cluster keys), applied to every member's catalog in
//! log order. Each applied entry gets a cluster time, deterministically: the proposer's
//! wall-clock hint, or one increment after the previous entry's, whichever is later, so
//! every member computes the same monotonic times (also across elections).
//!
//! The log, vote and committed id are kept in memory and, with a file, written through
//! to it atomically (temp file, fsync, rename) before openraft is told they are saved.
//! What has been applied ([`Applied`]) is written into the catalog in the same
//! transaction as the entry's own writes, so a restart re-applies nothing twice.

use super::config::ReplSetConfig;
use super::log_store::{DurableLog, Loaded, LOG_FILE};
use super::transport::Transport;
use crate::catalog::{catalog_id, Catalog, CatalogError, Collection, Write};
use crate::clock::{unpack, LogicalClock};
use bson::{doc, Bson, Document};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogState, RaftLogReader, RaftSnapshotBuilder, RaftStorage, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, Vote,
};
use parking_lot::Mutex;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::io::Cursor;
use std::io::Write as _;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// The single JSON file an older build kept the log, vote and committed id in; moved
/// into the [`DurableLog`] when found.
const LEGACY_FILE: &str = "ferrod-repl-raft.json";

/// One replicated state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplEntry {
    /// The proposer's wall clock (a packed Timestamp): a lower bound for the entry's time.
    pub time_hint: u64,
    pub op: ReplOp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReplOp {
    /// Installs a new replica-set config (initiate and reconfig).
    SetConfig(ReplSetConfig),
    /// A catalog batch, applied atomically on every member.
    Catalog(Vec<Write>),
    /// Moves the cluster time on (mongod's "new primary" no-op).
    Noop,
}

impl std::fmt::Display for ReplEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.op {
            ReplOp::SetConfig(c) => write!(f, "SetConfig(version {})", c.version),
            ReplOp::Catalog(w) => write!(f, "Catalog({} writes)", w.len()),
            ReplOp::Noop => write!(f, "Noop"),
        }
    }
}

/// What applying one entry gave: its cluster time, and the catalog's refusal if the
/// batch could not be applied (the same on every member, since all apply the same log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    pub time: u64,
    pub error: Option<CatalogError>,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = ReplEntry,
        R = ApplyOutcome,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;

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

/// The collections a snapshot carries.
const REPLICATED: [Collection; 3] = [Collection::Users, Collection::Roles, Collection::Keys];

/// A snapshot: what was applied, and every replicated catalog document.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    applied: Applied,
    documents: Vec<Write>,
}

/// The Raft log, vote and state machine.
pub struct Store {
    inner: Mutex<StoreInner>,
    applied: watch::Sender<Applied>,
    /// Where the durable part is written; None keeps everything in memory.
    durable: Option<Arc<DurableLog>>,
    /// The state machine; attached once the catalog is open.
    catalog: OnceLock<Arc<dyn Catalog>>,
    /// The node's clock: moved forward to each applied entry's time, and entries are
    /// proposed no earlier than it.
    pub(super) clock: Arc<LogicalClock>,
}

#[derive(Default, Serialize, Deserialize)]
struct StoreInner {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    log: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<u64>>,
    #[serde(skip)]
    snapshot: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
    #[serde(skip)]
    snapshot_seq: u64,
}

impl StoreInner {
    /// The last entry's id, in the log or purged from it.
    fn last_log_id(&self) -> Option<LogId<u64>> {
        self.log
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(self.last_purged)
    }
}

impl Store {
    /// Opens the store under `dbpath` (None: in memory only), moving over the single
    /// JSON file an older build kept there.
    pub fn open(
        dbpath: Option<&Path>,
        clock: Arc<LogicalClock>,
    ) -> std::io::Result<(Arc<Store>, watch::Receiver<Applied>)> {
        let (durable, loaded) = match dbpath {
            Some(dir) => {
                let (durable, mut loaded) = DurableLog::open(&dir.join(LOG_FILE))?;
                let legacy = dir.join(LEGACY_FILE);
                if legacy.exists() {
                    let old: StoreInner = serde_json::from_slice(&std::fs::read(&legacy)?)
                        .map_err(std::io::Error::other)?;
                    loaded = Loaded {
                        vote: old.vote,
                        committed: old.committed,
                        last_purged: old.last_purged,
                        log: old.log,
                    };
                    durable.replace_all(&loaded)?;
                    std::fs::remove_file(&legacy)?;
                }
                (Some(Arc::new(durable)), loaded)
            }
            None => (None, Loaded::default()),
        };
        let inner = StoreInner {
            vote: loaded.vote,
            committed: loaded.committed,
            log: loaded.log,
            last_purged: loaded.last_purged,
            ..StoreInner::default()
        };
        let (tx, rx) = watch::channel(Applied::default());
        let store = Store {
            inner: Mutex::new(inner),
            applied: tx,
            durable,
            catalog: OnceLock::new(),
            clock,
        };
        Ok((Arc::new(store), rx))
    }

    /// A forced reconfig on a member that cannot reach a primary (mongod's
    /// `force: true`, unsafe by design): with Raft stopped, appends to this member's own
    /// log a membership of `nodes` (voters `voters`) and the new config, in a term after
    /// every term it has seen, as if it had led that term. When Raft starts again, the
    /// new membership is in force here; this member campaigns among the new voters,
    /// and once elected commits both entries and replicates them to the others.
    pub fn force_config(
        &self,
        node_id: u64,
        voters: BTreeSet<u64>,
        nodes: BTreeMap<u64, BasicNode>,
        entry: ReplEntry,
    ) -> std::io::Result<()> {
        let mut inner = self.inner.lock();
        let term = inner.vote.map(|v| v.leader_id().term).unwrap_or(0) + 1;
        let last = inner.last_log_id().map_or(0, |l| l.index);
        let leader = openraft::CommittedLeaderId::new(term, node_id);
        let membership = openraft::Membership::new(vec![voters], nodes);
        let entries = [
            Entry {
                log_id: LogId::new(leader, last + 1),
                payload: EntryPayload::Membership(membership),
            },
            Entry {
                log_id: LogId::new(leader, last + 2),
                payload: EntryPayload::Normal(entry),
            },
        ];
        let vote = Vote::new(term, node_id);
        if let Some(durable) = &self.durable {
            durable.append(&entries, Some(&vote))?;
        }
        for entry in entries {
            inner.log.insert(entry.log_id.index, entry);
        }
        inner.vote = Some(vote);
        Ok(())
    }

    /// Makes `catalog` the state machine and loads what it records as applied.
    pub fn attach_catalog(&self, catalog: Arc<dyn Catalog>) -> Result<(), CatalogError> {
        let applied = match catalog.get(Collection::ReplSetConfig, APPLIED_ID)? {
            Some(doc) => match doc.get("json") {
                Some(Bson::Binary(b)) => serde_json::from_slice(&b.bytes)
                    .map_err(|e| CatalogError::Storage(e.to_string()))?,
                _ => return Err(CatalogError::Storage("bad applied record".into())),
            },
            None => Applied::default(),
        };
        self.clock.advance_to(unpack(applied.time));
        self.applied.send_replace(applied);
        let _ = self.catalog.set(catalog);
        Ok(())
    }

    /// Signing keys are read from the catalog when they change.
    fn reload_keys(&self, catalog: &dyn Catalog) {
        if let Some(keys) = self.clock.keys() {
            keys.load(catalog);
        }
    }

    fn catalog(&self) -> Option<&Arc<dyn Catalog>> {
        self.catalog.get()
    }

    /// Whether a vote or log survived from an earlier run.
    pub fn has_state(&self) -> bool {
        let inner = self.inner.lock();
        inner.vote.is_some() || !inner.log.is_empty()
    }

    /// Runs `change` on the durable store off the async workers (it waits for fsync);
    /// openraft makes one storage call at a time, so changes reach the disk in order.
    async fn durably(
        &self,
        change: impl FnOnce(&DurableLog) -> std::io::Result<()> + Send + 'static,
    ) -> Result<(), StorageError<u64>> {
        let Some(durable) = self.durable.clone() else {
            return Ok(());
        };
        crate::blocking::io(move || change(&durable))
            .await
            .map_err(write_error)
    }
}

fn write_error(e: std::io::Error) -> StorageError<u64> {
    StorageIOError::write_logs(&e).into()
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new file whole.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Every document of the replicated collections, with its collection and id.
fn replicated_documents(
    catalog: &dyn Catalog,
) -> Result<Vec<(Collection, String, Document)>, CatalogError> {
    let mut documents = Vec::new();
    for collection in REPLICATED {
        for doc in catalog.list(collection)? {
            documents.push((collection, catalog_id(&doc), doc));
        }
    }
    Ok(documents)
}

fn catalog_not_open() -> StorageError<u64> {
    io_error(CatalogError::Storage("the catalog is not open".into()))
}

fn io_error(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::read_state_machine(&e).into()
}

impl RaftLogReader<TypeConfig> for Arc<Store> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let inner = self.inner.lock();
        Ok(inner.log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for Arc<Store> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let applied = self.applied.borrow().clone();
        let catalog = self.catalog().ok_or_else(catalog_not_open)?;
        let documents = replicated_documents(catalog.as_ref())
            .map_err(io_error)?
            .into_iter()
            .map(|(collection, id, doc)| Write::Upsert {
                collection,
                id,
                doc,
            })
            .collect();
        let data = serde_json::to_vec(&SnapshotData {
            applied: applied.clone(),
            documents,
        })
        .map_err(io_error)?;
        let mut inner = self.inner.lock();
        inner.snapshot_seq += 1;
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                applied.last_applied.map(|l| l.index).unwrap_or(0),
                inner.snapshot_seq
            ),
        };
        inner.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStorage<TypeConfig> for Arc<Store> {
    type LogReader = Self;
    type SnapshotBuilder = Self;

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.inner.lock().vote = Some(*vote);
        let vote = *vote;
        self.durably(move |d| d.save_vote(&vote)).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.inner.lock().committed = committed;
        self.durably(move |d| d.save_committed(committed)).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.inner.lock().committed)
    }

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let inner = self.inner.lock();
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: inner.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn append_to_log<I>(&mut self, entries: I) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        {
            let mut inner = self.inner.lock();
            for entry in &entries {
                inner.log.insert(entry.log_id.index, entry.clone());
            }
        }
        self.durably(move |d| d.append(&entries, None)).await
    }

    async fn delete_conflict_logs_since(
        &mut self,
        log_id: LogId<u64>,
    ) -> Result<(), StorageError<u64>> {
        self.inner.lock().log.split_off(&log_id.index);
        self.durably(move |d| d.truncate_from(log_id.index)).await
    }

    async fn purge_logs_upto(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        {
            let mut inner = self.inner.lock();
            inner.last_purged = Some(log_id);
            let keep = inner.log.split_off(&(log_id.index + 1));
            inner.log = keep;
        }
        self.durably(move |d| d.purge_upto(log_id)).await
    }

    async fn last_applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let applied = self.applied.borrow();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply_to_state_machine(
        &mut self,
        entries: &[Entry<TypeConfig>],
    ) -> Result<Vec<ApplyOutcome>, StorageError<u64>> {
        let catalog = self.catalog().ok_or_else(catalog_not_open)?.clone();
        let mut next = self.applied.borrow().clone();
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut keys_changed = false;
        for entry in entries {
            next.last_applied = Some(entry.log_id);
            let mut hint = 0;
            let mut writes = Vec::new();
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(e) => {
                    hint = e.time_hint;
                    match &e.op {
                        ReplOp::SetConfig(config) => {
                            let mut config = config.clone();
                            config.term = entry.log_id.leader_id.term as i64;
                            next.config = Some(config);
                        }
                        ReplOp::Catalog(batch) => {
                            keys_changed |= batch.iter().any(Write::touches_keys);
                            writes = batch.clone();
                        }
                        ReplOp::Noop => {}
                    }
                }
                EntryPayload::Membership(m) => {
                    next.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            next.time = hint.max(next.time + 1);
            next.wall_millis = bson::DateTime::now().timestamp_millis();
            // The entry's writes and the record of having applied it, in one transaction.
            writes.push(applied_write(&next));
            let error = match catalog.apply(writes) {
                Ok(()) => None,
                Err(e @ CatalogError::Storage(_)) => return Err(io_error(e)),
                // A refused batch changed nothing; only the record is written.
                Err(refused) => {
                    catalog
                        .apply(vec![applied_write(&next)])
                        .map_err(io_error)?;
                    Some(refused)
                }
            };
            self.clock.advance_to(unpack(next.time));
            outcomes.push(ApplyOutcome {
                time: next.time,
                error,
            });
        }
        self.applied.send_replace(next);
        if keys_changed {
            self.reload_keys(catalog.as_ref());
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
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
        let snapshot: SnapshotData = serde_json::from_slice(&data).map_err(io_error)?;
        let catalog = self.catalog().ok_or_else(catalog_not_open)?;
        // What the snapshot holds replaces every replicated document here.
        let mut writes: Vec<Write> = replicated_documents(catalog.as_ref())
            .map_err(io_error)?
            .into_iter()
            .map(|(collection, id, _)| Write::Delete { collection, id })
            .collect();
        writes.extend(snapshot.documents);
        writes.push(applied_write(&snapshot.applied));
        catalog.apply(writes).map_err(io_error)?;
        self.clock.advance_to(unpack(snapshot.applied.time));
        self.reload_keys(catalog.as_ref());
        self.applied.send_replace(snapshot.applied);
        self.inner.lock().snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self
            .inner
            .lock()
            .snapshot
            .clone()
            .map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
    }
}

// ---- network ----------------------------------------------------------------

/// The command names Raft RPCs travel under.
pub const VOTE_COMMAND: &str = "_ferrodRaftVote";
pub const APPEND_COMMAND: &str = "_ferrodRaftAppend";
pub const SNAPSHOT_COMMAND: &str = "_ferrodRaftSnapshot";

/// What a receiving member needs to start its own Raft if it has none yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaftSettings {
    pub set_name: String,
    pub heartbeat_interval_millis: i64,
    pub election_timeout_millis: i64,
}

pub struct Network {
    pub transport: Arc<dyn Transport>,
    pub settings: RaftSettings,
    /// Resolves a member id to its current host (the config may have changed it).
    pub resolve: Arc<dyn Fn(u64) -> Option<String> + Send + Sync>,
}

pub struct NetworkConnection {
    transport: Arc<dyn Transport>,
    settings: RaftSettings,
    target: u64,
    host: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = NetworkConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> NetworkConnection {
        NetworkConnection {
            transport: self.transport.clone(),
            settings: self.settings.clone(),
            target,
            host: (self.resolve)(target).unwrap_or_else(|| node.addr.clone()),
        }
    }
}

/// The largest encoded log entry: mongod's BSONObjMaxInternalSize, the room it leaves
/// an internal document (an oplog entry) around a 16 MiB user document. Anything larger
/// could never be sent to a follower, so it is refused before it is proposed.
pub const MAX_ENTRY_SIZE: usize = 16 * 1024 * 1024 + 16 * 1024;
/// At most this many bytes of entries go in one AppendEntries, which keeps the message
/// under the wire's 48,000,000 bytes (the rest of it is a few hundred bytes).
const MAX_BATCH_BYTES: usize = crate::wire::MAX_MESSAGE_SIZE - 1024 * 1024;
/// An RPC's encoding travels in pieces this large, each in its own document of a
/// document sequence: a document may not exceed 16 MiB, an RPC may.
const PIECE: usize = 8 * 1024 * 1024;
/// The document sequence that carries an RPC's encoding.
pub const PAYLOAD: &str = "payload";

type WireResult<T> = Result<T, String>;

fn bson_error(e: impl std::fmt::Display) -> String {
    format!("cannot encode a Raft message as BSON: {e}")
}

/// An entry as it travels and is measured: BSON, with a membership change as JSON
/// bytes inside (openraft keys its members by number, which a BSON key cannot be).
#[derive(Serialize)]
struct EntryOut<'a> {
    log_id: &'a LogId<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    normal: Option<&'a ReplEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    membership: Option<bson::Binary>,
}

#[derive(Deserialize)]
struct EntryIn {
    log_id: LogId<u64>,
    normal: Option<ReplEntry>,
    membership: Option<bson::Binary>,
}

fn json_binary<T: Serialize>(value: &T) -> WireResult<bson::Binary> {
    Ok(bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes: serde_json::to_vec(value).map_err(|e| e.to_string())?,
    })
}

fn encode_entry(entry: &Entry<TypeConfig>) -> WireResult<Vec<u8>> {
    let (normal, membership) = match &entry.payload {
        EntryPayload::Blank => (None, None),
        EntryPayload::Normal(e) => (Some(e), None),
        EntryPayload::Membership(m) => (None, Some(json_binary(m)?)),
    };
    bson::to_vec(&EntryOut {
        log_id: &entry.log_id,
        normal,
        membership,
    })
    .map_err(bson_error)
}

impl TryFrom<EntryIn> for Entry<TypeConfig> {
    type Error = String;

    fn try_from(e: EntryIn) -> WireResult<Self> {
        let payload = match (e.normal, e.membership) {
            (Some(normal), None) => EntryPayload::Normal(normal),
            (None, Some(m)) => EntryPayload::Membership(
                serde_json::from_slice(&m.bytes).map_err(|e| e.to_string())?,
            ),
            (None, None) => EntryPayload::Blank,
            (Some(_), Some(_)) => return Err("an entry with two payloads".into()),
        };
        Ok(Entry {
            log_id: e.log_id,
            payload,
        })
    }
}

/// The encoded size of `entry` once proposed (with the largest log id it could get).
/// An entry that cannot be encoded at all is reported as too large: it could never be
/// sent either.
pub fn entry_size(entry: &ReplEntry) -> usize {
    let max = u64::MAX >> 1;
    let probe = EntryOut {
        log_id: &LogId::new(openraft::CommittedLeaderId::new(max, max), max),
        normal: Some(entry),
        membership: None,
    };
    bson::to_vec(&probe).map_or(usize::MAX, |b| b.len())
}

#[derive(Serialize)]
struct AppendOut<'a> {
    vote: &'a Vote<u64>,
    prev_log_id: &'a Option<LogId<u64>>,
    leader_commit: &'a Option<LogId<u64>>,
    entries: Vec<bson::RawDocumentBuf>,
}

#[derive(Deserialize)]
struct AppendIn {
    vote: Vote<u64>,
    prev_log_id: Option<LogId<u64>>,
    leader_commit: Option<LogId<u64>>,
    entries: Vec<EntryIn>,
}

/// The AppendEntries to send: `rpc`, or as many of its first entries as fit in one
/// message (always at least one). Returns the encoding and how many entries it holds.
fn encode_append(rpc: &AppendEntriesRequest<TypeConfig>) -> WireResult<(Vec<u8>, usize)> {
    let mut entries = Vec::new();
    let mut bytes = 0;
    for entry in &rpc.entries {
        let encoded = encode_entry(entry)?;
        if !entries.is_empty() && bytes + encoded.len() > MAX_BATCH_BYTES {
            break;
        }
        bytes += encoded.len();
        entries.push(bson::RawDocumentBuf::from_bytes(encoded).map_err(bson_error)?);
    }
    let sent = entries.len();
    let out = AppendOut {
        vote: &rpc.vote,
        prev_log_id: &rpc.prev_log_id,
        leader_commit: &rpc.leader_commit,
        entries,
    };
    Ok((bson::to_vec(&out).map_err(bson_error)?, sent))
}

fn decode_append(bytes: &[u8]) -> WireResult<AppendEntriesRequest<TypeConfig>> {
    let rpc: AppendIn = bson::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(AppendEntriesRequest {
        vote: rpc.vote,
        prev_log_id: rpc.prev_log_id,
        leader_commit: rpc.leader_commit,
        entries: rpc
            .entries
            .into_iter()
            .map(Entry::try_from)
            .collect::<WireResult<_>>()?,
    })
}

/// A snapshot chunk: its data as BSON binary, its metadata (which holds a membership)
/// as JSON bytes.
#[derive(Serialize, Deserialize)]
struct SnapshotWire {
    vote: Vote<u64>,
    meta: bson::Binary,
    offset: u64,
    data: bson::Binary,
    done: bool,
}

fn encode_snapshot(rpc: &InstallSnapshotRequest<TypeConfig>) -> WireResult<Vec<u8>> {
    bson::to_vec(&SnapshotWire {
        vote: rpc.vote,
        meta: json_binary(&rpc.meta)?,
        offset: rpc.offset,
        data: bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: rpc.data.clone(),
        },
        done: rpc.done,
    })
    .map_err(bson_error)
}

fn decode_snapshot(bytes: &[u8]) -> WireResult<InstallSnapshotRequest<TypeConfig>> {
    let rpc: SnapshotWire = bson::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(InstallSnapshotRequest {
        vote: rpc.vote,
        meta: serde_json::from_slice(&rpc.meta.bytes).map_err(|e| e.to_string())?,
        offset: rpc.offset,
        data: rpc.data.bytes,
        done: rpc.done,
    })
}

/// The OP_MSG for a Raft RPC: a small command body, and the RPC's encoding in pieces
/// in the `payload` document sequence.
pub fn rpc_message(
    name: &str,
    target: u64,
    settings: &RaftSettings,
    encoded: &[u8],
) -> crate::wire::OpMsg {
    let body = doc! {
        name: 1,
        "target": target as i64,
        "settings": bson::to_bson(settings).unwrap_or(Bson::Null),
        "$db": "admin",
    };
    let pieces = encoded
        .chunks(PIECE)
        .map(|piece| doc! {"data": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: piece.to_vec() }})
        .collect();
    crate::wire::OpMsg {
        flags: 0,
        sections: vec![
            crate::wire::Section::Body(body),
            crate::wire::Section::Sequence {
                identifier: PAYLOAD.into(),
                documents: pieces,
            },
        ],
    }
}

/// Puts the pieces of an RPC command's `payload` back together.
fn joined_payload(cmd: &Document) -> WireResult<Vec<u8>> {
    let pieces = cmd.get_array(PAYLOAD).map_err(|_| "missing payload")?;
    let mut bytes = Vec::new();
    for piece in pieces {
        match piece.as_document().and_then(|d| d.get("data")) {
            Some(Bson::Binary(b)) => bytes.extend_from_slice(&b.bytes),
            _ => return Err("a payload piece without data".into()),
        }
    }
    Ok(bytes)
}

/// The Raft RPCs as a member receives them.
pub enum IncomingRpc {
    Vote(VoteRequest<u64>),
    Append(AppendEntriesRequest<TypeConfig>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

/// Reads the RPC a `name` command carries.
pub fn incoming_rpc(name: &str, cmd: &Document) -> WireResult<IncomingRpc> {
    let bytes = joined_payload(cmd)?;
    match name {
        VOTE_COMMAND => Ok(IncomingRpc::Vote(
            bson::from_slice(&bytes).map_err(|e| e.to_string())?,
        )),
        APPEND_COMMAND => decode_append(&bytes).map(IncomingRpc::Append),
        SNAPSHOT_COMMAND => decode_snapshot(&bytes).map(IncomingRpc::Snapshot),
        _ => Err(format!("{name} is not a Raft RPC")),
    }
}

/// The reply to an RPC: its result, encoded as BSON.
pub fn payload_reply<T: Serialize>(value: &T) -> Result<Document, String> {
    let bytes = bson::to_vec(value).map_err(bson_error)?;
    Ok(
        doc! {"payload": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes })},
    )
}

fn reply_payload<T: DeserializeOwned>(doc: &Document) -> WireResult<T> {
    match doc.get("payload") {
        Some(Bson::Binary(b)) => bson::from_slice(&b.bytes).map_err(|e| e.to_string()),
        _ => Err("missing payload".into()),
    }
}

fn network_error<E: std::error::Error>(e: String) -> RPCError<u64, BasicNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(e)))
}

impl NetworkConnection {
    async fn call<Resp, E>(
        &self,
        name: &str,
        encoded: WireResult<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Resp, RPCError<u64, BasicNode, E>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let message = rpc_message(
            name,
            self.target,
            &self.settings,
            &encoded.map_err(network_error)?,
        );
        let reply = self
            .transport
            .run_message(&self.host, message, timeout)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let result: Result<Resp, E> = reply_payload(&reply).map_err(network_error)?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for NetworkConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let (encoded, sent) = match encode_append(&rpc) {
            Ok(done) => done,
            Err(e) => return Err(network_error(e)),
        };
        let response = self
            .call(APPEND_COMMAND, Ok(encoded), option.hard_ttl())
            .await?;
        // A batch too large for one message went in part: say how far the follower got,
        // and openraft sends the rest next.
        Ok(match response {
            AppendEntriesResponse::Success if sent < rpc.entries.len() => {
                AppendEntriesResponse::PartialSuccess(Some(rpc.entries[sent - 1].log_id))
            }
            other => other,
        })
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(SNAPSHOT_COMMAND, encode_snapshot(&rpc), option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let encoded = bson::to_vec(&rpc).map_err(bson_error);
        self.call(VOTE_COMMAND, encoded, option.hard_ttl()).await
    }
}

/// openraft's settings from the replica-set settings: the heartbeat interval as is, and
/// the election timer at half of electionTimeoutMillis, randomized over [t, 1.15 t] as
/// mongod randomizes its own. Half, because an openraft follower refuses votes while the
/// old leader's lease lasts (the timer's maximum since it last heard from it): the first
/// candidacy after a primary dies falls inside that lease, and the second, at about
/// electionTimeoutMillis, is the one that wins. With the whole timeout on the timer a
/// failover took about twice electionTimeoutMillis.
pub fn raft_config(settings: &RaftSettings, electable: bool) -> Arc<openraft::Config> {
    let hb = settings.heartbeat_interval_millis.max(1) as u64;
    let et = (settings.election_timeout_millis as u64 / 2).max(hb + 1);
    let config = openraft::Config {
        cluster_name: settings.set_name.clone(),
        heartbeat_interval: hb,
        election_timeout_min: et,
        election_timeout_max: et + (et * 15 / 100).max(1),
        enable_elect: electable,
        install_snapshot_timeout: et.max(1000),
        // The state machine is rebuilt from the log on restart, so the log is kept whole.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        ..Default::default()
    };
    Arc::new(
        config
            .validate()
            .expect("checked by the replica-set config parser"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Collection;
    use openraft::{CommittedLeaderId, Membership};

    fn log_id(index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(3, 1), index)
    }

    /// A catalog entry holding a user document of about `bytes` bytes.
    fn big_entry(index: u64, bytes: usize) -> Entry<TypeConfig> {
        let doc = doc! {"_id": "admin.u", "customData": {"b": bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic, bytes: vec![7; bytes] }}};
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Normal(ReplEntry {
                time_hint: 1 << 40,
                op: ReplOp::Catalog(vec![Write::Upsert {
                    collection: Collection::Users,
                    id: "admin.u".into(),
                    doc,
                }]),
            }),
        }
    }

    #[test]
    fn an_older_builds_single_file_is_moved_into_the_log_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = StoreInner {
            vote: Some(Vote::new(4, 2)),
            committed: Some(log_id(2)),
            ..StoreInner::default()
        };
        for index in 1..=3 {
            old.log.insert(index, big_entry(index, 10));
        }
        std::fs::write(
            dir.path().join(LEGACY_FILE),
            serde_json::to_vec(&old).unwrap(),
        )
        .unwrap();
        for _ in 0..2 {
            let (store, _) = Store::open(Some(dir.path()), Arc::new(LogicalClock::new())).unwrap();
            let inner = store.inner.lock();
            assert_eq!(inner.vote, old.vote);
            assert_eq!(inner.committed, old.committed);
            assert_eq!(inner.log, old.log);
            assert!(!dir.path().join(LEGACY_FILE).exists());
        }
    }

    fn append(entries: Vec<Entry<TypeConfig>>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id(1)),
            leader_commit: Some(log_id(1)),
            entries,
        }
    }

    #[test]
    fn every_payload_kind_survives_the_wire() {
        let nodes: BTreeMap<u64, BasicNode> =
            [(1, BasicNode::new("a:1")), (2, BasicNode::new("b:2"))].into();
        let membership = Membership::new(vec![[1, 2].into()], nodes);
        let rpc = append(vec![
            Entry {
                log_id: log_id(2),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(3),
                payload: EntryPayload::Membership(membership.clone()),
            },
            big_entry(4, 100),
        ]);
        let (bytes, sent) = encode_append(&rpc).unwrap();
        assert_eq!(sent, 3);
        let back = decode_append(&bytes).unwrap();
        assert_eq!(back.entries, rpc.entries);
        assert_eq!(back.vote, rpc.vote);
        assert_eq!(back.prev_log_id, rpc.prev_log_id);

        let snapshot = InstallSnapshotRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(3)),
                last_membership: StoredMembership::new(Some(log_id(3)), membership),
                snapshot_id: "3-1".into(),
            },
            offset: 0,
            data: vec![1, 2, 3],
            done: true,
        };
        let back = decode_snapshot(&encode_snapshot(&snapshot).unwrap()).unwrap();
        assert_eq!(back.meta, snapshot.meta);
        assert_eq!(back.data, snapshot.data);

        let reply: Result<VoteResponse<u64>, RaftError<u64>> = Ok(VoteResponse {
            vote: Vote::new(4, 2),
            vote_granted: true,
            last_log_id: Some(log_id(9)),
        });
        let doc = payload_reply(&reply).unwrap();
        let back: Result<VoteResponse<u64>, RaftError<u64>> = reply_payload(&doc).unwrap();
        assert_eq!(back, reply);
    }

    #[test]
    fn a_batch_larger_than_a_message_is_sent_in_part() {
        // Five 15 MB entries: three would exceed 48,000,000 bytes.
        let rpc = append((2..7).map(|i| big_entry(i, 15_000_000)).collect());
        let (bytes, sent) = encode_append(&rpc).unwrap();
        assert_eq!(sent, 3);
        let message = rpc_message(APPEND_COMMAND, 2, &settings(), &bytes);
        let mut wire = Vec::new();
        let msg = crate::wire::Message {
            request_id: 1,
            response_to: 0,
            compressor: None,
            body: crate::wire::Body::Msg(message),
        };
        crate::wire::codec::encode_message(&msg, &mut wire);
        assert!(
            wire.len() <= crate::wire::MAX_MESSAGE_SIZE,
            "{}",
            wire.len()
        );
        let crate::wire::Body::Msg(message) = msg.body else {
            unreachable!()
        };
        let cmd = message.into_command();
        let IncomingRpc::Append(back) = incoming_rpc(APPEND_COMMAND, &cmd).unwrap() else {
            panic!("not an append");
        };
        assert_eq!(back.entries, rpc.entries[..3]);
    }

    #[test]
    fn an_entry_over_the_internal_object_limit_is_measured_as_such() {
        let Entry {
            payload: EntryPayload::Normal(small),
            ..
        } = big_entry(2, 1000)
        else {
            unreachable!()
        };
        assert!(entry_size(&small) < 2000);
        let Entry {
            payload: EntryPayload::Normal(big),
            ..
        } = big_entry(2, MAX_ENTRY_SIZE)
        else {
            unreachable!()
        };
        assert!(entry_size(&big) > MAX_ENTRY_SIZE);
    }

    fn settings() -> RaftSettings {
        RaftSettings {
            set_name: "rs0".into(),
            heartbeat_interval_millis: 200,
            election_timeout_millis: 1000,
        }
    }
}
