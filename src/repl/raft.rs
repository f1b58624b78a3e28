//! The openraft adapter: the type config, the entries, the [`Store`] that opens the log
//! store ([`super::log_store`]) and the state machine ([`super::state_machine`]) Raft
//! runs on, and Raft's settings. The RPCs travel as in [`super::network`].

use super::config::ReplSetConfig;
use super::log_store::LogStore;
use super::state_machine::StateMachine;
use crate::catalog::{Catalog, CatalogError, Write};
use crate::clock::LogicalClock;
use openraft::{BasicNode, Entry, EntryPayload, LogId, Vote};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

pub use super::codec::entry_size;
pub use super::network::*;
pub use super::state_machine::Applied;

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
    /// Document writes (the resulting images), applied atomically on every member.
    Documents(Vec<crate::storage::DocWrite>),
}

impl std::fmt::Display for ReplEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.op {
            ReplOp::SetConfig(c) => write!(f, "SetConfig(version {})", c.version),
            ReplOp::Catalog(w) => write!(f, "Catalog({} writes)", w.len()),
            ReplOp::Noop => write!(f, "Noop"),
            ReplOp::Documents(w) => write!(f, "Documents({} writes)", w.len()),
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

/// The Raft log store and state machine of this node.
pub struct Store {
    log: LogStore,
    machine: StateMachine,
    /// The node's clock: moved forward to each applied entry's time, and entries are
    /// proposed no earlier than it.
    pub(super) clock: Arc<LogicalClock>,
}

impl Store {
    /// Opens the store under `dbpath` (None: in memory only).
    pub fn open(
        dbpath: Option<&Path>,
        clock: Arc<LogicalClock>,
    ) -> std::io::Result<(Arc<Store>, watch::Receiver<Applied>)> {
        let log = LogStore::open(dbpath)?;
        let (machine, applied) = StateMachine::new(clock.clone());
        Ok((
            Arc::new(Store {
                log,
                machine,
                clock,
            }),
            applied,
        ))
    }

    /// What `Raft::new` runs on; every Raft this node starts shares them.
    pub fn raft_parts(&self) -> (LogStore, StateMachine) {
        (self.log.clone(), self.machine.clone())
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
        let term = self.log.vote().map(|v| v.leader_id().term).unwrap_or(0) + 1;
        let last = self.log.last_log_id().map_or(0, |l| l.index);
        let leader = openraft::CommittedLeaderId::new(term, node_id);
        let membership = openraft::Membership::new(vec![voters], nodes);
        let entries = vec![
            Entry {
                log_id: LogId::new(leader, last + 1),
                payload: EntryPayload::Membership(membership),
            },
            Entry {
                log_id: LogId::new(leader, last + 2),
                payload: EntryPayload::Normal(entry),
            },
        ];
        self.log.append_blocking(entries, Vote::new(term, node_id))
    }

    /// What the oplog view reads: the log, and the catalog once it is open.
    pub(super) fn oplog_parts(&self) -> (LogStore, Option<Arc<dyn Catalog>>) {
        (self.log.clone(), self.machine.catalog())
    }

    /// Makes `catalog` the state machine and loads what it records as applied.
    pub fn attach_catalog(&self, catalog: Arc<dyn Catalog>) -> Result<(), CatalogError> {
        self.machine.attach_catalog(catalog)
    }

    /// Whether a vote or log survived from an earlier run.
    pub fn has_state(&self) -> bool {
        self.log.has_state()
    }
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

/// Entries between two snapshots (`replLogEntriesPerSnapshot`). A snapshot copies the
/// whole replicated catalog, so it costs in proportion to the catalog; every 10,000
/// entries keeps that cost per write small (a tenth of a document read and written per
/// write) and the log bounded, at about 11,000 entries.
static ENTRIES_PER_SNAPSHOT: AtomicU64 = AtomicU64::new(10_000);

/// `replLogEntriesPerSnapshot`.
pub fn entries_per_snapshot() -> u64 {
    ENTRIES_PER_SNAPSHOT.load(Ordering::Relaxed).max(1)
}

/// Sets `replLogEntriesPerSnapshot`; Raft takes it when it starts.
pub fn set_entries_per_snapshot(entries: u64) {
    ENTRIES_PER_SNAPSHOT.store(entries, Ordering::Relaxed);
}

/// At most this many entries in one AppendEntries. A new leader does not know how much of
/// its log a follower holds and probes from the middle of the log with a full batch, so
/// every election made each member read, clone, encode and decode a batch per follower at
/// once: with openraft's default of 300 entries, peaks of several MiB that the allocator
/// then kept, and resident memory grew with each stepdown. 64 keeps those peaks small; a
/// follower far behind catches up by snapshot, one a little behind in a few more round
/// trips.
pub const MAX_PAYLOAD_ENTRIES: u64 = 64;

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
    let per_snapshot = ENTRIES_PER_SNAPSHOT.load(Ordering::Relaxed).max(1);
    let config = openraft::Config {
        cluster_name: settings.set_name.clone(),
        heartbeat_interval: hb,
        election_timeout_min: et,
        election_timeout_max: et + (et * 15 / 100).max(1),
        enable_elect: electable,
        install_snapshot_timeout: et.max(1000),
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(per_snapshot),
        // A tenth of the interval stays behind a snapshot, for followers a little behind;
        // the log holds at most about 1.1 times the interval.
        max_in_snapshot_log_to_keep: per_snapshot / 10,
        max_payload_entries: MAX_PAYLOAD_ENTRIES,
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

    #[test]
    fn an_append_entries_carries_a_small_batch() {
        let settings = RaftSettings {
            set_name: "rs".into(),
            heartbeat_interval_millis: 200,
            election_timeout_millis: 1000,
        };
        // openraft's default is 300: a new leader's first probe to each follower.
        let batch = raft_config(&settings, true).max_payload_entries;
        assert!(batch <= 64, "{batch} entries per AppendEntries");
    }
}
