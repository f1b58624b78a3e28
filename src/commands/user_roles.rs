//! grantRolesToUser and revokeRolesFromUser.

use super::catalog_write::expect;
use super::user_admin::{check_fields, check_may_change_roles, name_arg, replace_user, request_db};
use super::CatalogChange;
use super::{database, Command, Handler, Invocation};
use crate::auth::users::{
    self, check_roles_exist, parse_role_names, roles_to_bson, user_not_found,
};
use crate::auth::Name;
use crate::catalog::Collection;
use crate::error::{bad_value, missing_field, CommandResult};
use bson::Document;

pub const GRANT_ROLES_TO_USER: Command = Command {
    privileges: &[database("grantRole")],
    validate: Some(|cmd| roles_arg(cmd, "grantRolesToUser").map(|_| ())),
    ..Command::new(
        "grantRolesToUser",
        "Grants roles to a user.",
        Handler::CatalogWrite(|inv, cmd| change(inv, cmd, "grantRolesToUser", true)),
    )
};

pub const REVOKE_ROLES_FROM_USER: Command = Command {
    privileges: &[database("revokeRole")],
    validate: Some(|cmd| roles_arg(cmd, "revokeRolesFromUser").map(|_| ())),
    ..Command::new(
        "revokeRolesFromUser",
        "Revokes roles from a user.",
        Handler::CatalogWrite(|inv, cmd| change(inv, cmd, "revokeRolesFromUser", false)),
    )
};

fn roles_arg(cmd: &Document, command: &str) -> CommandResult<Vec<Name>> {
    name_arg(cmd, command)?;
    check_fields(cmd, command, &["roles"])?;
    let roles = match cmd.get("roles") {
        Some(value) => parse_role_names(value, request_db(cmd), &format!("{command}.roles"))?,
        None => return Err(missing_field(&format!("{command}.roles"))),
    };
    if roles.is_empty() {
        return Err(bad_value(format!(
            "{command} command requires a non-empty \"roles\" array"
        )));
    }
    Ok(roles)
}

fn change(
    inv: &Invocation,
    cmd: &Document,
    command: &str,
    grant: bool,
) -> CommandResult<CatalogChange> {
    let roles = roles_arg(cmd, command)?;
    check_may_change_roles(inv, &roles, grant)?;
    let user = Name::new(name_arg(cmd, command)?, &inv.db);
    let catalog = inv.server.catalog();
    // The user as read here, and the roles checked to exist.
    let preconditions = vec![
        expect(catalog.as_ref(), Collection::Users, Some(&user.id()))?,
        expect(catalog.as_ref(), Collection::Roles, None)?,
    ];
    let mut doc = users::get_user(catalog.as_ref(), &user)?.ok_or_else(|| user_not_found(&user))?;
    check_roles_exist(catalog.as_ref(), &roles)?;
    let mut current = users::stored_roles(&doc);
    if grant {
        for role in roles {
            if !current.contains(&role) {
                current.push(role);
            }
        }
    } else {
        current.retain(|r| !roles.contains(r));
    }
    doc.insert("roles", roles_to_bson(&current));
    Ok(replace_user(&user, doc).expecting(preconditions))
}
