//! What replication reports: heartbeat receipt, the config, replSetGetStatus, the
//! replica-set view of connPoolStats and the hello fields.

use super::*;

/// One member as this node's heartbeats see it.
pub struct MemberView {
    pub host: String,
    /// Whether its last heartbeat succeeded (always, for this node).
    pub ok: bool,
    pub state: MemberState,
    pub hidden: bool,
    pub ping_ms: i64,
}

/// This member's place in the set, for hello.
pub struct HelloView {
    pub topology_counter: i64,
    pub process_id: ObjectId,
    pub state: MemberState,
    /// The config and this member in it, when it has one and is in it.
    pub member: Option<(ReplSetConfig, MemberConfig)>,
    pub primary: Option<String>,
    pub term: u64,
    pub optime: Document,
    pub optime_date: bson::DateTime,
}

/// This member's view of the set, for replSetGetStatus.
pub struct StatusView {
    pub config: ReplSetConfig,
    pub me: MemberConfig,
    pub my_state: MemberState,
    /// `{ts, t}` of the last applied entry, and its wall time.
    pub optime: Document,
    pub optime_date: bson::DateTime,
    pub term: u64,
    /// What heartbeats have learned of each other member, by member id.
    pub health: HashMap<u64, MemberHealth>,
    /// When each member (by lower-case host) last sent this one a heartbeat.
    pub heartbeat_received: HashMap<String, bson::DateTime>,
    pub primary: Option<MemberConfig>,
    /// How long this process has run.
    pub uptime: Duration,
    pub candidate_metrics: Option<Document>,
    pub participant_metrics: Option<Document>,
}

impl ReplCoordinator {
    pub fn record_heartbeat_received(&self, from: &str) {
        self.heartbeat_received
            .lock()
            .insert(from.to_ascii_lowercase(), bson::DateTime::now());
    }

    /// What replSetGetStatus reports, as data; `commands::repl_set_get_status` shapes it.
    pub fn status_view(&self, server: &dyn ReplHost) -> CommandResult<StatusView> {
        let config = self.config().ok_or_else(not_yet_initialized)?;
        let me = self
            .self_member(server, &config)
            .ok_or_else(removed_error)?;
        let my_state = self.my_state(server);
        let (optime, optime_date) = self.my_optime();
        let term = self.term();
        // Raft's leader sends its log to every member: a secondary's sync source is the
        // primary, whose own is none.
        let primary = self
            .primary_host(server)
            .and_then(|host| config.members.iter().find(|m| m.host == host).cloned());
        let candidate_metrics = match my_state {
            MemberState::Primary => self.elections.candidate_metrics(term),
            _ => None,
        };
        Ok(StatusView {
            me,
            my_state,
            optime,
            optime_date,
            term,
            health: self.health.lock().clone(),
            heartbeat_received: self.heartbeat_received.lock().clone(),
            primary,
            uptime: server.started().elapsed(),
            candidate_metrics,
            participant_metrics: self.elections.participant_metrics(),
            config,
        })
    }

    /// The set's name and each member as this node's heartbeats see it (itself
    /// included), in config order: connPoolStats' `replicaSets` entry.
    pub fn member_views(&self, server: &dyn ReplHost) -> Option<(String, Vec<MemberView>)> {
        let config = self.config()?;
        let me = self.self_member(server, &config)?;
        let my_state = self.my_state(server);
        let health = self.health.lock().clone();
        let members = config
            .members
            .iter()
            .map(|m| {
                let (ok, state, ping_ms) = if m.id == me.id {
                    (true, my_state, 0)
                } else {
                    let h = health.get(&m.id).cloned().unwrap_or_default();
                    (h.healthy, MemberState::from_code(h.state), h.ping_ms)
                };
                MemberView {
                    host: m.host.clone(),
                    ok,
                    state,
                    hidden: m.hidden,
                    ping_ms,
                }
            })
            .collect();
        Some((config.set_name.clone(), members))
    }

    /// What hello (and serverStatus' `repl` section) reports of the set, as data;
    /// `commands::hello::repl_fields` shapes it.
    pub fn hello_view(&self, server: &dyn ReplHost) -> HelloView {
        let topology_counter = self.refresh_topology(server);
        // One config snapshot for the whole reply: a reconfig may remove this node
        // between two reads.
        let config = self.config();
        let state = config
            .as_ref()
            .map_or(MemberState::Startup, |c| self.state_in(server, c));
        let member = config.and_then(|c| self.self_member(server, &c).map(|me| (c, me)));
        let primary = member.as_ref().and_then(|_| self.primary_host(server));
        let (optime, optime_date) = self.my_optime();
        HelloView {
            topology_counter,
            process_id: self.process_id,
            state,
            member,
            primary,
            term: self.term(),
            optime,
            optime_date,
        }
    }
}
