//! Priority takeover. mongod's secondary that sees (through heartbeats) a primary of
//! lower priority, and is itself electable and caught up, runs for election after
//! `(rank + 1) x electionTimeoutMillis` (rank: the members of higher priority than it).
//! In openraft's model a follower cannot win while the others still hear the primary, so
//! the primary watches for such a member instead and, once the delay has passed with the
//! member caught up, hands over to it the way a stepdown does; the member logs mongod's
//! line for the takeover when it runs.

use super::{MemberState, Raft, ReplCoordinator, ReplHost, Successor};
use bson::Document;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Marks the replSetStepUp a primary sends for a priority takeover (ferrod-internal).
pub const PRIORITY_TAKEOVER_FIELD: &str = "priorityTakeover";
/// mongod's priorityTakeoverFreshnessWindowSeconds: how far behind the primary's optime a
/// member may be and still count as caught up for a takeover.
const FRESHNESS_MILLIS: i64 = 2000;
const TICK: Duration = Duration::from_millis(100);

struct Taker {
    id: u64,
    priority: f64,
    delay: Duration,
    successor: Successor,
}

pub(super) async fn run(repl: Arc<ReplCoordinator>, server: Arc<dyn ReplHost>) {
    let mut pending: Option<(u64, Instant)> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = server.shutdown().cancelled() => return,
        }
        let Some((raft, taker)) = higher_priority_member(&repl, &server) else {
            pending = None;
            continue;
        };
        match pending {
            Some((id, since)) if id == taker.id => {
                // Raft's vote needs the whole log: wait for it past the delay.
                if since.elapsed() < taker.delay || !taker.successor.caught_up {
                    continue;
                }
            }
            _ => {
                tracing::info!(target: "ELECTION", id = 7_000_050, ctx = "ReplCoord",
                    member = %taker.successor.host, priority = taker.priority,
                    delayMillis = taker.delay.as_millis() as i64,
                    "Scheduling a priority takeover by a member of higher priority");
                pending = Some((taker.id, Instant::now()));
                continue;
            }
        }
        pending = None;
        tracing::info!(target: "ELECTION", id = 7_000_051, ctx = "ReplCoord",
            member = %taker.successor.host, priority = taker.priority,
            "Stepping down for a priority takeover by a caught-up member of higher priority");
        // Out of elections until the taker has won (or, failing that, one timeout).
        let freeze = taker.delay.max(Duration::from_secs(1));
        repl.hand_to(&raft, freeze, Some(taker.successor), true)
            .await;
    }
}

/// On a primary: the healthy, electable secondary of the highest priority above this
/// primary's, whose heartbeat optime is within the freshness window of this primary's.
fn higher_priority_member(repl: &ReplCoordinator, server: &dyn ReplHost) -> Option<(Raft, Taker)> {
    if repl.my_state(server) != MemberState::Primary || repl.stepping_down.load(Ordering::Acquire) {
        return None;
    }
    let config = repl.config()?;
    let me = repl.self_member(server, &config)?;
    let raft = repl.raft()?;
    let metrics = raft.metrics().borrow().clone();
    let last = metrics.last_log_index.unwrap_or(0);
    let matched = metrics.replication.unwrap_or_default();
    let my_wall = repl.my_optime().1.timestamp_millis();
    let taker = {
        let health = repl.health.lock();
        config
            .members
            .iter()
            .filter(|m| m.id != me.id && m.is_electable() && m.priority > me.priority)
            .filter(|m| {
                health.get(&m.id).is_some_and(|h| {
                    h.healthy
                        && h.state == MemberState::Secondary.code()
                        && h.optime_date
                            .is_some_and(|d| my_wall - d.timestamp_millis() <= FRESHNESS_MILLIS)
                })
            })
            .max_by(|a, b| a.priority.total_cmp(&b.priority))?
            .clone()
    };
    let index = matched
        .get(&taker.id)
        .copied()
        .flatten()
        .map_or(0, |l| l.index);
    // mongod's ReplSetConfig::getPriorityTakeoverDelay.
    let rank = config
        .members
        .iter()
        .filter(|m| m.priority > taker.priority)
        .count() as u32;
    let timeout = Duration::from_millis(config.settings.election_timeout_millis.max(1) as u64);
    Some((
        raft,
        Taker {
            id: taker.id,
            priority: taker.priority,
            delay: timeout * (rank + 1),
            successor: Successor {
                host: taker.host.clone(),
                matched: index,
                caught_up: index >= last,
            },
        },
    ))
}

/// On the member asked to step up: mongod's log line for the election it now runs.
pub fn log_step_up_request(cmd: &Document) {
    if cmd.get_bool(PRIORITY_TAKEOVER_FIELD).unwrap_or(false) {
        tracing::info!(target: "ELECTION", id = 4615660, ctx = "ReplCoord",
            "Starting an election for a priority takeover");
    }
}
