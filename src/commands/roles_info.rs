//! rolesInfo: user-defined and (with `showBuiltinRoles`) built-in roles, with
//! `showPrivileges`.

use super::user_admin::name_in_db;
use super::user_admin::{bool_arg, check_fields};
use super::{database, Command, Handler, Invocation};
use crate::auth::privilege::Privilege;
use crate::auth::users::{self, roles_to_bson, storage_error};
use crate::auth::{roles, Name};
use crate::catalog::Collection;
use crate::error::{bad_value, CommandResult};
use bson::{doc, Bson, Document};

pub const ROLES_INFO: Command = Command {
    privileges: &[database("viewRole")],
    validate: Some(|cmd| {
        check_fields(
            cmd,
            "rolesInfo",
            &[
                "showPrivileges",
                "showBuiltinRoles",
                "showAuthenticationRestrictions",
            ],
        )?;
        selection(cmd, cmd.get_str("$db").unwrap_or("admin")).map(|_| ())
    }),
    ..Command::new(
        "rolesInfo",
        "Returns information about roles.",
        Handler::Sync(roles_info),
    )
};

enum Selection {
    AllInDb,
    Names(Vec<Name>),
}

fn selection(cmd: &Document, db: &str) -> CommandResult<Selection> {
    match cmd.get("rolesInfo") {
        Some(Bson::Int32(1)) | Some(Bson::Int64(1)) => Ok(Selection::AllInDb),
        Some(Bson::Double(d)) if *d == 1.0 => Ok(Selection::AllInDb),
        Some(Bson::Array(items)) => Ok(Selection::Names(
            items
                .iter()
                .map(|i| name_in_db(i, db, "role", "rolesInfo"))
                .collect::<CommandResult<_>>()?,
        )),
        Some(other) => Ok(Selection::Names(vec![name_in_db(
            other,
            db,
            "role",
            "rolesInfo",
        )?])),
        None => Err(bad_value("rolesInfo requires a value")),
    }
}

fn privileges_bson(privileges: &[Privilege]) -> Bson {
    Bson::Array(
        privileges
            .iter()
            .map(|p| Bson::Document(p.to_document()))
            .collect(),
    )
}

/// One role's description, or None if it does not exist.
fn describe(
    inv: &Invocation,
    role: &Name,
    show_privileges: bool,
) -> CommandResult<Option<Document>> {
    let catalog = inv.server.catalog();
    let (own_privileges, subroles, builtin) = match roles::builtin_privileges(&role.name, &role.db)
    {
        Some(privileges) => (privileges, Vec::new(), true),
        None => match users::get_role(catalog.as_ref(), role)? {
            Some(doc) => (
                users::stored_privileges(&doc),
                users::stored_roles(&doc),
                false,
            ),
            None => return Ok(None),
        },
    };
    let resolved = users::resolve_roles(catalog.as_ref(), &subroles)?;
    let inherited: Vec<Name> = resolved.inherited_roles.iter().cloned().collect();
    let mut out = doc! {
        "_id": role.id(),
        "role": &role.name,
        "db": &role.db,
        "isBuiltin": builtin,
        "roles": roles_to_bson(&subroles),
        "inheritedRoles": roles_to_bson(&inherited),
    };
    if show_privileges {
        let all = crate::auth::privilege::merge(
            own_privileges.iter().cloned().chain(resolved.privileges),
        );
        out.insert("privileges", privileges_bson(&own_privileges));
        out.insert("inheritedPrivileges", privileges_bson(&all));
    }
    Ok(Some(out))
}

fn roles_info(inv: &Invocation, cmd: &Document) -> CommandResult {
    let show_privileges = match cmd.get("showPrivileges") {
        Some(Bson::String(s)) if s == "asUserFragment" => true,
        _ => bool_arg(cmd, "showPrivileges", "rolesInfo")?.unwrap_or(false),
    };
    let show_builtin = bool_arg(cmd, "showBuiltinRoles", "rolesInfo")?.unwrap_or(false);
    let names: Vec<Name> = match selection(cmd, &inv.db)? {
        Selection::Names(names) => names,
        Selection::AllInDb => {
            let mut names: Vec<Name> = inv
                .server
                .catalog()
                .list(Collection::Roles)
                .map_err(storage_error)?
                .iter()
                .filter(|r| r.get_str("db") == Ok(inv.db.as_str()))
                .filter_map(|r| Some(Name::new(r.get_str("role").ok()?, &inv.db)))
                .collect();
            if show_builtin {
                names.extend(
                    roles::builtin_names(&inv.db)
                        .into_iter()
                        .map(|r| Name::new(r, &inv.db)),
                );
            }
            names
        }
    };
    let mut out = Vec::new();
    for name in &names {
        if let Some(doc) = describe(inv, name, show_privileges)? {
            out.push(Bson::Document(doc));
        }
    }
    Ok(doc! {"roles": out})
}
