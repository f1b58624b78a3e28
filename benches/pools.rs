//! Pool benchmarks (figures, not timed tests). Reproduce with:
//!
//!     cargo bench --bench pools
//!
//! `FERROD_BENCH_ONLY=stats` runs only the connPoolStats series (10 and 1,000 hosts);
//! `FERROD_BENCH_FERROD=PATH` runs another ferrod binary (e.g. an older build, to compare
//! two builds in back-to-back runs).
//!
//! 1. Checkout + return through `PoolManager` in process, against one local peer,
//!    next to the round trip of one command on an already checked-out connection.
//! 2. A real ferrod process holding pools to 10 and then 1,000 local peer ports with 8
//!    connections each: dropConnections latency (p50/p99) for one host, for dropped
//!    hosts holding 1, 8 and 64 connections, and connPoolStats latency; each next to
//!    `ping` measured in the same run.

use bson::{doc, Document};
use ferrod::pool::{HostAndPort, PoolManager, REPL_POOL};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNS_PER_HOST: usize = 8;

// ---- the peer: an OP_MSG responder on many ports ------------------------------------

fn reply_frame(request_id: i32, hello: bool) -> Vec<u8> {
    let body = if hello {
        doc! {"isWritablePrimary": true, "maxWireVersion": 21, "minWireVersion": 0, "ok": 1.0}
    } else {
        doc! {"ok": 1.0}
    };
    let mut doc_bytes = Vec::new();
    body.to_writer(&mut doc_bytes).unwrap();
    let mut out = Vec::with_capacity(21 + doc_bytes.len());
    out.extend_from_slice(&((21 + doc_bytes.len()) as i32).to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&2013i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&doc_bytes);
    out
}

async fn peer_connection(mut stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = i32::from_le_bytes(len) as usize;
        if !(21..=48_000_000).contains(&len) {
            return;
        }
        buf.resize(len - 4, 0);
        if stream.read_exact(&mut buf).await.is_err() {
            return;
        }
        let request_id = i32::from_le_bytes(buf[0..4].try_into().unwrap());
        // Command name: the first key of the kind-0 document after the 4 flag bytes.
        let name_at = 12 + 4 + 1 + 4 + 1;
        let hello = buf.get(name_at..name_at + 5) == Some(b"hello");
        if stream
            .write_all(&reply_frame(request_id, hello))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Starts `n` listening peers on 127.0.0.1; returns their `host:port`.
async fn start_peers(n: usize) -> Vec<String> {
    let mut hosts = Vec::with_capacity(n);
    for _ in 0..n {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        hosts.push(format!(
            "127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        ));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(peer_connection(stream));
            }
        });
    }
    hosts
}

// ---- a ferrod process and a raw client ---------------------------------------------

struct Ferrod {
    child: Child,
    port: u16,
    _dbpath: tempfile::TempDir,
}

impl Ferrod {
    fn start() -> Ferrod {
        let dbpath = tempfile::tempdir().unwrap();
        let binary = std::env::var("FERROD_BENCH_FERROD")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ferrod").into());
        let mut child = Command::new(binary)
            .args(["--port", "0", "--logFormat", "json", "--dbpath"])
            .arg(dbpath.path())
            .args(["--setParameter", "enableTestCommands=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ferrod");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps draining the log so ferrod never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("\"Waiting for connections\"") {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let _ = tx.send(v["attr"]["port"].as_u64().unwrap() as u16);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("ferrod started");
        Ferrod {
            child,
            port,
            _dbpath: dbpath,
        }
    }

    fn client(&self) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Client { stream, next: 1 }
    }
}

impl Drop for Ferrod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    stream: TcpStream,
    next: i32,
}

impl Client {
    fn run(&mut self, cmd: Document) -> Document {
        let reply = self.round_trip(cmd);
        Self::parse(&reply)
    }

    fn parse(reply: &[u8]) -> Document {
        let reply = Document::from_reader(&reply[12 + 5..]).unwrap();
        assert_eq!(reply.get_f64("ok"), Ok(1.0), "{reply}");
        reply
    }

    /// Sends `cmd` and returns the reply's bytes after the length prefix.
    fn round_trip(&mut self, mut cmd: Document) -> Vec<u8> {
        cmd.insert("$db", "admin");
        let mut body = Vec::new();
        cmd.to_writer(&mut body).unwrap();
        let mut frame = Vec::with_capacity(21 + body.len());
        frame.extend_from_slice(&((21 + body.len()) as i32).to_le_bytes());
        frame.extend_from_slice(&self.next.to_le_bytes());
        frame.extend_from_slice(&0i32.to_le_bytes());
        frame.extend_from_slice(&2013i32.to_le_bytes());
        frame.extend_from_slice(&0u32.to_le_bytes());
        frame.push(0);
        frame.extend_from_slice(&body);
        self.next += 1;
        self.stream.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).unwrap();
        let mut rest = vec![0u8; i32::from_le_bytes(len) as usize - 4];
        self.stream.read_exact(&mut rest).unwrap();
        rest
    }

    /// The round trip as the wire sees it; the reply is decoded (and checked) after
    /// the clock stops, so client-side BSON parsing is not counted.
    fn timed(&mut self, cmd: Document) -> Duration {
        let start = Instant::now();
        let reply = self.round_trip(cmd);
        let elapsed = start.elapsed();
        Self::parse(&reply);
        elapsed
    }
}

