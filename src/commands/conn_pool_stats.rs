//! connPoolStats: counters of this server's outgoing pools (SPEC section 5).

use super::{cluster, Command, Handler, Invocation};
use crate::error::CommandResult;
use crate::pool::Snapshot;
use bson::{Bson, Document};

pub const CONN_POOL_STATS: Command = Command {
    privileges: &[cluster("connPoolStats")],
    ..Command::new(
        "connPoolStats",
        "stats about connections between servers in a replica set or sharded cluster.",
        Handler::Sync(conn_pool_stats),
    )
};

/// A count as mongod's `appendNumber` writes it: int32 when small, int64 otherwise.
pub fn number(n: u64) -> Bson {
    if n < (1 << 30) {
        Bson::Int32(n as i32)
    } else {
        Bson::Int64(n as i64)
    }
}

fn host_doc(s: &Snapshot) -> Document {
    let mut d = Document::new();
    d.insert("inUse", number(s.in_use));
    d.insert("available", number(s.available));
    d.insert("leased", number(0));
    d.insert("created", number(s.created));
    d.insert("refreshing", number(s.refreshing));
    d.insert("refreshed", number(s.refreshed));
    d
}

/// The totals part, shared with serverStatus. ferrod keeps no synchronous (DBClient)
/// connections, so those two counts are 0 as on a mongod that never made any.
pub fn totals(t: &Snapshot) -> Document {
    let mut d = Document::new();
    d.insert("numClientConnections", number(0));
    d.insert("numAScopedConnections", number(0));
    d.insert("totalInUse", number(t.in_use));
    d.insert("totalAvailable", number(t.available));
    d.insert("totalLeased", number(0));
    d.insert("totalCreated", number(t.created));
    d.insert("totalRefreshing", number(t.refreshing));
    d.insert("totalRefreshed", number(t.refreshed));
    d
}

/// Built straight from the counters each host pool publishes in atomics: no message to
/// any pool task, one pass over each named pool's host map.
fn conn_pool_stats(inv: &Invocation, _: &Document) -> CommandResult {
    let report = inv.server.pools.stats();
    let mut reply = totals(&report.total);
    let mut pools = Document::new();
    for pool_stats in &report.pools {
        let t = &pool_stats.total;
        let mut pool = Document::new();
        pool.insert("poolInUse", number(t.in_use));
        pool.insert("poolAvailable", number(t.available));
        pool.insert("poolLeased", number(0));
        pool.insert("poolCreated", number(t.created));
        pool.insert("poolRefreshing", number(t.refreshing));
        pool.insert("poolRefreshed", number(t.refreshed));
        for (host, s) in &pool_stats.hosts {
            pool.insert(&**host, host_doc(s));
        }
        pools.insert(&*pool_stats.name, pool);
    }
    reply.insert("pools", pools);
    let mut hosts = Document::new();
    for (host, s) in &report.hosts {
        hosts.insert(&**host, host_doc(s));
    }
    reply.insert("hosts", hosts);
    // The set this member belongs to, as its heartbeats see it; a standalone has none.
    let mut replica_sets = Document::new();
    if let Some((name, view)) = inv
        .server
        .repl
        .as_ref()
        .and_then(|r| r.pool_stats_view(&inv.server))
    {
        replica_sets.insert(name, view);
    }
    reply.insert("replicaSets", replica_sets);
    Ok(reply)
}
