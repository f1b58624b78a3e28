//! connPoolStats: counters of this server's outgoing pools (SPEC section 5).

use super::{cluster, Command, Handler, Invocation};
use crate::error::CommandResult;
use crate::pool::{Snapshot, StatsReport};
use crate::repl::{MemberState, MemberView};
use crate::wire::raw;
use bson::{doc, Bson, Document, RawDocumentBuf};

pub const CONN_POOL_STATS: Command = Command {
    privileges: &[cluster("connPoolStats")],
    ..Command::new(
        "connPoolStats",
        "stats about connections between servers in a replica set or sharded cluster.",
        Handler::SyncEncoded(conn_pool_stats),
    )
};

/// A count as mongod's `appendNumber` writes it: int32 when small, int64 otherwise.
pub fn number(n: u64) -> Bson {
    if fits_int32(n) {
        Bson::Int32(n as i32)
    } else {
        Bson::Int64(n as i64)
    }
}

/// Where [`number`] switches to int64 (mongod's appendNumber threshold).
fn fits_int32(n: u64) -> bool {
    n < (1 << 30)
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

/// The six values in the order of the field name lists; ferrod never leases
/// connections, so `leased` is always 0.
fn counter_values(s: &Snapshot) -> [u64; 6] {
    [
        s.in_use,
        s.available,
        0,
        s.created,
        s.refreshing,
        s.refreshed,
    ]
}

fn append_counters(d: &mut Document, names: &[&str; 6], s: &Snapshot) {
    for (name, value) in names.iter().zip(counter_values(s)) {
        d.insert(*name, number(value));
    }
}

/// The two counts before the totals: ferrod keeps no synchronous (DBClient)
/// connections, so they are 0 as on a mongod that never made any.
const CLIENT_CONNECTION_FIELDS: [&str; 2] = ["numClientConnections", "numAScopedConnections"];

/// The totals part, shared with serverStatus.
pub fn totals(t: &Snapshot) -> Document {
    let mut d = Document::new();
    for name in CLIENT_CONNECTION_FIELDS {
        d.insert(name, number(0));
    }
    append_counters(&mut d, &TOTAL_FIELDS, t);
    d
}

/// Appends BSON elements straight into one buffer. With 1,000 hosts the reply holds
/// 2,000 host documents; as `Document`s they cost over 20,000 allocations to build and
/// free, and one more copy to encode. Keys are `host:port` strings and fixed names,
/// which hold no NUL byte.
struct Writer {
    buf: Vec<u8>,
    /// Where each open document's length goes.
    open: Vec<usize>,
}

impl Writer {
    fn new(capacity: usize) -> Writer {
        let mut w = Writer {
            buf: Vec::with_capacity(capacity),
            open: Vec::new(),
        };
        w.begin();
        w
    }

    fn begin(&mut self) {
        self.open.push(raw::start_document(&mut self.buf));
    }

    fn begin_document(&mut self, key: &str) {
        self.open.push(raw::open_subdocument(key, &mut self.buf));
    }

    fn end_document(&mut self) {
        let at = self.open.pop().expect("a document is open");
        raw::finish_document(at, &mut self.buf);
    }

    /// As [`number`] encodes it (without making a `Bson` per counter).
    fn number(&mut self, key: &str, n: u64) {
        if fits_int32(n) {
            raw::write_int32(key.as_bytes(), n as i32, &mut self.buf);
        } else {
            raw::write_int64(key.as_bytes(), n as i64, &mut self.buf);
        }
    }

    fn counters(&mut self, names: &[&str; 6], s: &Snapshot) {
        for (name, value) in names.iter().zip(counter_values(s)) {
            self.number(name, value);
        }
    }

    fn host(&mut self, host: &str, s: &Snapshot) {
        self.begin_document(host);
        self.counters(&HOST_FIELDS, s);
        self.end_document();
    }

    fn document(&mut self, key: &str, d: &Document) {
        raw::write_document_element(key.as_bytes(), d, &mut self.buf);
    }

    fn finish(mut self) -> RawDocumentBuf {
        self.end_document();
        RawDocumentBuf::from_bytes(self.buf).expect("a complete document")
    }
}

/// Built straight from the counters each host pool publishes in atomics (no message to
/// any pool task, one pass over each named pool's host map) and written as BSON bytes.
fn conn_pool_stats(inv: &Invocation, _: &Document) -> CommandResult<RawDocumentBuf> {
    let report = inv.server.pools.stats();
    // The set this member belongs to, as its heartbeats see it; a standalone has none.
    let mut replica_sets = Document::new();
    if let Some((name, members)) = inv
        .server
        .repl
        .as_ref()
        .and_then(|r| r.member_views(&inv.server))
    {
        replica_sets.insert(name, replica_set(&members));
    }
    Ok(encode(&report, &replica_sets))
}

/// A set's `replicaSets` entry, as mongod's replica set monitor reports it.
fn replica_set(members: &[MemberView]) -> Document {
    let hosts: Vec<Bson> = members
        .iter()
        .map(|m| {
            Bson::Document(doc! {
                "addr": m.host.clone(),
                "ok": m.ok,
                "ismaster": m.ok && m.state == MemberState::Primary,
                "hidden": m.hidden,
                "secondary": m.ok && m.state == MemberState::Secondary,
                "pingTimeMillis": m.ping_ms as i32,
            })
        })
        .collect();
    doc! {"hosts": hosts}
}

/// The reply without `ok` and the cluster time, which the dispatcher appends.
fn encode(report: &StatsReport, replica_sets: &Document) -> RawDocumentBuf {
    let hosts = report.hosts();
    let host_count: usize = report.pools.iter().map(|p| p.hosts.len()).sum();
    // About 110 bytes per host document, listed once per pool and once under `hosts`.
    let mut w = Writer::new(512 + 128 * (host_count + hosts.len()));
    for name in CLIENT_CONNECTION_FIELDS {
        w.number(name, 0);
    }
    w.counters(&TOTAL_FIELDS, &report.total);
    w.begin_document("pools");
    let mut pool_hosts = 0..0;
    for pool in &report.pools {
        w.begin_document(&pool.name);
        w.counters(&POOL_FIELDS, &pool.total);
        pool_hosts.start = w.buf.len();
        for (host, s) in &pool.hosts {
            w.host(host, s);
        }
        pool_hosts.end = w.buf.len();
        w.end_document();
    }
    w.end_document();
    w.begin_document("hosts");
    if report.pools.len() == 1 {
        // One named pool: `hosts` lists the same host documents; copy their bytes.
        w.buf.extend_from_within(pool_hosts);
    } else {
        for (host, s) in hosts.iter() {
            w.host(host, s);
        }
    }
    w.end_document();
    w.document("replicaSets", replica_sets);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolStats;
    use std::sync::Arc;

    /// The reply as it was built before it was written as bytes: nested `Document`s.
    fn as_documents(report: &StatsReport, replica_sets: &Document) -> Document {
        let host_doc = |s: &Snapshot| {
            let mut d = Document::new();
            append_counters(&mut d, &HOST_FIELDS, s);
            d
        };
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
        for (host, s) in report.hosts().iter() {
            hosts.insert(&**host, host_doc(s));
        }
        reply.insert("hosts", hosts);
        reply.insert("replicaSets", replica_sets.clone());
        reply
    }

    fn snapshot(i: u64) -> Snapshot {
        Snapshot {
            in_use: i % 3,
            available: i % 5,
            refreshing: i % 2,
            created: 10 + i,
            // Past int32's range as mongod's appendNumber sees it: written as int64.
            refreshed: if i == 1 { 1 << 31 } else { i },
        }
    }

    fn check(report: &StatsReport, replica_sets: &Document) {
        let mut expected = Vec::new();
        as_documents(report, replica_sets)
            .to_writer(&mut expected)
            .unwrap();
        assert_eq!(encode(report, replica_sets).as_bytes(), &expected[..]);
    }

    #[test]
    fn encoded_reply_is_byte_for_byte_the_document_reply() {
        check(&StatsReport::default(), &Document::new());
        let hosts = |n: u64| -> Vec<(Arc<str>, Snapshot)> {
            (0..n)
                .map(|i| (format!("127.0.0.1:{}", 20000 + i).into(), snapshot(i)))
                .collect()
        };
        let pool = |name: &str, n: u64| {
            let hosts = hosts(n);
            let mut total = Snapshot::default();
            for (_, s) in &hosts {
                total += *s;
            }
            PoolStats {
                name: name.into(),
                total,
                hosts,
            }
        };
        let (a, b) = (pool("NetworkInterfaceTL-ReplNetwork", 40), pool("other", 3));
        let mut total = a.total;
        total += b.total;
        let one = StatsReport {
            total: a.total,
            pools: vec![a.clone()],
        };
        check(&one, &Document::new());
        let two = StatsReport {
            total,
            pools: vec![a, b],
        };
        let replica_sets = bson::doc! {"rs0": {"hosts": [{"addr": "a:1", "ok": true}]}};
        check(&two, &replica_sets);
    }
}
