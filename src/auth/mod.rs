//! Authentication and authorization: SCRAM, users and roles kept in the catalog,
//! built-in roles, and the per-connection login state the dispatcher checks.

pub mod key_file;
pub mod privilege;
pub mod roles;
pub mod scram;
pub mod users;

use crate::catalog::Collection;
use crate::state::{Client, ServerState};
use privilege::{Privilege, ResourcePattern};
use scram::{Mechanism, ServerConversation};
use std::fmt;

/// `name@db` of a user or a role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name {
    pub name: String,
    pub db: String,
}

impl Name {
    pub fn new(name: impl Into<String>, db: impl Into<String>) -> Name {
        Name {
            name: name.into(),
            db: db.into(),
        }
    }

    /// The catalog key, as mongod's `_id`: `<db>.<name>`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.db, self.name)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.db)
    }
}

/// A SASL conversation in progress on one connection.
#[derive(Debug)]
pub enum SaslStep {
    /// The server has sent its first message and waits for the client's proof.
    AwaitingProof {
        conversation: Box<ServerConversation>,
        db: String,
        skip_empty_exchange: bool,
        /// Started inside hello's `speculativeAuthenticate`.
        speculative: bool,
    },
    /// The proof was good; the client still sends one empty message (no skipEmptyExchange).
    AwaitingEmpty { user: Name, mechanism: Mechanism },
}

/// Who a connection is logged in as, and any login under way.
#[derive(Debug, Default)]
pub struct ClientAuth {
    pub user: Option<Name>,
    pub sasl: Option<SaslStep>,
}

impl ClientAuth {
    pub fn mechanism_in_progress(&self) -> Option<Mechanism> {
        match &self.sasl {
            Some(SaslStep::AwaitingProof { conversation, .. }) => Some(conversation.mechanism),
            _ => None,
        }
    }
}

/// The (resource, action) pairs a command needs, resolved against the request's db.
pub fn required_resource(resource: crate::commands::Resource, db: &str) -> ResourcePattern {
    match resource {
        crate::commands::Resource::Cluster => ResourcePattern::Cluster,
        crate::commands::Resource::Database => ResourcePattern::Database(db.to_owned()),
    }
}

/// Whether authorization is being enforced on this server.
pub fn enforced(server: &ServerState) -> bool {
    server.config.auth
}

/// mongod's localhost exception: auth on, no user yet, a loopback client.
pub fn localhost_exception(server: &ServerState, client: &Client) -> bool {
    client.is_loopback()
        && server
            .catalog()
            .is_empty(Collection::Users)
            .unwrap_or(false)
}

/// Every privilege the connection's user holds now (roles are read fresh from the
/// catalog, so a grant or revoke applies to logged-in users at once).
pub fn current_privileges(server: &ServerState, client: &Client) -> Vec<Privilege> {
    let Some(user) = client.auth.lock().user.clone() else {
        return Vec::new();
    };
    if key_file::ClusterKey::is_internal_user(&user) && server.cluster_key.get().is_some() {
        return roles::builtin_privileges("__system", "admin").unwrap_or_default();
    }
    match users::resolve_user(server.catalog().as_ref(), &user) {
        Ok(Some(resolved)) => resolved.privileges,
        _ => Vec::new(),
    }
}

pub fn is_authorized(
    server: &ServerState,
    client: &Client,
    required: &[(ResourcePattern, &str)],
) -> bool {
    if required.is_empty() {
        return true;
    }
    let privileges = current_privileges(server, client);
    required
        .iter()
        .all(|(resource, action)| privileges.iter().any(|p| p.allows(resource, action)))
}
