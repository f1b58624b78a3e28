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

/// The six counters of a snapshot, under mongod's names for each level: `inUse`... for a
/// host, `poolInUse`... for a named pool, `totalInUse`... for the server.
const HOST_FIELDS: [&str; 6] = [
    "inUse",
    "available",
    "leased",
    "created",
    "refreshing",
    "refreshed",
];
const POOL_FIELDS: [&str; 6] = [
    "poolInUse",
    "poolAvailable",
    "poolLeased",
    "poolCreated",
    "poolRefreshing",
    "poolRefreshed",
];
const TOTAL_FIELDS: [&str; 6] = [
    "totalInUse",
    "totalAvailable",
    "totalLeased",
    "totalCreated",
    "totalRefreshing",
    "totalRefreshed",
];

fn append_counters(d: &mut Document, names: &[&str; 6], s: &Snapshot) {
    // ferrod never leases connections, so `leased` is always 0.
    let values = [
        s.in_use,
        s.available,
        0,
        s.created,
        s.refreshing,
        s.refreshed,
    ];
    for (name, value) in names.iter().zip(values) {
        d.insert(*name, number(value));
    }
}

fn host_doc(s: &Snapshot) -> Document {
    let mut d = Document::new();
    append_counters(&mut d, &HOST_FIELDS, s);
    d
}

/// The totals part, shared with serverStatus. ferrod keeps no synchronous (DBClient)
/// connections, so those two counts are 0 as on a mongod that never made any.
pub fn totals(t: &Snapshot) -> Document {
    let mut d = Document::new();
    d.insert("numClientConnections", number(0));
    d.insert("numAScopedConnections", number(0));
    append_counters(&mut d, &TOTAL_FIELDS, t);
    d
}

/// Built straight from the counters each host pool publishes in atomics: no message to
/// any pool task, one pass over each named pool's host map.
fn conn_pool_stats(inv: &Invocation, _: &Document) -> CommandResult {
    let report = inv.server.pools.stats();
    let mut reply = totals(&report.total);
    let mut pools = Document::new();
    for pool_stats in &report.pools {
        let mut pool = Document::new();
        append_counters(&mut pool, &POOL_FIELDS, &pool_stats.total);
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
