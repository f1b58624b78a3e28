//! The document counters of serverStatus, in one place: `opcounters` (what clients
//! asked for), `opcountersRepl` (what this member applied from the log for others),
//! `metrics.document`, `metrics.queryExecutor` and `metrics.cursor.timedOut`, and each
//! operation's `docsExamined`/`nreturned`/`planSummary` for the slow-query log.
//!
//! Process-wide, as mongod's are: one server per process.

use crate::storage::DocWrite;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

#[derive(Default)]
struct Counters {
    insert: AtomicU64,
    query: AtomicU64,
    update: AtomicU64,
    delete: AtomicU64,
    getmore: AtomicU64,
    /// Commands counted in the ops above instead of in `command` (find, getMore,
    /// insert, update, delete), as mongod's shouldAffectCommandCounter says.
    not_commands: AtomicU64,
    /// Document writes applied from the log, and those this member proposed itself.
    applied: [AtomicU64; 4],
    own: [AtomicU64; 4],
    deleted: AtomicU64,
    inserted: AtomicU64,
    returned: AtomicU64,
    updated: AtomicU64,
    scanned_objects: AtomicU64,
    cursors_timed_out: AtomicU64,
}

static COUNTERS: LazyLock<Counters> = LazyLock::new(Counters::default);

/// Per operation (by opid): documents examined, and the plan, while it runs.
static PER_OP: LazyLock<Mutex<HashMap<u64, OpStats>>> = LazyLock::new(Default::default);
/// How many entries `PER_OP` holds: every command ends with [`take`], and most recorded
/// nothing, so it can skip the shared lock.
static PER_OP_ENTRIES: AtomicU64 = AtomicU64::new(0);

/// The stats of `opid`, created (and counted) on first use.
fn op_stats(per_op: &mut HashMap<u64, OpStats>, opid: u64) -> &mut OpStats {
    per_op.entry(opid).or_insert_with(|| {
        PER_OP_ENTRIES.fetch_add(1, Ordering::Relaxed);
        OpStats::default()
    })
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> i64 {
    c.load(Ordering::Relaxed) as i64
}

/// What the slow-query log reports of one operation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpStats {
    pub docs_examined: u64,
    pub nreturned: Option<u64>,
    /// COLLSCAN, IDHACK.
    pub plan: Option<&'static str>,
}

/// The client operations, as opcounters counts them.
pub enum Op {
    /// An insert command of `n` documents.
    Insert(u64),
    /// A find command.
    Query,
    /// Update statements.
    Update(u64),
    /// Delete statements.
    Delete(u64),
    GetMore,
    /// findAndModify: a command that also counts as an update or a delete.
    FindAndModify {
        remove: bool,
    },
}

pub fn count(op: Op) {
    let c = &*COUNTERS;
    match op {
        Op::Insert(n) => {
            add(&c.insert, n);
            add(&c.not_commands, 1);
        }
        Op::Query => {
            add(&c.query, 1);
            add(&c.not_commands, 1);
        }
        Op::Update(n) => {
            add(&c.update, n);
            add(&c.not_commands, 1);
        }
        Op::Delete(n) => {
            add(&c.delete, n);
            add(&c.not_commands, 1);
        }
        Op::GetMore => {
            add(&c.getmore, 1);
            add(&c.not_commands, 1);
        }
        Op::FindAndModify { remove: true } => add(&c.delete, 1),
        Op::FindAndModify { remove: false } => add(&c.update, 1),
    }
}

/// insert, update (and replace), delete, and the commands (create, drop) of a batch.
pub fn tally(writes: &[DocWrite]) -> [u64; 4] {
    let mut t = [0u64; 4];
    for w in writes {
        let i = match w {
            DocWrite::Insert { .. } => 0,
            DocWrite::Put { .. } => 1,
            DocWrite::Delete { .. } => 2,
            _ => 3,
        };
        t[i] += 1;
    }
    t
}

/// A batch applied from the log (on every member, the primary included).
pub fn applied(writes: &[DocWrite]) {
    for (c, n) in COUNTERS.applied.iter().zip(tally(writes)) {
        add(c, n);
    }
}

/// A batch ([`tally`]) this member committed as primary: not in `opcountersRepl`.
pub fn proposed(tally: [u64; 4]) {
    for (c, n) in COUNTERS.own.iter().zip(tally) {
        add(c, n);
    }
}

