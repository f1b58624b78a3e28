//! Topology: this member's state, who is primary, whether a majority is in sight, and
//! the watcher that bumps `topologyVersion` and notes elections when any of it changes.

use super::*;

impl ReplCoordinator {
    /// This node's state as mongod names it.
    pub fn my_state(&self, server: &dyn ReplHost) -> MemberState {
        let Some(config) = self.config() else {
            return MemberState::Startup;
        };
        self.state_in(server, &config)
    }

    /// This node's state under `config`.
    pub(super) fn state_in(&self, server: &dyn ReplHost, config: &ReplSetConfig) -> MemberState {
        let Some(me) = self.self_member(server, config) else {
            return MemberState::Removed;
        };
        let Some(raft) = self.raft() else {
            return MemberState::Secondary;
        };
        let metrics = raft.metrics().borrow().clone();
        if metrics.state == RaftRole::Leader
            && metrics.current_leader == Some(me.id)
            && !self.stepping_down.load(Ordering::Acquire)
            && self.sees_a_majority(config, &me, metrics.current_term)
        {
            MemberState::Primary
        } else {
            MemberState::Secondary
        }
    }

    /// Whether a majority of the voters (this leader included) answered a heartbeat
    /// within the election timeout: a primary cut off from the majority stops being
    /// primary, as mongod's steps down, while the others elect a new one. Until one
    /// election timeout after it was elected, every voter counts as seen.
    pub(super) fn sees_a_majority(
        &self,
        config: &ReplSetConfig,
        me: &MemberConfig,
        term: u64,
    ) -> bool {
        let window = Duration::from_millis(config.settings.election_timeout_millis.max(1) as u64);
        let elected_at = {
            let mut since = self.leader_since.lock();
            match *since {
                Some((t, at)) if t == term => at,
                _ => {
                    let now = Instant::now();
                    *since = Some((term, now));
                    now
                }
            }
        };
        let fresh = elected_at.elapsed() < window;
        let health = self.health.lock();
        let voters = config.members.iter().filter(|m| m.is_voter());
        let seen = voters
            .clone()
            .filter(|m| {
                m.id == me.id
                    || fresh
                    || health
                        .get(&m.id)
                        .and_then(|h| h.last_ok)
                        .is_some_and(|t| t.elapsed() < window)
            })
            .count();
        seen > voters.count() / 2
    }

    pub fn primary_host(&self, server: &dyn ReplHost) -> Option<String> {
        let config = self.config()?;
        if self.my_state(server) == MemberState::Primary {
            return self.self_member(server, &config).map(|m| m.host);
        }
        let leader = self.leader_id()?;
        if self
            .self_member(server, &config)
            .is_some_and(|m| m.id == leader)
        {
            return None; // stepping down
        }
        config.member(leader).map(|m| m.host.clone())
    }

    /// The error for a command that needs this node to be a writable primary.
    pub fn check_writable_primary(&self, server: &dyn ReplHost) -> CommandResult<()> {
        match self.my_state(server) {
            MemberState::Primary => Ok(()),
            _ => Err(not_writable_primary("not primary")),
        }
    }

    /// The optime of the last applied entry: `{ts, t}` and its wall time.
    pub fn my_optime(&self) -> (Document, bson::DateTime) {
        let applied = self.applied();
        let wall = bson::DateTime::from_millis(applied.wall_millis);
        match applied.last_applied {
            Some(log_id) => (
                doc! {
                    "ts": crate::clock::unpack(applied.time),
                    "t": log_id.leader_id.term as i64,
                },
                wall,
            ),
            None => (
                doc! {"ts": bson::Timestamp { time: 0, increment: 0 }, "t": -1i64},
                bson::DateTime::from_millis(0),
            ),
        }
    }

    pub(super) fn summary(&self, server: &dyn ReplHost) -> TopologySummary {
        TopologySummary {
            state: self.my_state(server),
            primary: self.primary_host(server),
            config_version: self.config().map(|c| c.version).unwrap_or(0),
            term: self.term(),
        }
    }

    /// Bumps the topology counter on every change of state, primary, config or term, and
    /// keeps elections on or off on this node as config, freeze and stepdown say.
    pub(super) async fn watch_topology(self: Arc<Self>, server: Arc<dyn ReplHost>) {
        let mut tick = tokio::time::interval(Duration::from_millis(25));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = server.shutdown().cancelled() => return,
            }
            self.apply_timing_settings().await;
            self.update_election_switch(&server);
            self.refresh_topology(&server);
        }
    }

    /// Bumps the counter if the topology differs from the last one seen, and returns the
    /// counter. hello calls it too, so the counter it reports always matches its state.
    pub fn refresh_topology(&self, server: &dyn ReplHost) -> i64 {
        let now = self.summary(server);
        let mut last = self.last_summary.lock();
        if last.as_ref() != Some(&now) {
            tracing::info!(target: "REPL", id = 21358, ctx = "ReplCoord",
                newState = now.state.name(), primary = now.primary.clone().unwrap_or_default(),
                configVersion = now.config_version, term = now.term as i64,
                "Replica set state transition");
            self.note_election(server, &now);
            *last = Some(now);
            self.topology_counter.send_modify(|c| *c += 1);
        }
        self.topology_counter()
    }

    /// Notes the election behind a new topology, for replSetGetStatus.
    pub(super) fn note_election(&self, server: &dyn ReplHost, now: &TopologySummary) {
        let (Some(config), Some(raft)) = (self.config(), self.raft()) else {
            return;
        };
        let Some(me) = self.self_member(server, &config) else {
            return;
        };
        let metrics = raft.metrics().borrow().clone();
        let leader = metrics.current_leader.filter(|&l| l != me.id);
        let (optime, _) = self.my_optime();
        self.elections.observe(elections::Observed {
            term: now.term,
            primary_is_me: now.state == MemberState::Primary,
            other_primary: leader.filter(|_| now.primary.is_some()),
            voted_for_it: leader.is_some() && metrics.vote.leader_id().voted_for() == leader,
            optime: &optime,
            votes_needed: config.voter_ids().len() as i32 / 2 + 1,
            priority: me.priority,
            election_timeout_millis: config.settings.election_timeout_millis,
        });
    }

    pub(super) fn update_election_switch(&self, server: &dyn ReplHost) {
        let Some(raft) = self.raft() else { return };
        let metrics = raft.metrics().borrow().clone();
        let frozen = self
            .no_elect_until
            .lock()
            .is_some_and(|t| Instant::now() < t);
        // A stepdown ends when another member has taken over, or when stepDownSecs pass
        // with nobody else electable (then this node simply carries on as primary).
        if self.stepping_down.load(Ordering::Acquire)
            && (metrics.state != RaftRole::Leader || !frozen)
        {
            self.stepping_down.store(false, Ordering::Release);
            raft.runtime_config().heartbeat(true);
        }
        let electable = match self.config() {
            // Before the first config is applied only the initiating node has a log.
            None => true,
            Some(config) => self
                .self_member(server, &config)
                .is_some_and(|m| m.is_electable()),
        };
        let enable = electable && !frozen;
        let mut current = self.elect_enabled.lock();
        if *current != Some(enable) {
            raft.runtime_config().elect(enable);
            *current = Some(enable);
        }
    }
}
