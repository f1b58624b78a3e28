//! dropRole and dropAllRolesFromDatabase. As in mongod, a dropped role is also removed
//! from every user and role that had it, in the same batch.

use super::catalog_write::expect;
use super::user_admin::{check_fields, name_arg};
use super::CatalogChange;
use super::{database, Command, Handler, Invocation};
use crate::auth::users::{self, role_not_found, roles_to_bson, storage_error};
use crate::auth::{roles, Name};
use crate::catalog::{Collection, Write};
use crate::error::{bad_value, CommandResult};
use crate::error::{Code, CommandError};
use bson::{doc, Document};

pub const DROP_ROLE: Command = Command {
    privileges: &[database("dropRole")],
    validate: Some(|cmd| {
        name_arg(cmd, "dropRole")?;
        check_fields(cmd, "dropRole", &[])
    }),
    ..Command::new(
        "dropRole",
        "Drops a single role.",
        Handler::CatalogWrite(drop_role),
    )
};

pub const DROP_ALL_ROLES_FROM_DATABASE: Command = Command {
    privileges: &[database("dropRole")],
    validate: Some(|cmd| check_fields(cmd, "dropAllRolesFromDatabase", &[])),
    ..Command::new(
        "dropAllRolesFromDatabase",
        "Drops all roles from the given database.",
        Handler::CatalogWrite(drop_all_roles),
    )
};

fn drop_role(inv: &Invocation, cmd: &Document) -> CommandResult<CatalogChange> {
    let role = Name::new(name_arg(cmd, "dropRole")?, &inv.db);
    if roles::is_builtin(&role.name, &role.db) {
        return Err(bad_value(format!(
            "{role} is a built-in role and cannot be modified"
        )));
    }
    let preconditions = preconditions(inv)?;
    if users::get_role(inv.server.catalog().as_ref(), &role)?.is_none() {
        return Err(role_not_found(&role));
    }
    Ok(drop_roles(inv, &[role])?.expecting(preconditions))
}

/// Every user and role as read here: dropping roles rewrites whichever hold them.
fn preconditions(inv: &Invocation) -> CommandResult<Vec<Write>> {
    let catalog = inv.server.catalog();
    Ok(vec![
        expect(catalog.as_ref(), Collection::Users, None)?,
        expect(catalog.as_ref(), Collection::Roles, None)?,
    ])
}

fn drop_all_roles(inv: &Invocation, _cmd: &Document) -> CommandResult<CatalogChange> {
    let preconditions = preconditions(inv)?;
    let all = inv
        .server
        .catalog()
        .list(Collection::Roles)
        .map_err(storage_error)?;
    let dropped: Vec<Name> = all
        .iter()
        .filter(|r| r.get_str("db") == Ok(inv.db.as_str()))
        .filter_map(|r| Some(Name::new(r.get_str("role").ok()?, r.get_str("db").ok()?)))
        .collect();
    Ok(drop_roles(inv, &dropped)?
        .expecting(preconditions)
        .with_reply(doc! {"n": dropped.len() as i32}))
}

/// Deletes the roles and strips them from every user and remaining role, atomically.
fn drop_roles(inv: &Invocation, dropped: &[Name]) -> CommandResult<CatalogChange> {
    let catalog = inv.server.catalog();
    let mut writes: Vec<Write> = dropped
        .iter()
        .map(|r| Write::Delete {
            collection: Collection::Roles,
            id: r.id(),
        })
        .collect();
    for collection in [Collection::Users, Collection::Roles] {
        for mut doc in catalog.list(collection).map_err(storage_error)? {
            let id = doc.get_str("_id").unwrap_or_default().to_owned();
            if collection == Collection::Roles && dropped.iter().any(|r| r.id() == id) {
                continue;
            }
            let before = users::stored_roles(&doc);
            let after: Vec<Name> = before
                .iter()
                .filter(|r| !dropped.contains(r))
                .cloned()
                .collect();
            if after.len() != before.len() {
                doc.insert("roles", roles_to_bson(&after));
                writes.push(Write::Upsert {
                    collection,
                    id,
                    doc,
                });
            }
        }
    }
    // Upserts and deletes cannot be refused (a failed precondition is retried).
    Ok(CatalogChange::new(
        writes,
        CommandError::new(Code::InternalError, "unexpected catalog conflict"),
    ))
}
