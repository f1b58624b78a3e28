//! The Raft lifecycle: the saved node id, starting openraft for this member, its timing
//! settings, and the Raft RPCs other members send.

use super::*;

impl ReplCoordinator {
    pub(super) fn saved_node(&self) -> Option<SavedNode> {
        if !self.store.has_state() {
            return None;
        }
        let bytes = std::fs::read(self.node_file.as_ref()?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub(super) fn raft(&self) -> Option<Raft> {
        self.raft.read().as_ref().map(|(raft, _)| raft.clone())
    }

    /// Whether this node's Raft has started (it is, or was, part of a set).
    pub fn has_raft(&self) -> bool {
        self.raft.read().is_some() || self.store.has_state()
    }

    /// This node's Raft, created on first use with the settings of whoever needs it first
    /// (replSetInitiate here, or the first Raft RPC from a member that was initiated).
    pub async fn raft_for(&self, node_id: u64, settings: RaftSettings) -> CommandResult<Raft> {
        let raft = match self.raft() {
            Some(raft) => raft,
            None => {
                let _starting = self.raft_start.lock().await;
                match self.raft() {
                    Some(raft) => raft,
                    None => self.start_raft(node_id, settings).await?,
                }
            }
        };
        let id = raft.metrics().borrow().id;
        if id != node_id {
            return Err(CommandError::new(
                Code::InvalidReplicaSetConfig,
                format!("this node is member {id} of the set, not member {node_id}"),
            ));
        }
        Ok(raft)
    }

    /// Starts Raft as `node_id` with `settings`, saving both for restarts.
    pub(super) async fn start_raft(
        &self,
        node_id: u64,
        settings: RaftSettings,
    ) -> CommandResult<Raft> {
        let resolve_from = self.applied.clone();
        let network = raft::Network {
            transport: self.transport.clone(),
            settings: settings.clone(),
            positions: self.positions.clone(),
            resolve: Arc::new(move |id| {
                resolve_from
                    .borrow()
                    .config
                    .as_ref()
                    .and_then(|c| c.member(id))
                    .map(|m| m.host.clone())
            }),
        };
        if let Some(path) = &self.node_file {
            let saved = SavedNode {
                node_id,
                settings: settings.clone(),
            };
            let bytes = serde_json::to_vec(&saved).expect("serializable");
            raft::write_atomically(path, &bytes).map_err(|e| {
                CommandError::new(
                    Code::InternalError,
                    format!("cannot save replica set state: {e}"),
                )
            })?;
        }
        let (log_store, state_machine) = self.store.raft_parts();
        let raft = Raft::new(
            node_id,
            raft::raft_config(&settings, true),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| CommandError::new(Code::InternalError, format!("cannot start Raft: {e}")))?;
        *self.raft.write() = Some((raft.clone(), settings));
        *self.elect_enabled.lock() = None;
        Ok(raft)
    }

    /// Restarts Raft when a reconfig changed heartbeatIntervalMillis or
    /// electionTimeoutMillis: openraft takes its timing only when it starts. The log,
    /// vote and state machine are kept; only the timers change.
    pub(super) async fn apply_timing_settings(&self) {
        let Some(config) = self.config() else { return };
        let wanted = self.settings_of(&config);
        let running = match &*self.raft.read() {
            Some((raft, settings)) if *settings != wanted => raft.clone(),
            _ => return,
        };
        // Not in the middle of a reconfig or initiate, which still use the running Raft.
        let Ok(_no_config_change) = self.config_change.try_lock() else {
            return;
        };
        let _starting = self.raft_start.lock().await;
        let node_id = running.metrics().borrow().id;
        self.raft.write().take();
        if let Err(e) = running.shutdown().await {
            tracing::warn!(target: "REPL", id = 7_000_020, ctx = "ReplCoord", error = %e, "Raft did not stop cleanly");
        }
        match self.start_raft(node_id, wanted.clone()).await {
            Ok(_) => tracing::info!(target: "REPL", id = 7_000_021, ctx = "ReplCoord",
                heartbeatIntervalMillis = wanted.heartbeat_interval_millis,
                electionTimeoutMillis = wanted.election_timeout_millis,
                "Applied new replica set timing settings"),
            Err(e) => tracing::error!(target: "REPL", id = 7_000_022, ctx = "ReplCoord",
                error = %e.message, "Cannot restart Raft with the new settings"),
        }
    }

    pub(super) fn leader_id(&self) -> Option<u64> {
        self.raft()
            .and_then(|r| r.metrics().borrow().current_leader)
    }

    pub fn term(&self) -> u64 {
        self.raft()
            .map(|r| r.metrics().borrow().current_term)
            .unwrap_or(0)
    }

    pub(super) fn settings_of(&self, config: &ReplSetConfig) -> RaftSettings {
        RaftSettings {
            set_name: self.set_name.clone(),
            heartbeat_interval_millis: config.settings.heartbeat_interval_millis,
            election_timeout_millis: config.settings.election_timeout_millis,
        }
    }

    /// Runs a Raft RPC that arrived as a command.
    pub async fn handle_raft_rpc(&self, name: &str, cmd: &Document) -> CommandResult {
        let bad = |e: String| CommandError::new(Code::FailedToParse, format!("{name}: {e}"));
        let settings: RaftSettings = cmd
            .get("settings")
            .cloned()
            .ok_or_else(|| bad("missing settings".into()))
            .and_then(|s| bson::from_bson(s).map_err(|e| bad(e.to_string())))?;
        if settings.set_name != self.set_name {
            return Err(inconsistent_set_name(&self.set_name, &settings.set_name));
        }
        let target = cmd.get_i64("target").map_err(|e| bad(e.to_string()))? as u64;
        let raft = self.raft_for(target, settings).await?;
        let reply = match raft::incoming_rpc(name, cmd).map_err(bad)? {
            raft::IncomingRpc::Vote(rpc) => raft::payload_reply(&raft.vote(rpc).await),
            raft::IncomingRpc::Append(rpc) => {
                let commit = rpc.leader_commit.map(|l| l.index);
                let last_sent = rpc.entries.last().map(|e| e.log_id.index);
                let last_sent = last_sent.or(rpc.prev_log_id.map(|l| l.index));
                let result = raft.append_entries(rpc).await;
                let applied = match result {
                    Ok(openraft::raft::AppendEntriesResponse::Success) => {
                        positions::applied_after_append(&raft, commit, last_sent).await
                    }
                    _ => 0,
                };
                raft::payload_reply(&result).map(|mut reply| {
                    reply.insert(positions::APPLIED_FIELD, applied as i64);
                    reply
                })
            }
            raft::IncomingRpc::Snapshot(rpc) => {
                raft::payload_reply(&raft.install_snapshot(rpc).await)
            }
        };
        reply.map_err(|e| CommandError::new(Code::InternalError, e))
    }
}
