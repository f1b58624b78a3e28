//! connectionStatus: who this connection is logged in as, with its roles and (with
//! `showPrivileges`) its privileges.

use super::{Command, Handler, Invocation};
use crate::auth::key_file::ClusterKey;
use crate::auth::users::{self, roles_to_bson};
use crate::auth::Name;
use crate::error::CommandResult;
use bson::{doc, Bson, Document};

pub const CONNECTION_STATUS: Command = Command {
    allowed_before_auth: true,
    ..Command::new(
        "connectionStatus",
        "Returns connection-specific information such as logged-in users and their roles",
        Handler::Sync(connection_status),
    )
};

fn connection_status(inv: &Invocation, cmd: &Document) -> CommandResult {
    let show_privileges = cmd.get_bool("showPrivileges").unwrap_or(false);
    let user = inv.client.auth.lock().user.clone();
    let mut users_out = Vec::new();
    let mut roles: Vec<Name> = Vec::new();
    let mut privileges = Vec::new();
    if let Some(user) = user {
        if ClusterKey::is_internal_user(&user) {
            roles = vec![Name::new("__system", "admin")];
            privileges = crate::auth::current_privileges(&inv.server, &inv.client);
        } else if let Some(resolved) = users::resolve_user(inv.server.catalog().as_ref(), &user)? {
            roles = resolved.resolved.inherited_roles.iter().cloned().collect();
            privileges = resolved.privileges;
        }
        users_out.push(Bson::Document(doc! {"user": &user.name, "db": &user.db}));
    }
    let mut auth_info = doc! {
        "authenticatedUsers": users_out,
        "authenticatedUserRoles": roles_to_bson(&roles),
    };
    if show_privileges {
        auth_info.insert(
            "authenticatedUserPrivileges",
            privileges
                .iter()
                .map(|p| Bson::Document(p.to_document()))
                .collect::<Vec<_>>(),
        );
    }
    Ok(doc! {"authInfo": auth_info})
}
