//! createRole and updateRole: user-defined roles with privileges and inherited roles.

use super::catalog_write::expect;
use super::user_admin::{
    check_fields, check_may_change_privileges, check_may_change_roles, name_arg, request_db,
};
use super::CatalogChange;
use super::{database, Command, Handler, Invocation};
use crate::auth::privilege::{parse_privileges, Privilege};
use crate::auth::users::{
    self, check_no_cycle, check_roles_exist, parse_role_names, role_not_found, roles_to_bson,
};
use crate::auth::{roles, Name};
use crate::catalog::{Collection, Write};
use crate::error::{bad_value, missing_field, Code, CommandError, CommandResult};
use bson::{doc, Bson, Document};

pub const CREATE_ROLE: Command = Command {
    privileges: &[database("createRole")],
    validate: Some(|cmd| parse(cmd, "createRole").map(|_| ())),
    ..Command::new(
        "createRole",
        "Adds a role to the system",
        Handler::CatalogWrite(create_role),
    )
};

pub const UPDATE_ROLE: Command = Command {
    privileges: &[database("grantRole"), database("revokeRole")],
    validate: Some(|cmd| parse(cmd, "updateRole").map(|_| ())),
    ..Command::new(
        "updateRole",
        "Used to update a role",
        Handler::CatalogWrite(update_role),
    )
};

struct Request {
    role: Name,
    privileges: Option<Vec<Privilege>>,
    roles: Option<Vec<Name>>,
}

fn parse(cmd: &Document, command: &str) -> CommandResult<Request> {
    let name = name_arg(cmd, command)?;
    check_fields(
        cmd,
        command,
        &["privileges", "roles", "authenticationRestrictions"],
    )?;
    if name.is_empty() {
        return Err(bad_value("Role name must be non-empty"));
    }
    let db = request_db(cmd);
    let privileges = cmd
        .get("privileges")
        .map(|p| parse_privileges(p, &format!("{command}.privileges")))
        .transpose()?;
    let roles = cmd
        .get("roles")
        .map(|r| parse_role_names(r, db, &format!("{command}.roles")))
        .transpose()?;
    if command == "createRole" {
        if privileges.is_none() {
            return Err(missing_field("createRole.privileges"));
        }
        if roles.is_none() {
            return Err(missing_field("createRole.roles"));
        }
    } else if privileges.is_none() && roles.is_none() {
        return Err(bad_value(
            "Must specify at least one field to update in updateRole",
        ));
    }
    Ok(Request {
        role: Name::new(name, db),
        privileges,
        roles,
    })
}

pub fn role_document(role: &Name, privileges: &[Privilege], subroles: &[Name]) -> Document {
    doc! {
        "_id": role.id(),
        "role": &role.name,
        "db": &role.db,
        "privileges": privileges.iter().map(|p| Bson::Document(p.to_document())).collect::<Vec<_>>(),
        "roles": roles_to_bson(subroles),
    }
}

fn create_role(inv: &Invocation, cmd: &Document) -> CommandResult<CatalogChange> {
    let request = parse(cmd, "createRole")?;
    // mongod's checks, in its order, once the command runs.
    match request.role.db.as_str() {
        "local" => return Err(bad_value("Cannot create roles in the local database")),
        "$external" => return Err(bad_value("Cannot create roles in the $external database")),
        _ => {}
    }
    if roles::is_builtin(&request.role.name, &request.role.db) {
        return Err(bad_value(
            "Cannot create roles with the same name as a built-in role",
        ));
    }
    let subroles = request.roles.unwrap_or_default();
    let privileges = request.privileges.unwrap_or_default();
    check_may_change_roles(inv, &subroles, true)?;
    check_may_change_privileges(inv, &privileges, true)?;
    let catalog = inv.server.catalog();
    // The roles checked to exist and to make no cycle, as read here.
    let precondition = expect(catalog.as_ref(), Collection::Roles, None)?;
    check_roles_exist(catalog.as_ref(), &subroles)?;
    check_no_cycle(catalog.as_ref(), &request.role, &subroles)?;
    let doc = role_document(&request.role, &privileges, &subroles);
    let write = Write::Insert {
        collection: Collection::Roles,
        id: request.role.id(),
        doc,
    };
    let exists = CommandError::new(
        Code::Location51002,
        format!("Role \"{}\" already exists", request.role),
    );
    Ok(CatalogChange::new(vec![precondition, write], exists))
}

fn update_role(inv: &Invocation, cmd: &Document) -> CommandResult<CatalogChange> {
    let request = parse(cmd, "updateRole")?;
    if roles::is_builtin(&request.role.name, &request.role.db) {
        return Err(bad_value("Cannot update built-in roles"));
    }
    if let Some(roles) = &request.roles {
        check_may_change_roles(inv, roles, true)?;
    }
    if let Some(privileges) = &request.privileges {
        check_may_change_privileges(inv, privileges, true)?;
    }
    let catalog = inv.server.catalog();
    let precondition = expect(catalog.as_ref(), Collection::Roles, None)?;
    let stored = users::get_role(catalog.as_ref(), &request.role)?
        .ok_or_else(|| role_not_found(&request.role))?;
    let privileges = request
        .privileges
        .unwrap_or_else(|| users::stored_privileges(&stored));
    let subroles = match request.roles {
        Some(roles) => {
            check_roles_exist(catalog.as_ref(), &roles)?;
            check_no_cycle(catalog.as_ref(), &request.role, &roles)?;
            roles
        }
        None => users::stored_roles(&stored),
    };
    Ok(save_role(&request.role, &privileges, &subroles).expecting(vec![precondition]))
}

/// Replaces a stored role document.
pub fn save_role(role: &Name, privileges: &[Privilege], subroles: &[Name]) -> CatalogChange {
    let write = Write::Replace {
        collection: Collection::Roles,
        id: role.id(),
        doc: role_document(role, privileges, subroles),
    };
    CatalogChange::new(vec![write], role_not_found(role))
}
