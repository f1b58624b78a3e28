//! What the replication layer gets of the server: the composition of `ServerState` and
//! the command layer behind `repl::ReplHost`, so that `repl` imports neither.

use crate::client::Client;
use crate::clock::LogicalClock;
use crate::error::Code;
use crate::repl::{FirstUserFuture, ReplHost};
use crate::state::ServerState;
use bson::{doc, Bson, Document};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

impl ReplHost for ServerState {
    fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    fn clock(&self) -> &Arc<LogicalClock> {
        &self.clock
    }

    fn port(&self) -> u16 {
        ServerState::port(self)
    }

    fn host_name(&self) -> &str {
        &self.host_name
    }

    fn host_and_port(&self) -> String {
        ServerState::host_and_port(self)
    }

    fn bind_ip_all(&self) -> bool {
        self.config.bind_ip_all
    }

    fn bind_ip(&self) -> &[String] {
        &self.config.bind_ip
    }

    fn initial_members(&self) -> &[String] {
        &self.config.initial_members
    }

    fn started(&self) -> Instant {
        self.started
    }

    fn is_repl_member(&self) -> bool {
        self.repl.is_some()
    }

    fn catalog(&self) -> &Arc<dyn crate::catalog::Catalog> {
        ServerState::catalog(self)
    }

    fn params(&self) -> &crate::params::Parameters {
        &self.params
    }

    fn topology_version(&self) -> Document {
        ServerState::topology_version(self)
    }

    /// Runs createUser as a local connection would (the localhost exception lets the first
    /// user through), so it takes exactly the path a client's createUser takes.
    fn create_first_user(self: Arc<Self>, user: String, password: String) -> FirstUserFuture {
        Box::pin(async move {
            let local: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
            let client = Arc::new(Client::new(0, local, local));
            let cmd = doc! {
                "createUser": user, "pwd": password,
                "roles": [{"role": "root", "db": "admin"}],
                "$db": "admin",
            };
            let reply = super::dispatch(&self, &client, cmd, false)
                .await
                .body
                .into_document();
            match reply.get("ok") {
                Some(Bson::Double(ok)) if *ok == 1.0 => Ok(()),
                // Another primary created it meanwhile.
                _ if reply.get_i32("code") == Ok(Code::Location51003.number()) => Ok(()),
                _ => Err(reply
                    .get_str("errmsg")
                    .unwrap_or("createUser failed")
                    .to_owned()),
            }
        })
    }
}
