//! Membership changes: replSetInitiate (with its quorum check), replSetReconfig (safe and
//! forced), and stepping down when a new config leaves this member unelectable.

use super::*;

impl ReplCoordinator {
    /// Asks every member but this one for a heartbeat; returns the hosts that answered
    /// and the failures.
    pub(super) async fn poll_members(
        &self,
        server: &dyn ReplHost,
        config: &ReplSetConfig,
        check_empty: bool,
    ) -> (Vec<u64>, Vec<String>) {
        let timeout = Duration::from_secs(config.settings.heartbeat_timeout_secs.max(1) as u64)
            .min(Duration::from_millis(
                (config.settings.election_timeout_millis as u64).max(1000),
            ));
        let calls = config
            .members
            .iter()
            .filter(|m| !self.is_self(server, &m.host))
            .map(|m| {
                let cmd = heartbeat::request(self, server, config, check_empty);
                async move {
                    let result = self.transport.run_command(&m.host, cmd, timeout).await;
                    (m, result)
                }
            });
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for (member, result) in futures::future::join_all(calls).await {
            match result {
                Ok(reply) if check_empty && reply.get_i64("v").unwrap_or(-2) > 0 => failed.push(
                    format!("{} has data already, cannot initiate set", member.host),
                ),
                Ok(_) => ok.push(member.id),
                Err(e) => failed.push(format!("{} failed with {}", member.host, e.message)),
            }
        }
        (ok, failed)
    }

    /// replSetInitiate.
    pub async fn initiate(&self, server: &dyn ReplHost, given: Option<&Document>) -> CommandResult {
        let _guard = self.config_change.lock().await;
        if self.config().is_some() || self.raft().is_some() {
            return Err(CommandError::new(
                Code::AlreadyInitialized,
                "already initialized",
            ));
        }
        let mut config = match given {
            // mongod takes a config without `version` at initiate as version 1 (the
            // documentation's own rs.initiate examples leave it out).
            Some(doc) if !doc.contains_key("version") => {
                let mut doc = doc.clone();
                doc.insert("version", 1);
                ReplSetConfig::parse(&doc)?
            }
            Some(doc) => ReplSetConfig::parse(doc)?,
            None => ReplSetConfig::default_for(&self.set_name, &server.host_and_port()),
        };
        if config.set_name != self.set_name {
            return Err(CommandError::new(
                Code::InvalidReplicaSetConfig,
                format!(
                    "Attempting to initiate a replica set with name {}, but command line reports {}; rejecting",
                    config.set_name, self.set_name
                ),
            ));
        }
        let me = config.find_self(|h| self.is_self(server, h))?.clone();
        let (_, failed) = self.poll_members(server, &config, true).await;
        if !failed.is_empty() {
            return Err(CommandError::new(
                Code::NodeNotFound,
                format!(
                    "replSetInitiate quorum check failed because not all proposed set members responded affirmatively: {}",
                    failed.join(", ")
                ),
            ));
        }
        config.settings.replica_set_id = ObjectId::new().to_hex();
        tracing::info!(target: "REPL", id = 21356, ctx = "ReplCoord", config = %Bson::Document(config.to_document()).into_relaxed_extjson(), "replSetInitiate admin command received from client");
        let raft = self.raft_for(me.id, self.settings_of(&config)).await?;
        let voters: BTreeMap<u64, BasicNode> = config
            .members
            .iter()
            .filter(|m| m.is_voter())
            .map(|m| (m.id, BasicNode::new(&m.host)))
            .collect();
        raft.initialize(voters)
            .await
            .map_err(|e| CommandError::new(Code::InternalError, format!("Raft initialize: {e}")))?;
        let wait = Duration::from_millis(config.settings.election_timeout_millis as u64 * 3)
            .max(Duration::from_secs(5));
        self.stand_at_once(&raft, &me, &config, wait).await?;
        self.write_config(&raft, &config).await?;
        for m in config.members.iter().filter(|m| !m.is_voter()) {
            let _ = raft.add_learner(m.id, BasicNode::new(&m.host), false).await;
        }
        Ok(Document::new())
    }

