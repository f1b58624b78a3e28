//! Replica-set membership: the config, who is primary (through openraft), heartbeats
//! and the topology that hello reports.
//!
//! - [`config`]: the config document, parsed and validated as mongod does.
//! - [`raft`]: the openraft adapter (store, state machine, RPCs as OP_MSG commands).
//! - [`transport`]: the one door to other members.
//! - [`heartbeat`]: `replSetHeartbeat` to every other member, every heartbeatIntervalMillis.
//!
//! The Raft leader is the primary. Priority-0 and hidden members stay Raft voters (their
//! `votes` count as in mongod) but have elections switched off on their own node, so they
//! never become primary; replSetFreeze and replSetStepDown switch them off for a while.

pub mod config;
mod elections;
mod heartbeat;
mod log_store;
pub mod raft;
pub mod self_initiate;
pub mod takeover;
pub mod transport;

use crate::catalog::{Catalog, CatalogError};
use crate::clock::LogicalClock;
use crate::error::{Code, CommandError, CommandResult};
use crate::state::ServerState;
use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use config::{MemberConfig, ReplSetConfig};
use openraft::{BasicNode, ServerState as RaftRole};
use parking_lot::{Mutex, RwLock};
use raft::{Applied, ApplyOutcome, Raft, RaftSettings, ReplEntry, ReplOp, Store};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use takeover::PRIORITY_TAKEOVER_FIELD;
use tokio::sync::watch;
use transport::Transport;

pub use heartbeat::HeartbeatReply;

const NODE_FILE: &str = "ferrod-repl-node.json";

/// This node's Raft identity, saved when its Raft starts.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedNode {
    node_id: u64,
    settings: RaftSettings,
}

/// mongod's member states (`myState`, `state`) and their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Startup = 0,
    Primary = 1,
    Secondary = 2,
    Down = 8,
    Removed = 10,
}

impl MemberState {
    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn name(self) -> &'static str {
        match self {
            MemberState::Startup => "STARTUP",
            MemberState::Primary => "PRIMARY",
            MemberState::Secondary => "SECONDARY",
            MemberState::Down => "(not reachable/healthy)",
            MemberState::Removed => "REMOVED",
        }
    }

    pub fn from_code(code: i32) -> MemberState {
        match code {
            1 => MemberState::Primary,
            2 => MemberState::Secondary,
            10 => MemberState::Removed,
            0 => MemberState::Startup,
            _ => MemberState::Down,
        }
    }
}

/// What heartbeats have learned about one other member.
#[derive(Debug, Clone, Default)]
pub struct MemberHealth {
    pub host: String,
    pub healthy: bool,
    pub state: i32,
    pub last_heartbeat: Option<bson::DateTime>,
    pub ping_ms: i64,
    pub config_version: i64,
    pub config_term: i64,
    pub optime: Option<Document>,
    pub optime_date: Option<bson::DateTime>,
    pub up_since: Option<Instant>,
    /// When a heartbeat to it last succeeded.
    pub last_ok: Option<Instant>,
    pub message: String,
}

/// The replica-set side of a server started with `--replSet`.
pub struct ReplCoordinator {
    pub set_name: String,
    pub transport: Arc<dyn Transport>,
    store: Arc<Store>,
    /// Where this node's Raft id and settings are kept across restarts.
    node_file: Option<PathBuf>,
    applied: watch::Receiver<Applied>,
    /// This node's Raft and the settings it runs with, once started.
    raft: RwLock<Option<(Raft, RaftSettings)>>,
    /// Serializes starting and restarting Raft.
    raft_start: tokio::sync::Mutex<()>,
    /// `topologyVersion.processId`.
    pub process_id: ObjectId,
    topology_counter: watch::Sender<i64>,
    health: Mutex<HashMap<u64, MemberHealth>>,
    heartbeat_received: Mutex<HashMap<String, bson::DateTime>>,
    /// Elections are off here until then (replSetFreeze, replSetStepDown).
    no_elect_until: Mutex<Option<Instant>>,
    stepping_down: AtomicBool,
    /// Serializes initiate and reconfig.
    config_change: tokio::sync::Mutex<()>,
    elect_enabled: Mutex<Option<bool>>,
    last_summary: Mutex<Option<TopologySummary>>,
    /// The term this node last became leader in, and when.
    leader_since: Mutex<Option<(u64, Instant)>>,
    elections: elections::Elections,
}

/// The member a stepping-down primary asks to take over.
struct Successor {
    host: String,
    /// The last log index it holds, as this primary knows.
    matched: u64,
    caught_up: bool,
}

/// Topology facts whose change bumps `topologyVersion.counter`.
#[derive(Debug, Clone, PartialEq)]
struct TopologySummary {
    state: MemberState,
    primary: Option<String>,
    config_version: i64,
    term: u64,
}

