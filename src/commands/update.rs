//! update: each statement's query selects documents (the first, or all with `multi`),
//! the update gives their new images; `upsert` inserts when nothing matches. Each
//! statement is committed on its own (as mongod applies them one by one), so a later
//! statement sees what an earlier one wrote.

use super::doc_query::{Filter, Update};
use super::documents as d;
use super::insert::{check_storable, prepare};
use super::{database, BoxFuture, Command, Handler, Invocation};
use crate::error::{type_name, Code, CommandError, CommandResult};
use crate::storage::DocWrite;
use bson::{doc, Bson, Document};

pub const UPDATE: Command = Command {
    api_version_1: true,
    privileges: &[database("update")],
    ..Command::new(
        "update",
        "update documents",
        Handler::Async(|inv, cmd| Box::pin(update(inv, cmd)) as BoxFuture),
    )
};

/// What one update statement did.
#[derive(Default)]
pub struct Outcome {
    pub matched: i32,
    pub modified: i32,
    pub upserted: Option<Bson>,
    /// The document before and after (findAndModify's `value`).
    pub before: Option<Document>,
    pub after: Option<Document>,
}

/// Works out the writes of one update of the documents `targets` (already selected),
/// or of an upsert when there are none.
pub fn plan(
    ns: &str,
    filter: &Filter,
    update: &Update,
    targets: Vec<Document>,
    upsert: bool,
    writes: &mut Vec<DocWrite>,
) -> CommandResult<Outcome> {
    let mut outcome = Outcome::default();
    for doc in targets {
        let details = filter.details(&doc);
        let (new, modified) = update.apply(&doc, details.as_ref(), false)?;
        check_storable(&new)?;
        if d::bson_size(&new) > d::MAX_DOCUMENT_SIZE {
            return Err(CommandError::new(
                Code::BSONObjectTooLarge,
                "Resulting document after update is larger than 16777216",
            ));
        }
        outcome.matched += 1;
        if modified {
            outcome.modified += 1;
            writes.push(DocWrite::Put {
                ns: ns.to_owned(),
                doc: new.clone(),
            });
        }
        outcome.before = Some(doc);
        outcome.after = Some(new);
    }
    if outcome.matched == 0 && upsert {
        let new = prepare(&update.upsert_document(filter)?)?;
        outcome.upserted = new.get("_id").cloned();
        outcome.after = Some(new.clone());
        writes.push(DocWrite::Insert {
            ns: ns.to_owned(),
            doc: new,
        });
    }
    Ok(outcome)
}

