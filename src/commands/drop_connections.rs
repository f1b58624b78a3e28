//! dropConnections: closes this server's outgoing pooled connections to the listed hosts,
//! in every named pool (SPEC section 4).

use super::{cluster, is_generic_argument, BoxFuture, Command, Handler, Invocation};
use crate::error::{
    missing_field, type_mismatch, unknown_field, Code, CommandError, CommandResult,
};
use crate::params;
use crate::pool::host_and_port::{HostAndPort, Parsed};
use crate::state::ServerState;
use bson::{Bson, Document};
use std::collections::BTreeSet;
use std::sync::Arc;

pub const DROP_CONNECTIONS: Command = Command {
    admin_only: true,
    privileges: &[cluster("dropConnections")],
    validate: Some(|cmd| parse(cmd).map(drop)),
    ..Command::new(
        "dropConnections",
        "Drop egress connections to specified host and port",
        Handler::Async(run),
    )
};

const FIELD: &str = "hostAndPort";

/// Parses the request as mongod's IDL parser does: fields in order, so the first bad
/// field decides the error; the required field is checked last.
fn parse(cmd: &Document) -> CommandResult<Vec<HostAndPort>> {
    let mut hosts = None;
    for (name, value) in cmd.iter().skip(1) {
        if name == FIELD {
            if !matches!(value, Bson::Null) {
                hosts = Some(parse_hosts(value)?);
            }
        } else if !is_generic_argument(name) {
            return Err(unknown_field(&format!("dropConnections.{name}")));
        }
    }
    hosts.ok_or_else(|| missing_field(&format!("dropConnections.{FIELD}")))
}

fn parse_hosts(value: &Bson) -> CommandResult<Vec<HostAndPort>> {
    let Bson::Array(items) = value else {
        return Err(type_mismatch(
            &format!("dropConnections.{FIELD}"),
            value,
            "array",
        ));
    };
    let mut hosts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Bson::Null => {}
            Bson::String(text) => match HostAndPort::parse(text) {
                Ok(Parsed::Full(host)) => hosts.push(host),
                // Without an explicit port it can name no pool (mongod's documented
                // behaviour: ignored).
                Ok(Parsed::HostOnly(_)) => {}
                Err(e) => return Err(CommandError::new(Code::FailedToParse, e.to_string())),
            },
            other => {
                return Err(type_mismatch(
                    &format!("dropConnections.{FIELD}.{i}"),
                    other,
                    "string",
                ))
            }
        }
    }
    Ok(hosts)
}

fn run(inv: Invocation, cmd: Document) -> BoxFuture {
    Box::pin(async move {
        let hosts = parse(&cmd)?;
        if !hosts.is_empty() {
            let context = format!("conn{}", inv.client.id);
            inv.server.pools.drop_connections(&hosts, &context).await;
        }
        Ok(Document::new())
    })
}

/// The named hosts that name a pool (`host:port`).
fn pool_hosts(hosts: BTreeSet<String>) -> BTreeSet<HostAndPort> {
    hosts
        .iter()
        .filter_map(|h| match HostAndPort::parse(h) {
            Ok(Parsed::Full(host)) => Some(host),
            _ => None,
        })
        .collect()
}

/// With `dropConnectionsToRemovedMembers` on, drops this server's pooled connections to
/// every host that the committed config and Raft membership no longer name (removed, or
/// its address changed), as a manual dropConnections would (SERVER-63045: pools to a
/// removed member otherwise live on until their host timeout). Runs for the life of the
/// server.
pub async fn drop_removed_members(server: Arc<ServerState>) {
    let Some(repl) = server.repl.clone() else {
        return;
    };
    // The state machine publishes only committed (applied) entries.
    let (mut seen, hosts) = repl.named_hosts();
    let mut known = pool_hosts(hosts);
    loop {
        tokio::select! {
            _ = repl.wait_membership_change(&seen) => {}
            _ = server.shutdown.cancelled() => return,
        }
        let (key, hosts) = repl.named_hosts();
        seen = key;
        let now = pool_hosts(hosts);
        let gone: Vec<HostAndPort> = known.difference(&now).cloned().collect();
        known = now;
        if gone.is_empty()
            || !server
                .params
                .get_bool(params::DROP_CONNECTIONS_TO_REMOVED_MEMBERS)
        {
            continue;
        }
        server.pools.drop_connections(&gone, "ReplCoord").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn code(cmd: Document) -> i32 {
        parse(&cmd).unwrap_err().code.number()
    }

    #[test]
    fn parse_follows_the_spec_table() {
        assert_eq!(code(doc! {"dropConnections": 1}), 40414);
        assert_eq!(
            code(doc! {"dropConnections": 1, "hostAndPort": Bson::Null}),
            40414
        );
        assert_eq!(code(doc! {"dropConnections": 1, "hostAndPort": "a:1"}), 14);
        let err = parse(&doc! {"dropConnections": 1, "hostAndPort": ["a:1", 5]}).unwrap_err();
        assert!(
            err.message.contains("dropConnections.hostAndPort.1"),
            "{}",
            err.message
        );
        assert_eq!(
            code(doc! {"dropConnections": 1, "hostAndPort": [], "x": 1}),
            40415
        );
        assert_eq!(code(doc! {"dropConnections": 1, "hostAndPort": ["a:0"]}), 9);
        let ok = parse(&doc! {"dropConnections": 1, "hostAndPort": [Bson::Null, "a", "B:2"], "comment": 1, "$db": "admin"}).unwrap();
        assert_eq!(ok, vec![HostAndPort::new("b", 2)]);
    }
}
