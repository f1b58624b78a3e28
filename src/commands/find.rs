//! find: the documents a filter matches, sorted, skipped, limited and projected, as a
//! cursor (`firstBatch`; the rest through getMore).

use super::doc_query::{Projection, SortSpec};
use super::documents as d;
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::CommandResult;
use crate::storage::cursors::Cursor;
use bson::Document;
use std::collections::VecDeque;

pub const FIND: Command = Command {
    api_version_1: true,
    privileges: &[database("find")],
    ..Command::new(
        "find",
        "query for documents",
        Handler::Async(|inv, cmd| Box::pin(find(inv, cmd)) as BoxFuture),
    )
};

const FIELDS: &[&str] = &[
    "filter",
    "sort",
    "projection",
    "skip",
    "limit",
    "batchSize",
    "singleBatch",
    "hint",
    "noCursorTimeout",
    "allowDiskUse",
    "allowPartialResults",
    "let",
    "collation",
    "min",
    "max",
    "returnKey",
    "showRecordId",
    "tailable",
    "awaitData",
    "oplogReplay",
    "readOnce",
];

async fn find(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "find", FIELDS)?;
    super::find_options::refuse_unsupported(&cmd)?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    let query = d::doc_arg(&cmd, "find", "filter")?.unwrap_or_default();
    let let_vars = d::let_vars(&cmd, "find", None)?;
    let filter = super::doc_query::Filter::parse_with_vars(&query, &let_vars)?;
    let sort = SortSpec::parse(&d::doc_arg(&cmd, "find", "sort")?.unwrap_or_default())?;
    let projection = d::doc_arg(&cmd, "find", "projection")?
        .map(|p| Projection::parse(&p, &query))
        .transpose()?;
    let skip = d::count_arg(&cmd, "find", "skip")?.unwrap_or(0) as usize;
    let limit = d::count_arg(&cmd, "find", "limit")?.filter(|l| *l > 0);
    let batch_size = d::count_arg(&cmd, "find", "batchSize")?;
    let single_batch = d::bool_arg(&cmd, "find", "singleBatch", false)?;
    let no_timeout = d::bool_arg(&cmd, "find", "noCursorTimeout", false)?;
    super::local_db::check_readable(&inv, &cmd, &ns)?;
    let read_concern = super::read_concern::prepare(&inv, &cmd, "find").await?;
    d::reap_cursors(&inv);

    if super::tail::requested(&cmd, &sort)? {
        return super::tail::find(inv, cmd, ns, filter, projection, batch_size).await;
    }
    // Without a sort the scan can stop once skip + limit documents matched.
    let backward = sort.is_empty() && sort.natural() == Some(-1);
    let stop_after = match (sort.is_empty() && !backward, limit) {
        (true, Some(l)) => Some(skip + l as usize),
        _ => None,
    };
    let mut docs = match super::local_db::select(&inv, &ns, &filter, backward, stop_after).await? {
        Some(docs) => docs,
        None => {
            let storage = inv.server.storage().clone();
            let Some(info) = d::collection(&storage, &ns)? else {
                return Ok(d::cursor_reply(&ns, 0, Vec::new(), true));
            };
            let hint = cmd.get("hint").cloned();
            let mut docs = d::select(&inv, &info, &filter, stop_after, hint).await?;
            if backward {
                // `$natural: -1`: storage order (insertion order when capped) reversed.
                docs.reverse();
            }
            docs
        }
    };
    if !sort.is_empty() {
        docs.sort_by(|a, b| sort.compare(a, b));
        super::sort_memory::check(&inv, &cmd, &docs, limit.map(|l| skip + l as usize))?;
    }
    let mut docs: VecDeque<Document> = docs
        .into_iter()
        .skip(skip)
        .take(limit.map_or(usize::MAX, |l| l as usize))
        .collect();
    if let Some(p) = &projection {
        docs = docs
            .iter()
            .map(|doc| p.apply(doc, filter.details(doc).as_ref()))
            .collect::<CommandResult<_>>()?;
    }
    super::read_concern::confirm(&inv, read_concern.as_ref()).await?;
    let first = batch_size.map_or(d::DEFAULT_BATCH_SIZE, |n| n as usize);
    let batch = d::take_batch(&mut docs, Some(first));
    crate::op_counters::find_done(inv.op.opid, batch.len());
    let id = if docs.is_empty() || single_batch {
        0
    } else {
        inv.server.cursors.open(
            Cursor::new(ns.clone(), docs, no_timeout, d::user_of(&inv))
                .in_session(d::lsid_of(&inv)),
        )
    };
    Ok(d::cursor_reply(&ns, id, batch, true))
}