async fn update(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(
        &cmd,
        "update",
        &["updates", "ordered", "let", "bypassDocumentValidation"],
    )?;
    let (_, ns) = d::namespace(&inv, &cmd)?;
    let ordered = d::bool_arg(&cmd, "update", "ordered", true)?;
    let stmts = super::delete::statements(&cmd, "update", "updates")?;
    for stmt in &stmts {
        d::check_statement_fields(
            stmt,
            "update.updates",
            &[
                "q",
                "u",
                "upsert",
                "multi",
                "arrayFilters",
                "collation",
                "hint",
                "c",
            ],
        )?;
        d::check_collation(stmt.get("collation"))?;
    }
    d::check_writable(&inv)?;
    if let Some(reply) = super::local_db::refused_write_reply(&inv, &ns, true) {
        return Ok(reply);
    }
    let storage = inv.server.storage().clone();
    let _guard = storage.lock_writes().await;
    let mut retry = super::retryable::Retry::begin(&inv, &cmd)?;
    let (mut n, mut n_modified) = (0, 0);
    let mut upserted = Vec::new();
    let mut errors = Vec::new();
    let mut concern_error = None;
    for (index, stmt) in stmts.iter().enumerate() {
        let done = retry.executed(index).map(|r| (recorded_outcome(&r), None));
        let result = match done {
            Some(done) => Ok(done),
            None => async {
            let vars = d::let_vars(&cmd, "update", d::doc_arg(stmt, "update.updates", "c")?.as_ref())?;
            let query = match stmt.get("q") {
                Some(Bson::Document(q)) => q.clone(),
                Some(other) => return Err(CommandError::new(Code::TypeMismatch, format!("BSON field 'update.updates.q' is the wrong type '{}', expected type 'object'", type_name(other)))),
                None => return Err(crate::error::missing_field("update.updates.q")),
            };
            let u = stmt.get("u").ok_or_else(|| crate::error::missing_field("update.updates.u"))?;
            let array_filters = array_filters(stmt, "update.updates")?;
            let update = Update::parse(u, array_filters.as_deref(), &vars)?;
            let multi = d::bool_arg(stmt, "update.updates", "multi", false)?;
            let upsert = d::bool_arg(stmt, "update.updates", "upsert", false)?;
            retry.check_retryable(!multi, "multi=true")?;
            if multi && update.is_replacement() {
                return Err(CommandError::new(Code::FailedToParse, "multi update is not supported for replacement-style update"));
            }
            let filter = Filter::parse_with_vars(&query, &vars)?;
            let mut writes = Vec::new();
            let info = d::collection_for_write(&storage, &ns, &mut writes)?;
            let targets = match &info {
                Some(info) => {
                    let hint = stmt.get("hint").cloned();
                    d::select(&inv, info, &filter, (!multi).then_some(1), hint).await?
                }
                None => Vec::new(),
            };
            let outcome = plan(&ns, &filter, &update, targets, upsert, &mut writes)?;
            super::validation::WriteChecks::new(&cmd, info.as_ref())?.writes(&storage, info.as_ref(), &writes)?;
            if info.is_none() && outcome.upserted.is_none() {
                writes.clear();
            }
            retry.ran(index, outcome_record(&outcome));
            retry.record(&mut writes);
            let e = d::commit(&inv, &cmd, writes).await?.map_err(|e| refused(&ns, e))?;
            Ok((outcome, e))
        }
        .await,
        };
        match result {
            Ok((outcome, e)) => {
                n += outcome.matched;
                n_modified += outcome.modified;
                if let Some(id) = outcome.upserted {
                    n += 1;
                    upserted.push(doc! {"index": index as i32, "_id": id});
                }
                concern_error = e.or(concern_error);
            }
            Err(e) => {
                errors.push(d::write_error(index, &e, None));
                if ordered {
                    break;
                }
            }
        }
    }
    crate::op_counters::update_done(stmts.len(), upserted.len(), n_modified as u64);
    let mut reply = doc! {"n": n, "nModified": n_modified};
    if !upserted.is_empty() {
        reply.insert("upserted", upserted);
    }
    if !errors.is_empty() {
        reply.insert("writeErrors", errors);
    }
    retry.finish(&mut reply);
    if let Some(e) = concern_error {
        reply.insert("writeConcernError", e);
    }
    Ok(reply)
}

/// What a retry of an update statement answers (see `retryable`).
pub fn outcome_record(outcome: &Outcome) -> Document {
    let mut r = doc! {"matched": outcome.matched, "modified": outcome.modified};
    if let Some(id) = &outcome.upserted {
        r.insert("upserted", id.clone());
    }
    r
}

fn recorded_outcome(r: &Document) -> Outcome {
    Outcome {
        matched: r.get_i32("matched").unwrap_or(0),
        modified: r.get_i32("modified").unwrap_or(0),
        upserted: r.get("upserted").cloned(),
        ..Outcome::default()
    }
}

/// `arrayFilters`: an array of documents.
pub fn array_filters(stmt: &Document, prefix: &str) -> CommandResult<Option<Vec<Document>>> {
    match stmt.get("arrayFilters") {
        None => Ok(None),
        Some(Bson::Array(items)) => items
            .iter()
            .map(|i| match i {
                Bson::Document(d) => Ok(d.clone()),
                other => Err(CommandError::new(
                    Code::TypeMismatch,
                    format!("BSON field '{prefix}.arrayFilters' is the wrong type '{}', expected type 'object'", type_name(other)),
                )),
            })
            .collect::<CommandResult<Vec<_>>>()
            .map(Some),
        Some(other) => Err(CommandError::new(
            Code::TypeMismatch,
            format!("BSON field '{prefix}.arrayFilters' is the wrong type '{}', expected type 'array'", type_name(other)),
        )),
    }
}

/// The store refused a write worked out under the write lock: only an upsert whose
/// `_id` exists gets here.
pub fn refused(ns: &str, e: crate::catalog::CatalogError) -> CommandError {
    match e {
        crate::catalog::CatalogError::Duplicate(what) => CommandError::new(
            Code::DuplicateKey,
            format!("E11000 duplicate key error collection: {ns} index: _id_ dup key: {what}"),
        ),
        other => d::storage_error(other),
    }
}
