//! The collections of `local` that the replication log provides on a replica-set member:
//! `local.oplog.rs` (mongod's oplog, derived from the applied log entries that still
//! exist: see `repl::oplog`) and `local.system.replset` (the config document). The
//! document commands read them here with a line or two; user writes to the oplog are
//! refused as mongod refuses them when replication is on.

use super::documents as d;
use super::Invocation;
use crate::error::{Code, CommandError, CommandResult};
use crate::repl::oplog::{OplogEntry, OplogOp};
use crate::storage::DocWrite;
use bson::{doc, Bson, Document};
use std::collections::HashMap;
use std::sync::OnceLock;

pub const OPLOG_NS: &str = "local.oplog.rs";
const REPLSET_NS: &str = "local.system.replset";

/// Whether `ns` is one of the collections served here (on a set or not: a standalone
/// has neither, and reads them as missing collections).
pub fn is_virtual(ns: &str) -> bool {
    ns == OPLOG_NS || ns == REPLSET_NS
}

/// Calls `each` on the documents of the virtual collection `ns` in natural order
/// (`reverse`: newest first) until it answers false. Reads the log: off the async
/// workers. Checks for interruption (maxTimeMS, killOp) as it goes.
pub fn scan(
    inv: &Invocation,
    ns: &str,
    reverse: bool,
    each: &mut dyn FnMut(Document) -> CommandResult<bool>,
) -> CommandResult<()> {
    let Some(repl) = &inv.server.repl else {
        return Ok(());
    };
    let cancel = inv.op.cancellation();
    if ns == REPLSET_NS {
        if let Some(config) = repl.config() {
            each(config.to_document())?;
        }
        return Ok(());
    }
    let storage = inv.server.storage().clone();
    let mut uuids: HashMap<String, Option<Bson>> = HashMap::new();
    let mut uuid_of = |ns: &str| -> Option<Bson> {
        uuids
            .entry(ns.to_owned())
            .or_insert_with(|| {
                d::collection(&storage, ns)
                    .ok()
                    .flatten()
                    .map(|i| i.uuid_bson())
            })
            .clone()
    };
    repl.read_oplog(reverse, &mut |entry| {
        if cancel.is_cancelled() {
            return Err(CommandError::new(
                Code::Interrupted,
                "operation was interrupted",
            ));
        }
        each(entry_document(&entry, &mut uuid_of))
    })
}

fn uuid_from(s: &str) -> Bson {
    match bson::Uuid::parse_str(s) {
        Ok(u) => Bson::Binary(bson::Binary::from_uuid(u)),
        Err(_) => Bson::String(s.to_owned()),
    }
}

/// One write as mongod's oplog records it: `{op, ns, ui, o, o2}`.
fn write_document(write: &DocWrite, uuid_of: &mut dyn FnMut(&str) -> Option<Bson>) -> Document {
    let split = |ns: &str| -> (String, String) {
        let (db, coll) = ns.split_once('.').unwrap_or((ns, ""));
        (db.to_owned(), coll.to_owned())
    };
    let mut out = Document::new();
    match write {
        DocWrite::CreateCollection { ns, uuid, options } => {
            let (db, coll) = split(ns);
            let mut o = doc! {"create": coll};
            o.extend(options.clone());
            o.insert("idIndex", crate::storage::id_index_spec());
            out.insert("op", "c");
            out.insert("ns", format!("{db}.$cmd"));
            out.insert("ui", uuid_from(uuid));
            out.insert("o", o);
        }
        DocWrite::DropCollection { ns } => {
            let (db, coll) = split(ns);
            out.insert("op", "c");
            out.insert("ns", format!("{db}.$cmd"));
            out.insert("o", doc! {"drop": coll});
        }
        DocWrite::Insert { ns, doc } | DocWrite::Put { ns, doc } => {
            let insert = matches!(write, DocWrite::Insert { .. });
            out.insert("op", if insert { "i" } else { "u" });
            out.insert("ns", ns.as_str());
            if let Some(ui) = uuid_of(ns) {
                out.insert("ui", ui);
            }
            out.insert("o", doc.clone());
            if !insert {
                let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
                out.insert("o2", doc! {"_id": id});
            }
        }
        DocWrite::Delete { ns, id } => {
            out.insert("op", "d");
            out.insert("ns", ns.as_str());
            if let Some(ui) = uuid_of(ns) {
                out.insert("ui", ui);
            }
            out.insert("o", id.clone());
        }
        DocWrite::SetOptions { ns, options } => {
            let (db, coll) = split(ns);
            let mut o = doc! {"collMod": coll};
            o.extend(options.clone());
            command_entry(&mut out, &db, uuid_of(ns), o);
        }
        DocWrite::Rename {
            ns,
            to,
            drop_target,
        } => {
            let (db, _) = split(ns);
            let o = doc! {"renameCollection": ns.as_str(), "to": to.as_str(), "stayTemp": false, "dropTarget": *drop_target};
            command_entry(&mut out, &db, uuid_of(ns), o);
        }
        DocWrite::CreateIndexes { ns, specs } => {
            // mongod logs one entry per index; a batch of several is one entry here.
            let (db, coll) = split(ns);
            let mut o = doc! {"createIndexes": coll};
            o.extend(specs.clone());
            command_entry(&mut out, &db, uuid_of(ns), o);
        }
        DocWrite::DropIndexes { ns, names } => {
            let (db, coll) = split(ns);
            let o = doc! {"dropIndexes": coll, "index": names.clone()};
            command_entry(&mut out, &db, uuid_of(ns), o);
        }
        DocWrite::SessionTxn {
            lsid, txn_number, ..
        } => {
            // mongod derives its session table from the oplog; ferrod stores it beside the
            // write, and shows that update as mongod shows config.transactions writes.
            let id = lsid.get("id").cloned().unwrap_or(Bson::Null);
            out.insert("op", "u");
            out.insert("ns", "config.transactions");
            out.insert("o", doc! {"_id": {"id": id.clone()}, "txnNum": *txn_number});
            out.insert("o2", doc! {"_id": {"id": id}});
        }
    }
    out
}

