//! One client connection as the command layer sees it: its addresses, hello metadata,
//! negotiated compressors and login state.

use crate::auth::ClientAuth;
use crate::wire::Compressor;
use bson::RawDocumentBuf;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

/// One client connection, as commands see it.
#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// The `client` document of the first hello, once given. Kept as raw BSON: a parsed
    /// Document costs several times its size, on every idle connection.
    pub metadata: OnceLock<RawDocumentBuf>,
    /// Set once the connection has sent its first hello.
    pub hello_done: AtomicBool,
    /// Compressors negotiated through hello.
    pub compressors: Mutex<Vec<Compressor>>,
    /// Who the connection is logged in as, and any SASL conversation under way.
    pub auth: Mutex<ClientAuth>,
    /// The connection said `internalClient` in hello: another cluster member.
    pub internal: AtomicBool,
    /// The subject (RFC 2253) of the verified TLS client certificate, for MONGODB-X509.
    pub tls_subject: OnceLock<String>,
}

impl Client {
    pub fn new(id: u64, remote: SocketAddr, local: SocketAddr) -> Self {
        Client {
            id,
            remote,
            local,
            metadata: OnceLock::new(),
            hello_done: AtomicBool::new(false),
            compressors: Mutex::new(Vec::new()),
            auth: Mutex::new(ClientAuth::default()),
            internal: AtomicBool::new(false),
            tls_subject: OnceLock::new(),
        }
    }

    pub fn app_name(&self) -> Option<String> {
        self.metadata
            .get()
            .and_then(|m| m.get_document("application").ok())
            .and_then(|a| a.get_str("name").ok())
            .map(str::to_owned)
    }

    pub fn is_loopback(&self) -> bool {
        self.remote.ip().is_loopback()
    }
}

impl crate::auth::Subject for Client {
    fn is_loopback(&self) -> bool {
        Client::is_loopback(self)
    }

    fn auth(&self) -> &Mutex<ClientAuth> {
        &self.auth
    }
}
