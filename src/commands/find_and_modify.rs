//! findAndModify: updates or removes one document (the first by `sort`) and returns it,
//! before or after (`new`), with `lastErrorObject`.

use super::doc_query::{Projection, SortSpec, Update};
use super::documents as d;
use super::update::{plan, refused};
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use crate::storage::DocWrite;
use bson::{doc, Bson, Document};

pub const FIND_AND_MODIFY: Command = Command {
    api_version_1: true,
    aliases: &["findandmodify"],
    privileges: &[database("find"), database("update")],
    ..Command::new(
        "findAndModify",
        "{ findAndModify: \"collection\", query: {processed:false}, update: {$set: {processed:true}}, new: true}\n{ findAndModify: \"collection\", query: {processed:false}, remove: true, sort: {priority:-1}}\nEither update or remove is required, all other fields have default values.\nOutput is in the \"value\" field\n",
        Handler::Async(|inv, cmd| Box::pin(find_and_modify(inv, cmd)) as BoxFuture),
    )
};

const FIELDS: &[&str] = &[
    "query",
    "sort",
    "remove",
    "update",
    "new",
    "fields",
    "upsert",
    "bypassDocumentValidation",
    "arrayFilters",
    "collation",
    "hint",
    "let",
];

fn failed(msg: &str) -> CommandError {
    CommandError::new(Code::FailedToParse, msg)
}

async fn find_and_modify(inv: Invocation, cmd: Document) -> CommandResult {
    let name = "findAndModify";
    d::check_fields(&cmd, name, FIELDS)?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    let query = d::doc_arg(&cmd, name, "query")?.unwrap_or_default();
    d::check_collation(cmd.get("collation"))?;
    let vars = d::let_vars(&cmd, name, None)?;
    let filter = super::doc_query::Filter::parse_with_vars(&query, &vars)?;
    let sort = SortSpec::parse(&d::doc_arg(&cmd, name, "sort")?.unwrap_or_default())?;
    let fields = d::doc_arg(&cmd, name, "fields")?
        .map(|p| Projection::parse(&p, &query))
        .transpose()?;
    let remove = d::bool_arg(&cmd, name, "remove", false)?;
    let new = d::bool_arg(&cmd, name, "new", false)?;
    let upsert = d::bool_arg(&cmd, name, "upsert", false)?;
    let array_filters = super::update::array_filters(&cmd, name)?;
    let update = cmd
        .get("update")
        .map(|u| Update::parse(u, array_filters.as_deref(), &vars))
        .transpose()?;
    match (&update, remove) {
        (Some(_), true) => return Err(failed("Cannot specify both an update and remove=true")),
        (None, false) => return Err(failed("Either an update or remove=true must be specified")),
        (None, true) if upsert => return Err(failed("Cannot specify both upsert=true and remove=true ")),
        (None, true) if new => {
            return Err(failed("Cannot specify both new=true and remove=true; 'remove' always returns the deleted document"))
        }
        _ => {}
    }
    d::check_writable(&inv)?;
    if let Some(e) = super::local_db::refused_write(&inv, &ns) {
        return Err(e);
    }
    let storage = inv.server.storage().clone();
    let _guard = storage.lock_writes().await;
    let mut retry = super::retryable::Retry::begin(&inv, &cmd)?;
    if let Some(mut done) = retry.executed(0) {
        // mongod answers a retried findAndModify from its record, with `retriedStmtId`.
        done.insert("retriedStmtId", 0);
        return Ok(done);
    }
    let mut writes = Vec::new();
    let info = d::collection_for_write(&storage, &ns, &mut writes)?;
    let mut targets = match &info {
        Some(info) => {
            let hint = cmd.get("hint").cloned();
            d::select(&inv, info, &filter, sort.is_empty().then_some(1), hint).await?
        }
        None => Vec::new(),
    };
    if !sort.is_empty() {
        targets.sort_by(|a, b| sort.compare(a, b));
        targets.truncate(1);
    }
    let (last_error, value) = match update {
        None => {
            writes.clear();
            match targets.pop() {
                None => (doc! {"n": 0}, None),
                Some(doc) => {
                    let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
                    writes.push(DocWrite::Delete {
                        ns: ns.clone(),
                        id: doc! {"_id": id},
                    });
                    (doc! {"n": 1}, Some(doc))
                }
            }
        }
        Some(update) => {
            let outcome = plan(&ns, &filter, &update, targets, upsert, &mut writes)?;
            super::validation::WriteChecks::new(&cmd, info.as_ref())?.writes(
                &storage,
                info.as_ref(),
                &writes,
            )?;
            if info.is_none() && outcome.upserted.is_none() {
                writes.clear();
            }
            let mut last = doc! {
                "n": outcome.matched + i32::from(outcome.upserted.is_some()),
                "updatedExisting": outcome.matched > 0,
            };
            if let Some(id) = &outcome.upserted {
                last.insert("upserted", id.clone());
            }
            let value = if new { outcome.after } else { outcome.before };
            (last, value)
        }
    };
    let value = match (value, &fields) {
        (Some(v), Some(p)) => Bson::Document(p.apply(&v, filter.details(&v).as_ref())?),
        (Some(v), None) => Bson::Document(v),
        (None, _) => Bson::Null,
    };
    crate::op_counters::find_and_modify_done(remove, &last_error);
    let mut reply = doc! {"lastErrorObject": last_error, "value": value};
    retry.ran(0, reply.clone());
    retry.record(&mut writes);
    let concern_error = d::commit(&inv, &cmd, writes)
        .await?
        .map_err(|e| refused(&ns, e))?;
    if let Some(e) = concern_error {
        reply.insert("writeConcernError", e);
    }
    Ok(reply)
}
