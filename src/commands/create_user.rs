//! createUser: a new user with SCRAM credentials (never the password) and roles.

use super::catalog_write::expect;
use super::user_admin::{
    bool_arg, check_fields, check_may_change_roles, custom_data, derive_credentials,
    mechanisms_arg, name_arg, new_uuid, password_arg, request_db, USER_FIELDS,
};
use super::{database, CatalogChange, Command, Handler, Invocation};
use crate::auth::scram::Mechanism;
use crate::auth::users::{check_roles_exist, parse_role_names, roles_to_bson};
use crate::auth::Name;
use crate::catalog::{Collection, Write};
use crate::error::{bad_value, missing_field, Code, CommandError, CommandResult};
use bson::{doc, Document};

pub const CREATE_USER: Command = Command {
    privileges: &[database("createUser")],
    allowed_by_localhost_exception: true,
    validate: Some(|cmd| parse(cmd).map(|_| ())),
    compress_reply: false,
    redacted_fields: &["pwd"],
    ..Command::new(
        "createUser",
        "Adds a user to the system",
        Handler::CatalogWrite(create_user),
    )
};

struct Request {
    user: Name,
    /// None only for `$external` users (x509), who have no password.
    password: Option<String>,
    roles: Vec<Name>,
    custom_data: Option<Document>,
    mechanisms: Vec<Mechanism>,
    digest_password: bool,
}

fn parse(cmd: &Document) -> CommandResult<Request> {
    let name = name_arg(cmd, "createUser")?;
    check_fields(cmd, "createUser", USER_FIELDS)?;
    if name.is_empty() {
        return Err(bad_value(
            "User document needs 'user' field to be non-empty",
        ));
    }
    let db = request_db(cmd);
    let roles = match cmd.get("roles") {
        Some(value) => parse_role_names(value, db, "createUser.roles")?,
        None => return Err(missing_field("createUser.roles")),
    };
    let password = password_arg(cmd, "createUser")?;
    if password.is_none() && db != "$external" {
        return Err(bad_value("Must provide a 'pwd' field for all user documents, except those with '$external' as the user's source db"));
    }
    Ok(Request {
        user: Name::new(name, db),
        password,
        roles,
        custom_data: custom_data(cmd, "createUser")?,
        mechanisms: mechanisms_arg(cmd, "createUser")?.unwrap_or(Mechanism::ALL.to_vec()),
        digest_password: bool_arg(cmd, "digestPassword", "createUser")?.unwrap_or(true),
    })
}

fn create_user(inv: &Invocation, cmd: &Document) -> CommandResult<CatalogChange> {
    let request = parse(cmd)?;
    // mongod's first check once the command runs (user_management_commands.cpp).
    if request.user.db == "local" {
        return Err(bad_value("Cannot create users in the local database"));
    }
    check_may_change_roles(inv, &request.roles, true)?;
    let catalog = inv.server.catalog();
    // The roles checked to exist, as read here.
    let mut preconditions = vec![expect(catalog.as_ref(), Collection::Roles, None)?];
    if through_localhost_exception(inv) {
        // The exception lets one first user in: the batch holds only if there is still
        // no user when it applies, and a retry finds the exception closed.
        preconditions.push(expect(catalog.as_ref(), Collection::Users, None)?);
        if !crate::auth::localhost_exception(&inv.server, &inv.client) {
            return Err(CommandError::new(
                Code::Unauthorized,
                "command createUser requires authentication",
            ));
        }
    }
    check_roles_exist(catalog.as_ref(), &request.roles)?;
    let credentials = match &request.password {
        Some(password) => derive_credentials(
            inv,
            &request.user.name,
            password,
            &request.mechanisms,
            request.digest_password,
        )?,
        // mongod marks a user whose credentials live outside (x509) this way.
        None => doc! {"external": true},
    };
    let mut user = doc! {
        "_id": request.user.id(),
        "userId": new_uuid(),
        "user": &request.user.name,
        "db": &request.user.db,
        "credentials": credentials,
        "roles": roles_to_bson(&request.roles),
    };
    if let Some(data) = request.custom_data {
        user.insert("customData", data);
    }
    let write = Write::Insert {
        collection: Collection::Users,
        id: request.user.id(),
        doc: user,
    };
    let exists = CommandError::new(
        Code::Location51003,
        format!("User \"{}\" already exists", request.user),
    );
    Ok(CatalogChange::new(vec![write], exists).expecting(preconditions))
}

/// With authorization on, only the localhost exception lets a client that is not logged
/// in run createUser (see the dispatcher's authentication check).
fn through_localhost_exception(inv: &Invocation) -> bool {
    crate::auth::enforced(&inv.server) && inv.client.auth.lock().user.is_none()
}
