//! All traffic to other members goes through [`Transport`]: heartbeats, Raft RPCs, the
//! initiate/reconfig quorum checks and replSetStepUp. [`PoolTransport`] sends them over
//! the outgoing pool [`REPL_POOL`], as mongod sends replication traffic through its
//! `NetworkInterfaceTL-ReplNetwork` pool; with a keyFile the pool's connections log in
//! as `__system` before carrying any of it.

use crate::config::DEFAULT_PORT;
use crate::error::{Code, CommandError};
use crate::pool::{HostAndPort, PoolManager, REPL_POOL};
use crate::wire::OpMsg;
use bson::Document;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub type TransportFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Document, CommandError>> + Send + 'a>>;

/// Runs one command on another member and returns its reply body (`ok: 0` replies are
/// turned into errors).
pub trait Transport: Send + Sync + 'static {
    fn run_command<'a>(
        &'a self,
        host: &'a str,
        cmd: Document,
        timeout: Duration,
    ) -> TransportFuture<'a>;

    /// Like [`Transport::run_command`], for a message with document sequences (Raft
    /// RPCs, whose entries may exceed what one document holds).
    fn run_message<'a>(
        &'a self,
        host: &'a str,
        message: OpMsg,
        timeout: Duration,
    ) -> TransportFuture<'a>;
}

/// Member traffic over pooled connections. Concurrent requests to one host (a heartbeat
/// and Raft RPCs at once) check out separate connections, within the pool's MaxSize and
/// MaxConnecting; a timeout closes only the connection it happened on, a network error
/// drops the host's pool.
pub struct PoolTransport {
    pools: Arc<PoolManager>,
}

impl PoolTransport {
    pub fn new(pools: Arc<PoolManager>) -> PoolTransport {
        PoolTransport { pools }
    }
}

/// A member's `host:port` as the pool keys it (a config host without a port means 27017).
fn pool_host(host: &str) -> Result<HostAndPort, CommandError> {
    HostAndPort::parse_or_default(host, DEFAULT_PORT)
        .map_err(|e| CommandError::new(Code::FailedToParse, e.to_string()))
}

impl Transport for PoolTransport {
    fn run_command<'a>(
        &'a self,
        host: &'a str,
        cmd: Document,
        timeout: Duration,
    ) -> TransportFuture<'a> {
        self.run_message(host, OpMsg::from_body(cmd), timeout)
    }

    fn run_message<'a>(
        &'a self,
        host: &'a str,
        message: OpMsg,
        timeout: Duration,
    ) -> TransportFuture<'a> {
        Box::pin(async move {
            let target = pool_host(host)?;
            let reply = self
                .pools
                .run_message(REPL_POOL, &target, message, timeout)
                .await?;
            reply_to_result(reply)
        })
    }
}

/// Turns an `ok: 0` reply into the error it carries.
pub fn reply_to_result(reply: Document) -> Result<Document, CommandError> {
    let ok = match reply.get("ok") {
        Some(bson::Bson::Double(d)) => *d != 0.0,
        Some(bson::Bson::Int32(n)) => *n != 0,
        Some(bson::Bson::Int64(n)) => *n != 0,
        Some(bson::Bson::Boolean(b)) => *b,
        _ => false,
    };
    if ok {
        return Ok(reply);
    }
    let code = reply
        .get_i32("code")
        .ok()
        .and_then(Code::from_number)
        .unwrap_or(Code::UnknownError);
    let message = reply
        .get_str("errmsg")
        .unwrap_or("command failed")
        .to_owned();
    Err(CommandError::new(code, message))
}
