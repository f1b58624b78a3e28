//! What the server shares between connections and commands: configuration, clock,
//! parameters, counters, the operation registry and the per-connection [`Client`].

use crate::clock::LogicalClock;
use crate::config::Config;
use crate::log::LogSink;
use crate::ops::OpRegistry;
use crate::params::Parameters;
use crate::wire::Compressor;
use bson::RawDocumentBuf;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Counters behind serverStatus.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_current: AtomicU64,
    pub connections_total_created: AtomicU64,
    pub connections_active: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub num_requests: AtomicU64,
    pub op_command: AtomicU64,
    pub op_query: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The process-wide state every connection and command sees.
pub struct ServerState {
    pub config: Config,
    pub log: Arc<LogSink>,
    pub clock: LogicalClock,
    pub params: Parameters,
    pub stats: Stats,
    pub ops: OpRegistry,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    pub started: Instant,
    pub started_wall: bson::DateTime,
    pub host_name: String,
    /// The port actually listened on (differs from the config with `--port 0`).
    pub port: OnceLock<u16>,
    next_connection_id: AtomicU64,
}

impl ServerState {
    pub fn new(config: Config, log: Arc<LogSink>) -> Arc<Self> {
        Arc::new(ServerState {
            config,
            log,
            clock: LogicalClock::new(),
            params: Parameters::default(),
            stats: Stats::default(),
            ops: OpRegistry::default(),
            shutdown: CancellationToken::new(),
            started: Instant::now(),
            started_wall: bson::DateTime::now(),
            host_name: host_name(),
            port: OnceLock::new(),
            next_connection_id: AtomicU64::new(0),
        })
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn port(&self) -> u16 {
        self.port.get().copied().unwrap_or(self.config.port)
    }

    /// `host:port` as mongod reports itself in serverStatus and hostInfo.
    pub fn host_and_port(&self) -> String {
        format!("{}:{}", self.host_name, self.port())
    }
}

/// The machine's host name, as `hostname` prints it.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length and gethostname NUL-terminates
    // within it (or truncates, which the position search below handles).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

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
