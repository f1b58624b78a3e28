//! Authentication and authorization: SCRAM, users and roles kept in the catalog,
//! built-in roles, and the per-connection login state the dispatcher checks.

pub mod key_file;
pub mod privilege;
pub mod roles;
pub mod scram;
pub mod users;

use crate::catalog::{Catalog, Collection};
use parking_lot::Mutex;
use privilege::{Privilege, ResourcePattern};
use scram::{Mechanism, ServerConversation};
use std::fmt;
use std::sync::Arc;

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
pub fn required_resource(resource: privilege::Resource, db: &str) -> ResourcePattern {
    match resource {
        privilege::Resource::Cluster => ResourcePattern::Cluster,
        privilege::Resource::Database => ResourcePattern::Database(db.to_owned()),
    }
}

/// What the access checks read of the server; the composition root provides it.
pub trait AuthContext {
    /// Whether authorization is being enforced (`--auth` or a keyFile).
    fn auth_enforced(&self) -> bool;
    fn auth_catalog(&self) -> &Arc<dyn Catalog>;
    /// Whether a `--keyFile` was given (`__system@local` then holds `__system`).
    fn has_cluster_key(&self) -> bool;
}

impl<T: AuthContext + ?Sized> AuthContext for Arc<T> {
    fn auth_enforced(&self) -> bool {
        (**self).auth_enforced()
    }
    fn auth_catalog(&self) -> &Arc<dyn Catalog> {
        (**self).auth_catalog()
    }
    fn has_cluster_key(&self) -> bool {
        (**self).has_cluster_key()
    }
}

/// What the access checks read of a connection.
pub trait Subject {
    fn is_loopback(&self) -> bool;
    fn auth(&self) -> &Mutex<ClientAuth>;
}

impl<T: Subject + ?Sized> Subject for Arc<T> {
    fn is_loopback(&self) -> bool {
        (**self).is_loopback()
    }
    fn auth(&self) -> &Mutex<ClientAuth> {
        (**self).auth()
    }
}

/// Whether authorization is being enforced on this server.
pub fn enforced(server: &(impl AuthContext + ?Sized)) -> bool {
    server.auth_enforced()
}

/// mongod's localhost exception: auth on, no user yet, a loopback client.
pub fn localhost_exception(
    server: &(impl AuthContext + ?Sized),
    client: &(impl Subject + ?Sized),
) -> bool {
    client.is_loopback()
        && server
            .auth_catalog()
            .is_empty(Collection::Users)
            .unwrap_or(false)
}

/// Every privilege the connection's user holds now (roles are read fresh from the
/// catalog, so a grant or revoke applies to logged-in users at once).
pub fn current_privileges(
    server: &(impl AuthContext + ?Sized),
    client: &(impl Subject + ?Sized),
) -> Vec<Privilege> {
    let Some(user) = client.auth().lock().user.clone() else {
        return Vec::new();
    };
    if key_file::ClusterKey::is_internal_user(&user) && server.has_cluster_key() {
        return roles::builtin_privileges("__system", "admin").unwrap_or_default();
    }
    match users::resolve_user(server.auth_catalog().as_ref(), &user) {
        Ok(Some(resolved)) => resolved.privileges,
        _ => Vec::new(),
    }
}

pub fn is_authorized(
    server: &(impl AuthContext + ?Sized),
    client: &(impl Subject + ?Sized),
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
