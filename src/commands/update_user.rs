//! updateUser: new password, mechanisms, roles or customData for an existing user.

use super::catalog_write::expect;
use super::user_admin::{
    bool_arg, check_fields, check_may_change_roles, custom_data, derive_credentials,
    mechanisms_arg, name_arg, password_arg, replace_user, request_db, USER_FIELDS,
};
use super::CatalogChange;
use super::{database, Command, Handler, Invocation};
use crate::auth::users::{
    self, check_roles_exist, parse_role_names, roles_to_bson, user_not_found,
};
use crate::auth::Name;
use crate::catalog::Collection;
use crate::error::{bad_value, CommandResult};
use bson::Document;

pub const UPDATE_USER: Command = Command {
    privileges: &[database("changePassword")],
    validate: Some(validate),
    compress_reply: false,
    redacted_fields: &["pwd"],
    ..Command::new(
        "updateUser",
        "Used to update a user, for example to change its password",
        Handler::CatalogWrite(update_user),
    )
};

fn validate(cmd: &Document) -> CommandResult<()> {
    name_arg(cmd, "updateUser")?;
    check_fields(cmd, "updateUser", USER_FIELDS)?;
    password_arg(cmd, "updateUser")?;
    custom_data(cmd, "updateUser")?;
    mechanisms_arg(cmd, "updateUser")?;
    bool_arg(cmd, "digestPassword", "updateUser")?;
    if let Some(roles) = cmd.get("roles") {
        parse_role_names(roles, request_db(cmd), "updateUser.roles")?;
    }
    if !["pwd", "customData", "roles", "mechanisms"]
        .iter()
        .any(|f| cmd.contains_key(f))
    {
        return Err(bad_value(
            "Must specify at least one field to update in updateUser",
        ));
    }
    Ok(())
}

fn update_user(inv: &Invocation, cmd: &Document) -> CommandResult<CatalogChange> {
    let user = Name::new(name_arg(cmd, "updateUser")?, &inv.db);
    let catalog = inv.server.catalog();
    // The user as read here, and the roles checked to exist.
    let preconditions = vec![
        expect(catalog.as_ref(), Collection::Users, Some(&user.id()))?,
        expect(catalog.as_ref(), Collection::Roles, None)?,
    ];
    let mut doc = users::get_user(catalog.as_ref(), &user)?.ok_or_else(|| user_not_found(&user))?;
    let existing = users::mechanisms(&doc);
    let mechanisms = mechanisms_arg(cmd, "updateUser")?;
    match password_arg(cmd, "updateUser")? {
        Some(password) => {
            let mechanisms = mechanisms.unwrap_or(existing);
            let digest = bool_arg(cmd, "digestPassword", "updateUser")?.unwrap_or(true);
            let credentials = derive_credentials(inv, &user.name, &password, &mechanisms, digest)?;
            doc.insert("credentials", credentials);
        }
        None => {
            if let Some(mechanisms) = mechanisms {
                // Without a password, mechanisms can only be narrowed.
                if mechanisms.iter().any(|m| !existing.contains(m)) {
                    return Err(bad_value(
                        "mechanisms field must be a subset of previously set mechanisms",
                    ));
                }
                let credentials: Document = doc
                    .get_document("credentials")
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(k, _)| mechanisms.iter().any(|m| m.name() == k))
                    .collect();
                doc.insert("credentials", credentials);
            }
        }
    }
    if let Some(roles) = cmd.get("roles") {
        let roles = parse_role_names(roles, &inv.db, "updateUser.roles")?;
        check_may_change_roles(inv, &roles, true)?;
        check_roles_exist(catalog.as_ref(), &roles)?;
        doc.insert("roles", roles_to_bson(&roles));
    }
    if let Some(data) = custom_data(cmd, "updateUser")? {
        doc.insert("customData", data);
    }
    Ok(replace_user(&user, doc).expecting(preconditions))
}