/// A command entry (`op: "c"` on `<db>.$cmd`).
fn command_entry(out: &mut Document, db: &str, ui: Option<Bson>, o: Document) {
    out.insert("op", "c");
    out.insert("ns", format!("{db}.$cmd"));
    if let Some(ui) = ui {
        out.insert("ui", ui);
    }
    out.insert("o", o);
}

/// An applied log entry as an oplog entry: one write as itself, a batch of several as
/// one `applyOps` command (as mongod records its batched writes), the "new primary"
/// no-op as `n`; then `ts`, `t`, `v` and `wall` (the seconds of `ts`, so that every
/// member shows the same entry).
fn entry_document(entry: &OplogEntry, uuid_of: &mut dyn FnMut(&str) -> Option<Bson>) -> Document {
    let mut out = match &entry.op {
        OplogOp::Noop => doc! {"op": "n", "ns": "", "o": {"msg": "new primary"}},
        OplogOp::Documents(all) => {
            // A retryable write's session record rides with the write: as in mongod, its
            // `lsid`, `txnNumber` and `stmtId` are fields of the write's entry.
            let session = all.iter().find_map(|w| match w {
                DocWrite::SessionTxn {
                    lsid,
                    txn_number,
                    stmts,
                    ..
                } => Some((lsid, *txn_number, stmts)),
                _ => None,
            });
            let writes: Vec<&DocWrite> = all
                .iter()
                .filter(|w| !matches!(w, DocWrite::SessionTxn { .. }))
                .collect();
            let mut out = match writes.as_slice() {
                [] => doc! {"op": "n", "ns": "", "o": {"msg": "retryable write without changes"}},
                [write] => write_document(write, uuid_of),
                writes => {
                    let ops: Vec<Bson> = writes
                        .iter()
                        .map(|w| Bson::Document(write_document(w, uuid_of)))
                        .collect();
                    doc! {"op": "c", "ns": "admin.$cmd", "o": {"applyOps": ops}}
                }
            };
            if let Some((lsid, txn_number, stmts)) = session {
                out.insert("lsid", lsid.clone());
                out.insert("txnNumber", txn_number);
                if let (1, Some(Ok(stmt))) =
                    (writes.len(), stmts.keys().next().map(|k| k.parse::<i32>()))
                {
                    out.insert("stmtId", stmt);
                }
            }
            out
        }
    };
    let ts = crate::clock::unpack(entry.time);
    out.insert("ts", ts);
    out.insert("t", entry.term as i64);
    out.insert("v", 2i64);
    out.insert("wall", bson::DateTime::from_millis(ts.time as i64 * 1000));
    out
}

/// The documents of `ns` that `filter` matches, in natural order (`reverse`: newest
/// first), at most `stop_after`; None when `ns` is not served here.
pub async fn select(
    inv: &Invocation,
    ns: &str,
    filter: &super::doc_query::Filter,
    reverse: bool,
    stop_after: Option<usize>,
) -> CommandResult<Option<Vec<Document>>> {
    if !is_virtual(ns) {
        return Ok(None);
    }
    let (inv, ns, filter) = (inv.clone(), ns.to_owned(), filter.clone());
    crate::blocking::io(move || {
        let mut out = Vec::new();
        if stop_after == Some(0) {
            return Ok(Some(out));
        }
        scan(&inv, &ns, reverse, &mut |doc| {
            if filter.matches(&doc) {
                out.push(doc);
            }
            Ok(stop_after.is_none_or(|n| out.len() < n))
        })?;
        Ok(Some(out))
    })
    .await
}

/// Every document of `ns` (for a pipeline); None when `ns` is not served here.
pub fn read_all(inv: &Invocation, ns: &str) -> CommandResult<Option<Vec<Document>>> {
    if !is_virtual(ns) {
        return Ok(None);
    }
    let mut out = Vec::new();
    scan(inv, ns, false, &mut |doc| {
        out.push(doc);
        Ok(true)
    })?;
    Ok(Some(out))
}

