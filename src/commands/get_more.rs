//! getMore: the next batch of an open cursor; killCursors: closes cursors.

use super::documents as d;
use super::{database, Command, Handler, Invocation};
use crate::error::{type_name, Code, CommandError, CommandResult};
use bson::{doc, Bson, Document};

pub const GET_MORE: Command = Command {
    api_version_1: true,
    max_time_ms_waits: true,
    privileges: &[database("find")],
    ..Command::new(
        "getMore",
        "retrieve more results from an existing cursor",
        Handler::Async(|inv, cmd| Box::pin(get_more(inv, cmd)) as super::BoxFuture),
    )
};

pub const KILL_CURSORS: Command = Command {
    api_version_1: true,
    privileges: &[database("killCursors")],
    ..Command::new(
        "killCursors",
        "Kill a list of cursor ids",
        Handler::Sync(kill_cursors),
    )
};

fn cursor_id(value: &Bson) -> CommandResult<i64> {
    match value {
        Bson::Int64(n) => Ok(*n),
        other => Err(CommandError::new(
            Code::TypeMismatch,
            format!(
                "BSON field 'getMore.getMore' is the wrong type '{}', expected type 'long'",
                type_name(other)
            ),
        )),
    }
}

fn cursor_not_found(id: i64) -> CommandError {
    CommandError::new(Code::CursorNotFound, format!("cursor id {id} not found"))
}

async fn get_more(inv: Invocation, cmd: Document) -> CommandResult {
    let (inv, cmd) = (&inv, &cmd);
    d::check_fields(
        cmd,
        "getMore",
        &[
            "collection",
            "batchSize",
            "term",
            "lastKnownCommittedOpTime",
            "maxTimeMS",
        ],
    )?;
    let id = cursor_id(cmd.get("getMore").expect("the command's first field"))?;
    let coll = match cmd.get("collection") {
        Some(Bson::String(s)) => s.clone(),
        Some(other) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                "BSON field 'getMore.collection' is the wrong type '{}', expected type 'string'",
                type_name(other)
            ),
            ))
        }
        None => return Err(crate::error::missing_field("getMore.collection")),
    };
    let batch_size = d::count_arg(cmd, "getMore", "batchSize")?.filter(|n| *n > 0);
    d::reap_cursors(inv);
    let ns = format!("{}.{coll}", inv.db);
    let cursors = &inv.server.cursors;
    let Some(mut cursor) = cursors.check_out(id) else {
        return Err(cursor_not_found(id));
    };
    if cursor.ns != ns {
        let other = cursor.ns.clone();
        cursors.check_in(id, cursor);
        return Err(CommandError::new(
            Code::Unauthorized,
            format!("Requested getMore on namespace '{ns}', but cursor belongs to a different namespace {other}"),
        ));
    }
    if cursor.owner != d::user_of(inv) {
        cursors.check_in(id, cursor);
        return Err(CommandError::new(
            Code::Unauthorized,
            format!("cursor id {id} was not created by the authenticated user"),
        ));
    }
    if let Err(e) = super::sessions::check_cursor_session(id, &cursor, d::lsid_of(inv).as_ref()) {
        cursors.check_in(id, cursor);
        return Err(e);
    }
    if let Err(e) = super::tail::refill(inv, cmd, &mut cursor).await {
        cursors.check_in(id, cursor);
        return Err(e);
    }
    let batch = d::take_batch(&mut cursor.docs, batch_size.map(|n| n as usize));
    let next = if cursor.docs.is_empty() && cursor.tail.is_none() {
        0
    } else {
        cursors.check_in(id, cursor);
        id
    };
    crate::op_counters::get_more_done(inv.op.opid, batch.len());
    Ok(d::cursor_reply(&ns, next, batch, false))
}

fn kill_cursors(inv: &Invocation, cmd: &Document) -> CommandResult {
    d::check_fields(cmd, "killCursors", &["cursors"])?;
    let (_, ns) = d::namespace(inv, cmd)?;
    let ids = match cmd.get("cursors") {
        Some(Bson::Array(a)) => a.clone(),
        Some(other) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                "BSON field 'killCursors.cursors' is the wrong type '{}', expected type 'array'",
                type_name(other)
            ),
            ))
        }
        None => return Err(crate::error::missing_field("killCursors.cursors")),
    };
    let (mut killed, mut not_found) = (Vec::new(), Vec::new());
    for value in &ids {
        let Bson::Int64(id) = value else {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "BSON field 'killCursors.cursors' is the wrong type '{}', expected type 'long'",
                    type_name(value)
                ),
            ));
        };
        if inv.server.cursors.ns_of(*id).as_deref() == Some(ns.as_str())
            && inv.server.cursors.kill(*id)
        {
            killed.push(*id);
        } else {
            not_found.push(*id);
        }
    }
    Ok(doc! {
        "cursorsKilled": killed,
        "cursorsNotFound": not_found,
        "cursorsAlive": Vec::<i64>::new(),
        "cursorsUnknown": Vec::<i64>::new(),
    })
}