/// Documents a write command changed (`metrics.document`), where the write was made.
pub fn documents_written(inserted: u64, updated: u64, deleted: u64) {
    let c = &*COUNTERS;
    add(&c.inserted, inserted);
    add(&c.updated, updated);
    add(&c.deleted, deleted);
}

/// An insert command: `n` documents inserted, `failed` refused (mongod counts each
/// document it tries in `opcounters.insert`).
pub fn insert_done(n: u64, failed: u64) {
    count(Op::Insert(n + failed));
    documents_written(n, 0, 0);
}

/// An update command of `statements` statements (each counted, as mongod's
/// performUpdates counts them), `upserted` of them inserting and `modified` documents
/// changed.
pub fn update_done(statements: usize, upserted: usize, modified: u64) {
    count(Op::Update(statements as u64));
    documents_written(upserted as u64, modified, 0);
}

/// A delete command of `statements` statements that removed `n` documents.
pub fn delete_done(statements: usize, n: u64) {
    count(Op::Delete(statements as u64));
    documents_written(0, 0, n);
}

/// findAndModify, from its `lastErrorObject`.
pub fn find_and_modify_done(remove: bool, last_error: &bson::Document) {
    count(Op::FindAndModify { remove });
    let n = last_error.get_i32("n").unwrap_or(0).max(0) as u64;
    if remove {
        documents_written(0, 0, n);
    } else if last_error.contains_key("upserted") {
        documents_written(1, 0, 0);
    } else if last_error.get_bool("updatedExisting") == Ok(true) {
        documents_written(0, 1, 0);
    }
}

/// A find command (operation `opid`) that returned `n` documents in its first batch.
pub fn find_done(opid: u32, n: usize) {
    count(Op::Query);
    returned(opid as u64, n as u64);
}

/// A getMore that returned `n` documents.
pub fn get_more_done(opid: u32, n: usize) {
    count(Op::GetMore);
    returned(opid as u64, n as u64);
}

/// `n` documents examined by operation `opid` (a scan's or a point lookup's).
pub fn examined(opid: u32, n: u64, plan: &'static str) {
    add(&COUNTERS.scanned_objects, n);
    let mut per_op = PER_OP.lock();
    let s = op_stats(&mut per_op, opid as u64);
    s.docs_examined += n;
    s.plan = Some(plan);
}

/// `n` documents returned to the client by operation `opid`.
pub fn returned(opid: u64, n: u64) {
    add(&COUNTERS.returned, n);
    let mut per_op = PER_OP.lock();
    *op_stats(&mut per_op, opid).nreturned.get_or_insert(0) += n;
}

/// What operation `opid` recorded, forgotten as it is taken (when the operation ends).
pub fn take(opid: u32) -> Option<OpStats> {
    if PER_OP_ENTRIES.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let taken = PER_OP.lock().remove(&(opid as u64));
    if taken.is_some() {
        PER_OP_ENTRIES.fetch_sub(1, Ordering::Relaxed);
    }
    taken
}

pub fn cursors_timed_out(n: u64) {
    add(&COUNTERS.cursors_timed_out, n);
}

/// `opcounters` without `query`'s OP_QUERY part and `command` (the caller has those):
/// (insert, query, update, delete, getmore, commands to leave out of `command`).
pub fn opcounters() -> [i64; 6] {
    let c = &*COUNTERS;
    [
        get(&c.insert),
        get(&c.query),
        get(&c.update),
        get(&c.delete),
        get(&c.getmore),
        get(&c.not_commands),
    ]
}

/// `opcountersRepl`: (insert, update, delete, command) applied for another primary.
pub fn opcounters_repl() -> [i64; 4] {
    let c = &*COUNTERS;
    let mut out = [0i64; 4];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (get(&c.applied[i]) - get(&c.own[i])).max(0);
    }
    out
}

/// `metrics.document`: (deleted, inserted, returned, updated).
pub fn documents() -> [i64; 4] {
    let c = &*COUNTERS;
    [
        get(&c.deleted),
        get(&c.inserted),
        get(&c.returned),
        get(&c.updated),
    ]
}

/// (`metrics.queryExecutor.scannedObjects`, `metrics.cursor.timedOut`).
pub fn executor() -> (i64, i64) {
    let c = &*COUNTERS;
    (get(&c.scanned_objects), get(&c.cursors_timed_out))
}
