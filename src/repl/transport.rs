//! All traffic to other members goes through [`Transport`]: heartbeats, Raft RPCs and
//! the initiate quorum check. [`DirectTransport`] is a minimal OP_MSG client (one
//! connection per peer, reconnect after an error); the pooled implementation can take
//! its place without touching the callers.

use crate::error::{Code, CommandError};
use crate::wire::{Body, Message, OpMsg, WireCodec};
use bson::Document;
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_util::codec::Framed;

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
}

type Connection = Framed<TcpStream, WireCodec>;

/// One lazily opened connection per peer host.
#[derive(Default)]
pub struct DirectTransport {
    connections: parking_lot::Mutex<HashMap<String, Arc<Mutex<Option<Connection>>>>>,
    next_request_id: AtomicI32,
}

fn network_error(host: &str, what: impl std::fmt::Display) -> CommandError {
    CommandError::new(
        Code::HostUnreachable,
        format!("Error connecting to {host}: {what}"),
    )
}

impl DirectTransport {
    fn slot(&self, host: &str) -> Arc<Mutex<Option<Connection>>> {
        self.connections
            .lock()
            .entry(host.to_ascii_lowercase())
            .or_default()
            .clone()
    }

    async fn round_trip(
        &self,
        host: &str,
        slot: &mut Option<Connection>,
        cmd: Document,
    ) -> Result<Document, CommandError> {
        if slot.is_none() {
            let stream = TcpStream::connect(host)
                .await
                .map_err(|e| network_error(host, e))?;
            let _ = stream.set_nodelay(true);
            *slot = Some(Framed::new(stream, WireCodec));
        }
        let conn = slot.as_mut().expect("connected above");
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed) + 1;
        let request = Message {
            request_id,
            response_to: 0,
            compressor: None,
            body: Body::Msg(OpMsg::from_body(cmd)),
        };
        conn.send(&request)
            .await
            .map_err(|e| network_error(host, e))?;
        loop {
            let incoming = conn
                .next()
                .await
                .ok_or_else(|| network_error(host, "connection closed"))?
                .map_err(|e| network_error(host, e))?;
            let message = incoming
                .message
                .map_err(|e| network_error(host, format!("bad reply: {e}")))?;
            if message.response_to != request_id {
                continue;
            }
            return match message.body {
                Body::Msg(msg) => Ok(msg.into_command()),
                _ => Err(network_error(host, "reply is not OP_MSG")),
            };
        }
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

impl Transport for DirectTransport {
    fn run_command<'a>(
        &'a self,
        host: &'a str,
        cmd: Document,
        timeout: Duration,
    ) -> TransportFuture<'a> {
        Box::pin(async move {
            let slot = self.slot(host);
            let mut guard = slot.lock().await;
            let result =
                tokio::time::timeout(timeout, self.round_trip(host, &mut guard, cmd)).await;
            match result {
                Ok(Ok(reply)) => reply_to_result(reply),
                Ok(Err(e)) => {
                    *guard = None;
                    Err(e)
                }
                Err(_) => {
                    // The reply may still arrive later; a fresh connection keeps replies in order.
                    *guard = None;
                    Err(CommandError::new(
                        Code::NetworkTimeout,
                        format!(
                            "Request to {host} timed out after {} ms",
                            timeout.as_millis()
                        ),
                    ))
                }
            }
        })
    }
}
