//! What the server shares between connections and commands: configuration, clock,
//! parameters, counters and the operation registry: the composition root that builds
//! every layer. Only `server` and `commands` see it.

use crate::catalog::{Catalog, RedbCatalog};
use crate::clock::LogicalClock;
use crate::config::Config;
use crate::log::LogSink;
use crate::ops::OpRegistry;
use crate::params::Parameters;
use crate::pool::PoolManager;
use crate::repl::transport::PoolTransport;
use crate::repl::ReplCoordinator;
use crate::wire::{CompressedSizes, Compressor};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// serverStatus `metrics.commands`.
    pub commands: CommandCounters,
    /// Indexed by compressor id (noop, snappy, zlib, zstd).
    compression: [CompressorCounters; 4],
}

/// serverStatus `metrics.commands`, stored here and kept by the command layer
/// (`commands::metrics`), which alone knows the command table.
#[derive(Debug, Default)]
pub struct CommandCounters {
    /// `[total, failed]` per command in the table's order, sized on first use.
    pub(crate) counts: OnceLock<Box<[[AtomicU64; 2]]>>,
    pub(crate) unknown: AtomicU64,
    /// Failed commands: mongod counts each one's user assertion in `asserts.user`.
    pub(crate) failed: AtomicU64,
}

/// Bytes through one compressor, both directions, as mongod counts them for
/// serverStatus.network.compression.
#[derive(Debug, Default)]
pub struct CompressorCounters {
    /// Uncompressed bytes given to the compressor.
    pub compressor_bytes_in: AtomicU64,
    /// Compressed bytes it produced.
    pub compressor_bytes_out: AtomicU64,
    /// Compressed bytes given to the decompressor.
    pub decompressor_bytes_in: AtomicU64,
    /// Bytes it expanded them to.
    pub decompressor_bytes_out: AtomicU64,
}

impl Stats {
    pub fn compression(&self, compressor: Compressor) -> &CompressorCounters {
        &self.compression[usize::from(compressor.id())]
    }

    /// Counts a reply (or outgoing request) that was compressed.
    pub fn count_compressed(&self, sizes: CompressedSizes) {
        let c = self.compression(sizes.compressor);
        Self::add(&c.compressor_bytes_in, sizes.uncompressed as u64);
        Self::add(&c.compressor_bytes_out, sizes.compressed as u64);
    }

    /// Counts a request (or incoming reply) that was decompressed.
    pub fn count_decompressed(&self, sizes: CompressedSizes) {
        let c = self.compression(sizes.compressor);
        Self::add(&c.decompressor_bytes_in, sizes.compressed as u64);
        Self::add(&c.decompressor_bytes_out, sizes.uncompressed as u64);
    }

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
    pub clock: Arc<LogicalClock>,
    pub params: Parameters,
    pub stats: Stats,
    pub ops: OpRegistry,
    /// Outgoing connection pools to other servers (shared with the replica-set transport).
    pub pools: Arc<PoolManager>,
    /// Cancelled when the server starts shutting down; use [`ServerState::begin_shutdown`].
    pub shutdown: CancellationToken,
    /// How long in-flight commands may still run once shutdown has begun.
    shutdown_grace_ms: AtomicU64,
    pub started: Instant,
    pub started_wall: bson::DateTime,
    pub host_name: String,
    /// The port actually listened on (differs from the config with `--port 0`).
    pub port: OnceLock<u16>,
    /// The store under `--dbpath`, opened by [`crate::startup`].
    pub catalog: OnceLock<Arc<dyn Catalog>>,
    /// The document store, in the catalog's database; see [`ServerState::storage`].
    pub storage: OnceLock<Arc<crate::storage::Storage>>,
    /// Open cursors of find, aggregate and listCollections.
    pub cursors: crate::storage::cursors::CursorRegistry,
    /// The `--keyFile` secret's SCRAM credentials for `__system@local`, if one was given.
    pub cluster_key: OnceLock<Arc<crate::auth::key_file::ClusterKey>>,
    /// Replica-set membership, when started with `--replSet`.
    pub repl: Option<Arc<ReplCoordinator>>,
    /// Fail points (`configureFailPoint`, test commands only).
    pub failpoints: crate::failpoint::FailPoints,
    next_connection_id: AtomicU64,
}