/// The oplog's entries and their BSON bytes.
fn oplog_size(inv: &Invocation) -> CommandResult<(i64, i64)> {
    let (mut count, mut size) = (0i64, 0i64);
    scan(inv, OPLOG_NS, false, &mut |doc| {
        count += 1;
        size += d::bson_size(&doc) as i64;
        Ok(true)
    })?;
    Ok((count, size))
}

/// The oplog's `maxSize`. ferrod bounds its log by entries (a snapshot every
/// `replLogEntriesPerSnapshot`), not bytes: it reports the larger of what the view holds
/// and what the log's file takes on disk.
fn oplog_max_size(inv: &Invocation, size: i64) -> i64 {
    let file = inv.server.config.dbpath.join(crate::repl::oplog::LOG_FILE);
    let on_disk = std::fs::metadata(file).map_or(0, |m| m.len() as i64);
    size.max(on_disk).max(1)
}

/// `$collStats` of a collection served here (None: not one of them, or a standalone).
pub fn coll_stats(
    inv: &Invocation,
    ns: &str,
    spec: &Document,
    mut out: Document,
) -> CommandResult<Option<Document>> {
    if !is_virtual(ns) || inv.server.repl.is_none() {
        return Ok(None);
    }
    let (count, size) = if ns == OPLOG_NS {
        oplog_size(inv)?
    } else {
        let n = read_all(inv, ns)?.unwrap_or_default();
        (
            n.len() as i64,
            n.iter().map(|d| d::bson_size(d) as i64).sum(),
        )
    };
    if spec.contains_key("storageStats") {
        let mut stats = doc! {
            "size": size,
            "count": count,
            "avgObjSize": if count > 0 { size / count } else { 0 },
            "storageSize": size,
            "nindexes": if ns == OPLOG_NS { 0 } else { 1 },
            "capped": ns == OPLOG_NS,
        };
        if ns == OPLOG_NS {
            stats.insert("max", i64::MAX);
            stats.insert("maxSize", oplog_max_size(inv, size));
        }
        out.insert("storageStats", stats);
    }
    if spec.contains_key("count") {
        out.insert("count", count);
    }
    Ok(Some(out))
}

/// A uuid for each served collection, the same for the life of the process.
fn uuid_for(ns: &str) -> Bson {
    static UUIDS: OnceLock<(bson::Uuid, bson::Uuid)> = OnceLock::new();
    let (oplog, replset) = UUIDS.get_or_init(|| (bson::Uuid::new(), bson::Uuid::new()));
    let u = if ns == OPLOG_NS { oplog } else { replset };
    Bson::Binary(bson::Binary::from_uuid(*u))
}

/// listCollections' entries for `local` on a replica-set member (full form: the
/// caller filters on it and then applies nameOnly).
pub fn list_entries(inv: &Invocation) -> Vec<(Document, Document)> {
    if inv.db != "local" || inv.server.repl.is_none() {
        return Vec::new();
    }
    let max = oplog_max_size(inv, 0);
    [
        (OPLOG_NS, doc! {"capped": true, "size": max}),
        (REPLSET_NS, Document::new()),
    ]
    .into_iter()
    .map(|(ns, options)| {
        let name = ns.trim_start_matches("local.");
        let mut full = doc! {
            "name": name,
            "type": "collection",
            "options": options,
            "info": {"readOnly": false, "uuid": uuid_for(ns)},
        };
        if ns == REPLSET_NS {
            full.insert("idIndex", crate::storage::id_index_spec());
        }
        (full, doc! {"name": name, "type": "collection"})
    })
    .collect()
}

/// A user write to the oplog of a replica-set member: mongod refuses it with
/// InvalidNamespace (a standalone has no oplog here to protect).
pub fn refused_write(inv: &Invocation, ns: &str) -> Option<CommandError> {
    (ns == OPLOG_NS && inv.server.repl.is_some())
        .then(|| CommandError::new(Code::InvalidNamespace, format!("cannot write to '{ns}'")))
}

/// The reply of insert, update or delete refused by [`refused_write`]: the first
/// statement's write error.
pub fn refused_write_reply(inv: &Invocation, ns: &str, update: bool) -> Option<Document> {
    let e = refused_write(inv, ns)?;
    let mut reply = doc! {"n": 0};
    if update {
        reply.insert("nModified", 0);
    }
    reply.insert(
        "writeErrors",
        vec![Bson::Document(d::write_error(0, &e, None))],
    );
    Some(reply)
}

/// The secondary-read check of the document commands, except for `local`, which every
/// member serves without secondaryOk (mongod: the local database is always writable
/// here, so always readable).
pub fn check_readable(inv: &Invocation, cmd: &Document, ns: &str) -> CommandResult<()> {
    if ns.starts_with("local.") {
        return Ok(());
    }
    d::check_readable(inv, cmd)
}