/// Fills each host's pool to `per_host` connections, from several clients at once.
fn fill(server: &Ferrod, hosts: &[String], per_host: usize) {
    std::thread::scope(|scope| {
        for chunk in hosts.chunks(hosts.len().div_ceil(4).max(1)) {
            let mut client = server.client();
            scope.spawn(move || {
                for host in chunk {
                    client.run(doc! {"_ferrodPoolCheckout": host, "count": per_host as i32});
                }
            });
        }
    });
}

struct Figures {
    n: usize,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

fn percentiles(mut samples: Vec<Duration>) -> Figures {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Figures {
        n: samples.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: *samples.last().unwrap(),
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// The one-minute load average, printed next to the figures (the machine is shared).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// A series of one command, each sample preceded by a timed `ping` on the same
/// connection, so the baseline is measured under the same load at the same moments.
struct Series {
    command: Figures,
    ping: Figures,
}

const WARM_UP: usize = 200;

/// dropConnections for one host at a time, refilling it (untimed) after each drop.
fn drop_series(
    server: &Ferrod,
    client: &mut Client,
    hosts: &[String],
    per_host: usize,
    rounds: usize,
) -> Series {
    let mut samples = Vec::with_capacity(rounds);
    let mut pings = Vec::with_capacity(rounds);
    for i in 0..WARM_UP + rounds {
        let host = &hosts[i % hosts.len()];
        let ping = client.timed(doc! {"ping": 1});
        let took = client.timed(doc! {"dropConnections": 1, "hostAndPort": [host]});
        if i >= WARM_UP {
            pings.push(ping);
            samples.push(took);
        }
        if i == 0 {
            // The drop really happened: nothing left open for that host.
            let stats = client.run(doc! {"connPoolStats": 1});
            let h = stats
                .get_document("hosts")
                .unwrap()
                .get_document(host)
                .unwrap();
            assert_eq!(
                h.get_i32("available").unwrap() + h.get_i32("inUse").unwrap(),
                0
            );
        }
        fill(server, std::slice::from_ref(host), per_host);
    }
    Series {
        command: percentiles(samples),
        ping: percentiles(pings),
    }
}

fn stats_series(client: &mut Client, rounds: usize) -> Series {
    let mut samples = Vec::with_capacity(rounds);
    let mut pings = Vec::with_capacity(rounds);
    for i in 0..WARM_UP + rounds {
        let ping = client.timed(doc! {"ping": 1});
        let took = client.timed(doc! {"connPoolStats": 1});
        if i >= WARM_UP {
            pings.push(ping);
            samples.push(took);
        }
    }
    Series {
        command: percentiles(samples),
        ping: percentiles(pings),
    }
}

fn row(name: &str, f: &Figures) {
    println!(
        "{name:<56} n {:>5}  p50 {:>9}  p90 {:>9}  p99 {:>9}  max {:>9}",
        f.n,
        us(f.p50),
        us(f.p90),
        us(f.p99),
        us(f.max)
    );
}

fn series(name: &str, s: &Series) {
    row(name, &s.command);
    row("  ping interleaved with it (baseline)", &s.ping);
    println!(
        "  ratio to ping: p50 {:.2}  p99 {:.2}",
        s.command.p50.as_secs_f64() / s.ping.p50.as_secs_f64(),
        s.command.p99.as_secs_f64() / s.ping.p99.as_secs_f64()
    );
}

fn in_process_checkout(rt: &tokio::runtime::Runtime) {
    let ops = 200_000;
    let commands = 20_000;
    // Inside a runtime task, as the server's own callers (heartbeats, commands) are:
    // measured from `block_on` on the main thread, every message would also pay for
    // waking a thread outside the runtime.
    let (checkouts, round_trips) = rt
        .block_on(rt.spawn(async move {
            let host: HostAndPort = start_peers(1).await[0].parse().unwrap();
            let pools = PoolManager::new(&ferrod::params::Parameters::default());
            let timeout = Duration::from_secs(5);
            for _ in 0..1_000 {
                drop(pools.checkout(REPL_POOL, &host, timeout).await.unwrap());
            }
            let mut checkouts = Vec::with_capacity(ops);
            for _ in 0..ops {
                let start = Instant::now();
                drop(pools.checkout(REPL_POOL, &host, timeout).await.unwrap());
                checkouts.push(start.elapsed());
            }
            let mut conn = pools.checkout(REPL_POOL, &host, timeout).await.unwrap();
            let mut round_trips = Vec::with_capacity(commands);
            for i in 0..1_000 + commands {
                let start = Instant::now();
                conn.run_command(doc! {"ping": 1, "$db": "admin"}, timeout)
                    .await
                    .unwrap();
                if i >= 1_000 {
                    round_trips.push(start.elapsed());
                }
            }
            (checkouts, round_trips)
        }))
        .unwrap();
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
    let (per_checkout, per_command) = (mean(&checkouts), mean(&round_trips));
    let (checkouts, round_trips) = (percentiles(checkouts), percentiles(round_trips));
    println!(
        "checkout + return (in process, {ops} ops in a runtime task): mean {} p50 {} p99 {}",
        us(per_checkout),
        us(checkouts.p50),
        us(checkouts.p99)
    );
    println!(
        "  baseline: one ping round trip on a checked-out connection ({commands}): mean {} p50 {} p99 {}",
        us(per_command),
        us(round_trips.p50),
        us(round_trips.p99)
    );
    println!(
        "  ratio checkout+return / command round trip (means): {:.3}",
        per_checkout.as_secs_f64() / per_command.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes --bench; FERROD_BENCH_ROUNDS overrides the sample count.
    let rounds: usize = std::env::var("FERROD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let limit = ferrod::raise_fd_limit();
    println!(
        "reproduce: cargo bench --bench pools   ({rounds} timed samples per series after \
         {WARM_UP} untimed; RLIMIT_NOFILE soft = {limit}; load average {})",
        load_average()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stats_only = std::env::var("FERROD_BENCH_ONLY").as_deref() == Ok("stats");
    if !stats_only {
        in_process_checkout(&rt);
    }

    let hosts = rt.block_on(start_peers(1_000 + 2));
    let (big_host, small_host) = (hosts[1_000].clone(), hosts[1_001].clone());
    let hosts = &hosts[..1_000];
    let _guard = rt.enter();
    let server = Ferrod::start();
    let mut client = server.client();

    fill(&server, &hosts[..10], CONNS_PER_HOST);
    let drop10 = (!stats_only)
        .then(|| drop_series(&server, &mut client, &hosts[..10], CONNS_PER_HOST, rounds));
    let stats10 = stats_series(&mut client, rounds);

    let started = Instant::now();
    fill(&server, &hosts[10..], CONNS_PER_HOST);
    let totals = client.run(doc! {"connPoolStats": 1});
    println!(
        "pools to 1,000 hosts x {CONNS_PER_HOST} filled in {:.1}s; totalAvailable {}",
        started.elapsed().as_secs_f64(),
        totals.get_i32("totalAvailable").unwrap()
    );
    let drop1000 =
        (!stats_only).then(|| drop_series(&server, &mut client, hosts, CONNS_PER_HOST, rounds));
    let stats1000 = stats_series(&mut client, rounds);
    if stats_only {
        println!();
        series("connPoolStats, 10 hosts x 8", &stats10);
        series("connPoolStats, 1,000 hosts x 8", &stats1000);
        println!("load average now {}", load_average());
        println!("reproduce: FERROD_BENCH_ONLY=stats cargo bench --bench pools");
        return;
    }
    let (drop10, drop1000) = (drop10.unwrap(), drop1000.unwrap());
    fill(&server, std::slice::from_ref(&small_host), 1);
    let drop_one_conn = drop_series(
        &server,
        &mut client,
        std::slice::from_ref(&small_host),
        1,
        rounds,
    );
    fill(&server, std::slice::from_ref(&big_host), 64);
    let drop_64_conns = drop_series(
        &server,
        &mut client,
        std::slice::from_ref(&big_host),
        64,
        rounds,
    );

    println!();
    series("dropConnections 1 host (8 conns), 10 hosts x 8", &drop10);
    series(
        "dropConnections 1 host (8 conns), 1,000 hosts x 8",
        &drop1000,
    );
    series(
        "dropConnections 1 host (1 conn), 1,000 hosts x 8",
        &drop_one_conn,
    );
    series(
        "dropConnections 1 host (64 conns), 1,000 hosts x 8",
        &drop_64_conns,
    );
    series("connPoolStats, 10 hosts x 8", &stats10);
    series("connPoolStats, 1,000 hosts x 8", &stats1000);
    println!();
    println!(
        "drop p50 ratio 1,000 hosts / 10 hosts held (same 8 conns dropped): {:.2} \
         (ping p50 ratio in the same series: {:.2})",
        drop1000.command.p50.as_secs_f64() / drop10.command.p50.as_secs_f64(),
        drop1000.ping.p50.as_secs_f64() / drop10.ping.p50.as_secs_f64()
    );
    println!(
        "drop p50 ratio 64 conns / 1 conn dropped (1,000 hosts held): {:.2}",
        drop_64_conns.command.p50.as_secs_f64() / drop_one_conn.command.p50.as_secs_f64()
    );
    println!(
        "goal p99 < 1 ms for dropConnections with 1,000 hosts: {} (p99 {}); load average now {}",
        if drop1000.command.p99 < Duration::from_millis(1) {
            "met"
        } else {
            "NOT met"
        },
        us(drop1000.command.p99),
        load_average()
    );
    println!("reproduce: cargo bench --bench pools");
}