    /// The initiating member runs for election at once rather than after the election
    /// timer (half of electionTimeoutMillis): openraft's initialize starts that campaign,
    /// and a campaign lost on the way (a vote that did not arrive) is run again at once.
    pub(super) async fn stand_at_once(
        &self,
        raft: &Raft,
        me: &MemberConfig,
        config: &ReplSetConfig,
        wait: Duration,
    ) -> CommandResult<()> {
        if me.is_electable() {
            tracing::info!(target: "ELECTION", id = 7_000_052, ctx = "ReplCoord",
                term = raft.metrics().borrow().current_term as i64,
                "Standing for election at once after initiating the set");
        }
        let deadline = Instant::now() + wait;
        // Long enough for a round of votes, far shorter than the election timer.
        let round = Duration::from_millis(config.settings.heartbeat_interval_millis.max(1) as u64)
            .clamp(Duration::from_millis(500), Duration::from_secs(2));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match raft
                .wait(Some(round.min(left)))
                .current_leader(me.id, "initiating node elected")
                .await
            {
                Ok(_) => return Ok(()),
                Err(openraft::metrics::WaitError::Timeout(..)) if !left.is_zero() => {
                    let metrics = raft.metrics().borrow().clone();
                    if me.is_electable()
                        && metrics.current_leader.is_none()
                        && metrics.state != RaftRole::Leader
                    {
                        tracing::info!(target: "ELECTION", id = 7_000_053, ctx = "ReplCoord",
                            term = metrics.current_term as i64,
                            "No primary yet after initiating the set; standing again at once");
                        let _ = raft.trigger().elect().await;
                    }
                }
                Err(e) => {
                    return Err(CommandError::new(
                        Code::NodeNotFound,
                        format!("no primary was elected after initiate: {e}"),
                    ))
                }
            }
        }
    }

    pub(super) async fn write_config(
        &self,
        raft: &Raft,
        config: &ReplSetConfig,
    ) -> CommandResult<()> {
        self.write_entry(raft, ReplOp::SetConfig(config.clone()))
            .await
            .map(|_| ())
    }

    /// replSetReconfig.
    pub async fn reconfig(
        &self,
        server: &dyn ReplHost,
        doc: &Document,
        force: bool,
    ) -> CommandResult {
        let _guard = self.config_change.lock().await;
        let Some(current) = self.config() else {
            return Err(not_yet_initialized());
        };
        let state = self.my_state(server);
        if force && state != MemberState::Primary {
            return self.force_reconfig(server, &current, doc).await;
        }
        if state != MemberState::Primary {
            return Err(not_writable_primary(format!(
                "New config is rejected :: caused by :: replSetReconfig should only be run on a writable PRIMARY. Current state {};",
                state.name()
            )));
        }
        let mut config = parse_for_reconfig(&current, doc)?;
        if !force && config.version <= current.version {
            return Err(incompatible(format!(
                "New replica set configuration version must be greater than old, but {} is not greater than {} for replica set {}",
                config.version, current.version, current.set_name
            )));
        }
        config.find_self(|h| self.is_self(server, h))?;
        config.settings.replica_set_id = current.settings.replica_set_id.clone();
        if !force {
            let old: BTreeSet<u64> = current.voter_ids();
            let new: BTreeSet<u64> = config.voter_ids();
            if old.symmetric_difference(&new).count() > 1 {
                return Err(incompatible(
                    "Non-force replica set reconfig can only add or remove at most 1 voting member.",
                ));
            }
            let (answered, _) = self.poll_members(server, &config, false).await;
            let voters_up = 1 + answered.iter().filter(|id| new.contains(id)).count();
            let needed = new.len() / 2 + 1;
            if voters_up < needed {
                let names: Vec<String> = config
                    .members
                    .iter()
                    .filter(|m| {
                        m.is_voter() && (answered.contains(&m.id) || self.is_self(server, &m.host))
                    })
                    .map(|m| m.host.clone())
                    .collect();
                return Err(CommandError::new(
                    Code::NodeNotFound,
                    format!(
                        "Quorum check failed because not enough voting nodes responded; required {needed} but only the following {voters_up} voting nodes responded: {}",
                        names.join(", ")
                    ),
                ));
            }
        }
        let raft = self.raft().ok_or_else(not_yet_initialized)?;
        let membership = raft.metrics().borrow().membership_config.clone();
        let known: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
        for m in config.members.iter().filter(|m| !known.contains(&m.id)) {
            let add = raft.add_learner(m.id, BasicNode::new(&m.host), true);
            let wait = Duration::from_millis(config.settings.election_timeout_millis as u64 * 2)
                .max(Duration::from_secs(5));
            match tokio::time::timeout(wait, add).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(not_writable_primary(format!(
                        "cannot add member {}: {e}",
                        m.host
                    )))
                }
                Err(_) => {
                    return Err(CommandError::new(
                        Code::ExceededTimeLimit,
                        format!("member {} did not catch up in time", m.host),
                    ))
                }
            }
        }
        self.write_config(&raft, &config).await?;
        raft.change_membership(config.voter_ids(), true)
            .await
            .map_err(raft_error)?;
        let wanted: BTreeSet<u64> = config.members.iter().map(|m| m.id).collect();
        let stale: BTreeSet<u64> = raft
            .metrics()
            .borrow()
            .membership_config
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| !wanted.contains(id))
            .collect();
        if !stale.is_empty() {
            raft.change_membership(openraft::ChangeMembers::RemoveNodes(stale), false)
                .await
                .map_err(raft_error)?;
        }
        tracing::info!(target: "REPL", id = 21353, ctx = "ReplCoord", version = config.version, "replSetReconfig config object with members parses ok");
        self.step_down_if_unelectable(server, &config).await;
        Ok(Document::new())
    }

    /// As mongod (`_shouldStepDownOnReconfig`): a primary whose new config makes it
    /// unelectable (priority 0, hidden, no vote, or removed) accepts the config and steps
    /// down at once, handing over to the best electable secondary.
    pub(super) async fn step_down_if_unelectable(
        &self,
        server: &dyn ReplHost,
        config: &ReplSetConfig,
    ) {
        if self
            .self_member(server, config)
            .is_some_and(|m| m.is_electable())
        {
            return;
        }
        tracing::info!(target: "REPL", id = 7_000_033, ctx = "ReplCoord",
            "Stepping down from primary, because we received a new config");
        // Unconditional, as mongod's: no wait for a caught-up secondary (the config just
        // committed on a majority, so the best one lacks at most that entry).
        if let Err(e) = self
            .step_down(server, Duration::from_secs(60), Duration::ZERO, true)
            .await
        {
            tracing::warn!(target: "REPL", id = 7_000_034, ctx = "ReplCoord", error = %e.message,
                "Could not step down after a reconfig that made this node unelectable");
        }
    }

    /// replSetReconfig with `force: true` on a member that is not primary: the config is
    /// installed outside consensus (see [`Store::force_config`]), with its version raised
    /// by a random 10,000 to 100,000 as mongod raises it, and this member then takes over
    /// as the new voters elect it.
    pub(super) async fn force_reconfig(
        &self,
        server: &dyn ReplHost,
        current: &ReplSetConfig,
        doc: &Document,
    ) -> CommandResult {
        let mut config = parse_for_reconfig(current, doc)?;
        let me = config.find_self(|h| self.is_self(server, h))?.clone();
        config.settings.replica_set_id = current.settings.replica_set_id.clone();
        let bump = 10_000
            + u64::from_le_bytes(
                crate::random::random_bytes(8)
                    .try_into()
                    .expect("eight bytes"),
            ) % 90_000;
        config.version = config.version.max(current.version) + bump as i64;
        let raft = self.raft().ok_or_else(not_yet_initialized)?;
        let node_id = raft.metrics().borrow().id;
        if node_id != me.id {
            return Err(CommandError::new(
                Code::InvalidReplicaSetConfig,
                format!(
                    "this node is member {node_id} of the set, not member {}",
                    me.id
                ),
            ));
        }
        let _starting = self.raft_start.lock().await;
        self.raft.write().take();
        let _ = raft.shutdown().await;
        let nodes: BTreeMap<u64, BasicNode> = config
            .members
            .iter()
            .map(|m| (m.id, BasicNode::new(&m.host)))
            .collect();
        let entry = self.entry(ReplOp::SetConfig(config.clone()));
        let forced = self
            .store
            .force_config(node_id, config.voter_ids(), nodes, entry);
        // Raft comes back either way: with the new config, or as it was.
        let restarted = self.start_raft(node_id, self.settings_of(&config)).await;
        forced.map_err(|e| {
            CommandError::new(Code::InternalError, format!("cannot force the config: {e}"))
        })?;
        restarted?;
        tracing::info!(target: "REPL", id = 21353, ctx = "ReplCoord", version = config.version, force = true,
            "replSetReconfig config object with members parses ok");
        Ok(Document::new())
    }
}
