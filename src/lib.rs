//! ferrod: a standalone mongod-style server for the cluster-networking side of MongoDB.
//!
//! # Layout
//! - [`wire`]: bytes to messages and back (no I/O).
//! - [`server`]: listeners, connection tasks, shutdown.
//! - [`commands`]: the command table, the dispatcher and one file per command.
//! - [`auth`]: SCRAM, users, roles, privileges and the per-connection login state.
//! - [`catalog`]: the embedded store under `--dbpath` (users, roles, later keys and config).
//! - [`repl`]: replica-set membership: config, Raft-backed election, heartbeats.
//! - [`error`]: MongoDB's error codes and the command error type.
//! - [`pool`]: outgoing connection pools to other servers (dropConnections, connPoolStats).
//! - [`query`]: the query language on documents in memory (order, filters, updates).
//! - [`storage`]: documents, collections and indexes on disk.
//! - [`blocking`]: CPU- and fsync-bound work, kept off the async workers.
//! - [`state`]: the composition root (`ServerState`); only `server` and `commands` see it.
//! - [`client`]: one client connection as commands see it.
//! - [`config`], [`params`], [`log`], [`clock`], [`cluster_time`], [`ops`], [`random`],
//!   [`version`]: the pieces the layers share.
//!
//! Dependencies point one way (docs/architecture.md; `tests/layering.rs` checks it).

pub mod admin;
pub mod auth;
pub mod blocking;
pub mod catalog;
pub mod client;
pub mod clock;
pub mod cluster_time;
pub mod commands;
pub mod config;
pub mod error;
pub mod failpoint;
pub mod log;
pub mod log_components;
pub mod op_counters;
pub mod ops;
pub mod params;
pub mod pool;
pub mod query;
pub mod random;
pub mod repl;
pub mod server;
pub mod sessions;
pub mod state;
pub mod storage;
pub mod tls;
pub mod version;
pub mod wire;

pub use version::{FEATURE_COMPATIBILITY_VERSION, MONGODB_VERSION};

/// Why startup stopped, and the exit status mongod gives for it.
#[derive(Debug)]
pub struct StartupError {
    pub message: String,
    pub exit_code: u8,
}

impl From<String> for StartupError {
    fn from(message: String) -> StartupError {
        StartupError {
            message,
            exit_code: 2,
        }
    }
}

/// Applies startup settings that can fail (parameters, the key file), logging the
/// startup banner. Errors name what is wrong; nothing is listening yet.
pub fn startup(server: &state::ServerState) -> Result<(), StartupError> {
    let config = &server.config;
    // Parameters first: maxBSONDepth bounds the reading of the store below.
    server
        .params
        .set_many(&config.set_parameters, true)
        .map_err(|e| format!("Illegal --setParameter: {}", e.message))?;
    if config.quiet {
        let _ = server
            .params
            .set_many(&[(params::QUIET.into(), bson::Bson::Boolean(true))], true);
    }
    commands::apply_parameters(server);
    // Before anything listens: a second server on the same dbpath stops here.
    let catalog: std::sync::Arc<dyn catalog::Catalog> =
        std::sync::Arc::new(catalog::RedbCatalog::open(&config.dbpath)?);
    if server.catalog.set(catalog.clone()).is_err() {
        return Err(String::from("the catalog was already opened").into());
    }
    if let Some(repl) = &server.repl {
        repl.attach_catalog(catalog)
            .map_err(|e| format!("cannot read the replica set state from the catalog: {e}"))?;
    }
    if let Some(path) = &config.key_file {
        load_key_file(server, path)?;
    }
    if config.tls.enabled() {
        server.tls.load(&config.tls).map_err(|e| {
            tracing::error!(target: "NETWORK", id = 23248, ctx = "main", error = %e,
                "Unable to initialize TLS");
            StartupError {
                message: format!("Unable to initialize TLS: {e}"),
                exit_code: 1,
            }
        })?;
    }
    tracing::info!(target: "CONTROL", id = 4615611, ctx = "initandlisten",
        pid = std::process::id() as i64, port = config.port as i64,
        dbPath = %config.dbpath.display(), host = %server.host_name,
        "MongoDB starting");
    tracing::info!(target: "CONTROL", id = 23403, ctx = "initandlisten",
        version = MONGODB_VERSION, ferrodVersion = env!("CARGO_PKG_VERSION"), "Build Info");
    if !config.auth {
        tracing::warn!(target: "CONTROL", id = 22120, ctx = "initandlisten", tags = "startupWarnings",
            "Access control is not enabled for the database. Read and write access to data and configuration is unrestricted");
    }
    Ok(())
}

/// Reads `--keyFile` as mongod does (refusing it exits with status 1) and makes the
/// outgoing pools log in to other members with it.
fn load_key_file(server: &state::ServerState, path: &std::path::Path) -> Result<(), StartupError> {
    let iterations = |name| server.params.get_i64(name) as u32;
    let key = auth::key_file::ClusterKey::load(
        path,
        iterations(params::SCRAM_SHA1_ITERATIONS),
        iterations(params::SCRAM_SHA256_ITERATIONS),
    )
    .map_err(|e| {
        tracing::info!(target: "ACCESS", id = 20254, ctx = "main",
            error = %serde_json::json!({"code": e.code.number(), "codeName": e.code.name(), "errmsg": e.message}),
            "Read security file failed");
        tracing::error!(target: "CONTROL", id = 20575, ctx = "main",
            error = "Location5579201: Unable to acquire security key[s]",
            "Error creating service context");
        StartupError {
            message: format!("Read security file failed: {}", e.message),
            exit_code: 1,
        }
    })?;
    let key = std::sync::Arc::new(key);
    server.pools.set_connection_setup(Some(key.clone()));
    // With a keyFile, $clusterTime is signed with the keys in the catalog.
    let keys = std::sync::Arc::new(cluster_time::ClusterKeys::default());
    clock::SigningKeys::load(keys.as_ref(), server.catalog().as_ref());
    server.clock.enable_signing(keys);
    let _ = server.cluster_key.set(key);
    Ok(())
}

/// Raises this process's soft limit on open descriptors to the hard limit, so that
/// thousands of connections fit; returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}
