//! aggregate: parses the command (mongod's AggregateCommandRequest fields), runs the
//! pipeline with `query::pipeline` on the blocking pool and answers a cursor. The
//! outside world the stages need (`$currentOp`'s operations, `$collStats`,
//! `$indexStats`, `$lookup`'s foreign side, `$out`/`$merge`'s target) comes from
//! [`Host`]. Until collections are stored, a collection has no documents: a pipeline on
//! one answers an empty cursor, as mongod does for a collection that does not exist.

use super::{cluster, current_op, BoxFuture, Command, Handler, Invocation};
use crate::auth;
use crate::error::{
    missing_field, type_mismatch, unknown_field, Code, CommandError, CommandResult,
};
use crate::query::pipeline::{Options, Pipeline, PipelineHost};
use bson::{doc, Bson, Document};
use std::time::{Duration, Instant};

pub const AGGREGATE: Command = Command {
    api_version_1: true,
    ..Command::new(
        "aggregate",
        "Runs the sharded aggregation command. See http://dochub.mongodb.org/core/aggregation for more details.",
        Handler::Async(aggregate),
    )
};

const CURRENT_OP_OPTIONS: &[&str] = &[
    "allUsers",
    "idleConnections",
    "idleCursors",
    "idleSessions",
    "localOps",
    "truncateOps",
    "backtrace",
    "targetAllNodes",
];

/// The command's own fields (mongod's aggregate IDL); generic arguments aside.
const FIELDS: &[&str] = &[
    "aggregate",
    "pipeline",
    "explain",
    "allowDiskUse",
    "cursor",
    "bypassDocumentValidation",
    "hint",
    "collation",
    "let",
    "isMapReduceCommand",
    "collectionUUID",
];

/// Stages that run without a collection (`aggregate: 1`).
const COLLECTIONLESS: &[&str] = &["$currentOp", "$documents", "$listLocalSessions"];

fn failed_to_parse(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::FailedToParse, msg)
}

fn aggregate(inv: Invocation, cmd: Document) -> BoxFuture {
    // A pipeline may scan and sort a whole collection: off the async workers.
    Box::pin(async move { crate::blocking::cpu(move || run(&inv, &cmd)).await })
}

/// `allowDiskUse` and the like: a bool, or a number read as one (mongod's optionalBool).
fn bool_field(cmd: &Document, name: &str) -> CommandResult<Option<bool>> {
    match cmd.get(name) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Boolean(b)) => Ok(Some(*b)),
        Some(v @ (Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))) => Ok(Some(
            crate::query::order::compare(v, &Bson::Int32(0)).is_ne(),
        )),
        Some(other) => Err(type_mismatch(&format!("aggregate.{name}"), other, "bool")),
    }
}

