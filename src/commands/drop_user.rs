//! dropUser and dropAllUsersFromDatabase.

use super::catalog_write::expect;
use super::user_admin::{check_fields, name_arg};
use super::CatalogChange;
use super::{database, Command, Handler, Invocation};
use crate::auth::users::{self, storage_error};
use crate::auth::Name;
use crate::catalog::{Collection, Write};
use crate::error::{Code, CommandError, CommandResult};
use bson::{doc, Document};

pub const DROP_USER: Command = Command {
    privileges: &[database("dropUser")],
    validate: Some(|cmd| {
        name_arg(cmd, "dropUser")?;
        check_fields(cmd, "dropUser", &[])
    }),
    ..Command::new(
        "dropUser",
        "Drops a single user.",
        Handler::CatalogWrite(drop_user),
    )
};

pub const DROP_ALL_USERS_FROM_DATABASE: Command = Command {
    privileges: &[database("dropUser")],
    validate: Some(|cmd| check_fields(cmd, "dropAllUsersFromDatabase", &[])),
    ..Command::new(
        "dropAllUsersFromDatabase",
        "Drops all users for a single database.",
        Handler::CatalogWrite(drop_all_users),
    )
};

fn drop_user(inv: &Invocation, cmd: &Document) -> CommandResult<CatalogChange> {
    let user = Name::new(name_arg(cmd, "dropUser")?, &inv.db);
    if users::get_user(inv.server.catalog().as_ref(), &user)?.is_none() {
        return Err(CommandError::new(
            Code::UserNotFound,
            format!("User '{user}' not found"),
        ));
    }
    let write = Write::Delete {
        collection: Collection::Users,
        id: user.id(),
    };
    Ok(CatalogChange::new(vec![write], unexpected_conflict()))
}

/// Deletes cannot be refused.
fn unexpected_conflict() -> CommandError {
    CommandError::new(Code::InternalError, "unexpected catalog conflict on delete")
}

fn drop_all_users(inv: &Invocation, _cmd: &Document) -> CommandResult<CatalogChange> {
    // The users as listed here, so that none created meanwhile survives.
    let precondition = expect(inv.server.catalog().as_ref(), Collection::Users, None)?;
    let all = inv
        .server
        .catalog()
        .list(Collection::Users)
        .map_err(storage_error)?;
    let writes: Vec<Write> = all
        .iter()
        .filter(|u| u.get_str("db") == Ok(inv.db.as_str()))
        .filter_map(|u| u.get_str("_id").ok())
        .map(|id| Write::Delete {
            collection: Collection::Users,
            id: id.to_owned(),
        })
        .collect();
    let n = writes.len() as i32;
    Ok(CatalogChange::new(writes, unexpected_conflict())
        .expecting(vec![precondition])
        .with_reply(doc! {"n": n}))
}
