//! Test-only commands (need `--setParameter enableTestCommands=1`, as mongod's do) that
//! drive the outgoing pools from a client, so tests can exercise them without a
//! replica set.
//!
//! - `{_ferrodPoolCheckout: "<host:port>", pool?: <name>, count?: <n>, holdMs?: <ms>,
//!   timeoutMS?: <ms>, command?: <document>}`: checks out `count` connections at once,
//!   holds them `holdMs`, then runs `command` (with `$db: "admin"`) on each if given, and
//!   returns them, replying once the pool has taken them back:
//!   `{checkedOut, generations, replies}`, or the first error.
//! - `{_ferrodRuntimeStats: 1}`: `{aliveTasks, hostPools, queuedCheckouts}`: live tokio
//!   tasks and host pool tasks, for leak checks, and checkouts waiting for a connection,
//!   so tests can wait for one to queue.
//!
//! With authorization on they need the privileges of what they imitate. A checkout opens
//! the server's own member-to-member connections (logged in with the keyFile as
//! `__system`) to any host:port and runs any command there, which is what the cluster
//! `internal` action guards in mongod (replSetHeartbeat, the Raft RPCs); runtime stats
//! are a piece of serverStatus.

use super::{cluster, BoxFuture, Command, Handler, Invocation};
use crate::error::{bad_value, CommandResult};
use crate::pool::{HostAndPort, REPL_POOL};
use bson::{doc, Bson, Document};
use std::time::Duration;

pub const POOL_CHECKOUT: Command = Command {
    admin_only: true,
    test_only: true,
    privileges: &[cluster("internal")],
    ..Command::new("_ferrodPoolCheckout", "", Handler::Async(checkout))
};

pub const RUNTIME_STATS: Command = Command {
    test_only: true,
    privileges: &[cluster("serverStatus")],
    ..Command::new("_ferrodRuntimeStats", "", Handler::Sync(runtime_stats))
};

/// A non-negative whole number argument, `default` when absent.
fn count_arg(cmd: &Document, field: &str, default: u64) -> CommandResult<u64> {
    let n = match cmd.get(field) {
        None => default as i64,
        Some(Bson::Int32(n)) => *n as i64,
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(d)) => *d as i64,
        Some(other) => return Err(bad_value(format!("{field} must be a number, not {other}"))),
    };
    Ok(n.max(0) as u64)
}

fn millis(cmd: &Document, field: &str, default: u64) -> CommandResult<Duration> {
    count_arg(cmd, field, default).map(Duration::from_millis)
}

fn checkout(inv: Invocation, cmd: Document) -> BoxFuture {
    Box::pin(async move {
        let host: HostAndPort = cmd
            .get_str("_ferrodPoolCheckout")
            .map_err(|_| bad_value("_ferrodPoolCheckout takes a \"host:port\" string"))?
            .parse()
            .map_err(bad_value)?;
        let pool = cmd.get_str("pool").unwrap_or(REPL_POOL).to_owned();
        let count = count_arg(&cmd, "count", 1)?.min(10_000) as usize;
        let hold = millis(&cmd, "holdMs", 0)?;
        let timeout = millis(&cmd, "timeoutMS", 20_000)?;
        let command = cmd.get_document("command").ok().cloned();
        let pools = &inv.server.pools;
        let results =
            futures::future::join_all((0..count).map(|_| pools.checkout(&pool, &host, timeout)))
                .await;
        let mut conns = Vec::with_capacity(count);
        let mut first_error = None;
        for result in results {
            match result {
                Ok(conn) => conns.push(conn),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_none() && !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
        let mut replies = Vec::new();
        if let (None, Some(command)) = (&first_error, &command) {
            let mut command = command.clone();
            command.insert("$db", "admin");
            let runs = conns
                .iter_mut()
                .map(|c| c.run_command(command.clone(), timeout));
            for result in futures::future::join_all(runs).await {
                match result {
                    Ok(reply) => replies.push(Bson::Document(reply)),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        let generations: Vec<Bson> = conns
            .iter()
            .map(|c| Bson::Int64(c.generation() as i64))
            .collect();
        let checked_out = conns.len() as i32;
        drop(conns);
        // Reply once the pool has taken them back, so the caller's next connPoolStats
        // sees them returned.
        pools.sync(&pool, &host).await;
        if let Some(e) = first_error {
            return Err(e.into());
        }
        Ok(doc! {"checkedOut": checked_out, "generations": generations, "replies": replies})
    })
}

fn runtime_stats(inv: &Invocation, _: &Document) -> CommandResult {
    let alive = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    Ok(doc! {
        "aliveTasks": alive as i64,
        "hostPools": inv.server.pools.host_pool_count() as i64,
        "queuedCheckouts": inv.server.pools.queued_checkouts() as i64,
    })
}
