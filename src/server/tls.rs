//! The listener's TLS: which connections are TLS (mongod's `tlsMode`), their handshakes,
//! and the stream type the connection task reads and writes either way.

use crate::client::Client;
use crate::config::TlsMode;
use crate::state::ServerState;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A message header's length: what mongod reads before it decides.
const HEADER_LEN: usize = 16;

/// A TCP stream that first gives back the bytes read from it to choose TLS or plain.
pub struct Prefixed {
    head: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.head.len() {
            let n = (this.head.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.head[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.head.len() {
                this.head = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, b)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A client connection, plain or TLS.
pub enum Stream {
    Plain(Prefixed),
    Tls(Box<TlsStream<Prefixed>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, b),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Prefixed {
    fn new(inner: TcpStream, head: Vec<u8>) -> Prefixed {
        Prefixed {
            head,
            pos: 0,
            inner,
        }
    }
}

fn plain(inner: TcpStream, head: Vec<u8>) -> Stream {
    Stream::Plain(Prefixed::new(inner, head))
}

fn refused(client: &Client, error: &str) -> Option<Stream> {
    tracing::info!(target: "NETWORK", id = 22988, ctx = format!("conn{}", client.id),
        error = %format!("SSLHandshakeFailed: {error}"), remote = %client.remote,
        "Error receiving request from client. Ending connection from remote");
    None
}

/// Makes an accepted connection plain or TLS as `tlsMode` says; None ends it. As mongod
/// does, the first 16 bytes are read as a message header: a `responseTo` other than 0 or
/// -1 (which no client's first message has) is the start of a TLS handshake, so TLS and
/// plain clients share one port under allowTLS and preferTLS.
pub async fn accept(server: &ServerState, mut tcp: TcpStream, client: &Client) -> Option<Stream> {
    let mode = server.config.tls.mode;
    if mode == TlsMode::Disabled {
        return Some(plain(tcp, Vec::new()));
    }
    let mut head = vec![0u8; HEADER_LEN];
    let read = tokio::select! {
        read = tcp.read_exact(&mut head) => read,
        _ = server.shutdown.cancelled() => return None,
    };
    // A client that leaves before sending a whole header sent nothing to answer.
    read.ok()?;
    let response_to = i32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if response_to == 0 || response_to == -1 {
        return match mode {
            TlsMode::RequireTls => refused(
                client,
                "The server is configured to only allow SSL connections",
            ),
            _ => {
                if mode == TlsMode::PreferTls {
                    tracing::info!(target: "NETWORK", id = 23838, ctx = format!("conn{}", client.id),
                        connectionId = client.id as i64, remote = %client.remote,
                        "SSL mode is set to 'preferred' and connection to remote is not using SSL.");
                }
                Some(plain(tcp, head))
            }
        };
    }
    let config = server.tls.server_config()?;
    let handshake = TlsAcceptor::from(config).accept(Prefixed::new(tcp, head));
    let tls = tokio::select! {
        tls = handshake => tls,
        _ = server.shutdown.cancelled() => return None,
    };
    match tls {
        Ok(tls) => {
            let session = tls.get_ref().1;
            server.tls.count(session.protocol_version());
            // Only a certificate the CA vouched for names a user.
            if !server.config.tls.allow_invalid_certificates {
                let subject = session
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|cert| crate::tls::subject_rfc2253(cert));
                if let Some(subject) = subject {
                    let _ = client.tls_subject.set(subject);
                }
            }
            Some(Stream::Tls(Box::new(tls)))
        }
        Err(e) => refused(client, &e.to_string()),
    }
}