fn run(inv: &Invocation, cmd: &Document) -> CommandResult {
    let collection =
        match cmd.get("aggregate") {
            Some(Bson::String(c)) => Some(c.clone()),
            Some(v) if crate::error::whole_number(v) == Some(1) => None,
            _ => return Err(failed_to_parse(
                "Invalid command format: the 'aggregate' field must specify a collection name or 1",
            )),
        };
    for name in cmd.keys() {
        if !FIELDS.contains(&name.as_str()) && !super::is_generic_argument(name) {
            return Err(unknown_field(&format!("aggregate.{name}")));
        }
    }
    let stages = match cmd.get("pipeline") {
        None => return Err(missing_field("aggregate.pipeline")),
        Some(Bson::Array(stages)) => stages,
        Some(other) => return Err(type_mismatch("aggregate.pipeline", other, "array")),
    };
    let explain = bool_field(cmd, "explain")?.unwrap_or(false);
    let batch_size =
        match cmd.get("cursor") {
            Some(Bson::Document(c)) => cursor_batch_size(c)?,
            Some(other) => return Err(type_mismatch("aggregate.cursor", other, "object")),
            None if explain => None,
            None => return Err(failed_to_parse(
                "The 'cursor' option is required, except for aggregate with the explain argument",
            )),
        };
    // The whole result goes in the first batch until the cursor registry lands.
    let _ = batch_size;
    // Stages outside API Version 1 are refused under apiStrict, as mongod does.
    if cmd.get_bool("apiStrict") == Ok(true) {
        for s in stages {
            if let Some(Bson::Document(_)) = s.as_document().and_then(|d| d.get("$currentOp")) {
                return Err(CommandError::new(
                    Code::APIStrictError,
                    "$currentOp is not allowed with 'apiStrict: true' in API Version 1",
                ));
            }
        }
    }
    let mut opts = Options::new(&inv.db, collection.as_deref());
    opts.vars
        .insert("NOW", Bson::DateTime(bson::DateTime::now()));
    // mongod 7.0's allowDiskUseByDefault is true: only an explicit false enforces the limit.
    opts.allow_disk_use = bool_field(cmd, "allowDiskUse")?.unwrap_or(true);
    match cmd.get("let") {
        None => {}
        Some(Bson::Document(lets)) => {
            for (name, value) in lets {
                let e = crate::query::pipeline::lang::Expr::parse(value)?;
                let v = e.evaluate(&Document::new(), &opts.vars)?;
                opts.vars.insert(name.clone(), v);
            }
        }
        Some(other) => return Err(type_mismatch("aggregate.let", other, "object")),
    }
    let pipeline = Pipeline::parse(stages, &opts)?;
    if collection.is_none() {
        let first = stages
            .first()
            .and_then(Bson::as_document)
            .and_then(|d| d.keys().next().cloned());
        match first {
            Some(name) if COLLECTIONLESS.contains(&name.as_str()) => {}
            name => {
                return Err(CommandError::new(
                    Code::InvalidNamespace,
                    format!(
                        "{{aggregate: 1}} is not valid for '{}'; a collection is required.",
                        name.unwrap_or_default()
                    ),
                ))
            }
        }
    }
    let ns = match &collection {
        Some(c) => format!("{}.{c}", inv.db),
        None => format!("{}.$cmd.aggregate", inv.db),
    };
    if explain {
        let names: Vec<Bson> = pipeline
            .stage_names()
            .into_iter()
            .map(|n| Bson::Document(doc! {n: {}}))
            .collect();
        return Ok(doc! {
            "explainVersion": "1",
            "stages": names,
            "command": cmd.clone(),
        });
    }
    let host = Host {
        inv,
        collection: collection.clone(),
        deadline: max_time(cmd).map(|d| inv.op.started + d),
    };
    // No collection is stored yet: the pipeline reads no documents.
    let batch = pipeline.run(std::iter::empty(), &host, &opts)?;
    Ok(doc! {"cursor": {"firstBatch": batch, "id": 0i64, "ns": ns}})
}

fn cursor_batch_size(cursor: &Document) -> CommandResult<Option<i64>> {
    let mut size = None;
    for (k, v) in cursor {
        if k != "batchSize" {
            return Err(unknown_field(&format!("aggregate.cursor.{k}")));
        }
        let Some(n) = crate::error::whole_number(v) else {
            return Err(type_mismatch("aggregate.cursor.batchSize", v, "int"));
        };
        if n < 0 {
            return Err(CommandError::new(
                Code::Location51024,
                format!("BSON field 'batchSize' value must be >= 0, actual value '{n}'"),
            ));
        }
        size = Some(n);
    }
    Ok(size)
}

/// The command's maxTimeMS (checked by the dispatcher already).
fn max_time(cmd: &Document) -> Option<Duration> {
    cmd.get("maxTimeMS")
        .and_then(crate::error::whole_number)
        .filter(|ms| *ms > 0)
        .map(|ms| Duration::from_millis(ms as u64))
}

/// What the pipeline reaches outside itself, for one aggregate command.
struct Host<'a> {
    inv: &'a Invocation,
    collection: Option<String>,
    deadline: Option<Instant>,
}

fn not_stored(stage: &str) -> CommandError {
    CommandError::new(
        Code::NotImplemented,
        format!("{stage} needs stored collections, which this ferrod does not have yet"),
    )
}