fn not_writable_primary(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::NotWritablePrimary, msg)
}

/// mongod's error for write-concern waiters when the primary steps down.
fn primary_stepped_down() -> CommandError {
    CommandError::new(
        Code::PrimarySteppedDown,
        "Primary stepped down while waiting for replication",
    )
}

/// mongod's error for an object above BSONObjMaxInternalSize.
fn entry_too_large(size: usize) -> CommandError {
    CommandError::new(
        Code::BSONObjectTooLarge,
        format!(
            "BSONObj size: {size} (0x{size:X}) is invalid. Size must be between 0 and {}(16MB)",
            raft::MAX_ENTRY_SIZE
        ),
    )
}

/// The one place openraft's refusals of a write or membership change become mongod's
/// errors: a client never sees openraft's own text (it is logged).
fn raft_error<E: std::fmt::Display>(e: openraft::error::RaftError<u64, E>) -> CommandError {
    tracing::debug!(target: "REPL", id = 7_000_040, ctx = "ReplCoord", error = %e, "Raft refused a write");
    match e {
        // ForwardToLeader, or a membership change this node can no longer make: either
        // way, it is not (or no longer) the primary.
        openraft::error::RaftError::APIError(_) => not_writable_primary("not primary"),
        openraft::error::RaftError::Fatal(_) => CommandError::new(
            Code::InterruptedDueToReplStateChange,
            "operation was interrupted",
        ),
    }
}

/// The electionId mongod derives from a term: max timestamp, then the term big-endian.
pub fn election_id(term: u64) -> ObjectId {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    bytes[4..].copy_from_slice(&term.to_be_bytes());
    ObjectId::from_bytes(bytes)
}

impl ReplCoordinator {
    /// The coordinator for `--replSet set_name`, keeping its Raft state under `dbpath`
    /// (None: in memory only) and reaching other members through `transport`.
    pub fn new(
        set_name: String,
        dbpath: Option<&Path>,
        transport: Arc<dyn Transport>,
        clock: Arc<LogicalClock>,
    ) -> std::io::Result<Arc<ReplCoordinator>> {
        let (store, applied) = Store::open(dbpath, clock)?;
        let (topology_counter, _) = watch::channel(0);
        Ok(Arc::new(ReplCoordinator {
            set_name,
            transport,
            store,
            node_file: dbpath.map(|d| d.join(NODE_FILE)),
            applied,
            raft: RwLock::new(None),
            raft_start: tokio::sync::Mutex::new(()),
            process_id: crate::state::process_id(),
            topology_counter,
            health: Mutex::new(HashMap::new()),
            heartbeat_received: Mutex::new(HashMap::new()),
            no_elect_until: Mutex::new(None),
            stepping_down: AtomicBool::new(false),
            config_change: tokio::sync::Mutex::new(()),
            elect_enabled: Mutex::new(None),
            last_summary: Mutex::new(None),
            leader_since: Mutex::new(None),
            elections: elections::Elections::default(),
        }))
    }

