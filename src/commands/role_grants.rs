//! grantPrivilegesToRole, revokePrivilegesFromRole, grantRolesToRole, revokeRolesFromRole.

use super::catalog_write::expect;
use super::create_role::save_role;
use super::user_admin::{
    check_fields, check_may_change_privileges, check_may_change_roles, name_arg, request_db,
};
use super::CatalogChange;
use super::{database, Command, Handler, Invocation};
use crate::auth::privilege::{merge, parse_privileges, Privilege};
use crate::auth::users::{
    self, check_no_cycle, check_roles_exist, parse_role_names, role_not_found,
};
use crate::auth::{roles, Name};
use crate::catalog::{Collection, Write};
use crate::error::{bad_value, missing_field, CommandResult};
use bson::Document;

pub const GRANT_PRIVILEGES_TO_ROLE: Command = Command {
    privileges: &[database("grantRole")],
    validate: Some(|cmd| privileges_arg(cmd, "grantPrivilegesToRole").map(|_| ())),
    ..Command::new(
        "grantPrivilegesToRole",
        "Grants privileges to a role",
        Handler::CatalogWrite(|inv, cmd| {
            change_privileges(inv, cmd, "grantPrivilegesToRole", true)
        }),
    )
};

pub const REVOKE_PRIVILEGES_FROM_ROLE: Command = Command {
    privileges: &[database("revokeRole")],
    validate: Some(|cmd| privileges_arg(cmd, "revokePrivilegesFromRole").map(|_| ())),
    ..Command::new(
        "revokePrivilegesFromRole",
        "Revokes privileges from a role",
        Handler::CatalogWrite(|inv, cmd| {
            change_privileges(inv, cmd, "revokePrivilegesFromRole", false)
        }),
    )
};

pub const GRANT_ROLES_TO_ROLE: Command = Command {
    privileges: &[database("grantRole")],
    validate: Some(|cmd| roles_arg(cmd, "grantRolesToRole").map(|_| ())),
    ..Command::new(
        "grantRolesToRole",
        "Grants roles to another role.",
        Handler::CatalogWrite(|inv, cmd| change_roles(inv, cmd, "grantRolesToRole", true)),
    )
};

pub const REVOKE_ROLES_FROM_ROLE: Command = Command {
    privileges: &[database("revokeRole")],
    validate: Some(|cmd| roles_arg(cmd, "revokeRolesFromRole").map(|_| ())),
    ..Command::new(
        "revokeRolesFromRole",
        "Revokes roles from another role.",
        Handler::CatalogWrite(|inv, cmd| change_roles(inv, cmd, "revokeRolesFromRole", false)),
    )
};

fn privileges_arg(cmd: &Document, command: &str) -> CommandResult<Vec<Privilege>> {
    name_arg(cmd, command)?;
    check_fields(cmd, command, &["privileges"])?;
    let privileges = match cmd.get("privileges") {
        Some(p) => parse_privileges(p, &format!("{command}.privileges"))?,
        None => return Err(missing_field(&format!("{command}.privileges"))),
    };
    if privileges.is_empty() {
        return Err(bad_value(format!(
            "{command} command requires a non-empty \"privileges\" array"
        )));
    }
    Ok(privileges)
}

fn roles_arg(cmd: &Document, command: &str) -> CommandResult<Vec<Name>> {
    name_arg(cmd, command)?;
    check_fields(cmd, command, &["roles"])?;
    let roles = match cmd.get("roles") {
        Some(r) => parse_role_names(r, request_db(cmd), &format!("{command}.roles"))?,
        None => return Err(missing_field(&format!("{command}.roles"))),
    };
    if roles.is_empty() {
        return Err(bad_value(format!(
            "{command} command requires a non-empty \"roles\" array"
        )));
    }
    Ok(roles)
}

/// The stored role a grant or revoke changes (built-in roles cannot change), and the
/// precondition that the roles are still as read: the role itself, and the roles a
/// grant checks to exist and to make no cycle.
fn target(
    inv: &Invocation,
    cmd: &Document,
    command: &str,
) -> CommandResult<(Name, Document, Write)> {
    let role = Name::new(name_arg(cmd, command)?, &inv.db);
    if roles::is_builtin(&role.name, &role.db) {
        return Err(bad_value(format!(
            "{role} is a built-in role and cannot be modified"
        )));
    }
    let catalog = inv.server.catalog();
    let precondition = expect(catalog.as_ref(), Collection::Roles, None)?;
    let doc = users::get_role(catalog.as_ref(), &role)?.ok_or_else(|| role_not_found(&role))?;
    Ok((role, doc, precondition))
}

fn change_privileges(
    inv: &Invocation,
    cmd: &Document,
    command: &str,
    grant: bool,
) -> CommandResult<CatalogChange> {
    let changes = privileges_arg(cmd, command)?;
    check_may_change_privileges(inv, &changes, grant)?;
    let (role, doc, precondition) = target(inv, cmd, command)?;
    let mut privileges = users::stored_privileges(&doc);
    if grant {
        privileges = merge(privileges.into_iter().chain(changes));
    } else {
        for change in &changes {
            for p in privileges
                .iter_mut()
                .filter(|p| p.resource == change.resource)
            {
                p.actions.retain(|a| !change.actions.contains(a));
            }
        }
        privileges.retain(|p| !p.actions.is_empty());
    }
    Ok(save_role(&role, &privileges, &users::stored_roles(&doc)).expecting(vec![precondition]))
}

fn change_roles(
    inv: &Invocation,
    cmd: &Document,
    command: &str,
    grant: bool,
) -> CommandResult<CatalogChange> {
    let changes = roles_arg(cmd, command)?;
    check_may_change_roles(inv, &changes, grant)?;
    let (role, doc, precondition) = target(inv, cmd, command)?;
    let catalog = inv.server.catalog();
    check_roles_exist(catalog.as_ref(), &changes)?;
    let mut subroles = users::stored_roles(&doc);
    if grant {
        check_no_cycle(catalog.as_ref(), &role, &changes)?;
        for r in changes {
            if !subroles.contains(&r) {
                subroles.push(r);
            }
        }
    } else {
        subroles.retain(|r| !changes.contains(r));
    }
    Ok(save_role(&role, &users::stored_privileges(&doc), &subroles).expecting(vec![precondition]))
}