impl PipelineHost for Host<'_> {
    fn read_collection(&self, _db: &str, _coll: &str) -> CommandResult<Vec<Document>> {
        Ok(Vec::new())
    }
    fn replace_collection(
        &self,
        _db: &str,
        _coll: &str,
        _docs: Vec<Document>,
    ) -> CommandResult<()> {
        Err(not_stored("$out"))
    }
    fn find_matching(
        &self,
        _db: &str,
        _coll: &str,
        _fields: &Document,
    ) -> CommandResult<Vec<Document>> {
        Err(not_stored("$merge"))
    }
    fn insert_document(&self, _db: &str, _coll: &str, _doc: Document) -> CommandResult<()> {
        Err(not_stored("$merge"))
    }
    fn replace_document(
        &self,
        _db: &str,
        _coll: &str,
        _old: &Document,
        _new: Document,
    ) -> CommandResult<()> {
        Err(not_stored("$merge"))
    }
    fn coll_stats(&self, db: &str, coll: &str, spec: &Document) -> CommandResult<Document> {
        // The collection does not exist: mongod answers the header alone, and refuses
        // the statistics that need the collection.
        for (field, what) in [("storageStats", "storageStats"), ("count", "count")] {
            if spec.contains_key(field) {
                return Err(CommandError::new(
                    Code::NamespaceNotFound,
                    format!(
                        "Unable to retrieve {what} in $collStats stage :: caused by :: Collection [{db}.{coll}] not found."
                    ),
                ));
            }
        }
        Ok(doc! {
            "ns": format!("{db}.{coll}"),
            "host": self.inv.server.host_and_port(),
            "localTime": bson::DateTime::now(),
        })
    }
    fn index_stats(&self, _db: &str, _coll: &str) -> CommandResult<Vec<Document>> {
        Ok(Vec::new())
    }
    fn current_op(&self, spec: &Document) -> CommandResult<Vec<Document>> {
        if self.inv.db != "admin" || self.collection.is_some() {
            return Err(CommandError::new(
                Code::InvalidNamespace,
                "$currentOp must be run against the 'admin' database with {aggregate: 1}",
            ));
        }
        let all_users = current_op_options(spec)?;
        visible_operations(self.inv, all_users)
    }
    fn check_interrupt(&self) -> CommandResult<()> {
        if self.inv.op.cancel_requested() {
            return Err(CommandError::new(
                Code::Interrupted,
                "operation was interrupted",
            ));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(CommandError::new(
                Code::MaxTimeMSExpired,
                "operation exceeded time limit",
            ));
        }
        Ok(())
    }
}

/// `$currentOp`'s options, checked as mongod does; returns `allUsers`.
fn current_op_options(options: &Document) -> CommandResult<bool> {
    let mut all_users = false;
    for (name, value) in options {
        if !CURRENT_OP_OPTIONS.contains(&name.as_str()) {
            return Err(failed_to_parse(format!(
                "Unrecognized option '{name}' in $currentOp stage."
            )));
        }
        let Bson::Boolean(b) = value else {
            return Err(failed_to_parse(format!(
                "The '{name}' parameter of the $currentOp stage must be a boolean value, but found: {}",
                crate::error::type_name(value)
            )));
        };
        if name == "allUsers" {
            all_users = *b;
        }
    }
    Ok(all_users)
}

/// `allUsers: true` needs the `inprog` privilege (mongod's rule); without it a client
/// sees its own connection's operations when authorization is on.
fn visible_operations(inv: &Invocation, all_users: bool) -> CommandResult<Vec<Document>> {
    let ops = current_op::operations(inv);
    if !auth::enforced(&inv.server) {
        return Ok(ops);
    }
    if all_users {
        let required = [(
            auth::required_resource(cluster("inprog").resource, &inv.db),
            "inprog",
        )];
        if !auth::is_authorized(&inv.server, &inv.client, &required) {
            return Err(CommandError::new(
                Code::Unauthorized,
                "not authorized on admin to execute command { aggregate: 1, pipeline: [ { $currentOp: { allUsers: true } } ] }",
            ));
        }
        return Ok(ops);
    }
    let own = inv.client.id as i64;
    Ok(ops
        .into_iter()
        .filter(|op| op.get_i64("connectionId") == Ok(own))
        .collect())
}
