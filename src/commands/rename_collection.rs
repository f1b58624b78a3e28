//! renameCollection (admin database): moves a collection to another name in the same
//! database or another one, with `dropTarget`; replicated as one `DocWrite::Rename`, so
//! the documents never travel through the log again.

use super::documents as d;
use super::{BoxFuture, Command, Handler, Invocation};
use crate::auth;
use crate::error::{type_name, Code, CommandError, CommandResult};
use crate::storage::DocWrite;
use bson::{doc, Bson, Document};

pub const RENAME_COLLECTION: Command = Command {
    admin_only: true,
    // Checked in the handler: the actions are on the databases named in the arguments.
    privileges: &[],
    ..Command::new(
        "renameCollection",
        " example: { renameCollection: foo.a, to: bar.a }",
        Handler::Async(|inv, cmd| Box::pin(rename(inv, cmd)) as BoxFuture),
    )
};

const FIELDS: &[&str] = &[
    "to",
    "dropTarget",
    "stayTemp",
    "expectedSourceUUID",
    "expectedTargetUUID",
];

/// `db.coll` split, or InvalidNamespace naming `which` (source or target).
fn split(value: Option<&Bson>, field: &str, which: &str) -> CommandResult<(String, String)> {
    let s = match value {
        Some(Bson::String(s)) => s,
        Some(other) => {
            return Err(CommandError::new(
                Code::TypeMismatch,
                format!(
                    "BSON field 'renameCollection.{field}' is the wrong type '{}', expected type 'string'",
                    type_name(other)
                ),
            ))
        }
        None => return Err(crate::error::missing_field(&format!("renameCollection.{field}"))),
    };
    let invalid = || {
        CommandError::new(
            Code::InvalidNamespace,
            format!("Invalid {which} namespace: {s}"),
        )
    };
    let (db, coll) = s.split_once('.').ok_or_else(invalid)?;
    if db.is_empty() || db.contains(['/', '\\', ' ', '"', '$', '\0']) {
        return Err(invalid());
    }
    d::check_collection_name(db, coll).map_err(|_| invalid())?;
    Ok((db.to_owned(), coll.to_owned()))
}

fn unauthorized(cmd: &Document) -> CommandError {
    CommandError::new(
        Code::Unauthorized,
        format!(
            "not authorized on admin to execute command {}",
            super::shell_format(&Bson::Document(cmd.clone()))
        ),
    )
}

/// mongod's actions: within a database `renameCollectionSameDB`; across databases
/// `find` and `dropCollection` on the source, `insert` and `createIndex` on the target;
/// `dropCollection` on the target with `dropTarget`.
fn check_privileges(
    inv: &Invocation,
    cmd: &Document,
    from_db: &str,
    to_db: &str,
    drop_target: bool,
) -> CommandResult<()> {
    if !auth::enforced(&inv.server) {
        return Ok(());
    }
    let on = |db: &str, action: &'static str| {
        (
            auth::required_resource(super::Resource::Database, db),
            action,
        )
    };
    let mut required = if from_db == to_db {
        vec![on(from_db, "renameCollectionSameDB")]
    } else {
        vec![
            on(from_db, "find"),
            on(from_db, "dropCollection"),
            on(to_db, "insert"),
            on(to_db, "createIndex"),
        ]
    };
    if drop_target {
        required.push(on(to_db, "dropCollection"));
    }
    if auth::is_authorized(&inv.server, &inv.client, &required) {
        Ok(())
    } else {
        Err(unauthorized(cmd))
    }
}

async fn rename(inv: Invocation, cmd: Document) -> CommandResult {
    d::check_fields(&cmd, "renameCollection", FIELDS)?;
    let (from_db, from_coll) = split(cmd.get("renameCollection"), "renameCollection", "source")?;
    let (to_db, to_coll) = split(cmd.get("to"), "to", "target")?;
    let drop_target = d::bool_arg(&cmd, "renameCollection", "dropTarget", false)?;
    check_privileges(&inv, &cmd, &from_db, &to_db, drop_target)?;
    let (from, to) = (
        format!("{from_db}.{from_coll}"),
        format!("{to_db}.{to_coll}"),
    );
    for (name, which) in [(&from_coll, "source"), (&to_coll, "target")] {
        if name.starts_with("system.") {
            return Err(CommandError::new(
                Code::IllegalOperation,
                format!(
                    "error with {which} namespace: cannot rename the system collection '{name}'"
                ),
            ));
        }
    }
    if from == to {
        return Err(CommandError::new(
            Code::IllegalOperation,
            "Can't rename a collection to itself",
        ));
    }
    d::check_writable(&inv)?;
    let storage = inv.server.storage().clone();
    let _guard = storage.lock_writes().await;
    if d::collection(&storage, &from)?.is_none() {
        return Err(CommandError::new(
            Code::NamespaceNotFound,
            format!("Source collection {from} does not exist"),
        ));
    }
    if !drop_target && d::collection(&storage, &to)?.is_some() {
        return Err(CommandError::new(
            Code::NamespaceExists,
            "target namespace exists",
        ));
    }
    let writes = vec![DocWrite::Rename {
        ns: from,
        to,
        drop_target,
    }];
    let concern_error = d::commit(&inv, &cmd, writes)
        .await?
        .map_err(d::storage_error)?;
    Ok(match concern_error {
        Some(e) => doc! {"writeConcernError": e},
        None => Document::new(),
    })
}