    /// Starts the background tasks: heartbeats and the topology watcher.
    pub fn start(self: &Arc<Self>, server: &Arc<ServerState>) {
        // A member that was part of a set rejoins it with its saved Raft state.
        if let Some(saved) = self.saved_node() {
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.raft_for(saved.node_id, saved.settings).await {
                    tracing::error!(target: "REPL", id = 21405, ctx = "ReplCoord", error = %e, "Cannot restore replica set state");
                }
            });
        }
        heartbeat::spawn(self.clone(), server.clone());
        tokio::spawn(self.clone().primary_housekeeping(server.clone()));
        tokio::spawn(takeover::run(self.clone(), server.clone()));
        if !server.config.initial_members.is_empty() {
            let members = server.config.initial_members.clone();
            tokio::spawn(self_initiate::run(self.clone(), server.clone(), members));
        }
        let me = self.clone();
        let server = server.clone();
        tokio::spawn(async move { me.watch_topology(server).await });
    }

    /// Makes the catalog the replicated state machine (before [`Self::start`]).
    pub fn attach_catalog(&self, catalog: Arc<dyn Catalog>) -> Result<(), CatalogError> {
        self.store.attach_catalog(catalog)
    }

    pub fn config(&self) -> Option<ReplSetConfig> {
        self.applied.borrow().config.clone()
    }

    fn applied(&self) -> Applied {
        self.applied.borrow().clone()
    }

    pub fn topology_counter(&self) -> i64 {
        *self.topology_counter.borrow()
    }

    /// Waits until the topology counter differs from `seen` or `max_wait` passes.
    pub async fn wait_topology_change(&self, seen: i64, max_wait: Duration) {
        let mut rx = self.topology_counter.subscribe();
        let _ = tokio::time::timeout(max_wait, rx.wait_for(|c| *c != seen)).await;
    }

    /// Whether `host` (as written in a config) is this server.
    pub fn is_self(&self, server: &ServerState, host: &str) -> bool {
        names_self(
            host,
            server.port(),
            &server.host_name,
            server.config.bind_ip_all,
            &server.config.bind_ip,
        )
    }

    pub fn self_member(
        &self,
        server: &ServerState,
        config: &ReplSetConfig,
    ) -> Option<MemberConfig> {
        config
            .members
            .iter()
            .find(|m| self.is_self(server, &m.host))
            .cloned()
    }

    fn saved_node(&self) -> Option<SavedNode> {
        if !self.store.has_state() {
            return None;
        }
        let bytes = std::fs::read(self.node_file.as_ref()?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn raft(&self) -> Option<Raft> {
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
    async fn start_raft(&self, node_id: u64, settings: RaftSettings) -> CommandResult<Raft> {
        let resolve_from = self.applied.clone();
        let network = raft::Network {
            transport: self.transport.clone(),
            settings: settings.clone(),
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
        let (log_store, state_machine) = openraft::storage::Adaptor::new(self.store.clone());
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
    async fn apply_timing_settings(&self) {
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

    fn leader_id(&self) -> Option<u64> {
        self.raft()
            .and_then(|r| r.metrics().borrow().current_leader)
    }

    pub fn term(&self) -> u64 {
        self.raft()
            .map(|r| r.metrics().borrow().current_term)
            .unwrap_or(0)
    }

    /// This node's state as mongod names it.
    pub fn my_state(&self, server: &ServerState) -> MemberState {
        let Some(config) = self.config() else {
            return MemberState::Startup;
        };
        self.state_in(server, &config)
    }

    /// This node's state under `config`.
    fn state_in(&self, server: &ServerState, config: &ReplSetConfig) -> MemberState {
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
    fn sees_a_majority(&self, config: &ReplSetConfig, me: &MemberConfig, term: u64) -> bool {
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

    pub fn primary_host(&self, server: &ServerState) -> Option<String> {
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
    pub fn check_writable_primary(&self, server: &ServerState) -> CommandResult<()> {
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

    fn summary(&self, server: &ServerState) -> TopologySummary {
        TopologySummary {
            state: self.my_state(server),
            primary: self.primary_host(server),
            config_version: self.config().map(|c| c.version).unwrap_or(0),
            term: self.term(),
        }
    }

    /// Bumps the topology counter on every change of state, primary, config or term, and
    /// keeps elections on or off on this node as config, freeze and stepdown say.
    async fn watch_topology(self: Arc<Self>, server: Arc<ServerState>) {
        let mut tick = tokio::time::interval(Duration::from_millis(25));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = server.shutdown.cancelled() => return,
            }
            self.apply_timing_settings().await;
            self.update_election_switch(&server);
            self.refresh_topology(&server);
        }
    }

    /// Bumps the counter if the topology differs from the last one seen, and returns the
    /// counter. hello calls it too, so the counter it reports always matches its state.
    pub fn refresh_topology(&self, server: &ServerState) -> i64 {
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
    fn note_election(&self, server: &ServerState, now: &TopologySummary) {
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

    fn update_election_switch(&self, server: &ServerState) {
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

    fn settings_of(&self, config: &ReplSetConfig) -> RaftSettings {
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
            raft::IncomingRpc::Append(rpc) => raft::payload_reply(&raft.append_entries(rpc).await),
            raft::IncomingRpc::Snapshot(rpc) => {
                raft::payload_reply(&raft.install_snapshot(rpc).await)
            }
        };
        reply.map_err(|e| CommandError::new(Code::InternalError, e))
    }

    /// Asks every member but this one for a heartbeat; returns the hosts that answered
    /// and the failures.
    async fn poll_members(
        &self,
        server: &ServerState,
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
    pub async fn initiate(&self, server: &ServerState, given: Option<&Document>) -> CommandResult {
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
    async fn stand_at_once(
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

    async fn write_config(&self, raft: &Raft, config: &ReplSetConfig) -> CommandResult<()> {
        self.write_entry(raft, ReplOp::SetConfig(config.clone()))
            .await
            .map(|_| ())
    }

    /// Proposes `op` on the primary and returns once a majority has it and it is applied
    /// here (what openraft's client_write waits for).
    /// Returns what applying it gave and its log index.
    pub async fn propose(
        &self,
        server: &ServerState,
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
    fn entry(&self, op: ReplOp) -> ReplEntry {
        ReplEntry {
            time_hint: crate::clock::pack(self.store.clock.next()),
            op,
        }
    }

    /// Appends `op` through Raft. An entry too large to ever reach a follower is refused
    /// here, before it is in the log.
    async fn write_entry(&self, raft: &Raft, op: ReplOp) -> CommandResult<(ApplyOutcome, u64)> {
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
    async fn primary_housekeeping(self: Arc<Self>, server: Arc<ServerState>) {
        let rotation = server
            .params
            .get_i64(crate::params::KEYS_ROTATION_INTERVAL_SEC)
            .clamp(1, u32::MAX as i64) as u32;
        let noop_every = server
            .params
            .get_i64(crate::params::PERIODIC_NOOP_INTERVAL_SECS)
            .max(1) as u32;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = server.shutdown.cancelled() => return,
            }
            if self.my_state(&server) != MemberState::Primary {
                continue;
            }
            let idle = crate::clock::wall_seconds().saturating_sub(server.clock.now().time);
            if idle >= noop_every {
                let _ = self.propose(&server, ReplOp::Noop).await;
            }
            let Some(keys) = server.clock.keys() else {
                continue;
            };
            let Some(write) = keys.next_key(server.clock.now(), rotation) else {
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

    /// Waits until `members` members (this one included) hold the log up to `index`. Ends
    /// with PrimarySteppedDown as soon as this node stops being primary (a stepdown, a
    /// lost majority, a new term), as mongod fails its replication waiters.
    pub async fn wait_replicated(
        &self,
        server: &ServerState,
        index: u64,
        members: usize,
    ) -> CommandResult<()> {
        let raft = self
            .raft()
            .ok_or_else(|| not_writable_primary("not primary"))?;
        let others = members.saturating_sub(1);
        let mut metrics = raft.metrics();
        let mut topology = self.topology_counter.subscribe();
        let term = metrics.borrow().current_term;
        loop {
            {
                // Cloned, not held: my_state borrows the same watch again, and a second
                // read lock queued behind openraft's pending write deadlocks both.
                let m = metrics.borrow_and_update().clone();
                if m.current_term != term || self.my_state(server) != MemberState::Primary {
                    return Err(primary_stepped_down());
                }
                let acknowledged = m.replication.as_ref().is_some_and(|r| {
                    r.iter()
                        .filter(|(id, matched)| {
                            **id != m.id && matched.is_some_and(|l| l.index >= index)
                        })
                        .count()
                        >= others
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
                _ = topology.changed() => {}
            }
        }
    }

    /// replSetReconfig.
    pub async fn reconfig(
        &self,
        server: &ServerState,
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
    async fn step_down_if_unelectable(&self, server: &ServerState, config: &ReplSetConfig) {
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
    async fn force_reconfig(
        &self,
        server: &ServerState,
        current: &ReplSetConfig,
        doc: &Document,
    ) -> CommandResult {
        let mut config = parse_for_reconfig(current, doc)?;
        let me = config.find_self(|h| self.is_self(server, h))?.clone();
        config.settings.replica_set_id = current.settings.replica_set_id.clone();
        let bump = 10_000
            + u64::from_le_bytes(
                crate::auth::scram::random_bytes(8)
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

    /// replSetStepDown: stop being primary and keep out of elections for `step_down`.
    pub async fn step_down(
        &self,
        server: &ServerState,
        step_down: Duration,
        catch_up: Duration,
        force: bool,
    ) -> CommandResult {
        if self.my_state(server) != MemberState::Primary {
            return Err(not_writable_primary("not primary so can't step down"));
        }
        let config = self.config().ok_or_else(not_yet_initialized)?;
        let raft = self.raft().ok_or_else(not_yet_initialized)?;
        // As mongod, wait (up to secondaryCatchUpPeriodSecs) for an electable secondary
        // that holds everything this primary has; forced, take the best there is.
        let deadline = Instant::now() + catch_up;
        let successor = loop {
            let best = self.best_successor(&config, &raft);
            match best {
                Some(s) if s.caught_up => break Some(s),
                _ if force => break best,
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(CommandError::new(
                    Code::ExceededTimeLimit,
                    format!(
                        "No electable secondaries caught up as of {}. Please use the replSetStepDown command with the argument {{force: true}} to force node to step down.",
                        chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.3f%:z")
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.hand_to(&raft, step_down, successor, false).await;
        Ok(Document::new())
    }

    /// Stops being primary: no elections here for `freeze`, no heartbeats, and asks
    /// `successor` to run at once (with `priority_takeover`, it says so in its log).
    async fn hand_to(
        &self,
        raft: &Raft,
        freeze: Duration,
        successor: Option<Successor>,
        priority_takeover: bool,
    ) {
        *self.no_elect_until.lock() = Some(Instant::now() + freeze);
        self.stepping_down.store(true, Ordering::Release);
        raft.runtime_config().elect(false);
        *self.elect_enabled.lock() = Some(false);
        // Without heartbeats from us the secondaries time out and elect one of themselves;
        // ask an electable one to run at once.
        raft.runtime_config().heartbeat(false);
        self.topology_counter.send_modify(|c| *c += 1);
        tracing::info!(target: "REPL", id = 21343, ctx = "ReplCoord", "Starting an election due to step up request");
        if let Some(Successor {
            host,
            matched,
            caught_up,
        }) = successor
        {
            tracing::info!(target: "REPL", id = 7_000_032, ctx = "ReplCoord", member = %host,
                matchedIndex = matched as i64, caughtUp = caught_up,
                "Asking the most caught-up electable secondary to step up");
            let mut cmd = doc! {"replSetStepUp": 1, "skipDryRun": true, "$db": "admin"};
            if priority_takeover {
                cmd.insert(PRIORITY_TAKEOVER_FIELD, true);
            }
            let _ = self
                .transport
                .run_command(&host, cmd, Duration::from_secs(2))
                .await;
        }
    }

    /// The electable secondary (priority above 0, a vote, not hidden) that answers
    /// heartbeats and holds the most of this primary's log; higher priority breaks ties.
    fn best_successor(&self, config: &ReplSetConfig, raft: &Raft) -> Option<Successor> {
        let metrics = raft.metrics().borrow().clone();
        let last = metrics.last_log_index.unwrap_or(0);
        let matched = metrics.replication.unwrap_or_default();
        let health = self.health.lock();
        config
            .members
            .iter()
            .filter(|m| m.id != metrics.id && m.is_electable())
            .filter(|m| {
                health
                    .get(&m.id)
                    .is_some_and(|h| h.healthy && h.state == MemberState::Secondary.code())
            })
            .map(|m| {
                let index = matched.get(&m.id).copied().flatten().map_or(0, |l| l.index);
                (index, m.priority, m)
            })
            .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
            .map(|(index, _, m)| Successor {
                host: m.host.clone(),
                matched: index,
                caught_up: index >= last,
            })
    }

    /// At shutdown: a primary steps down and waits (at most `within`) until a caught-up
    /// secondary has taken over, so that clients see a new primary at once instead of
    /// after an election timeout. The successor wins at once when this primary was
    /// elected longer ago than openraft's leader lease (0.575 x electionTimeoutMillis):
    /// this node then grants it its vote (see raft_config).
    pub async fn hand_over(&self, server: &ServerState, within: Duration) {
        if self.my_state(server) != MemberState::Primary {
            return;
        }
        tracing::info!(target: "REPL", id = 21328, ctx = "SignalHandler", "Stepping down from primary in response to shutdown");
        let started = Instant::now();
        if let Err(e) = self
            .step_down(server, Duration::from_secs(60), within, false)
            .await
        {
            tracing::info!(target: "REPL", id = 7_000_030, ctx = "SignalHandler", error = %e.message,
                "No secondary to hand over to; shutting down as primary");
            return;
        }
        let me = self
            .config()
            .and_then(|c| self.self_member(server, &c))
            .map(|m| m.host);
        while started.elapsed() < within {
            if let Some(primary) = self.primary_host(server) {
                if Some(&primary) != me.as_ref() {
                    tracing::info!(target: "REPL", id = 7_000_031, ctx = "SignalHandler",
                        primary = %primary, tookMillis = started.elapsed().as_millis() as i64,
                        "Handed over to a new primary");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Notes why the next election is run, for replSetGetStatus.
    pub fn note_step_up_request(&self, skip_dry_run: bool) {
        self.elections.step_up_requested(self.term(), skip_dry_run);
    }

    /// replSetStepUp: run for election now.
    pub async fn step_up(&self, server: &ServerState) -> CommandResult {
        let config = self.config().ok_or_else(not_yet_initialized)?;
        let me = self
            .self_member(server, &config)
            .ok_or_else(removed_error)?;
        if !me.is_electable() {
            return Err(CommandError::new(Code::CommandFailed, "Election failed."));
        }
        if self
            .no_elect_until
            .lock()
            .is_some_and(|t| Instant::now() < t)
        {
            return Err(CommandError::new(
                Code::CommandFailed,
                "Election failed: this node is frozen",
            ));
        }
        let raft = self.raft().ok_or_else(not_yet_initialized)?;
        raft.trigger()
            .elect()
            .await
            .map_err(|e| CommandError::new(Code::CommandFailed, format!("Election failed: {e}")))?;
        Ok(doc! {"message": "Successfully stepped up."})
    }

    /// replSetFreeze.
    pub fn freeze(&self, server: &ServerState, secs: i64) -> CommandResult {
        self.config().ok_or_else(not_yet_initialized)?;
        let state = self.my_state(server);
        if state == MemberState::Primary {
            return Err(CommandError::new(
                Code::NotSecondary,
                "cannot freeze node when primary or running for election. state: Primary",
            ));
        }
        if secs <= 0 {
            *self.no_elect_until.lock() = None;
            return Ok(doc! {"info": "unfreezing"});
        }
        *self.no_elect_until.lock() = Some(Instant::now() + Duration::from_secs(secs as u64));
        let mut reply = Document::new();
        if secs == 1 {
            reply.insert("warning", "you really want to freeze for only 1 second?");
        }
        Ok(reply)
    }

    pub fn record_heartbeat_received(&self, from: &str) {
        self.heartbeat_received
            .lock()
            .insert(from.to_ascii_lowercase(), bson::DateTime::now());
    }

    /// replSetGetConfig.
    pub fn get_config(&self) -> CommandResult {
        let config = self.config().ok_or_else(not_yet_initialized)?;
        Ok(doc! {"config": config.to_document()})
    }

    /// replSetGetStatus.
    pub fn status(&self, server: &ServerState) -> CommandResult {
        let config = self.config().ok_or_else(not_yet_initialized)?;
        let me = self
            .self_member(server, &config)
            .ok_or_else(removed_error)?;
        let my_state = self.my_state(server);
        let (optime, optime_date) = self.my_optime();
        let term = self.term() as i64;
        let health = self.health.lock().clone();
        let received = self.heartbeat_received.lock().clone();
        let hb_ms = config.settings.heartbeat_interval_millis;
        let epoch = bson::DateTime::from_millis(0);
        // Raft's leader sends its log to every member: a secondary's sync source is the
        // primary, whose own is none.
        let primary = self
            .primary_host(server)
            .and_then(|host| config.members.iter().find(|m| m.host == host).cloned());
        let sync_source = |secondary: bool| match (&primary, secondary) {
            (Some(p), true) => (p.host.clone(), p.id as i32),
            _ => (String::new(), -1),
        };
        let (my_source_host, my_source_id) = sync_source(my_state == MemberState::Secondary);
        let members: Vec<Bson> = config
            .members
            .iter()
            .map(|m| {
                if m.id == me.id {
                    let mut d = doc! {
                        "_id": m.id as i32, "name": m.host.clone(), "health": 1.0,
                        "state": my_state.code(), "stateStr": my_state.name(),
                        "uptime": server.started.elapsed().as_secs() as i32,
                        "optime": optime.clone(), "optimeDate": optime_date,
                        "lastAppliedWallTime": optime_date, "lastDurableWallTime": optime_date,
                        "syncSourceHost": my_source_host.clone(), "syncSourceId": my_source_id, "infoMessage": "",
                        "configVersion": config.version as i32, "configTerm": config.term,
                        "self": true, "lastHeartbeatMessage": "",
                    };
                    if my_state == MemberState::Primary {
                        d.insert("electionTime", bson::Timestamp { time: (optime_date.timestamp_millis() / 1000) as u32, increment: 1 });
                        d.insert("electionDate", optime_date);
                    }
                    return Bson::Document(d);
                }
                let h = health.get(&m.id).cloned().unwrap_or_default();
                let state = if h.healthy { MemberState::from_code(h.state) } else { MemberState::Down };
                let (state_code, state_str) = if h.healthy { (h.state, state.name()) } else { (8, MemberState::Down.name()) };
                let (source_host, source_id) = sync_source(h.healthy && state == MemberState::Secondary);
                Bson::Document(doc! {
                    "_id": m.id as i32, "name": m.host.clone(),
                    "health": if h.healthy { 1.0 } else { 0.0 },
                    "state": state_code, "stateStr": state_str,
                    "uptime": h.up_since.map(|t| t.elapsed().as_secs() as i32).unwrap_or(0),
                    "optime": h.optime.clone().unwrap_or(doc! {"ts": bson::Timestamp{time:0, increment:0}, "t": -1i64}),
                    "optimeDurable": h.optime.clone().unwrap_or(doc! {"ts": bson::Timestamp{time:0, increment:0}, "t": -1i64}),
                    "optimeDate": h.optime_date.unwrap_or(epoch),
                    "optimeDurableDate": h.optime_date.unwrap_or(epoch),
                    "lastAppliedWallTime": h.optime_date.unwrap_or(epoch),
                    "lastDurableWallTime": h.optime_date.unwrap_or(epoch),
                    "lastHeartbeat": h.last_heartbeat.unwrap_or(epoch),
                    "lastHeartbeatRecv": received.get(&m.host.to_ascii_lowercase()).copied().unwrap_or(epoch),
                    "pingMs": h.ping_ms,
                    "lastHeartbeatMessage": h.message.clone(),
                    "syncSourceHost": source_host, "syncSourceId": source_id, "infoMessage": "",
                    "configVersion": h.config_version as i32, "configTerm": h.config_term,
                })
            })
            .collect();
        let voters = config.voter_ids().len() as i32;
        let majority = voters / 2 + 1;
        let mut reply = doc! {
            "set": config.set_name.clone(),
            "date": bson::DateTime::now(),
            "myState": my_state.code(),
            "term": term,
            "syncSourceHost": my_source_host, "syncSourceId": my_source_id,
            "heartbeatIntervalMillis": hb_ms,
            "majorityVoteCount": majority,
            "writeMajorityCount": majority,
            "votingMembersCount": voters,
            "writableVotingMembersCount": voters,
            "optimes": {
                "lastCommittedOpTime": optime.clone(),
                "lastCommittedWallTime": optime_date,
                "readConcernMajorityOpTime": optime.clone(),
                "appliedOpTime": optime.clone(),
                "durableOpTime": optime.clone(),
                "lastAppliedWallTime": optime_date,
                "lastDurableWallTime": optime_date,
            },
        };
        // Entries are applied as they commit: the stable point is the last applied one.
        if let Ok(ts) = optime.get_timestamp("ts") {
            reply.insert("lastStableRecoveryTimestamp", ts);
        }
        if my_state == MemberState::Primary {
            if let Some(metrics) = self.elections.candidate_metrics(term as u64) {
                reply.insert("electionCandidateMetrics", metrics);
            }
        }
        if let Some(metrics) = self.elections.participant_metrics() {
            reply.insert("electionParticipantMetrics", metrics);
        }
        reply.insert("members", members);
        Ok(reply)
    }

    /// connPoolStats' `replicaSets` entry for this set: each member as this node's
    /// heartbeats see it (itself included), in config order.
    pub fn pool_stats_view(&self, server: &ServerState) -> Option<(String, Document)> {
        let config = self.config()?;
        let me = self.self_member(server, &config)?;
        let my_state = self.my_state(server);
        let health = self.health.lock().clone();
        let hosts: Vec<Bson> = config
            .members
            .iter()
            .map(|m| {
                let (ok, state, ping_ms) = if m.id == me.id {
                    (true, my_state, 0)
                } else {
                    let h = health.get(&m.id).cloned().unwrap_or_default();
                    (h.healthy, MemberState::from_code(h.state), h.ping_ms)
                };
                Bson::Document(doc! {
                    "addr": m.host.clone(),
                    "ok": ok,
                    "ismaster": ok && state == MemberState::Primary,
                    "hidden": m.hidden,
                    "secondary": ok && state == MemberState::Secondary,
                    "pingTimeMillis": ping_ms as i32,
                })
            })
            .collect();
        Some((config.set_name.clone(), doc! {"hosts": hosts}))
    }

    /// The replica-set fields of a hello reply (SPEC section 2).
    pub fn hello_fields(&self, server: &ServerState, legacy: bool) -> Document {
        let counter = self.refresh_topology(server);
        let mut reply = Document::new();
        // One config snapshot for the whole reply: a reconfig may remove this node
        // between two reads.
        let config = self.config();
        let state = config
            .as_ref()
            .map_or(MemberState::Startup, |c| self.state_in(server, c));
        let primary = state == MemberState::Primary;
        if legacy {
            reply.insert("ismaster", primary);
        } else {
            reply.insert("isWritablePrimary", primary);
        }
        reply.insert(
            "topologyVersion",
            doc! {"processId": self.process_id, "counter": counter},
        );

        let Some((config, me)) =
            config.and_then(|c| self.self_member(server, &c).map(|me| (c, me)))
        else {
            reply.insert("secondary", false);
            reply.insert("info", "Does not have a valid replica set config");
            reply.insert("isreplicaset", true);
            return reply;
        };
        // mongod lists neither hidden nor delayed members; electable ones are hosts.
        let listed = || {
            config
                .members
                .iter()
                .filter(|m| !m.hidden && m.secondary_delay_secs == 0)
        };
        let hosts: Vec<Bson> = listed()
            .filter(|m| m.priority > 0.0)
            .map(|m| Bson::String(m.host.clone()))
            .collect();
        let passives: Vec<Bson> = listed()
            .filter(|m| m.priority == 0.0)
            .map(|m| Bson::String(m.host.clone()))
            .collect();
        reply.insert("hosts", hosts);
        if !passives.is_empty() {
            reply.insert("passives", passives);
        }
        reply.insert("setName", config.set_name.clone());
        reply.insert("setVersion", config.version as i32);
        reply.insert("secondary", state == MemberState::Secondary);
        if let Some(p) = self.primary_host(server) {
            reply.insert("primary", p);
        }
        if me.priority == 0.0 {
            reply.insert("passive", true);
        }
        if me.hidden {
            reply.insert("hidden", true);
        }
        if !me.build_indexes {
            reply.insert("buildIndexes", false);
        }
        if me.secondary_delay_secs > 0 {
            let name = if legacy {
                "slaveDelay"
            } else {
                "secondaryDelaySecs"
            };
            reply.insert(name, me.secondary_delay_secs);
        }
        // Tag-set read preferences select on these; mongod leaves the field out when empty.
        let tags = me.tags_document();
        if !tags.is_empty() {
            reply.insert("tags", tags);
        }
        reply.insert("me", me.host.clone());
        // `arbiterOnly` is for arbiters only, which ferrod has none of.
        if primary {
            reply.insert("electionId", election_id(self.term()));
        }
        let (optime, date) = self.my_optime();
        reply.insert(
            "lastWrite",
            doc! {
                "opTime": optime.clone(), "lastWriteDate": date,
                "majorityOpTime": optime, "majorityWriteDate": date,
            },
        );
        reply
    }

    pub(crate) fn set_health(&self, id: u64, h: MemberHealth) {
        self.health.lock().insert(id, h);
    }

    pub(crate) fn get_health(&self, id: u64) -> Option<MemberHealth> {
        self.health.lock().get(&id).cloned()
    }

    pub(crate) fn forget_health(&self, keep: &BTreeSet<u64>) {
        self.health.lock().retain(|id, _| keep.contains(id));
    }
}

/// mongod's NotPrimaryError category: the errors after which a driver checks the server
/// again, unless the error's `topologyVersion` shows it knows of nothing newer.
fn is_not_primary_error(code: i32) -> bool {
    [
        Code::NotWritablePrimary,
        Code::NotPrimaryNoSecondaryOk,
        Code::NotPrimaryOrSecondary,
        Code::InterruptedDueToReplStateChange,
        Code::PrimarySteppedDown,
    ]
    .iter()
    .any(|c| c.number() == code)
}

/// Adds the current `topologyVersion` to a reply whose error, or write concern error, is a
/// state change, as a set member's mongod does (a standalone's never change state).
pub fn stamp_state_change_error(server: &ServerState, reply: &mut Document) {
    if server.repl.is_none() || reply.contains_key("topologyVersion") {
        return;
    }
    let code = reply.get_i32("code").ok().or_else(|| {
        reply
            .get_document("writeConcernError")
            .ok()
            .and_then(|wce| wce.get_i32("code").ok())
    });
    if code.is_some_and(is_not_primary_error) {
        reply.insert("topologyVersion", server.topology_version());
    }
}

pub fn not_yet_initialized() -> CommandError {
    CommandError::new(
        Code::NotYetInitialized,
        "no replset config has been received",
    )
}

fn removed_error() -> CommandError {
    CommandError::new(
        Code::InvalidReplicaSetConfig,
        "Our replica set config is invalid or we are not a member of it",
    )
}

/// A reconfig's new config, which must keep the set's name.
fn parse_for_reconfig(current: &ReplSetConfig, doc: &Document) -> CommandResult<ReplSetConfig> {
    let config = ReplSetConfig::parse(doc)?;
    if config.set_name != current.set_name {
        return Err(incompatible(format!(
            "New and old configurations differ in replica set name; old was {}, and new is {}",
            current.set_name, config.set_name
        )));
    }
    Ok(config)
}

fn incompatible(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::NewReplicaSetConfigurationIncompatible, msg)
}

pub fn inconsistent_set_name(ours: &str, theirs: &str) -> CommandError {
    CommandError::new(
        Code::InconsistentReplicaSetNames,
        format!("Our set name of {ours} does not match name {theirs} reported by remote node"),
    )
}

/// The error for a replication command on a server started without `--replSet`.
pub fn no_replication() -> CommandError {
    CommandError::new(Code::NoReplicationEnabled, "not running with --replSet")
}

/// Whether a config's `host` names the server listening on `port` as `host_name`
/// and `bind_ip` (read with the one host:port parser; no port means 27017).
pub fn names_self(
    host: &str,
    port: u16,
    host_name: &str,
    bind_ip_all: bool,
    bind_ip: &[String],
) -> bool {
    let Ok(target) = crate::pool::HostAndPort::parse_or_default(host, crate::config::DEFAULT_PORT)
    else {
        return false;
    };
    if target.port() != port {
        return false;
    }
    let name = target.host();
    if name == "localhost" || name.eq_ignore_ascii_case(host_name) {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() || ip.is_unspecified() => true,
        Ok(ip) => bind_ip_all || bind_ip.iter().any(|b| b.parse::<IpAddr>().ok() == Some(ip)),
        Err(_) => false,
    }
}
