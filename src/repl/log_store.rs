//! The Raft log store (openraft's [`RaftLogStorage`]): the vote, the committed id, the
//! last purged id and the log entries, in an embedded redb database beside the catalog.
//!
//! Entries are read from redb when asked for; only the tail of the log (the entries
//! still being written and the last [`TAIL`] written) is also kept in memory, where the
//! leader reads what it replicates. Every change goes to one writer thread in order;
//! the writer commits everything that queued while its previous commit ran in one
//! transaction, so concurrent appends share one fsync (group commit), and tells openraft
//! an append is done only once its transaction is durable. A dbpath holding the single
//! JSON file of an older build is moved over once.

use super::codec;
use super::raft::TypeConfig;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{mpsc, Arc};

/// The file, in the dbpath.
pub const LOG_FILE: &str = "ferrod-repl-log.redb";
/// The single JSON file an older build kept the log, vote and committed id in.
pub const LEGACY_FILE: &str = "ferrod-repl-raft.json";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// How many durable entries the tail cache keeps, beyond those still being written.
const TAIL: usize = 256;

/// redb's page cache for the log file. redb keeps every page it writes in its cache (1 GiB
/// by default), so without a bound each append stayed in memory until the next snapshot
/// and its purge, and the log's pages never left: resident memory grew with every write.
/// The leader reads what it replicates from the tail above, so the cache only serves
/// reads of older entries (a lagging follower, a new leader's first probes), for which a
/// few MiB and the OS's page cache are enough.
pub const LOG_CACHE_BYTES: usize = 4 * 1024 * 1024;

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io_error)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    serde_json::from_slice(bytes).map_err(io_error)
}

fn read_error(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::read_logs(&io_error(e)).into()
}

fn write_error(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::write_logs(&io_error(e)).into()
}

/// One change, applied by the writer in the order it was submitted.
enum Op {
    Put(Entry<TypeConfig>),
    Meta(&'static str, Vec<u8>),
    TruncateFrom(u64),
    PurgeUpto(u64),
}

/// Who waits for a change to be durable.
enum Done {
    Flushed(LogFlushed<TypeConfig>),
    Wait(tokio::sync::oneshot::Sender<io::Result<()>>),
    Blocking(mpsc::SyncSender<io::Result<()>>),
    Nobody,
}

struct Job {
    seq: u64,
    ops: Vec<Op>,
    done: Done,
}

/// What the store holds, in memory: the small records, and the log's tail.
#[derive(Default)]
struct State {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    last_purged: Option<LogId<u64>>,
    /// The last entry in the log (None: the log holds no entry).
    last: Option<LogId<u64>>,
    /// A suffix of the log, each entry with the job that writes it.
    tail: BTreeMap<u64, (Entry<TypeConfig>, u64)>,
    /// The last job submitted, and the last one durable.
    submitted: u64,
    durable: u64,
    /// Transactions committed (each one fsync).
    commits: u64,
}

impl State {
    fn last_log_id(&self) -> Option<LogId<u64>> {
        self.last.or(self.last_purged)
    }

    /// Drops the oldest durable entries past the [`TAIL`] kept.
    fn trim(&mut self) {
        while self.tail.len() > TAIL {
            match self.tail.first_key_value() {
                Some((&index, &(_, seq))) if seq <= self.durable => {
                    self.tail.remove(&index);
                }
                _ => break,
            }
        }
    }
}

/// The log store; clones share it (openraft's log reader is one).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    state: Arc<Mutex<State>>,
    writer: Arc<Writer>,
}

/// The writer thread's queue; when the last clone of the store goes, the writer finishes
/// what is queued and the database is closed before the drop returns.
struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What an older build's JSON file held.
#[derive(Default, Serialize, Deserialize)]
pub struct LegacyFile {
    pub vote: Option<Vote<u64>>,
    pub committed: Option<LogId<u64>>,
    pub log: BTreeMap<u64, Entry<TypeConfig>>,
    pub last_purged: Option<LogId<u64>>,
}

