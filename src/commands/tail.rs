//! Tailable cursors on capped collections (`find` with `tailable`, `awaitData`): the
//! cursor stays open at the end of the collection and remembers the insertion position
//! it reached; getMore returns the matching documents inserted since, and with
//! `awaitData` waits up to its `maxTimeMS` (default 1 s, as mongod) for an insert.

use super::doc_query::{Filter, Projection, SortSpec};
use super::documents as d;
use super::Invocation;
use crate::error::{bad_value, Code, CommandError, CommandResult};
use crate::storage::cursors::Cursor;
use crate::storage::{capped, CollectionInfo, Scan, ScanError};
use bson::Document;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What a tailable cursor keeps between getMores.
struct Tail {
    info: CollectionInfo,
    filter: Filter,
    projection: Option<Projection>,
    /// The insertion position of the last document read.
    resume: Option<Vec<u8>>,
    await_data: bool,
}

/// Whether `find` asks for a tailable cursor (checked as mongod's query parser does).
pub fn requested(cmd: &Document, sort: &SortSpec) -> CommandResult<bool> {
    let tailable = d::bool_arg(cmd, "find", "tailable", false)?;
    let await_data = d::bool_arg(cmd, "find", "awaitData", false)?;
    if await_data && !tailable {
        return Err(CommandError::new(
            Code::FailedToParse,
            "Cannot set 'awaitData' without also setting 'tailable'",
        ));
    }
    if tailable && (!sort.is_empty() || sort.natural() == Some(-1)) {
        return Err(bad_value(
            "cannot use tailable option with a sort other than {$natural: 1}",
        ));
    }
    Ok(tailable)
}

/// The matching documents after `resume`, in insertion order, and the position reached.
async fn read(
    inv: &Invocation,
    info: &CollectionInfo,
    filter: &Filter,
    resume: Option<Vec<u8>>,
) -> CommandResult<(Vec<Document>, Option<Vec<u8>>)> {
    let storage = inv.server.storage().clone();
    let (info, filter) = (info.clone(), filter.clone());
    crate::blocking::io(move || {
        let mut out = Vec::new();
        let last = storage
            .scan(&info, resume.as_deref(), |doc| {
                if filter.matches(&doc) {
                    out.push(doc);
                }
                Ok(Scan::Continue)
            })
            .map_err(|e| match e {
                ScanError::Storage(e) => d::storage_error(e),
                ScanError::Command(e) => e,
            })?;
        Ok((out, last.or(resume)))
    })
    .await
}

fn project(docs: Vec<Document>, tail: &Tail) -> CommandResult<VecDeque<Document>> {
    match &tail.projection {
        None => Ok(docs.into()),
        Some(p) => docs
            .iter()
            .map(|doc| p.apply(doc, tail.filter.details(doc).as_ref()))
            .collect(),
    }
}

/// find with `tailable`: a cursor that stays open on a capped collection.
pub async fn find(
    inv: Invocation,
    cmd: Document,
    ns: String,
    filter: Filter,
    projection: Option<Projection>,
    batch_size: Option<i64>,
) -> CommandResult {
    d::check_readable(&inv, &cmd)?;
    let Some(info) = d::collection(inv.server.storage(), &ns)? else {
        return Ok(d::cursor_reply(&ns, 0, Vec::new(), true));
    };
    if !capped::is_capped(&info.options) {
        return Err(bad_value(format!(
            "error processing query: ns={ns} tailable cursor requested on non capped collection"
        )));
    }
    let (docs, resume) = read(&inv, &info, &filter, None).await?;
    let tail = Tail {
        info,
        filter,
        projection,
        resume,
        await_data: d::bool_arg(&cmd, "find", "awaitData", false)?,
    };
    let mut docs = project(docs, &tail)?;
    let first = batch_size.map_or(d::DEFAULT_BATCH_SIZE, |n| n as usize);
    let batch = d::take_batch(&mut docs, Some(first));
    let mut cursor = Cursor::new(ns.clone(), docs, false, d::user_of(&inv));
    cursor.tail = Some(Box::new(tail));
    let id = inv.server.cursors.open(cursor);
    Ok(d::cursor_reply(&ns, id, batch, true))
}

/// getMore's part for a tailable cursor with nothing left: reads what was inserted
/// since, waiting (awaitData) until an insert or `maxTimeMS`. Other cursors: refuses a
/// `maxTimeMS`, as mongod does.
pub async fn refill(inv: &Invocation, cmd: &Document, cursor: &mut Cursor) -> CommandResult<()> {
    let tail = cursor.tail.as_mut().and_then(|t| t.downcast_mut::<Tail>());
    let max_time = cmd.get("maxTimeMS").and_then(crate::error::whole_number);
    let Some(tail) = tail else {
        if max_time.is_some() {
            return Err(bad_value(
                "cannot set maxTimeMS on getMore command for a non-awaitData cursor",
            ));
        }
        return Ok(());
    };
    if max_time.is_some() && !tail.await_data {
        return Err(bad_value(
            "cannot set maxTimeMS on getMore command for a non-awaitData cursor",
        ));
    }
    if !cursor.docs.is_empty() {
        return Ok(());
    }
    let wait = Duration::from_millis(max_time.unwrap_or(1000).max(0) as u64);
    let deadline = Instant::now() + wait;
    let storage = inv.server.storage().clone();
    loop {
        // Registered before the read, so an insert committed after it wakes us.
        let changed = storage.changed.notified();
        let (docs, resume) = read(inv, &tail.info, &tail.filter, tail.resume.take()).await?;
        tail.resume = resume;
        if !docs.is_empty() {
            cursor.docs = project(docs, tail)?;
            return Ok(());
        }
        if !tail.await_data || inv.op.cancel_requested() {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline.into(), changed)
            .await
            .is_err()
        {
            return Ok(());
        }
    }
}
