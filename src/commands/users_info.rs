//! usersInfo: one user, several, all of a database, or all (`forAllDBs`), with
//! `showCredentials` and `showPrivileges`.

use super::user_admin::name_in_db;
use super::user_admin::{bool_arg, check_fields};
use super::{Command, Handler, Invocation};
use crate::auth::privilege::ResourcePattern;
use crate::auth::users::{self, roles_to_bson, storage_error};
use crate::auth::Name;
use crate::catalog::Collection;
use crate::error::unauthorized;
use crate::error::{bad_value, CommandResult};
use bson::{doc, Bson, Document};

/// The viewUser check is in the handler: as in mongod, users may always see themselves.
pub const USERS_INFO: Command = Command {
    validate: Some(|cmd| {
        check_fields(
            cmd,
            "usersInfo",
            &[
                "showCredentials",
                "showPrivileges",
                "showAuthenticationRestrictions",
                "showCustomData",
                "filter",
            ],
        )?;
        selection(cmd, cmd.get_str("$db").unwrap_or("admin")).map(|_| ())
    }),
    ..Command::new(
        "usersInfo",
        "Returns information about users.",
        Handler::Sync(users_info),
    )
};

enum Selection {
    AllInDb,
    AllDbs,
    Names(Vec<Name>),
}

fn selection(cmd: &Document, db: &str) -> CommandResult<Selection> {
    match cmd.get("usersInfo") {
        Some(Bson::Int32(1)) | Some(Bson::Int64(1)) => Ok(Selection::AllInDb),
        Some(Bson::Double(d)) if *d == 1.0 => Ok(Selection::AllInDb),
        Some(Bson::Document(d)) if d.get_bool("forAllDBs") == Ok(true) => {
            if db != "admin" {
                return Err(bad_value(
                    "forAllDBs may only be used on the admin database",
                ));
            }
            Ok(Selection::AllDbs)
        }
        Some(Bson::Array(items)) => Ok(Selection::Names(
            items
                .iter()
                .map(|i| name_in_db(i, db, "user", "usersInfo"))
                .collect::<CommandResult<_>>()?,
        )),
        Some(other) => Ok(Selection::Names(vec![name_in_db(
            other,
            db,
            "user",
            "usersInfo",
        )?])),
        None => Err(bad_value("usersInfo requires a value")),
    }
}

fn users_info(inv: &Invocation, cmd: &Document) -> CommandResult {
    let catalog = inv.server.catalog();
    let show_credentials = bool_arg(cmd, "showCredentials", "usersInfo")?.unwrap_or(false);
    let show_privileges = bool_arg(cmd, "showPrivileges", "usersInfo")?.unwrap_or(false);
    let show_custom_data = bool_arg(cmd, "showCustomData", "usersInfo")?.unwrap_or(true);
    let selection = selection(cmd, &inv.db)?;
    let only_self = match (&selection, inv.client.auth.lock().user.as_ref()) {
        (Selection::Names(names), Some(me)) => names.iter().all(|n| n == me),
        _ => false,
    };
    let needs_privilege = crate::auth::enforced(&inv.server) && !only_self;
    let resource = match selection {
        Selection::AllDbs => ResourcePattern::AnyNormal,
        _ => ResourcePattern::Database(inv.db.clone()),
    };
    if needs_privilege
        && !crate::auth::is_authorized(&inv.server, &inv.client, &[(resource, "viewUser")])
    {
        return Err(unauthorized(format!(
            "not authorized on {} to execute command {}",
            inv.db,
            super::shell_format(&Bson::Document(inv.op.full_command().into_owned()))
        )));
    }
    let docs: Vec<Document> = match selection {
        Selection::AllDbs => catalog.list(Collection::Users).map_err(storage_error)?,
        Selection::AllInDb => catalog
            .list(Collection::Users)
            .map_err(storage_error)?
            .into_iter()
            .filter(|u| u.get_str("db") == Ok(inv.db.as_str()))
            .collect(),
        Selection::Names(names) => {
            let mut found = Vec::new();
            for name in names {
                if let Some(doc) = users::get_user(catalog.as_ref(), &name)? {
                    found.push(doc);
                }
            }
            found
        }
    };
    let mut out = Vec::with_capacity(docs.len());
    for stored in docs {
        let roles = users::stored_roles(&stored);
        let mut user = doc! {
            "_id": stored.get("_id").cloned().unwrap_or(Bson::Null),
            "userId": stored.get("userId").cloned().unwrap_or(Bson::Null),
            "user": stored.get("user").cloned().unwrap_or(Bson::Null),
            "db": stored.get("db").cloned().unwrap_or(Bson::Null),
        };
        if show_custom_data {
            if let Some(data) = stored.get("customData") {
                user.insert("customData", data.clone());
            }
        }
        user.insert("roles", roles_to_bson(&roles));
        user.insert(
            "mechanisms",
            users::mechanisms(&stored)
                .iter()
                .map(|m| Bson::String(m.name().into()))
                .collect::<Vec<_>>(),
        );
        if show_credentials {
            if let Some(c) = stored.get("credentials") {
                user.insert("credentials", c.clone());
            }
        }
        if show_privileges {
            let resolved = users::resolve_roles(catalog.as_ref(), &roles)?;
            let inherited: Vec<Name> = resolved.inherited_roles.into_iter().collect();
            user.insert("inheritedRoles", roles_to_bson(&inherited));
            user.insert(
                "inheritedPrivileges",
                resolved
                    .privileges
                    .iter()
                    .map(|p| Bson::Document(p.to_document()))
                    .collect::<Vec<_>>(),
            );
            user.insert("inheritedAuthenticationRestrictions", Bson::Array(vec![]));
        }
        out.push(Bson::Document(user));
    }
    Ok(doc! {"users": out})
}
