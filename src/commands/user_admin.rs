//! What the user- and role-management commands share: argument checks, credentials,
//! and writing to the catalog.

use super::{is_generic_argument, CatalogChange, Invocation};
use crate::auth::privilege::{Privilege, ResourcePattern};
use crate::auth::scram::{Mechanism, ScramCredentials};
use crate::auth::Name;
use crate::catalog::{Collection, Write};
use crate::error::{bad_value, type_mismatch, unknown_field, CommandResult};
use crate::params;
use bson::{Bson, Document};

/// 40415 for the first field that is neither the command's own nor a generic argument.
pub fn check_fields(cmd: &Document, command: &str, allowed: &[&str]) -> CommandResult<()> {
    for key in cmd.keys().skip(1) {
        if !allowed.contains(&key.as_str()) && !is_generic_argument(key) {
            return Err(unknown_field(&format!("{command}.{key}")));
        }
    }
    Ok(())
}

/// The command's own value: the user or role name it acts on.
pub fn name_arg(cmd: &Document, command: &str) -> CommandResult<String> {
    match cmd.get(command) {
        Some(Bson::String(s)) => Ok(s.clone()),
        Some(other) => Err(type_mismatch(command, other, "string")),
        None => Err(crate::error::missing_field(command)),
    }
}

pub fn request_db(cmd: &Document) -> &str {
    cmd.get_str("$db").unwrap_or("admin")
}

pub fn bool_arg(cmd: &Document, field: &str, command: &str) -> CommandResult<Option<bool>> {
    match cmd.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Boolean(b)) => Ok(Some(*b)),
        Some(Bson::Int32(n)) => Ok(Some(*n != 0)),
        Some(Bson::Int64(n)) => Ok(Some(*n != 0)),
        Some(Bson::Double(d)) => Ok(Some(*d != 0.0)),
        Some(other) => Err(type_mismatch(&format!("{command}.{field}"), other, "bool")),
    }
}

pub fn custom_data(cmd: &Document, command: &str) -> CommandResult<Option<Document>> {
    match cmd.get("customData") {
        None => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d.clone())),
        Some(other) => Err(type_mismatch(
            &format!("{command}.customData"),
            other,
            "object",
        )),
    }
}

/// `mechanisms`: a non-empty subset of the SCRAM mechanisms; None if not given.
pub fn mechanisms_arg(cmd: &Document, command: &str) -> CommandResult<Option<Vec<Mechanism>>> {
    let Some(value) = cmd.get("mechanisms") else {
        return Ok(None);
    };
    let Bson::Array(items) = value else {
        return Err(type_mismatch(
            &format!("{command}.mechanisms"),
            value,
            "array",
        ));
    };
    let mut mechanisms = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Bson::String(name) = item else {
            return Err(type_mismatch(
                &format!("{command}.mechanisms.{i}"),
                item,
                "string",
            ));
        };
        let mechanism = Mechanism::from_name(name)
            .ok_or_else(|| bad_value(format!("Unknown auth mechanism '{name}'")))?;
        if !mechanisms.contains(&mechanism) {
            mechanisms.push(mechanism);
        }
    }
    if mechanisms.is_empty() {
        return Err(bad_value("mechanisms field must not be empty"));
    }
    Ok(Some(mechanisms))
}

/// The password argument: a non-empty string.
pub fn password_arg(cmd: &Document, command: &str) -> CommandResult<Option<String>> {
    match cmd.get("pwd") {
        None => Ok(None),
        Some(Bson::String(p)) if p.is_empty() => Err(bad_value("Password cannot be empty")),
        Some(Bson::String(p)) => Ok(Some(p.clone())),
        Some(other) => Err(type_mismatch(&format!("{command}.pwd"), other, "string")),
    }
}