impl LogStore {
    /// Opens (or creates) the store in `dir` (None: in memory only), moving over the
    /// single JSON file an older build kept there.
    pub fn open(dir: Option<&Path>) -> io::Result<LogStore> {
        let db = match dir {
            Some(dir) => Database::builder()
                .set_cache_size(LOG_CACHE_BYTES)
                .create(dir.join(LOG_FILE))
                .map_err(io_error)?,
            None => Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(io_error)?,
        };
        let db = Arc::new(db);
        if let Some(dir) = dir {
            let legacy = dir.join(LEGACY_FILE);
            if legacy.exists() {
                let old: LegacyFile = decode(&std::fs::read(&legacy)?)?;
                replace_all(&db, &old)?;
                std::fs::remove_file(&legacy)?;
            }
        }
        let state = Arc::new(Mutex::new(load(&db)?));
        let (tx, jobs) = mpsc::channel();
        let (w_db, w_state) = (db.clone(), state.clone());
        let thread = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || run_writer(&w_db, &w_state, jobs))?;
        let writer = Arc::new(Writer {
            jobs: Some(tx),
            thread: Some(thread),
        });
        Ok(LogStore { db, state, writer })
    }

    /// Whether a vote or log survived from an earlier run.
    pub fn has_state(&self) -> bool {
        let state = self.state.lock();
        state.vote.is_some() || state.last_log_id().is_some()
    }

    pub fn vote(&self) -> Option<Vote<u64>> {
        self.state.lock().vote
    }

    pub fn last_log_id(&self) -> Option<LogId<u64>> {
        self.state.lock().last_log_id()
    }

    /// Queues `ops`, as one job, for the writer.
    fn submit(&self, state: &mut State, ops: Vec<Op>, done: Done) -> io::Result<()> {
        state.submitted += 1;
        let job = Job {
            seq: state.submitted,
            ops,
            done,
        };
        self.writer
            .jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| io::Error::other("the Raft log writer stopped"))
    }

    /// Queues `ops` and waits until they are durable.
    async fn submit_and_wait(&self, ops: Vec<Op>) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(&mut self.state.lock(), ops, Done::Wait(tx))?;
        rx.await
            .map_err(|_| io::Error::other("the Raft log writer stopped"))?
    }

    fn put_in_tail(state: &mut State, entries: Vec<Entry<TypeConfig>>, seq: u64) {
        for entry in entries {
            state.last = Some(entry.log_id);
            state.tail.insert(entry.log_id.index, (entry, seq));
        }
    }

    /// Appends `entries` and saves `vote` durably, waiting (the forced reconfig, with
    /// Raft stopped).
    pub fn append_blocking(
        &self,
        entries: Vec<Entry<TypeConfig>>,
        vote: Vote<u64>,
    ) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut state = self.state.lock();
            let mut ops: Vec<Op> = entries.iter().cloned().map(Op::Put).collect();
            ops.push(Op::Meta(VOTE, encode(&vote)?));
            self.submit(&mut state, ops, Done::Blocking(tx))?;
            let seq = state.submitted;
            Self::put_in_tail(&mut state, entries, seq);
        }
        crate::blocking::in_place(|| rx.recv())
            .map_err(|_| io::Error::other("the Raft log writer stopped"))??;
        self.state.lock().vote = Some(vote);
        Ok(())
    }

    /// Entries in `start..end` read from redb.
    fn read_stored(&self, start: u64, end: Bound<u64>) -> io::Result<Vec<Entry<TypeConfig>>> {
        crate::blocking::in_place(|| {
            let txn = self.db.begin_read().map_err(io_error)?;
            let log = match txn.open_table(LOG) {
                Ok(log) => log,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(io_error(e)),
            };
            let mut out = Vec::new();
            for item in log
                .range::<u64>((Bound::Included(start), end))
                .map_err(io_error)?
            {
                let (_, bytes) = item.map_err(io_error)?;
                out.push(codec::decode_stored(bytes.value()).map_err(io_error)?);
            }
            Ok(out)
        })
    }

    /// The id of the entry at `index`, from the tail or from redb.
    fn log_id_at(&self, index: u64) -> io::Result<Option<LogId<u64>>> {
        if let Some((entry, _)) = self.state.lock().tail.get(&index) {
            return Ok(Some(entry.log_id));
        }
        let stored = self.read_stored(index, Bound::Included(index))?;
        Ok(stored.first().map(|e| e.log_id))
    }
}

