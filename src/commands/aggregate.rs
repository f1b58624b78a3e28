//! aggregate, for the one pipeline ferrod has data for: `$currentOp` (what mongosh's
//! `db.currentOp()` sends), optionally followed by `$match` stages of plain equalities.
//! A pipeline on a collection reads nothing (ferrod stores no collections) and answers an
//! empty cursor, as mongod does for a collection that does not exist.

use super::{cluster, current_op, Command, Handler, Invocation};
use crate::auth;
use crate::error::{missing_field, type_mismatch, Code, CommandError, CommandResult};
use bson::{doc, Bson, Document};

pub const AGGREGATE: Command = Command {
    api_version_1: true,
    ..Command::new(
        "aggregate",
        "Runs the sharded aggregation command. See http://dochub.mongodb.org/core/aggregation for more details.",
        Handler::Sync(aggregate),
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

fn failed_to_parse(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::FailedToParse, msg)
}

/// The stage's name and argument.
fn stage(value: &Bson) -> CommandResult<(&str, &Bson)> {
    match value {
        Bson::Document(d) if d.len() == 1 => {
            let (name, arg) = d.iter().next().expect("one field");
            Ok((name.as_str(), arg))
        }
        _ => Err(CommandError::new(
            Code::Location40323,
            "A pipeline stage specification object must contain exactly one field.",
        )),
    }
}

/// `$currentOp`'s options, checked as mongod does; returns `allUsers`.
fn current_op_options(arg: &Bson) -> CommandResult<bool> {
    let Bson::Document(options) = arg else {
        return Err(failed_to_parse(format!(
            "$currentOp options must be specified in an object, but found: {}",
            crate::error::type_name(arg)
        )));
    };
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

fn aggregate(inv: &Invocation, cmd: &Document) -> CommandResult {
    let pipeline = match cmd.get("pipeline") {
        None => return Err(missing_field("aggregate.pipeline")),
        Some(Bson::Array(stages)) => stages,
        Some(other) => return Err(type_mismatch("aggregate.pipeline", other, "array")),
    };
    if !matches!(cmd.get("cursor"), Some(Bson::Document(_))) && !cmd.contains_key("explain") {
        return Err(failed_to_parse(
            "The 'cursor' option is required, except for aggregate with the explain argument",
        ));
    }
    let collection = match cmd.get("aggregate") {
        Some(Bson::String(c)) => Some(c.clone()),
        _ => None,
    };
    let mut docs = None;
    let mut matches = Vec::new();
    for (i, value) in pipeline.iter().enumerate() {
        match stage(value)? {
            ("$currentOp", arg) => {
                if i != 0 {
                    return Err(CommandError::new(
                        Code::Location40602,
                        "$currentOp is only valid as the first stage in a pipeline",
                    ));
                }
                if inv.db != "admin" || collection.is_some() {
                    return Err(CommandError::new(
                        Code::InvalidNamespace,
                        "$currentOp must be run against the 'admin' database with {aggregate: 1}",
                    ));
                }
                // Stages outside API Version 1 are refused under apiStrict, as mongod does.
                if cmd.get_bool("apiStrict") == Ok(true) {
                    return Err(CommandError::new(
                        Code::APIStrictError,
                        "$currentOp is not allowed with 'apiStrict: true' in API Version 1",
                    ));
                }
                let all_users = current_op_options(arg)?;
                docs = Some(visible_operations(inv, all_users)?);
            }
            ("$match", Bson::Document(filter)) => matches.push(filter.clone()),
            ("$match", _) => {
                return Err(CommandError::new(
                    Code::Location15959,
                    "the match filter must be an expression in an object",
                ))
            }
            (name, _) => {
                return Err(CommandError::new(
                    Code::Location40324,
                    format!("Unrecognized pipeline stage name: '{name}'"),
                ))
            }
        }
    }
    let ns = match &collection {
        Some(c) => format!("{}.{c}", inv.db),
        None => format!("{}.$cmd.aggregate", inv.db),
    };
    let batch: Vec<Document> = docs
        .unwrap_or_default()
        .into_iter()
        .filter(|d| {
            matches
                .iter()
                .all(|m| m.iter().all(|(k, v)| lookup(d, k) == Some(v)))
        })
        .collect();
    Ok(doc! {"cursor": {"firstBatch": batch, "id": 0i64, "ns": ns}})
}

/// A (dotted) field of a document.
fn lookup<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut value = doc.get(parts.next()?)?;
    for part in parts {
        value = value.as_document()?.get(part)?;
    }
    Some(value)
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
