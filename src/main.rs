use clap::Parser;
use ferrod::config::{Cli, Config};
use ferrod::log::LogSink;
use ferrod::state::ServerState;
use std::process::ExitCode;

mod healthcheck;

/// The stack of every runtime thread, async workers and blocking threads alike.
const WORKER_STACK_BYTES: usize = 16 << 20;

/// Installs the SIGTERM/SIGINT handlers (before anything listens, so that a signal sent as
/// soon as the port opens already shuts down gracefully) and returns the task body that
/// turns the first signal into a graceful shutdown.
fn signal_handler(
    server: std::sync::Arc<ServerState>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    wait_for_signal(server, term, int)
}

async fn wait_for_signal(
    server: std::sync::Arc<ServerState>,
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    let (number, name) = tokio::select! {
        _ = term.recv() => (libc::SIGTERM, "Terminated"),
        _ = int.recv() => (libc::SIGINT, "Interrupt"),
        _ = server.shutdown.cancelled() => return,
    };
    tracing::info!(target: "CONTROL", id = 23377, ctx = "SignalHandler", signal = number, error = name, "Received signal");
    let grace_ms = server
        .params
        .get_i64(ferrod::params::SIGNALED_SHUTDOWN_TIMEOUT_MS);
    let grace = std::time::Duration::from_millis(grace_ms.max(0) as u64);
    server.shut_down(grace, false).await;
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `ferrod healthcheck ...` is a client of its own, not a server flag: handled before
    // clap sees the mongod-style command line.
    if args.get(1).is_some_and(|a| a == "healthcheck") {
        let rest: Vec<String> = args[2..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return healthcheck::main(&rest);
    }
    if args.get(1).is_some_and(|a| a == "admin") {
        let rest: Vec<String> = args[2..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return ferrod::admin::main(&rest);
    }
    if args.get(1).is_some_and(|a| a == "cert-gen") {
        let rest: Vec<String> = args[2..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return ferrod::tls::certgen::main(&rest);
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if cli.version {
        // mongod's first line, which tools parse, then ferrod's own version.
        println!("db version v{}", ferrod::MONGODB_VERSION);
        println!("ferrod version v{}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let mut config = match Config::from_cli(cli) {
        Ok(config) => config,
        Err(msg) => {
            eprintln!("ferrod: {msg}");
            return ExitCode::from(2);
        }
    };
    config.argv = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Err(e) = std::fs::create_dir_all(&config.dbpath) {
        eprintln!(
            "ferrod: cannot create dbpath {}: {e}",
            config.dbpath.display()
        );
        return ExitCode::from(100);
    }
    let log = match LogSink::new(
        config.log_format,
        config.logpath.clone(),
        config.log_append,
        config.quiet,
    ) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("ferrod: cannot open log file: {e}");
            return ExitCode::from(2);
        }
    };
    log.set_verbosity(config.verbosity);
    log.install();
    let server = ServerState::new(config, log);
    if let Err(e) = ferrod::startup(&server) {
        eprintln!("ferrod: {}", e.message);
        return ExitCode::from(e.exit_code);
    }
    ferrod::raise_fd_limit();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Documents are walked recursively once maxBSONDepth (at most 250 levels) has
        // bounded them; 16 MiB covers the deepest walk with room to spare, also in debug
        // builds, whose frames are several times larger. Only touched pages use memory.
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let on_signal = signal_handler(server.clone());
        let listeners = match ferrod::server::bind(&server).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(target: "CONTROL", id = 20568, ctx = "initandlisten", error = %e, "Error setting up listener");
                eprintln!("ferrod: {e}");
                return ExitCode::from(48);
            }
        };
        tokio::spawn(on_signal);
        tokio::spawn(ferrod::commands::ttl::run(server.clone()));
        tokio::spawn(ferrod::commands::drop_connections::drop_removed_members(
            server.clone(),
        ));
        ferrod::server::run(server.clone(), listeners).await;
        ExitCode::SUCCESS
    })
}
