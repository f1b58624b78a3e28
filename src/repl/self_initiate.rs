//! Self-initiation (`--initialMembers` / `replication.initialMembers`): the members of a
//! new set initiate it themselves once they can all reach each other, so that a
//! docker-compose cluster comes up ready without an `rs.initiate` script.
//!
//! Exactly once and safe when every member starts at the same moment: only the first
//! member of the list initiates, and replSetInitiate's own quorum check refuses while any
//! member is unreachable or already has data. A member that was ever part of a set (it
//! has a config or Raft state, also after a restart) never initiates again.
//!
//! With `MONGO_INITDB_ROOT_USERNAME` and `MONGO_INITDB_ROOT_PASSWORD` in the environment
//! (as the official mongo image takes them), whichever member is primary while the set
//! has no user creates that user with the `root` role, through the replicated catalog.

use super::{MemberState, ReplCoordinator, ReplHost};
use crate::error::Code;
use bson::{doc, Bson, Document};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RETRY: Duration = Duration::from_millis(500);
/// How often a still-failing attempt is logged.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub const ROOT_USER_ENV: &str = "MONGO_INITDB_ROOT_USERNAME";
pub const ROOT_PASSWORD_ENV: &str = "MONGO_INITDB_ROOT_PASSWORD";

/// The config a self-initiated set starts with: members `_id` 0.. in the given order.
pub fn initial_config(set_name: &str, members: &[String]) -> Document {
    let members: Vec<Bson> = members
        .iter()
        .enumerate()
        .map(|(i, host)| Bson::Document(doc! {"_id": i as i32, "host": host}))
        .collect();
    doc! {"_id": set_name, "version": 1, "members": members}
}

fn root_user_from_env() -> Option<(String, String)> {
    let user = std::env::var(ROOT_USER_ENV)
        .ok()
        .filter(|u| !u.is_empty())?;
    let password = std::env::var(ROOT_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty())?;
    Some((user, password))
}

pub(super) async fn run(
    repl: Arc<ReplCoordinator>,
    server: Arc<dyn ReplHost>,
    members: Vec<String>,
) {
    if !members.iter().any(|h| repl.is_self(&server, h)) {
        tracing::error!(target: "REPL", id = 7_000_001, ctx = "SelfInitiate",
            initialMembers = ?members, me = %server.host_and_port(),
            "This node is not one of initialMembers; it will not initiate the set");
        return;
    }
    let initiator = repl.is_self(&server, &members[0]);
    let config = initial_config(&repl.set_name, &members);
    let root = root_user_from_env();
    let mut last_log: Option<Instant> = None;
    // The first attempt at once; later ones after RETRY, or as soon as the topology
    // changes (this node becoming primary is what the root user waits for).
    let mut seen = repl.topology_counter();
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = repl.wait_topology_change(seen, RETRY) => {}
                _ = server.shutdown().cancelled() => return,
            }
        }
        first = false;
        seen = repl.topology_counter();
        if repl.config().is_none() {
            if !initiator || repl.has_raft() {
                continue;
            }
            match repl.initiate(&server, Some(&config)).await {
                Ok(_) => {
                    tracing::info!(target: "REPL", id = 7_000_002, ctx = "SelfInitiate",
                        initialMembers = ?members, "Initiated the replica set from initialMembers");
                }
                Err(e) if e.code == Code::AlreadyInitialized => {}
                Err(e) => {
                    if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                        last_log = Some(Instant::now());
                        tracing::info!(target: "REPL", id = 7_000_003, ctx = "SelfInitiate",
                            error = %e.message, "Waiting for every initial member before initiating");
                    }
                }
            }
            continue;
        }
        let Some((user, password)) = &root else {
            return;
        };
        if !server
            .catalog()
            .is_empty(crate::catalog::Collection::Users)
            .unwrap_or(false)
        {
            return;
        }
        if repl.my_state(&server) != MemberState::Primary {
            continue;
        }
        match server
            .clone()
            .create_first_user(user.clone(), password.clone())
            .await
        {
            Ok(()) => {
                tracing::info!(target: "REPL", id = 7_000_004, ctx = "SelfInitiate",
                    user = %user, "Created the first user from the environment");
                return;
            }
            Err(e) => {
                tracing::info!(target: "REPL", id = 7_000_005, ctx = "SelfInitiate",
                    error = %e, "Could not create the first user yet");
            }
        }
    }
}