/// `topologyVersion.processId`: fixed for the life of the process, as on mongod.
pub fn process_id() -> bson::oid::ObjectId {
    static ID: std::sync::LazyLock<bson::oid::ObjectId> =
        std::sync::LazyLock::new(bson::oid::ObjectId::new);
    *ID
}

impl ServerState {
    /// The current `topologyVersion` (hello, state-change errors). A standalone's counter
    /// never moves.
    pub fn topology_version(&self) -> bson::Document {
        let counter = self
            .repl
            .as_ref()
            .map_or(0, |repl| repl.refresh_topology(self));
        bson::doc! {"processId": process_id(), "counter": counter}
    }

    pub fn new(config: Config, log: Arc<LogSink>) -> Arc<Self> {
        let params = Parameters::default();
        let pools = Arc::new(PoolManager::new(&params));
        let clock = Arc::new(LogicalClock::new());
        let repl = config.repl_set.clone().map(|name| {
            let transport = Arc::new(PoolTransport::new(pools.clone()));
            ReplCoordinator::new(
                name,
                Some(&config.dbpath),
                transport,
                clock.clone(),
                process_id(),
            )
            .unwrap_or_else(|e| {
                // Starting without the saved Raft state could break the set's safety.
                eprintln!("ferrod: cannot read the replica set state under the dbpath: {e}");
                std::process::exit(100)
            })
        });
        Arc::new(ServerState {
            config,
            log,
            clock,
            params,
            pools,
            stats: Stats::default(),
            ops: OpRegistry::default(),
            shutdown: CancellationToken::new(),
            shutdown_grace_ms: AtomicU64::new(0),
            started: Instant::now(),
            started_wall: bson::DateTime::now(),
            host_name: host_name(),
            port: OnceLock::new(),
            catalog: OnceLock::new(),
            storage: OnceLock::new(),
            cursors: Default::default(),
            cluster_key: OnceLock::new(),
            repl,
            failpoints: Default::default(),
            next_connection_id: AtomicU64::new(0),
        })
    }

    /// Starts a graceful shutdown: stop accepting, let in-flight commands run for up to
    /// `grace`, then interrupt what is left. The first caller's grace wins.
    pub fn begin_shutdown(&self, grace: std::time::Duration) {
        if !self.shutdown.is_cancelled() {
            self.shutdown_grace_ms
                .store(grace.as_millis() as u64, Ordering::Relaxed);
            self.shutdown.cancel();
        }
    }

    /// Graceful shutdown as mongod does it: a primary first hands over to a caught-up
    /// secondary (for at most 5 s, within the grace period: `docker stop` kills after
    /// 10 s), then the server stops. `force` skips the hand-over.
    pub async fn shut_down(self: Arc<Self>, grace: std::time::Duration, force: bool) {
        if let (Some(repl), false) = (&self.repl, force) {
            let within = grace.min(std::time::Duration::from_secs(5));
            repl.hand_over(&self, within).await;
        }
        self.begin_shutdown(grace);
    }

    pub fn shutdown_grace(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.shutdown_grace_ms.load(Ordering::Relaxed))
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The catalog. A state that never went through startup (library use, unit tests)
    /// gets an in-memory one.
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        self.catalog
            .get_or_init(|| Arc::new(RedbCatalog::in_memory()))
    }

    /// The document store, in the catalog's redb database (see `storage`).
    pub fn storage(&self) -> &Arc<crate::storage::Storage> {
        self.storage.get_or_init(|| {
            let db = self.catalog().database().unwrap_or_else(|| {
                Arc::new(
                    redb::Database::builder()
                        .create_with_backend(redb::backends::InMemoryBackend::new())
                        .expect("in-memory redb"),
                )
            });
            Arc::new(crate::storage::Storage::new(db))
        })
    }

    pub fn port(&self) -> u16 {
        self.port.get().copied().unwrap_or(self.config.port)
    }

    /// `host:port` as mongod reports itself in serverStatus and hostInfo.
    pub fn host_and_port(&self) -> String {
        format!("{}:{}", self.host_name, self.port())
    }
}

impl crate::auth::AuthContext for ServerState {
    fn auth_enforced(&self) -> bool {
        self.config.auth
    }

    fn auth_catalog(&self) -> &Arc<dyn Catalog> {
        self.catalog()
    }

    fn has_cluster_key(&self) -> bool {
        self.cluster_key.get().is_some()
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