/// Reads the small records and the last entry's id.
fn load(db: &Database) -> io::Result<State> {
    let txn = db.begin_read().map_err(io_error)?;
    let mut state = State::default();
    match txn.open_table(META) {
        Ok(meta) => {
            let get = |key: &str| -> io::Result<Option<Vec<u8>>> {
                Ok(meta.get(key).map_err(io_error)?.map(|v| v.value().to_vec()))
            };
            state.vote = get(VOTE)?.map(|b| decode(&b)).transpose()?;
            state.committed = get(COMMITTED)?.map(|b| decode(&b)).transpose()?.flatten();
            state.last_purged = get(LAST_PURGED)?.map(|b| decode(&b)).transpose()?;
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(io_error(e)),
    }
    match txn.open_table(LOG) {
        Ok(log) => {
            if let Some((_, bytes)) = log.last().map_err(io_error)? {
                state.last = Some(
                    codec::decode_stored(bytes.value())
                        .map_err(io_error)?
                        .log_id,
                );
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(io_error(e)),
    }
    Ok(state)
}

/// Writes everything an older build's file held, in one transaction.
fn replace_all(db: &Database, old: &LegacyFile) -> io::Result<()> {
    let txn = db.begin_write().map_err(io_error)?;
    {
        let mut meta = txn.open_table(META).map_err(io_error)?;
        let mut log = txn.open_table(LOG).map_err(io_error)?;
        log.retain(|_, _| false).map_err(io_error)?;
        for (index, entry) in &old.log {
            let bytes = codec::encode_stored(entry).map_err(io_error)?;
            log.insert(*index, bytes.as_slice()).map_err(io_error)?;
        }
        let records = [
            (VOTE, old.vote.as_ref().map(encode).transpose()?),
            (COMMITTED, Some(encode(&old.committed)?)),
            (
                LAST_PURGED,
                old.last_purged.as_ref().map(encode).transpose()?,
            ),
        ];
        for (key, value) in records {
            if let Some(value) = value {
                meta.insert(key, value.as_slice()).map_err(io_error)?;
            }
        }
    }
    txn.commit().map_err(io_error)
}

/// The writer: takes every job queued while it was committing, commits them in one
/// transaction, then tells whoever waits.
fn run_writer(db: &Database, state: &Mutex<State>, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter());
        let result = commit(db, &batch).map_err(|e| e.to_string());
        if result.is_ok() {
            let mut state = state.lock();
            state.durable = batch.last().map_or(state.durable, |j| j.seq);
            state.commits += 1;
            state.trim();
        }
        for job in batch {
            let result = result.clone().map_err(io::Error::other);
            match job.done {
                Done::Flushed(callback) => callback.log_io_completed(result),
                Done::Wait(tx) => drop(tx.send(result)),
                Done::Blocking(tx) => drop(tx.send(result)),
                Done::Nobody => {}
            }
        }
    }
}

fn commit(db: &Database, batch: &[Job]) -> io::Result<()> {
    let txn = db.begin_write().map_err(io_error)?;
    {
        let mut meta = txn.open_table(META).map_err(io_error)?;
        let mut log = txn.open_table(LOG).map_err(io_error)?;
        for op in batch.iter().flat_map(|j| &j.ops) {
            match op {
                Op::Put(entry) => {
                    let bytes = codec::encode_stored(entry).map_err(io_error)?;
                    log.insert(entry.log_id.index, bytes.as_slice())
                        .map_err(io_error)?;
                }
                Op::Meta(key, value) => {
                    meta.insert(*key, value.as_slice()).map_err(io_error)?;
                }
                Op::TruncateFrom(index) => {
                    log.retain_in(*index.., |_, _| false).map_err(io_error)?;
                }
                Op::PurgeUpto(index) => {
                    log.retain_in(..=*index, |_, _| false).map_err(io_error)?;
                }
            }
        }
    }
    txn.commit().map_err(io_error)
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, Bound<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    (start, range.end_bound().cloned())
}

/// Whether `start..end` holds no index.
fn is_empty(start: u64, end: Bound<u64>) -> bool {
    match end {
        Bound::Included(e) => e < start,
        Bound::Excluded(e) => e <= start,
        Bound::Unbounded => false,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let (start, end) = bounds(&range);
        let (cached, stored_end) = {
            let state = self.state.lock();
            let tail_start = state.tail.first_key_value().map(|(&i, _)| i);
            let from = start.max(tail_start.unwrap_or(u64::MAX));
            let cached: Vec<_> = if is_empty(from, end) {
                Vec::new()
            } else {
                state
                    .tail
                    .range((Bound::Included(from), end))
                    .map(|(_, (e, _))| e.clone())
                    .collect()
            };
            let stored_end = match (tail_start, end) {
                (Some(t), Bound::Unbounded) => Bound::Excluded(t),
                (Some(t), Bound::Included(e)) if t <= e => Bound::Excluded(t),
                (Some(t), Bound::Excluded(e)) if t < e => Bound::Excluded(t),
                (_, end) => end,
            };
            (cached, stored_end)
        };
        let mut out = if is_empty(start, stored_end) {
            Vec::new()
        } else {
            self.read_stored(start, stored_end).map_err(read_error)?
        };
        out.extend(cached);
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let state = self.state.lock();
        Ok(LogState {
            last_purged_log_id: state.last_purged,
            last_log_id: state.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let bytes = encode(vote).map_err(write_error)?;
        self.submit_and_wait(vec![Op::Meta(VOTE, bytes)])
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        self.state.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.state.lock().vote)
    }

    /// Not waited for: it goes to disk with the next commit. A committed id lost in a
    /// crash only means re-applying from the state machine's last applied id.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = encode(&committed).map_err(write_error)?;
        let mut state = self.state.lock();
        state.committed = committed;
        self.submit(&mut state, vec![Op::Meta(COMMITTED, bytes)], Done::Nobody)
            .map_err(write_error)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.state.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let mut state = self.state.lock();
        let ops = entries.iter().cloned().map(Op::Put).collect();
        self.submit(&mut state, ops, Done::Flushed(callback))
            .map_err(write_error)?;
        // Readable at once: the leader replicates entries before they are durable here.
        let seq = state.submitted;
        Self::put_in_tail(&mut state, entries, seq);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let index = log_id.index;
        let purged = self.state.lock().last_purged;
        let last = match index.checked_sub(1) {
            Some(prev) if purged.is_none_or(|p| p.index < prev) => {
                self.log_id_at(prev).map_err(read_error)?
            }
            _ => None,
        };
        {
            let mut state = self.state.lock();
            state.tail.split_off(&index);
            state.last = last;
        }
        self.submit_and_wait(vec![Op::TruncateFrom(index)])
            .await
            .map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let bytes = encode(&log_id).map_err(write_error)?;
        {
            let mut state = self.state.lock();
            let keep = state.tail.split_off(&(log_id.index + 1));
            state.tail = keep;
            state.last_purged = Some(log_id);
            if state.last.is_some_and(|l| l.index <= log_id.index) {
                state.last = None;
            }
        }
        self.submit_and_wait(vec![
            Op::PurgeUpto(log_id.index),
            Op::Meta(LAST_PURGED, bytes),
        ])
        .await
        .map_err(write_error)?;
        tracing::info!(target: "REPL", id = 7_000_060, ctx = "ReplCoord",
            upToIndex = log_id.index, "Purged the replication log");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Write;
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

    async fn read_all(store: &mut LogStore) -> Vec<u64> {
        store
            .try_get_log_entries(..)
            .await
            .unwrap()
            .iter()
            .map(|e| e.log_id.index)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_change_survives_a_reopen_and_reads_span_disk_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let n = TAIL as u64 * 3;
        {
            let mut log = LogStore::open(Some(dir.path())).unwrap();
            assert!(!log.has_state());
            log.append_blocking((1..=n).map(entry).collect(), Vote::new(3, 1))
                .unwrap();
            // Most of it is only on disk now; a read across both gives every entry.
            assert!(log.state.lock().tail.len() <= TAIL);
            assert_eq!(read_all(&mut log).await, (1..=n).collect::<Vec<_>>());
            let some = log.try_get_log_entries(5..=7).await.unwrap();
            assert_eq!(some, vec![entry(5), entry(6), entry(7)]);
            log.save_committed(Some(entry(6).log_id)).await.unwrap();
            log.truncate(entry(n - 1).log_id).await.unwrap();
            log.purge(entry(4).log_id).await.unwrap();
            assert_eq!(log.last_log_id(), Some(entry(n - 2).log_id));
        }
        let mut log = LogStore::open(Some(dir.path())).unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(4).log_id));
        assert_eq!(state.last_log_id, Some(entry(n - 2).log_id));
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
        assert_eq!(log.read_committed().await.unwrap(), Some(entry(6).log_id));
        assert_eq!(read_all(&mut log).await, (5..=n - 2).collect::<Vec<_>>());
    }

    #[test]
    fn appends_queued_while_a_commit_runs_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(Some(dir.path())).unwrap();
        {
            // 200 appends arrive while the writer cannot finish its first commit.
            let mut state = log.state.lock();
            for i in 1..=200 {
                log.submit(&mut state, vec![Op::Put(entry(i))], Done::Nobody)
                    .unwrap();
                let seq = state.submitted;
                LogStore::put_in_tail(&mut state, vec![entry(i)], seq);
            }
        }
        log.append_blocking(vec![entry(201)], Vote::new(1, 0))
            .unwrap();
        let commits = log.state.lock().commits;
        assert!(commits <= 3, "{commits} commits for 201 appends");
        drop(log);
        let log = LogStore::open(Some(dir.path())).unwrap();
        let stored = log.read_stored(0, Bound::Unbounded).unwrap();
        assert_eq!(stored, (1..=201).map(entry).collect::<Vec<_>>());
    }

    #[test]
    fn the_page_cache_stays_within_its_bound_as_the_log_grows() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(Some(dir.path())).unwrap();
        // About three times the cache's bound in entries of 4 KiB each.
        let big = |i: u64| {
            let mut e = entry(i);
            e.payload = EntryPayload::Normal(ReplEntry {
                time_hint: i,
                op: ReplOp::Catalog(vec![Write::Delete {
                    collection: crate::catalog::Collection::Users,
                    id: format!("{i}{}", "x".repeat(4096)),
                }]),
            });
            e
        };
        let n = (3 * LOG_CACHE_BYTES / 4096) as u64;
        for start in (1..=n).step_by(64) {
            let batch = (start..(start + 64).min(n + 1)).map(big).collect();
            log.append_blocking(batch, Vote::new(1, 0)).unwrap();
        }
        let used = redb::ReadableDatabase::cache_stats(&*log.db).used_bytes();
        assert!(
            used <= LOG_CACHE_BYTES,
            "redb's cache holds {used} bytes after {n} entries, over {LOG_CACHE_BYTES}"
        );
    }

    #[test]
    fn an_older_builds_single_file_is_moved_into_the_log_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = LegacyFile {
            vote: Some(Vote::new(4, 2)),
            committed: Some(entry(2).log_id),
            ..LegacyFile::default()
        };
        for index in 1..=3 {
            old.log.insert(index, entry(index));
        }
        std::fs::write(
            dir.path().join(LEGACY_FILE),
            serde_json::to_vec(&old).unwrap(),
        )
        .unwrap();
        for _ in 0..2 {
            let log = LogStore::open(Some(dir.path())).unwrap();
            let state = log.state.lock();
            assert_eq!(state.vote, old.vote);
            assert_eq!(state.committed, old.committed);
            assert_eq!(state.last, Some(entry(3).log_id));
            let stored = log.read_stored(0, Bound::Unbounded).unwrap();
            assert_eq!(stored, old.log.values().cloned().collect::<Vec<_>>());
            assert!(!dir.path().join(LEGACY_FILE).exists());
        }
    }

    #[test]
    fn entries_an_older_build_stored_as_json_are_read() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(LOG_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut log = txn.open_table(LOG).unwrap();
                for i in 1..=3 {
                    let json = serde_json::to_vec(&entry(i)).unwrap();
                    log.insert(i, json.as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let log = LogStore::open(Some(dir.path())).unwrap();
        assert_eq!(log.last_log_id(), Some(entry(3).log_id));
        let stored = log.read_stored(1, Bound::Unbounded).unwrap();
        assert_eq!(stored, (1..=3).map(entry).collect::<Vec<_>>());
    }
}
