//! Binding the listening sockets and accepting connections up to `maxConns`.

use super::connection;
use crate::client::Client;
use crate::state::{ServerState, Stats};
use socket2::{Domain, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

const BACKLOG: i32 = 4096;

/// The bound listening sockets, before anything is accepted.
pub struct Listeners {
    pub sockets: Vec<TcpListener>,
    pub port: u16,
}

fn listen_on(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        // Keep IPv6 sockets to IPv6 so that 0.0.0.0 and :: can both be bound.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Binds every configured address. With port 0, the first socket picks the port and the
/// others use the same one.
pub async fn bind(server: &ServerState) -> io::Result<Listeners> {
    let config = &server.config;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    if config.bind_ip_all {
        addrs.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
        addrs.push(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0));
    } else {
        for host in &config.bind_ip {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let resolved: Vec<SocketAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, 0)],
                Err(_) => tokio::net::lookup_host((host, 0))
                    .await
                    .map_err(|e| {
                        io::Error::new(e.kind(), format!("bind_ip: cannot resolve '{host}': {e}"))
                    })?
                    .collect(),
            };
            for addr in resolved {
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
        }
    }
    let mut port = config.port;
    let mut sockets = Vec::new();
    for mut addr in addrs {
        addr.set_port(port);
        match listen_on(addr) {
            Ok(listener) => {
                port = listener.local_addr()?.port();
                sockets.push(listener);
            }
            // An IPv6 wildcard on a host without IPv6 is not fatal for --bind_ip_all.
            Err(e) if config.bind_ip_all && addr.is_ipv6() => {
                tracing::warn!(target: "NETWORK", id = 23016, ctx = "initandlisten", error = %e, "Not listening on IPv6");
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr}: {e}"),
                ));
            }
        }
    }
    Ok(Listeners { sockets, port })
}

/// Accepts connections until shutdown, then waits (bounded) for their commands to finish.
pub async fn run(server: Arc<ServerState>, listeners: Listeners) {
    let _ = server.port.set(listeners.port);
    server.pools.set_my_host(server.host_and_port());
    if let Some(repl) = &server.repl {
        repl.start(&server);
    }
    let limit = Arc::new(Semaphore::new(
        server.config.max_conns.min(Semaphore::MAX_PERMITS),
    ));
    let tracker = TaskTracker::new();
    for listener in listeners.sockets {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(target: "NETWORK", id = 23015, ctx = "listener", address = %addr, "Listening on");
        }
        tracker.spawn(accept_loop(
            server.clone(),
            listener,
            limit.clone(),
            tracker.clone(),
        ));
    }
    tracing::info!(target: "NETWORK", id = 23016, ctx = "listener", port = listeners.port,
        ssl = if server.config.tls.enabled() { "on" } else { "off" }, "Waiting for connections");

    server.shutdown.cancelled().await;
    // The accept loops see the same cancellation and drop their sockets.
    tracing::info!(target: "NETWORK", id = 20562, ctx = "SignalHandler", "Shutdown: going to close listening sockets");
    tracker.close();
    let grace = server.shutdown_grace();
    tracing::info!(target: "COMMAND", id = 4784923, ctx = "SignalHandler",
        gracePeriodMillis = grace.as_millis() as u64, "Shutting down the ServiceEntryPoint");
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        let interrupted = server.ops.kill_all();
        tracing::warn!(target: "COMMAND", id = 4784923, ctx = "SignalHandler", interrupted,
            "Interrupting operations still running after the shutdown grace period");
        // Interrupted commands answer at once; a connection that still does not finish
        // is closed when the process exits.
        let _ = tokio::time::timeout(super::INTERRUPTED_REPLY_WAIT, tracker.wait()).await;
    }
    tracing::info!(target: "CONTROL", id = 20565, ctx = "SignalHandler", "Now exiting");
    tracing::info!(target: "CONTROL", id = 23138, ctx = "SignalHandler", exitCode = 0, "Shutting down");
}

async fn accept_loop(
    server: Arc<ServerState>,
    listener: TcpListener,
    limit: Arc<Semaphore>,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = server.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of descriptors and the like: log, back off briefly, go on.
                tracing::warn!(target: "NETWORK", id = 22942, ctx = "listener", error = %e, "Error accepting new connection");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            Stats::add(&server.stats.connections_rejected, 1);
            tracing::info!(target: "NETWORK", id = 22942, ctx = "listener", remote = %remote,
                connectionCount = Stats::get(&server.stats.connections_current),
                "Connection refused because there are too many open connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(remote);
        let id = server.next_connection_id();
        let client = Arc::new(Client::new(id, remote, local));
        let slot = ConnectionSlot::open(server.clone(), id, remote, permit);
        let server = server.clone();
        tracker.spawn(async move {
            let _slot = slot;
            if let Some(stream) = super::tls::accept(&server, stream, &client).await {
                connection::serve(&server, stream, &client).await;
            }
        });
    }
}

/// One open connection in `connections.current` and the `maxConns` count. Dropping it
/// ends the connection's accounting, so a connection task that panics is still counted
/// out.
struct ConnectionSlot {
    server: Arc<ServerState>,
    id: u64,
    remote: SocketAddr,
    _permit: OwnedSemaphorePermit,
}

impl ConnectionSlot {
    fn open(
        server: Arc<ServerState>,
        id: u64,
        remote: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) -> ConnectionSlot {
        Stats::add(&server.stats.connections_current, 1);
        Stats::add(&server.stats.connections_total_created, 1);
        tracing::info!(target: "NETWORK", id = 22943, ctx = "listener", remote = %remote,
            connectionId = id as i64,
            connectionCount = Stats::get(&server.stats.connections_current),
            "Connection accepted");
        ConnectionSlot {
            server,
            id,
            remote,
            _permit: permit,
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let stats = &self.server.stats;
        stats
            .connections_current
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(target: "NETWORK", id = 22944, ctx = format!("conn{}", self.id), remote = %self.remote,
            connectionId = self.id as i64,
            connectionCount = Stats::get(&stats.connections_current),
            "Connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::log::{LogFormat, LogSink};

    #[tokio::test]
    async fn a_panicking_connection_task_is_still_counted_out() {
        let log = LogSink::new(LogFormat::Text, None, false, true).expect("a stdout log");
        let server = ServerState::new(Config::default(), log);
        let limit = Arc::new(Semaphore::new(1));
        let permit = limit.clone().try_acquire_owned().unwrap();
        let remote: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let slot = ConnectionSlot::open(server.clone(), 1, remote, permit);
        assert_eq!(Stats::get(&server.stats.connections_current), 1);
        let task = tokio::spawn(async move {
            let _slot = slot;
            panic!("a connection task panics");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(Stats::get(&server.stats.connections_current), 0);
        assert_eq!(
            limit.available_permits(),
            1,
            "the maxConns slot is free again"
        );
    }
}
