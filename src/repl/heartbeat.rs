//! `replSetHeartbeat`: every member asks every other member in its config, every
//! heartbeatIntervalMillis, through the transport. One task per member; a member that
//! leaves the config loses its task, so it is no longer heartbeated.

use super::config::ReplSetConfig;
use super::{MemberHealth, ReplCoordinator, ReplHost};
use bson::{doc, Document};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// What a member answers to a heartbeat (the fields ferrod reads back).
pub struct HeartbeatReply;

impl HeartbeatReply {
    /// The reply body for a heartbeat received by `coord`.
    pub fn build(coord: &ReplCoordinator, server: &dyn ReplHost) -> Document {
        let state = coord.my_state(server);
        let config = coord.config();
        let (optime, date) = coord.my_optime();
        doc! {
            "set": coord.set_name.clone(),
            "state": state.code(),
            "v": config.as_ref().map(|c| c.version).unwrap_or(-2),
            "configTerm": config.as_ref().map(|c| c.term).unwrap_or(-1),
            "term": coord.term() as i64,
            "syncingTo": "",
            "opTime": optime.clone(),
            "wallTime": date,
            "durableOpTime": optime,
            "durableWallTime": date,
            "electionTime": bson::Timestamp { time: 0, increment: 0 },
        }
    }
}

/// The heartbeat command this member sends.
pub fn request(
    coord: &ReplCoordinator,
    server: &dyn ReplHost,
    config: &ReplSetConfig,
    check_empty: bool,
) -> Document {
    let me = coord.self_member(server, config);
    let mut cmd = doc! {
        "replSetHeartbeat": coord.set_name.clone(),
        "configVersion": config.version,
        "configTerm": config.term,
        "hbv": 1,
        "from": me.as_ref().map(|m| m.host.clone()).unwrap_or_else(|| server.host_and_port()),
        "fromId": me.map(|m| m.id as i32).unwrap_or(-1),
        "term": coord.term() as i64,
        "$db": "admin",
    };
    if check_empty {
        cmd.insert("checkEmpty", true);
    }
    cmd
}

pub fn spawn(coord: Arc<ReplCoordinator>, server: Arc<dyn ReplHost>) {
    tokio::spawn(async move {
        let mut tasks: HashMap<u64, (String, JoinHandle<()>)> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = server.shutdown().cancelled() => break,
            }
            let targets: Vec<(u64, String)> = match coord.config() {
                Some(config) => config
                    .members
                    .iter()
                    .filter(|m| !coord.is_self(&server, &m.host))
                    .map(|m| (m.id, m.host.clone()))
                    .collect(),
                None => Vec::new(),
            };
            let keep: BTreeSet<u64> = targets.iter().map(|(id, _)| *id).collect();
            tasks.retain(|id, (host, task)| {
                let still = targets.iter().any(|(i, h)| i == id && h == host);
                if !still {
                    task.abort();
                }
                still
            });
            coord.forget_health(&keep);
            for (id, host) in targets {
                tasks.entry(id).or_insert_with(|| {
                    let task = tokio::spawn(heartbeat_member(
                        coord.clone(),
                        server.clone(),
                        id,
                        host.clone(),
                    ));
                    (host, task)
                });
            }
        }
        for (_, (_, task)) in tasks {
            task.abort();
        }
    });
}

async fn heartbeat_member(
    coord: Arc<ReplCoordinator>,
    server: Arc<dyn ReplHost>,
    id: u64,
    host: String,
) {
    loop {
        let Some(config) = coord.config() else { return };
        let interval =
            Duration::from_millis(config.settings.heartbeat_interval_millis.max(1) as u64);
        let timeout = Duration::from_secs(config.settings.heartbeat_timeout_secs.max(1) as u64);
        let cmd = request(&coord, &server, &config, false);
        let sent = Instant::now();
        let result = coord.transport.run_command(&host, cmd, timeout).await;
        let mut health = coord.get_health(id).unwrap_or_else(|| MemberHealth {
            host: host.clone(),
            ..Default::default()
        });
        health.last_heartbeat = Some(bson::DateTime::now());
        match result {
            Ok(reply) => {
                if !health.healthy {
                    health.up_since = Some(Instant::now());
                }
                health.healthy = true;
                health.last_ok = Some(Instant::now());
                health.ping_ms = sent.elapsed().as_millis() as i64;
                health.state = reply.get_i32("state").unwrap_or(0);
                health.config_version = reply
                    .get_i64("v")
                    .or_else(|_| reply.get_i32("v").map(i64::from))
                    .unwrap_or(-2);
                health.config_term = reply.get_i64("configTerm").unwrap_or(-1);
                health.optime = reply.get_document("opTime").ok().cloned();
                health.optime_date = reply.get_datetime("wallTime").ok().copied();
                health.message = String::new();
            }
            Err(e) => {
                health.healthy = false;
                health.up_since = None;
                health.message = e.message;
            }
        }
        coord.set_health(id, health);
        let elapsed = sent.elapsed();
        tokio::time::sleep(interval.saturating_sub(elapsed)).await;
    }
}
