//! The write path: proposing catalog writes and no-ops through Raft, the primary's
//! housekeeping writes, and waiting for a write to reach enough members.

use super::*;

impl ReplCoordinator {
    /// Proposes `op` on the primary and returns once a majority has it and it is applied
    /// here (what openraft's client_write waits for).
    /// Returns what applying it gave and its log index.
    pub async fn propose(
        &self,
        server: &dyn ReplHost,
        op: ReplOp,
    ) -> CommandResult<(ApplyOutcome, u64)> {
        self.check_writable_primary(server)?;
        let raft = self
            .raft()
            .ok_or_else(|| not_writable_primary("not primary"))?;
        self.write_entry(&raft, op).await
    }

    /// `op` as a log entry. Its time hint is this node's wall clock, or just after the
    /// latest cluster time it has seen, whichever is later, so that a write's
    /// operationTime follows every time its client has been given.
    pub(super) fn entry(&self, op: ReplOp) -> ReplEntry {
        ReplEntry {
            time_hint: crate::clock::pack(self.store.clock.next()),
            op,
        }
    }

    /// Appends `op` through Raft. An entry too large to ever reach a follower is refused
    /// here, before it is in the log.
    pub(super) async fn write_entry(
        &self,
        raft: &Raft,
        op: ReplOp,
    ) -> CommandResult<(ApplyOutcome, u64)> {
        let entry = self.entry(op);
        let size = raft::entry_size(&entry);
        if size > raft::MAX_ENTRY_SIZE {
            return Err(entry_too_large(size));
        }
        match raft.client_write(entry).await {
            Ok(response) => Ok((response.data, response.log_id.index)),
            Err(e) => Err(raft_error(e)),
        }
    }

    /// The primary's housekeeping writes: a no-op when the cluster time has stood still
    /// for periodicNoopIntervalSecs (mongod's periodic no-op writer, which keeps the
    /// cluster time, and so key expiry, moving), and, with a keyFile, two unexpired keys
    /// for signing `$clusterTime` (mongod's key generator).
    pub(super) async fn primary_housekeeping(self: Arc<Self>, server: Arc<dyn ReplHost>) {
        let rotation = server
            .params()
            .get_i64(crate::params::KEYS_ROTATION_INTERVAL_SEC)
            .clamp(1, u32::MAX as i64) as u32;
        let noop_every = server
            .params()
            .get_i64(crate::params::PERIODIC_NOOP_INTERVAL_SECS)
            .max(1) as u32;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = server.shutdown().cancelled() => return,
            }
            if self.my_state(&server) != MemberState::Primary {
                continue;
            }
            let idle = crate::clock::wall_seconds().saturating_sub(server.clock().now().time);
            if idle >= noop_every {
                let _ = self.propose(&server, ReplOp::Noop).await;
            }
            let Some(keys) = server.clock().keys() else {
                continue;
            };
            let Some(write) = keys.next_key(server.clock().now(), rotation) else {
                continue;
            };
            match self.propose(&server, ReplOp::Catalog(vec![write])).await {
                Ok(_) => {
                    tracing::info!(target: "REPL", id = 7_000_010, ctx = "monitoring-keys-for-HMAC",
                        "Generated a new key for signing cluster time")
                }
                Err(e) => {
                    tracing::info!(target: "REPL", id = 7_000_011, ctx = "monitoring-keys-for-HMAC",
                        error = %e.message, "Could not store a new key for signing cluster time")
                }
            }
        }
    }

    /// Waits until `members` members (this one included) have APPLIED the log up to
    /// `index`, as mongod's `w: n` means: this one has when the write returns, the others
    /// say so in their AppendEntries replies (`positions`). Ends with PrimarySteppedDown
    /// as soon as this node stops being primary (a stepdown, a lost majority, a new term),
    /// as mongod fails its replication waiters.
    pub async fn wait_replicated(
        &self,
        server: &dyn ReplHost,
        index: u64,
        members: usize,
    ) -> CommandResult<()> {
        let raft = self
            .raft()
            .ok_or_else(|| not_writable_primary("not primary"))?;
        let others = members.saturating_sub(1);
        let mut metrics = raft.metrics();
        let mut topology = self.topology_counter.subscribe();
        let mut applied = self.positions.subscribe();
        let term = metrics.borrow().current_term;
        loop {
            {
                // Cloned, not held: my_state borrows the same watch again, and a second
                // read lock queued behind openraft's pending write deadlocks both.
                let m = metrics.borrow_and_update().clone();
                applied.borrow_and_update();
                if m.current_term != term || self.my_state(server) != MemberState::Primary {
                    return Err(primary_stepped_down());
                }
                // The followers of the current membership (openraft's replication map).
                let acknowledged = m.replication.as_ref().is_some_and(|r| {
                    let followers = r.keys().filter(|id| **id != m.id);
                    self.positions.count_applied(followers, index) >= others
                });
                if acknowledged {
                    return Ok(());
                }
            }
            tokio::select! {
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return Err(primary_stepped_down());
                    }
                }
                _ = applied.changed() => {}
                _ = topology.changed() => {}
            }
        }
    }
}