/// `credentials` for each mechanism, derived with the iteration-count parameters.
/// With `digestPassword: false` the client sent the SCRAM-SHA-1 digest itself, which
/// SCRAM-SHA-256 cannot use.
pub fn derive_credentials(
    inv: &Invocation,
    user: &str,
    password: &str,
    mechanisms: &[Mechanism],
    digest_password: bool,
) -> CommandResult<Document> {
    let mut credentials = Document::new();
    for &mechanism in mechanisms {
        let iterations = match mechanism {
            Mechanism::ScramSha1 => inv.server.params.get_i64(params::SCRAM_SHA1_ITERATIONS),
            Mechanism::ScramSha256 => inv.server.params.get_i64(params::SCRAM_SHA256_ITERATIONS),
        } as u32;
        let derived = if digest_password {
            ScramCredentials::derive(mechanism, user, password, iterations)
                .map_err(|e| bad_value(e.0))?
        } else {
            if mechanism == Mechanism::ScramSha256 {
                return Err(bad_value(
                    "Use of SCRAM-SHA-256 requires undigested passwords",
                ));
            }
            ScramCredentials::from_prepared(
                mechanism,
                password.as_bytes(),
                crate::random::random_bytes(16),
                iterations,
            )
        };
        credentials.insert(mechanism.name(), derived.to_document());
    }
    Ok(credentials)
}

/// A random UUID (version 4) as BSON binary subtype 4, mongod's `userId`.
pub fn new_uuid() -> Bson {
    Bson::Binary(bson::Binary::from_uuid(bson::Uuid::new()))
}

/// The fields createUser and updateUser accept besides the user's name.
pub const USER_FIELDS: &[&str] = &[
    "pwd",
    "customData",
    "roles",
    "digestPassword",
    "mechanisms",
    "authenticationRestrictions",
];

/// Stores a changed user document; a user that vanished meanwhile is reported as missing.
pub fn replace_user(user: &Name, doc: Document) -> CatalogChange {
    let write = Write::Replace {
        collection: Collection::Users,
        id: user.id(),
        doc,
    };
    CatalogChange::new(vec![write], crate::auth::users::user_not_found(user))
}

/// A user or role named as a string (in the command's database) or as
/// `{<kind>: name, db: database}`, as usersInfo and rolesInfo accept them.
pub fn name_in_db(value: &Bson, db: &str, kind: &str, command: &str) -> CommandResult<Name> {
    match value {
        Bson::String(name) => Ok(Name::new(name.clone(), db)),
        Bson::Document(d) => match (d.get_str(kind), d.get_str("db")) {
            (Ok(name), Ok(db)) => Ok(Name::new(name, db)),
            _ => Err(crate::error::bad_value(format!(
                "{}{} name must contain '{kind}' and 'db' fields",
                kind[..1].to_uppercase(),
                &kind[1..]
            ))),
        },
        other => Err(crate::error::type_mismatch(
            command,
            other,
            "string or object",
        )),
    }
}

/// mongod checks `grantRole` (or `revokeRole`) on the database of every role handed out
/// or taken away, not only on the command's database: a userAdmin of one database may
/// not grant roles of another. Skipped where no user is logged in and the dispatcher let
/// the command through (authorization off, or the localhost exception).
pub fn check_may_change_roles(inv: &Invocation, roles: &[Name], grant: bool) -> CommandResult<()> {
    let action = if grant { "grantRole" } else { "revokeRole" };
    let verb = if grant { "grant" } else { "revoke" };
    if !needs_delegation_check(inv) {
        return Ok(());
    }
    for role in roles {
        let resource = ResourcePattern::Database(role.db.clone());
        if !crate::auth::is_authorized(&inv.server, &inv.client, &[(resource, action)]) {
            return Err(crate::error::unauthorized(format!(
                "Not authorized to {verb} role: {role}"
            )));
        }
    }
    Ok(())
}

/// As [`check_may_change_roles`] for privileges: `grantRole` / `revokeRole` on the
/// database each privilege's resource names (`admin` for cluster-wide resources).
pub fn check_may_change_privileges(
    inv: &Invocation,
    privileges: &[Privilege],
    grant: bool,
) -> CommandResult<()> {
    let action = if grant { "grantRole" } else { "revokeRole" };
    let verb = if grant { "grant" } else { "revoke" };
    if !needs_delegation_check(inv) {
        return Ok(());
    }
    for privilege in privileges {
        let db = match &privilege.resource {
            ResourcePattern::Database(db) | ResourcePattern::Collection(db, _) => db.clone(),
            _ => "admin".to_owned(),
        };
        let resource = ResourcePattern::Database(db.clone());
        if !crate::auth::is_authorized(&inv.server, &inv.client, &[(resource, action)]) {
            return Err(crate::error::unauthorized(format!(
                "Not authorized to {verb} privileges on the {db} database"
            )));
        }
    }
    Ok(())
}

fn needs_delegation_check(inv: &Invocation) -> bool {
    crate::auth::enforced(&inv.server) && inv.client.auth.lock().user.is_some()
}
