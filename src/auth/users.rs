//! User and role documents in the catalog, and the role graph walk that turns a user's
//! roles into privileges.

use super::privilege::{merge, parse_privileges, Privilege};
use super::roles;
use super::scram::{Mechanism, ScramCredentials};
use super::Name;
use crate::catalog::{Catalog, CatalogError, Collection};
use crate::error::{type_mismatch, Code, CommandError, CommandResult};
use bson::{doc, Bson, Document};
use std::collections::{BTreeSet, VecDeque};

pub fn storage_error(e: CatalogError) -> CommandError {
    CommandError::new(Code::InternalError, e.to_string())
}

pub fn role_not_found(role: &Name) -> CommandError {
    CommandError::new(Code::RoleNotFound, format!("Could not find role: {role}"))
}

pub fn user_not_found(user: &Name) -> CommandError {
    CommandError::new(
        Code::UserNotFound,
        format!(
            "Could not find user \"{}\" for db \"{}\"",
            user.name, user.db
        ),
    )
}

/// Reads a `roles` array: each a role name (in `default_db`) or `{role, db}`.
pub fn parse_role_names(value: &Bson, default_db: &str, field: &str) -> CommandResult<Vec<Name>> {
    let Bson::Array(items) = value else {
        return Err(type_mismatch(field, value, "array"));
    };
    let mut names = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let name = match item {
            Bson::String(role) => Name::new(role.clone(), default_db),
            Bson::Document(d) => {
                let (Ok(role), Ok(db)) = (d.get_str("role"), d.get_str("db")) else {
                    return Err(CommandError::new(
                        Code::BadValue,
                        format!("Role names must be either strings or objects with 'role' and 'db' fields: {d}"),
                    ));
                };
                Name::new(role, db)
            }
            other => {
                return Err(type_mismatch(
                    &format!("{field}.{i}"),
                    other,
                    "string or object",
                ))
            }
        };
        if name.name.is_empty() || name.db.is_empty() {
            return Err(CommandError::new(
                Code::BadValue,
                "Role names must be non-empty",
            ));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

pub fn roles_to_bson(names: &[Name]) -> Bson {
    Bson::Array(
        names
            .iter()
            .map(|n| Bson::Document(doc! {"role": &n.name, "db": &n.db}))
            .collect(),
    )
}

/// The `roles` of a stored user or role document.
pub fn stored_roles(doc: &Document) -> Vec<Name> {
    doc.get_array("roles")
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.as_document())
                .filter_map(|r| Some(Name::new(r.get_str("role").ok()?, r.get_str("db").ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

pub fn stored_privileges(doc: &Document) -> Vec<Privilege> {
    doc.get("privileges")
        .and_then(|p| parse_privileges(p, "privileges").ok())
        .unwrap_or_default()
}

pub fn get_user(catalog: &dyn Catalog, user: &Name) -> CommandResult<Option<Document>> {
    catalog
        .get(Collection::Users, &user.id())
        .map_err(storage_error)
}

pub fn get_role(catalog: &dyn Catalog, role: &Name) -> CommandResult<Option<Document>> {
    catalog
        .get(Collection::Roles, &role.id())
        .map_err(storage_error)
}

pub fn role_exists(catalog: &dyn Catalog, role: &Name) -> CommandResult<bool> {
    Ok(roles::is_builtin(&role.name, &role.db) || get_role(catalog, role)?.is_some())
}

/// 31 RoleNotFound for the first role that does not exist.
pub fn check_roles_exist(catalog: &dyn Catalog, names: &[Name]) -> CommandResult<()> {
    for name in names {
        if !role_exists(catalog, name)? {
            return Err(role_not_found(name));
        }
    }
    Ok(())
}

/// Roles reachable from `direct` (excluding them) and every privilege on the way.
#[derive(Debug, Default)]
pub struct Resolved {
    pub inherited_roles: BTreeSet<Name>,
    pub privileges: Vec<Privilege>,
}

/// Walks the role graph breadth first. Cycles cannot be stored, but the walk is guarded
/// anyway by the visited set.
pub fn resolve_roles(catalog: &dyn Catalog, direct: &[Name]) -> CommandResult<Resolved> {
    let mut seen: BTreeSet<Name> = BTreeSet::new();
    let mut queue: VecDeque<Name> = direct.iter().cloned().collect();
    let mut privileges = Vec::new();
    while let Some(role) = queue.pop_front() {
        if !seen.insert(role.clone()) {
            continue;
        }
        if let Some(builtin) = roles::builtin_privileges(&role.name, &role.db) {
            privileges.extend(builtin);
        } else if let Some(doc) = get_role(catalog, &role)? {
            privileges.extend(stored_privileges(&doc));
            queue.extend(stored_roles(&doc));
        }
    }
    Ok(Resolved {
        inherited_roles: seen,
        privileges: merge(privileges),
    })
}

pub struct ResolvedUser {
    pub doc: Document,
    pub roles: Vec<Name>,
    pub resolved: Resolved,
    pub privileges: Vec<Privilege>,
}

pub fn resolve_user(catalog: &dyn Catalog, user: &Name) -> CommandResult<Option<ResolvedUser>> {
    let Some(doc) = get_user(catalog, user)? else {
        return Ok(None);
    };
    let roles = stored_roles(&doc);
    let resolved = resolve_roles(catalog, &roles)?;
    let privileges = resolved.privileges.clone();
    Ok(Some(ResolvedUser {
        doc,
        roles,
        resolved,
        privileges,
    }))
}

/// Refuses to make `role` inherit `subroles` when one of them already reaches `role`.
pub fn check_no_cycle(catalog: &dyn Catalog, role: &Name, subroles: &[Name]) -> CommandResult<()> {
    for sub in subroles {
        if sub == role {
            return Err(cycle(role, sub));
        }
        let reach = resolve_roles(catalog, std::slice::from_ref(sub))?;
        if reach.inherited_roles.contains(role) {
            return Err(cycle(role, sub));
        }
    }
    Ok(())
}

fn cycle(role: &Name, sub: &Name) -> CommandError {
    CommandError::new(
        Code::GraphContainsCycle,
        format!("Cycle in dependency graph: granting {sub} to {role} would make {role} inherit from itself"),
    )
}

/// The credentials stored for a user and mechanism, if the user has that mechanism.
pub fn credentials(user_doc: &Document, mechanism: Mechanism) -> Option<ScramCredentials> {
    user_doc
        .get_document("credentials")
        .ok()?
        .get_document(mechanism.name())
        .ok()
        .and_then(ScramCredentials::from_document)
}

/// The mechanisms a stored user can log in with.
pub fn mechanisms(user_doc: &Document) -> Vec<Mechanism> {
    Mechanism::ALL
        .into_iter()
        .filter(|m| credentials(user_doc, *m).is_some())
        .collect()
}
