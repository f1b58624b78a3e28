//! connPoolStats: counters of this server's outgoing pools (SPEC section 5).

use super::{cluster, Command, Handler, Invocation};
use crate::error::CommandResult;
use crate::pool::{Snapshot, StatsReport};
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
pub fn totals(report: &StatsReport) -> Document {
    let t = &report.total;
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

fn conn_pool_stats(inv: &Invocation, _: &Document) -> CommandResult {
    let report = inv.server.pools.stats();
    let mut reply = totals(&report);
    let mut pools = Document::new();
    for (name, (pool_total, hosts)) in &report.pools {
        let mut pool = Document::new();
        pool.insert("poolInUse", number(pool_total.in_use));
        pool.insert("poolAvailable", number(pool_total.available));
        pool.insert("poolLeased", number(0));
        pool.insert("poolCreated", number(pool_total.created));
        pool.insert("poolRefreshing", number(pool_total.refreshing));
        pool.insert("poolRefreshed", number(pool_total.refreshed));
        for (host, s) in hosts {
            pool.insert(host.clone(), host_doc(s));
        }
        pools.insert(name.clone(), pool);
    }
    reply.insert("pools", pools);
    let hosts: Document = report
        .hosts
        .iter()
        .map(|(host, s)| (host.clone(), Bson::Document(host_doc(s))))
        .collect();
    reply.insert("hosts", hosts);
    // Replica-set monitors (filled in once ferrod tracks sets as a client) - none yet.
    reply.insert("replicaSets", Document::new());
    Ok(reply)
}
