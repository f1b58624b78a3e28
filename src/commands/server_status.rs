//! serverStatus: process, connection, network and opcounter figures.

use super::{cluster, Command, Handler, Invocation};
use crate::error::CommandResult;
use crate::state::{ServerState, Stats};
use bson::{doc, Document};

pub const SERVER_STATUS: Command = Command {
    privileges: &[cluster("serverStatus")],
    ..Command::new(
        "serverStatus",
        "returns lots of administrative server statistics",
        Handler::Sync(server_status),
    )
};

/// Resident and virtual size of this process in KiB, from /proc.
pub fn memory_kib() -> (i64, i64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmSize:"))
}

/// `network`, with mongod's `compression` section: one entry per configured compressor,
/// left out when compression is disabled.
fn network(server: &ServerState) -> Document {
    let stats = &server.stats;
    let mut network = doc! {
        "bytesIn": Stats::get(&stats.bytes_in) as i64,
        "bytesOut": Stats::get(&stats.bytes_out) as i64,
        "numRequests": Stats::get(&stats.num_requests) as i64,
    };
    if !server.config.compressors.is_empty() {
        let mut compression = Document::new();
        for &compressor in &server.config.compressors {
            let c = stats.compression(compressor);
            compression.insert(
                compressor.name(),
                doc! {
                    "compressor": {
                        "bytesIn": Stats::get(&c.compressor_bytes_in) as i64,
                        "bytesOut": Stats::get(&c.compressor_bytes_out) as i64,
                    },
                    "decompressor": {
                        "bytesIn": Stats::get(&c.decompressor_bytes_in) as i64,
                        "bytesOut": Stats::get(&c.decompressor_bytes_out) as i64,
                    },
                },
            );
        }
        network.insert("compression", compression);
    }
    network
}

fn server_status(inv: &Invocation, _: &Document) -> CommandResult {
    let server = &inv.server;
    let stats = &server.stats;
    let uptime = server.started.elapsed();
    let current = Stats::get(&stats.connections_current) as i64;
    let (resident_kib, virtual_kib) = memory_kib();
    Ok(doc! {
        "host": server.host_and_port(),
        "version": crate::MONGODB_VERSION,
        "process": "ferrod",
        "pid": std::process::id() as i64,
        "uptime": uptime.as_secs_f64().floor(),
        "uptimeMillis": uptime.as_millis() as i64,
        "uptimeEstimate": uptime.as_secs() as i64,
        "localTime": bson::DateTime::now(),
        "connections": {
            "current": current as i32,
            "available": (server.config.max_conns as i64 - current).max(0) as i32,
            "totalCreated": Stats::get(&stats.connections_total_created) as i32,
            "rejected": Stats::get(&stats.connections_rejected) as i32,
            "active": Stats::get(&stats.connections_active) as i32,
        },
        "network": network(server),
        "opcounters": {
            "insert": 0_i64,
            "query": Stats::get(&stats.op_query) as i64,
            "update": 0_i64,
            "delete": 0_i64,
            "getmore": 0_i64,
            "command": Stats::get(&stats.op_command) as i64,
        },
        // Outgoing pool totals, under the name mongod's diagnostic data gives them.
        "connPoolStats": super::conn_pool_stats::totals(&server.pools.totals()),
        "mem": {
            "bits": 64,
            "resident": (resident_kib / 1024) as i32,
            "virtual": (virtual_kib / 1024) as i32,
            "supported": true,
            "residentKiB": resident_kib,
        },
    })
}
