//! How far each follower has APPLIED the log, as the primary learns it: the follower
//! adds its last applied index to every AppendEntries reply (mongod's secondaries report
//! their appliedOpTime to their sync source with replSetUpdatePosition). A write concern
//! of `w: n` or `"majority"` counts these, not openraft's matched index (which is only
//! "in the follower's log"), so an acknowledged write is visible on the members counted.

use super::raft::Raft;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;

/// The field of an AppendEntries reply that carries the follower's last applied index.
pub const APPLIED_FIELD: &str = "appliedIndex";

/// How long a follower holds its AppendEntries reply for the entries the leader has said
/// are committed to be applied; past it, the reply goes with what is applied (the next
/// RPC reports the rest).
const APPLY_WAIT: Duration = Duration::from_millis(500);

/// The primary's view of its followers' applied indexes, by Raft node id.
#[derive(Default)]
pub struct AppliedPositions {
    applied: Mutex<HashMap<u64, u64>>,
    changed: watch::Sender<u64>,
}

impl AppliedPositions {
    /// Records that `node` has applied the log up to `index` (replies may arrive out of
    /// order: the highest wins).
    pub fn record(&self, node: u64, index: u64) {
        let mut applied = self.applied.lock();
        let entry = applied.entry(node).or_insert(0);
        if index > *entry {
            *entry = index;
            drop(applied);
            self.changed.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// How many of `nodes` have applied the log up to `index`.
    pub fn count_applied<'a>(&self, nodes: impl Iterator<Item = &'a u64>, index: u64) -> usize {
        let applied = self.applied.lock();
        nodes
            .filter(|id| applied.get(id).is_some_and(|a| *a >= index))
            .count()
    }

    /// Changes whenever a follower reports progress.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// On a follower, after an AppendEntries that ended at `last_sent` with the leader's
/// commit index `commit`: waits (briefly) until what is both sent and committed is
/// applied here, and returns this member's last applied index.
pub async fn applied_after_append(raft: &Raft, commit: Option<u64>, last_sent: Option<u64>) -> u64 {
    if let (Some(commit), Some(sent)) = (commit, last_sent) {
        let want = commit.min(sent);
        // A timeout only means the reply reports less; the leader learns more later.
        let _ = raft
            .wait(Some(APPLY_WAIT))
            .applied_index_at_least(Some(want), "applied for the leader")
            .await;
    }
    let applied = raft.metrics().borrow().last_applied;
    applied.map(|l| l.index).unwrap_or(0)
}

impl super::ReplCoordinator {
    /// How many members `w: "majority"` needs: a majority of the voting members, as
    /// mongod's writeMajorityCount (1 without a config).
    pub fn write_majority(&self) -> usize {
        let voters = self
            .config()
            .map(|c| c.members.iter().filter(|m| m.votes > 0).count())
            .unwrap_or(0);
        voters / 2 + 1
    }
}
