//! One outgoing connection to another server: TCP connect, the hello handshake, an
//! optional authentication step, and OP_MSG command round trips.

use super::{HostAndPort, PoolError};
use crate::wire::{Body, Message, OpMsg, WireCodec};
use bson::{doc, Document};
use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::Framed;

/// The receive buffer a connection keeps between round trips: replies to members' traffic
/// (heartbeats, votes, AppendEntries) fit in it.
const KEEP_READ_BUFFER: usize = 64 * 1024;

pub type SetupFuture<'a> = Pin<Box<dyn Future<Output = Result<(), PoolError>> + Send + 'a>>;

/// The byte stream under a connection: TCP in the server, an in-memory pipe in the pool's
/// unit tests.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

pub type TransportFuture =
    Pin<Box<dyn Future<Output = Result<Box<dyn Transport>, PoolError>> + Send>>;

/// Opens the transport to a host: [`tcp_connector`] in the server; the seam through which
/// unit tests give the pool in-memory peers.
pub type Connector = Arc<dyn Fn(HostAndPort) -> TransportFuture + Send + Sync>;

/// TCP to the host, with Nagle off.
pub fn tcp_connector() -> Connector {
    Arc::new(|host: HostAndPort| {
        Box::pin(async move {
            let stream = TcpStream::connect(host.connect_target())
                .await
                .map_err(|e| {
                    PoolError::HostUnreachable(format!("Error connecting to {host}: {e}"))
                })?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as Box<dyn Transport>)
        })
    })
}

/// A step run on every new connection after its hello handshake, before the pool hands it
/// out: keyFile authentication (SCRAM-SHA-256 as `__system`) plugs in here.
pub trait ConnectionSetup: Send + Sync + 'static {
    /// Fields added to the handshake hello (e.g. `saslSupportedMechs`,
    /// `speculativeAuthenticate`).
    fn hello_fields(&self) -> Document {
        Document::new()
    }

    /// Runs after hello succeeded; an error discards the connection.
    fn after_hello<'a>(
        &'a self,
        conn: &'a mut Connection,
        hello_reply: &'a Document,
    ) -> SetupFuture<'a>;
}

/// An established connection. The pool owns it; users reach it through
/// [`super::PooledConnection`].
pub struct Connection {
    framed: Framed<Box<dyn Transport>, WireCodec>,
    host: HostAndPort,
    next_request_id: i32,
    /// The pool generation it was created in; older ones are closed when seen.
    pub(crate) generation: u64,
    /// When it was last used or checked, for the refresh rule.
    pub(crate) idle_since: Instant,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.host)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Connection {
    /// Connects over TCP, says hello (and runs `setup`), all within `timeout`.
    pub async fn connect(
        host: &HostAndPort,
        my_host: &str,
        timeout: Duration,
        setup: Option<Arc<dyn ConnectionSetup>>,
    ) -> Result<Connection, PoolError> {
        Self::connect_via(&tcp_connector(), host, my_host, timeout, setup).await
    }

    /// Like [`Self::connect`], over the transport `connector` opens.
    pub async fn connect_via(
        connector: &Connector,
        host: &HostAndPort,
        my_host: &str,
        timeout: Duration,
        setup: Option<Arc<dyn ConnectionSetup>>,
    ) -> Result<Connection, PoolError> {
        let attempt = async {
            let stream = connector(host.clone()).await?;
            let mut conn = Connection {
                framed: Framed::new(stream, WireCodec),
                host: host.clone(),
                next_request_id: 1,
                generation: 0,
                idle_since: Instant::now(),
            };
            let mut hello = doc! {
                "hello": 1,
                "hostInfo": my_host,
                "internalClient": {"minWireVersion": 21, "maxWireVersion": 21},
            };
            if let Some(setup) = &setup {
                hello.extend(setup.hello_fields());
            }
            hello.insert("$db", "admin");
            let reply = conn.round_trip(OpMsg::from_body(hello)).await?;
            if reply.get_f64("ok").ok() != Some(1.0) {
                return Err(PoolError::HostUnreachable(format!(
                    "hello to {host} failed: {reply}"
                )));
            }
            if let Some(setup) = &setup {
                setup.after_hello(&mut conn, &reply).await?;
            }
            Ok(conn)
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(PoolError::Timeout(format!(
                    "Timed out connecting to {host} after {}ms",
                    timeout.as_millis()
                )))
            })
    }

    pub fn host(&self) -> &HostAndPort {
        &self.host
    }

    /// Sends `command` (which must carry `$db`) and returns the reply body, `ok: 0`
    /// replies included. A timeout leaves the connection unusable.
    pub async fn run_command(
        &mut self,
        command: Document,
        timeout: Duration,
    ) -> Result<Document, PoolError> {
        self.run_message(OpMsg::from_body(command), timeout).await
    }

    /// Like [`Self::run_command`], for a message with document sequences too.
    pub async fn run_message(
        &mut self,
        message: OpMsg,
        timeout: Duration,
    ) -> Result<Document, PoolError> {
        let host = self.host.clone();
        let result = tokio::time::timeout(timeout, self.round_trip(message))
            .await
            .unwrap_or_else(|_| {
                Err(PoolError::Timeout(format!(
                    "Request to {host} timed out after {}ms",
                    timeout.as_millis()
                )))
            });
        self.release_large_buffers();
        result
    }

    /// Lets go of the allocations under the send and receive buffers once a round trip is
    /// over. A sent message only moves the send buffer's start forward, so the buffer kept
    /// the allocation of the largest message the connection ever sent (a new primary's
    /// first AppendEntries of up to 300 entries) for the connection's whole life; a fresh
    /// buffer costs one allocation per message, which encoding makes anyway.
    fn release_large_buffers(&mut self) {
        if self.framed.write_buffer().is_empty() {
            *self.framed.write_buffer_mut() = BytesMut::new();
        }
        if self.framed.read_buffer().is_empty()
            && self.framed.read_buffer().capacity() > KEEP_READ_BUFFER
        {
            *self.framed.read_buffer_mut() = BytesMut::new();
        }
    }

    /// Whether the send buffer still holds an allocation of at least `bytes` (one it could
    /// reuse without allocating).
    #[cfg(test)]
    pub(crate) fn holds_send_buffer(&mut self, bytes: usize) -> bool {
        self.framed.write_buffer_mut().try_reclaim(bytes)
    }

    async fn round_trip(&mut self, message: OpMsg) -> Result<Document, PoolError> {
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let message = Message {
            request_id,
            response_to: 0,
            compressor: None,
            body: Body::Msg(message),
        };
        let network = |what: &str, e: &dyn std::fmt::Display| {
            PoolError::Network(format!("{what} {}: {e}", self.host))
        };
        self.framed
            .send(&message)
            .await
            .map_err(|e| network("error sending to", &e))?;
        let incoming = match self.framed.next().await {
            Some(Ok(incoming)) => incoming,
            Some(Err(e)) => return Err(network("error reading from", &e)),
            None => return Err(network("connection closed by", &"end of stream")),
        };
        let reply = incoming
            .message
            .map_err(|e| network("bad reply from", &e))?;
        if reply.response_to != request_id {
            return Err(network(
                "reply out of order from",
                &format!("responseTo {} for request {request_id}", reply.response_to),
            ));
        }
        match reply.body {
            Body::Msg(msg) => Ok(msg.into_command()),
            _ => Err(network(
                "reply with an unexpected opcode from",
                &"not OP_MSG",
            )),
        }
    }
}
