//! serverStatus: process, connection, network and opcounter figures, and the sections
//! monitoring tools read (repl, metrics, asserts, extra_info, globalLock,
//! transportSecurity) in mongod 7.0's shape. Where ferrod has no such figure (no storage
//! engine, no global lock, no TLS) the section carries mongod's zeros.

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
    let mut reply = doc! {
        "host": server.host_and_port(),
        "version": crate::version::MONGODB_VERSION,
        // Tools (mongostat, exporters) switch on this field; ferrod serves as a mongod.
        "process": "mongod",
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
        "opcounters": opcounters(server),
        // Outgoing pool totals, under the name mongod's diagnostic data gives them.
        "connPoolStats": super::conn_pool_stats::totals(&server.pools.totals()),
        "mem": {
            "bits": 64,
            "resident": (resident_kib / 1024) as i32,
            "virtual": (virtual_kib / 1024) as i32,
            "supported": true,
            "residentKiB": resident_kib,
        },
        "asserts": {
            "regular": 0,
            "warning": 0,
            "msg": 0,
            // mongod counts a user assertion for each command that fails.
            "user": stats.commands.failed() as i32,
            "tripwire": 0,
            "rollovers": 0,
        },
        "extra_info": extra_info(),
        "globalLock": {
            "totalTime": uptime.as_micros() as i64,
            // ferrod takes no global lock: nothing ever queues for it or holds it.
            "currentQueue": {"total": 0, "readers": 0, "writers": 0},
            "activeClients": {"total": 0, "readers": 0, "writers": 0},
        },
        // Connections by TLS version (rustls has no 1.0 or 1.1).
        "transportSecurity": server.tls.transport_security(),
        "metrics": metrics(server),
    };
    // A set member's section is its hello's replica set fields plus the rollback id;
    // a standalone has none. ferrod never rolls back (Raft), so rbid stays at mongod's
    // first value, 1.
    if let Some(repl) = &server.repl {
        let mut section = super::hello::repl_fields(&repl.hello_view(server), false);
        // mongod lists its primary-only services here; ferrod runs none.
        section.insert("primaryOnlyServices", Document::new());
        section.insert("rbid", 1);
        reply.insert("repl", section);
        let [insert, update, delete, command] = crate::op_counters::opcounters_repl();
        reply.insert(
            "opcountersRepl",
            doc! {"insert": insert, "query": 0_i64, "update": update, "delete": delete, "getmore": 0_i64, "command": command},
        );
    }
    Ok(reply)
}

/// `opcounters`: the document commands' counts (`crate::op_counters`), OP_QUERY
/// messages in `query`, and in `command` every other command (mongod counts find,
/// getMore, insert, update and delete only in their own counters).
fn opcounters(server: &ServerState) -> Document {
    let stats = &server.stats;
    let [insert, query, update, delete, getmore, not_commands] = crate::op_counters::opcounters();
    doc! {
        "insert": insert,
        "query": query + Stats::get(&stats.op_query) as i64,
        "update": update,
        "delete": delete,
        "getmore": getmore,
        "command": (Stats::get(&stats.op_command) as i64 - not_commands).max(0),
    }
}

/// `metrics`: per-command counts, documents, documents examined and cursors are real;
/// the storage and oplog-fetcher counters mongod keeps have no counterpart here and
/// stay 0.
fn metrics(server: &ServerState) -> Document {
    let zero = 0_i64;
    let [deleted, inserted, returned, updated] = crate::op_counters::documents();
    let (scanned_objects, timed_out) = crate::op_counters::executor();
    let open = server.cursors.len() as i64;
    doc! {
        "commands": server.stats.commands.to_document(server),
        "cursor": {
            "moreThanOneBatch": zero,
            "timedOut": timed_out,
            "totalOpened": zero,
            "open": {"noTimeout": zero, "pinned": zero, "total": open},
        },
        "document": {"deleted": deleted, "inserted": inserted, "returned": returned, "updated": updated},
        "getLastError": {
            "default": {"unsatisfiable": zero, "wtimeouts": zero},
            "wtime": {"num": zero, "totalMillis": zero},
            "wtimeouts": zero,
        },
        "operation": {"scanAndOrder": zero, "writeConflicts": zero},
        "queryExecutor": {
            // No secondary index yet: no index keys are examined.
            "scanned": zero,
            "scannedObjects": scanned_objects,
            "collectionScans": {"nonTailable": zero, "total": zero},
        },
        "repl": {
            "apply": {"batches": {"num": zero, "totalMillis": zero}, "ops": zero},
            "buffer": {"count": zero, "maxSizeBytes": zero, "sizeBytes": zero},
            "network": {
                "bytes": zero,
                "getmores": {"num": zero, "totalMillis": zero},
                "ops": zero,
                "readersCreated": zero,
            },
        },
        "ttl": {"deletedDocuments": zero, "passes": zero},
    }
}

/// `extra_info`: on Linux the figures mongod takes from getrusage, read from /proc.
fn extra_info() -> Document {
    let mut info = doc! {"note": "fields vary by platform"};
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    // /proc/self/stat after "pid (comm) ": field n of proc(5) is at n - 3.
    let stat = read("/proc/self/stat");
    let fields: Vec<i64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    // utime and stime are in clock ticks, which Linux fixes at 100 per second for /proc.
    const MICROS_PER_TICK: i64 = 10_000;
    let status = read("/proc/self/status");
    let io = read("/proc/self/io");
    let value = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    info.insert("user_time_us", field(14) * MICROS_PER_TICK);
    info.insert("system_time_us", field(15) * MICROS_PER_TICK);
    info.insert("maximum_resident_set_kb", value(&status, "VmHWM:"));
    // getrusage counts blocks of 512 bytes.
    info.insert("input_blocks", value(&io, "read_bytes:") / 512);
    info.insert("output_blocks", value(&io, "write_bytes:") / 512);
    info.insert("page_reclaims", field(10));
    info.insert("page_faults", field(12));
    info.insert(
        "voluntary_context_switches",
        value(&status, "voluntary_ctxt_switches:"),
    );
    info.insert(
        "involuntary_context_switches",
        value(&status, "nonvoluntary_ctxt_switches:"),
    );
    info
}
