//! ferrod-load: the load and measurement tool behind the performance figures of docs/performance.md.
//!
//! - `ping`: N connections, closed-loop OP_MSG ping for T seconds; ops/s, p50, p99.
//! - `hello`: the same with a monitor's `hello`, which always takes the general path.
//!   Against a running server (`--addr`), a minimal in-process OP_MSG server that answers
//!   a fixed `{ok: 1.0}` (`--baseline`), or both in one run (`--compare`, which starts
//!   a ferrod itself and prints the ratio).
//! - `idle`: resident memory a ferrod spends per idle connection (each did one hello).
//! - `startup`: process start to first answered hello, next to spawn-to-exit of
//!   `ferrod --version`.
//! - `stall`: one client's ping latency while other connections send OP_COMPRESSED
//!   frames that inflate to tens of MB, and while createUser (PBKDF2) runs in a loop,
//!   next to the same client's latency with no load; shows whether heavy requests
//!   stall the async workers that serve everyone else.
//!
//! Every mode prints the command that reproduces it, medians over repetitions and a
//! ratio to a baseline measured in the same run; the machine may be busy, so single
//! figures mean little.

use bson::{doc, spec::BinarySubtype, Binary, Document, RawDocument, Timestamp};
use clap::{Args, Parser, Subcommand};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const OP_MSG: i32 = 2013;

#[derive(Parser)]
#[command(name = "ferrod-load", about = "Load and measurement tool for ferrod")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Closed-loop OP_MSG ping throughput and latency.
    Ping(PingArgs),
    /// The same with a monitor's `hello` (`{hello: 1, helloOk: true, $db}`), which no
    /// fast lane answers: the general path, handler and all.
    Hello(PingArgs),
    /// Resident memory per idle connection.
    Idle(IdleArgs),
    /// Time from process start to the first answered hello.
    Startup(StartupArgs),
    /// One client's ping latency while others send heavy requests.
    Stall(StallArgs),
}

#[derive(Args)]
struct PingArgs {
    /// A running server to load (host:port).
    #[arg(long, conflicts_with_all = ["baseline", "compare"])]
    addr: Option<SocketAddr>,
    /// Load the in-process minimal OP_MSG server instead.
    #[arg(long)]
    baseline: bool,
    /// Start a ferrod and the baseline; load each in turn and print the ratio.
    #[arg(long)]
    compare: bool,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds per run (after a one-second warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Runs per server; medians are reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// The ferrod binary (default: the one next to this tool).
    #[arg(long)]
    ferrod: Option<PathBuf>,
    /// Add a `comment` to each ping. ferrod's fast lane leaves such a request to the
    /// general path (parsed request, currentOp entry, reply document), so this measures
    /// that path.
    #[arg(long)]
    comment: bool,
}

#[derive(Args)]
struct IdleArgs {
    /// Measure a running server instead of starting one (needs `--pid`; one run).
    #[arg(long, requires = "pid")]
    addr: Option<SocketAddr>,
    /// The process id of the server at `--addr`, for its resident memory.
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value_t = 5000)]
    connections: usize,
    #[arg(long, default_value_t = 5)]
    reps: usize,
    #[arg(long)]
    ferrod: Option<PathBuf>,
}

#[derive(Args)]
struct StartupArgs {
    #[arg(long, default_value_t = 25)]
    runs: usize,
    #[arg(long)]
    ferrod: Option<PathBuf>,
}

#[derive(Args)]
struct StallArgs {
    /// The ferrod binary to start (default: the one next to this tool); run the mode
    /// once per build to compare builds.
    #[arg(long)]
    ferrod: Option<PathBuf>,
    /// Connections that send compressed frames, each waiting for its reply.
    #[arg(long, default_value_t = 20)]
    loaders: usize,
    /// What each zlib frame inflates to, in bytes (a ping padded with a binary field).
    #[arg(long, default_value_t = 47_000_000)]
    inflated: usize,
    /// Connections that run createUser then dropUser in a loop.
    #[arg(long, default_value_t = 4)]
    user_loops: usize,
    /// Measured seconds per phase (after a one-second warm-up under the load).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

fn main() {
    let cli = Cli::parse();
    ferrod::raise_fd_limit();
    println!(
        "reproduce: cargo build --release --bins && target/release/ferrod-load {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = match cli.mode {
        Mode::Ping(args) => runtime.block_on(ping_mode(args, Workload::Ping)),
        Mode::Hello(args) => runtime.block_on(ping_mode(args, Workload::Hello)),
        Mode::Idle(args) => runtime.block_on(idle_mode(args)),
        Mode::Startup(args) => startup_mode(args),
        Mode::Stall(args) => runtime.block_on(stall_mode(args)),
    };
    if let Err(e) = result {
        eprintln!("ferrod-load: {e}");
        std::process::exit(1);
    }
}

#[path = "shared/proc_stats.rs"]
mod proc_stats;
use proc_stats::rss_kib;

type Result<T> = std::result::Result<T, String>;

// ---- messages ---------------------------------------------------------------

static NEXT_REQUEST_ID: AtomicI32 = AtomicI32::new(1);

fn op_msg(request_id: i32, response_to: i32, body: &Document) -> Vec<u8> {
    let mut out = vec![0u8; 16];
    out[4..8].copy_from_slice(&request_id.to_le_bytes());
    out[8..12].copy_from_slice(&response_to.to_le_bytes());
    out[12..16].copy_from_slice(&OP_MSG.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    body.to_writer(&mut out).expect("BSON into a Vec");
    let len = out.len() as i32;
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// A ping as drivers send it: with a session id and the gossiped cluster time.
fn driver_ping() -> Document {
    doc! {
        "ping": 1,
        "lsid": {"id": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] }},
        "$clusterTime": {
            "clusterTime": Timestamp { time: 1_700_000_000, increment: 1 },
            "signature": {
                "hash": Binary { subtype: BinarySubtype::Generic, bytes: vec![0; 20] },
                "keyId": 0_i64,
            },
        },
        "$db": "admin",
    }
}

/// A monitor's hello (the polling form; the handshake's first one adds client metadata,
/// which may be sent only once per connection).
fn monitor_hello() -> Document {
    doc! {"hello": 1, "helloOk": true, "$db": "admin"}
}

/// What the closed-loop modes send.
#[derive(Clone, Copy)]
enum Workload {
    Ping,
    Hello,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Ping => "ping",
            Workload::Hello => "hello",
        }
    }

    fn request(self, comment: bool) -> Document {
        let mut request = match self {
            Workload::Ping => driver_ping(),
            Workload::Hello => monitor_hello(),
        };
        if comment {
            request.insert("comment", "ferrod-load");
        }
        request
    }
}

/// The first hello of a driver connection, client metadata included.
fn driver_hello() -> Document {
    doc! {
        "hello": 1,
        "helloOk": true,
        "client": {
            "driver": {"name": "ferrod-load", "version": env!("CARGO_PKG_VERSION")},
            "os": {"type": std::env::consts::OS, "architecture": std::env::consts::ARCH},
            "platform": "Rust",
            "application": {"name": "ferrod-load idle"},
        },
        "compression": ["snappy", "zstd", "zlib"],
        "$db": "admin",
    }
}

/// Sends one request and reads its reply, checking `responseTo` and `ok: 1`.
async fn round_trip<S>(
    stream: &mut BufReader<S>,
    request: &mut [u8],
    reply: &mut Vec<u8>,
) -> Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request_id = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
    request[4..8].copy_from_slice(&request_id.to_le_bytes());
    stream
        .get_mut()
        .write_all(request)
        .await
        .map_err(|e| e.to_string())?;
    let len = stream.read_i32_le().await.map_err(|e| e.to_string())?;
    if !(21..=48_000_000).contains(&len) {
        return Err(format!("bad reply length {len}"));
    }
    reply.resize(len as usize - 4, 0);
    stream.read_exact(reply).await.map_err(|e| e.to_string())?;
    let response_to = i32::from_le_bytes(reply[4..8].try_into().expect("4 bytes"));
    let op_code = i32::from_le_bytes(reply[8..12].try_into().expect("4 bytes"));
    if response_to != request_id || op_code != OP_MSG {
        return Err(format!(
            "unexpected reply: responseTo {response_to}, opCode {op_code}"
        ));
    }
    // Header rest (12 bytes), flags (4), section kind (1), then the body document.
    let body = RawDocument::from_bytes(&reply[17..]).map_err(|e| e.to_string())?;
    match body.get_f64("ok") {
        Ok(1.0) => Ok(()),
        _ => Err(format!("reply is not ok: {body:?}")),
    }
}

// ---- ping load --------------------------------------------------------------

struct LoadResult {
    ops_per_sec: f64,
    /// The server's CPU time (user + system) per request in the measured window.
    cpu_us_per_op: f64,
    p50_us: f64,
    p99_us: f64,
}

const WARM_UP: Duration = Duration::from_secs(1);

/// Opens `connections` connections, then pings closed-loop on each until the window ends.
/// `server_cpu` reads the server's CPU seconds so far, for the CPU spent per request.
async fn ping_load(
    addr: SocketAddr,
    args: &PingArgs,
    workload: Workload,
    server_cpu: &dyn Fn() -> Result<f64>,
) -> Result<LoadResult> {
    let (connections, seconds) = (args.connections, args.seconds);
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        streams.push(BufReader::with_capacity(4096, stream));
    }
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + WARM_UP;
    let end = measure_from + Duration::from_secs(seconds);
    let request = op_msg(0, 0, &workload.request(args.comment));
    let mut tasks = tokio::task::JoinSet::new();
    for mut stream in streams {
        let mut request = request.clone();
        tasks.spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let mut reply = Vec::with_capacity(512);
            let mut latencies_ns: Vec<u32> = Vec::with_capacity(1 << 16);
            loop {
                let sent = Instant::now();
                round_trip(&mut stream, &mut request, &mut reply).await?;
                let done = Instant::now();
                if done >= end {
                    return Ok::<_, String>(latencies_ns);
                }
                if sent >= measure_from {
                    let ns = (done - sent).as_nanos().min(u32::MAX as u128) as u32;
                    latencies_ns.push(ns);
                }
            }
        });
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = server_cpu()?;
    tokio::time::sleep_until(end.into()).await;
    let cpu_used = server_cpu()? - cpu_before;
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.map_err(|e| e.to_string())??);
    }
    all.sort_unstable();
    if all.is_empty() {
        return Err("no request completed in the measured window".into());
    }
    let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    Ok(LoadResult {
        ops_per_sec: all.len() as f64 / seconds as f64,
        cpu_us_per_op: cpu_used * 1e6 / all.len() as f64,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    })
}

/// The baseline: a minimal OP_MSG server that answers every request with `{ok: 1.0}`.
/// It runs on its own runtime (its own thread, as many workers as ferrod has), so the
/// two servers get the same share of the machine; it lives until the tool exits.
struct BaselineServer {
    addr: SocketAddr,
}

impl BaselineServer {
    fn start() -> Result<BaselineServer> {
        let listener = StdListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        std::thread::Builder::new()
            .name("baseline-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name(BASELINE_THREAD)
                    .build()
                    .expect("baseline runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("baseline listener");
                    while let Ok((stream, _)) = listener.accept().await {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(serve_fixed_ok(stream));
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        Ok(BaselineServer { addr })
    }
}

const BASELINE_THREAD: &str = "baseline-srv";

/// CPU seconds (user + system) of a process's threads, optionally only those named `only`.
fn cpu_seconds(pid: u32, only: Option<&str>) -> Result<f64> {
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0u64;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ...": the name may hold spaces, so split at the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if only.is_some_and(|name| !head.ends_with(&format!("({name}"))) {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are the 14th and 15th fields of the whole line.
        let parse = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        total += parse(11) + parse(12);
    }
    Ok(total as f64 / ticks)
}

async fn serve_fixed_ok(stream: TcpStream) {
    let mut reply = op_msg(0, 0, &doc! {"ok": 1.0});
    let mut stream = BufReader::with_capacity(4096, stream);
    let mut request = Vec::new();
    loop {
        let Ok(len) = stream.read_i32_le().await else {
            return;
        };
        if !(16..=48_000_000).contains(&len) {
            return;
        }
        request.resize(len as usize - 4, 0);
        if stream.read_exact(&mut request).await.is_err() {
            return;
        }
        reply[8..12].copy_from_slice(&request[0..4]);
        if stream.get_mut().write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

struct Series {
    name: &'static str,
    runs: Vec<LoadResult>,
}

impl Series {
    fn medians(&self) -> (f64, f64, f64, f64) {
        let pick =
            |f: fn(&LoadResult) -> f64| median(&mut self.runs.iter().map(f).collect::<Vec<_>>());
        (
            pick(|r| r.ops_per_sec),
            pick(|r| r.p50_us),
            pick(|r| r.p99_us),
            pick(|r| r.cpu_us_per_op),
        )
    }

    fn print(&self) {
        for (i, r) in self.runs.iter().enumerate() {
            println!(
                "  {:<9} run {}: {:>9.0} ops/s  p50 {:>7.1} us  p99 {:>7.1} us  server CPU {:>5.1} us/op",
                self.name,
                i + 1,
                r.ops_per_sec,
                r.p50_us,
                r.p99_us,
                r.cpu_us_per_op
            );
        }
        let (ops, p50, p99, cpu) = self.medians();
        println!(
            "{:<9} median: {:>9.0} ops/s  p50 {:>7.1} us  p99 {:>7.1} us  server CPU {:>5.1} us/op",
            self.name, ops, p50, p99, cpu
        );
    }
}

async fn ping_mode(args: PingArgs, workload: Workload) -> Result<()> {
    println!(
        "{}{}: {} connections, closed loop, {} s measured after {} s warm-up, {} runs",
        workload.name(),
        if args.comment { " with a comment" } else { "" },
        args.connections,
        args.seconds,
        WARM_UP.as_secs(),
        args.reps
    );
    if let Some(addr) = args.addr {
        // The CPU of a server we did not start is not ours to read; shown as NaN.
        let no_cpu = || -> Result<f64> { Ok(f64::NAN) };
        let mut series = Series {
            name: "server",
            runs: Vec::new(),
        };
        for _ in 0..args.reps {
            series
                .runs
                .push(ping_load(addr, &args, workload, &no_cpu).await?);
        }
        series.print();
        return Ok(());
    }
    let baseline_cpu = || cpu_seconds(std::process::id(), Some(BASELINE_THREAD));
    let baseline = BaselineServer::start()?;
    let mut base = Series {
        name: "baseline",
        runs: Vec::new(),
    };
    if !args.compare {
        for _ in 0..args.reps {
            base.runs
                .push(ping_load(baseline.addr, &args, workload, &baseline_cpu).await?);
        }
        base.print();
        return Ok(());
    }
    let ferrod = SpawnedFerrod::start(&ferrod_binary(args.ferrod.as_deref())?, &[])?;
    let ferrod_pid = ferrod.pid();
    let ferrod_cpu = move || cpu_seconds(ferrod_pid, None);
    let mut ours = Series {
        name: "ferrod",
        runs: Vec::new(),
    };
    // Alternate the two servers so that a burst of outside load hits both alike.
    for _ in 0..args.reps {
        base.runs
            .push(ping_load(baseline.addr, &args, workload, &baseline_cpu).await?);
        ours.runs
            .push(ping_load(ferrod.addr, &args, workload, &ferrod_cpu).await?);
    }
    base.print();
    ours.print();
    let ratio = ours.medians().0 / base.medians().0;
    let per_run: Vec<String> = ours
        .runs
        .iter()
        .zip(&base.runs)
        .map(|(o, b)| format!("{:.2}", o.ops_per_sec / b.ops_per_sec))
        .collect();
    // A bare ping may take the fast lane; a hello or a ping with a comment measures the
    // general path, whose goals are stricter (issue 11).
    let general = args.comment || matches!(workload, Workload::Hello);
    let (throughput_goal, cpu_goal) = if general {
        ("goal >= 0.90", "; goal <= 1.30")
    } else {
        ("goal >= 0.80", "")
    };
    println!(
        "ratio ferrod/baseline throughput: {ratio:.2} (per run: {}; {throughput_goal} at 64 connections)",
        per_run.join(", ")
    );
    println!(
        "ratio ferrod/baseline server CPU per request: {:.2} (ferrod {:.1} us, baseline {:.1} us{cpu_goal})",
        ours.medians().3 / base.medians().3,
        ours.medians().3,
        base.medians().3
    );
    Ok(())
}

// ---- stall ------------------------------------------------------------------

const OP_COMPRESSED: i32 = 2012;
const ZLIB_ID: u8 = 2;

/// An OP_COMPRESSED (zlib) ping whose OP_MSG inflates to about `inflated` bytes: a ping
/// with one binary field of zeros, written by hand because the `bson` crate refuses a
/// binary over 16 MB (the server sees what an attacker would send).
fn inflating_ping(inflated: usize) -> Vec<u8> {
    use flate2::{write::ZlibEncoder, Compression};
    let pad = inflated.saturating_sub(64);
    let mut doc = vec![0u8; 4];
    doc.push(0x10);
    doc.extend_from_slice(b"ping\0");
    doc.extend_from_slice(&1i32.to_le_bytes());
    doc.push(0x02);
    doc.extend_from_slice(b"$db\0");
    doc.extend_from_slice(&6i32.to_le_bytes());
    doc.extend_from_slice(b"admin\0");
    doc.push(0x05);
    doc.extend_from_slice(b"pad\0");
    doc.extend_from_slice(&(pad as i32).to_le_bytes());
    doc.push(0); // binary subtype: generic
    doc.resize(doc.len() + pad, 0);
    doc.push(0);
    let doc_len = doc.len() as i32;
    doc[0..4].copy_from_slice(&doc_len.to_le_bytes());
    // OP_MSG after its header: flags, section kind 0, the document.
    let mut plain = 0u32.to_le_bytes().to_vec();
    plain.push(0);
    plain.extend_from_slice(&doc);
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
    enc.write_all(&plain).expect("writing to a Vec");
    let data = enc.finish().expect("writing to a Vec");
    let mut out = vec![0u8; 16];
    out[12..16].copy_from_slice(&OP_COMPRESSED.to_le_bytes());
    out.extend_from_slice(&OP_MSG.to_le_bytes());
    out.extend_from_slice(&(plain.len() as i32).to_le_bytes());
    out.push(ZLIB_ID);
    out.extend_from_slice(&data);
    let len = out.len() as i32;
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// Sends `request` and reads its reply, plain or compressed; with `want_ok`, checks
/// `ok: 1` (a server may refuse a 47 MB command after inflating it; that is an answer).
async fn any_round_trip(
    stream: &mut BufReader<TcpStream>,
    request: &mut [u8],
    want_ok: bool,
) -> Result<()> {
    let request_id = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
    request[4..8].copy_from_slice(&request_id.to_le_bytes());
    stream
        .get_mut()
        .write_all(request)
        .await
        .map_err(|e| e.to_string())?;
    let len = stream.read_i32_le().await.map_err(|e| e.to_string())?;
    if !(21..=48_000_000).contains(&len) {
        return Err(format!("bad reply length {len}"));
    }
    let mut reply = vec![0u8; len as usize - 4];
    stream
        .read_exact(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    let le = |at: usize| i32::from_le_bytes(reply[at..at + 4].try_into().expect("4 bytes"));
    if le(4) != request_id {
        return Err(format!("reply to {} instead of {request_id}", le(4)));
    }
    let msg = match le(8) {
        OP_MSG => reply[12..].to_vec(),
        OP_COMPRESSED => {
            let data = &reply[21..];
            match reply[20] {
                0 => data.to_vec(),
                1 => snap::raw::Decoder::new()
                    .decompress_vec(data)
                    .map_err(|e| e.to_string())?,
                2 => {
                    let mut out = Vec::new();
                    flate2::read::ZlibDecoder::new(data)
                        .read_to_end(&mut out)
                        .map_err(|e| e.to_string())?;
                    out
                }
                3 => zstd::stream::decode_all(data).map_err(|e| e.to_string())?,
                id => return Err(format!("reply with compressor {id}")),
            }
        }
        op => return Err(format!("reply with opCode {op}")),
    };
    // Flags (4), section kind (1), then the body document.
    let body =
        RawDocument::from_bytes(msg.get(5..).unwrap_or_default()).map_err(|e| e.to_string())?;
    match body.get_f64("ok") {
        Ok(1.0) => Ok(()),
        _ if !want_ok => Ok(()),
        _ => Err(format!("reply is not ok: {body:?}")),
    }
}

async fn connect(addr: SocketAddr) -> Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(BufReader::with_capacity(4096, stream))
}

#[derive(Clone, Copy, PartialEq)]
enum Load {
    None,
    Compressed,
    CreateUser,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::None => "no load",
            Load::Compressed => "zlib frames",
            Load::CreateUser => "createUser",
        }
    }
}

struct ProbeResult {
    pings: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Heavy requests the loaders completed in the measured window.
    heavy_done: u64,
}

/// Starts `load`, lets it run for the warm-up, then measures one client's closed-loop
/// pings for `seconds`; the loaders are stopped (their connections closed) after.
async fn probe_under(
    addr: SocketAddr,
    args: &StallArgs,
    load: Load,
    frame: &[u8],
    run: usize,
) -> Result<ProbeResult> {
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;
    let done = Arc::new(AtomicU64::new(0));
    let mut loaders = tokio::task::JoinSet::new();
    let count = match load {
        Load::None => 0,
        Load::Compressed => args.loaders,
        Load::CreateUser => args.user_loops,
    };
    for i in 0..count {
        let mut stream = connect(addr).await?;
        let done = done.clone();
        let mut frame = frame.to_vec();
        loaders.spawn(async move {
            let mut n = 0u64;
            loop {
                match load {
                    Load::CreateUser => {
                        let user = format!("stall{run}_{i}_{n}");
                        let mut create = op_msg(
                            0,
                            0,
                            &doc! {"createUser": &user, "pwd": "pw", "roles": [], "$db": "admin"},
                        );
                        any_round_trip(&mut stream, &mut create, true).await?;
                        let mut drop = op_msg(0, 0, &doc! {"dropUser": &user, "$db": "admin"});
                        any_round_trip(&mut stream, &mut drop, true).await?;
                    }
                    _ => any_round_trip(&mut stream, &mut frame, false).await?,
                }
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            #[allow(unreachable_code)]
            Ok::<(), String>(())
        });
    }
    tokio::time::sleep(WARM_UP).await;
    let mut probe = connect(addr).await?;
    let mut ping = op_msg(0, 0, &driver_ping());
    let mut reply = Vec::with_capacity(512);
    let mut latencies = Vec::new();
    let done_before = done.load(Ordering::Relaxed);
    let end = Instant::now() + Duration::from_secs(args.seconds);
    while Instant::now() < end {
        let sent = Instant::now();
        round_trip(&mut probe, &mut ping, &mut reply).await?;
        latencies.push(sent.elapsed().as_secs_f64() * 1e3);
        // A loader that failed ends the measurement: its figures would mean nothing.
        if let Some(Ok(Err(e)) | Err(e)) = loaders
            .try_join_next()
            .map(|j| j.map_err(|e| e.to_string()))
        {
            return Err(format!("{} loader failed: {e}", load.name()));
        }
    }
    let heavy_done = done.load(Ordering::Relaxed) - done_before;
    loaders.shutdown().await;
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    Ok(ProbeResult {
        pings: latencies.len(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: latencies[latencies.len() - 1],
        heavy_done,
    })
}

async fn stall_mode(args: StallArgs) -> Result<()> {
    let binary = ferrod_binary(args.ferrod.as_deref())?;
    println!(
        "stall: {} ({}), one client's closed-loop pings for {} s per phase: no load; {} connections sending zlib frames that inflate to {} bytes; {} connections running createUser+dropUser; {} runs, {} cores",
        binary.display(),
        chrono::Local::now().format("%Y-%m-%d"),
        args.seconds,
        args.loaders,
        args.inflated,
        args.user_loops,
        args.reps,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let frame = inflating_ping(args.inflated);
    println!("  each zlib frame: {} bytes on the wire", frame.len());
    let ferrod = SpawnedFerrod::start(&binary, &[])?;
    let phases = [Load::None, Load::Compressed, Load::CreateUser];
    let mut results: Vec<Vec<ProbeResult>> = phases.iter().map(|_| Vec::new()).collect();
    for run in 0..args.reps {
        for (i, &load) in phases.iter().enumerate() {
            let r = probe_under(ferrod.addr, &args, load, &frame, run).await?;
            println!(
                "  run {} {:<12} pings {:>6}  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  heavy requests done {:>5}",
                run + 1,
                load.name(),
                r.pings,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.heavy_done
            );
            results[i].push(r);
            // Let the server finish what the closed connections had sent.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    for (load, runs) in phases.iter().zip(&mut results) {
        let pick = |f: fn(&ProbeResult) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        println!(
            "{:<12} median: p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  heavy requests/s {:>7.1}",
            load.name(),
            pick(|r| r.p50_ms),
            pick(|r| r.p99_ms),
            pick(|r| r.max_ms),
            pick(|r| r.heavy_done as f64) / args.seconds as f64,
        );
    }
    println!("goal: ping p99 under 5 ms under either load");
    Ok(())
}

// ---- spawning ferrod --------------------------------------------------------

fn ferrod_binary(given: Option<&Path>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("ferrod"),
    };
    if !path.is_file() {
        return Err(format!(
            "no ferrod binary at {}; build it with `cargo build --release --bins` or pass --ferrod",
            path.display()
        ));
    }
    Ok(path)
}

/// A port that was free a moment ago (ferrod is told it on the command line).
fn free_port() -> Result<u16> {
    let listener = StdListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// A fresh data directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        static NEXT: AtomicI32 = AtomicI32::new(0);
        let path = std::env::temp_dir().join(format!(
            "ferrod-load-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A ferrod child process on a free port; killed on drop.
struct SpawnedFerrod {
    child: Child,
    addr: SocketAddr,
    started: Instant,
    _dbpath: TempDir,
}

impl SpawnedFerrod {
    /// Spawns ferrod (logs discarded) without waiting for it.
    fn spawn(binary: &Path, extra: &[&str]) -> Result<SpawnedFerrod> {
        let port = free_port()?;
        let dbpath = TempDir::new()?;
        let started = Instant::now();
        let child = Command::new(binary)
            .args([
                "--port",
                &port.to_string(),
                "--bind_ip",
                "127.0.0.1",
                "--dbpath",
            ])
            .arg(&dbpath.0)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
        Ok(SpawnedFerrod {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            started,
            _dbpath: dbpath,
        })
    }

    /// Spawns ferrod and waits until it answers a hello.
    fn start(binary: &Path, extra: &[&str]) -> Result<SpawnedFerrod> {
        let mut ferrod = Self::spawn(binary, extra)?;
        ferrod.first_hello(Duration::from_secs(10))?;
        Ok(ferrod)
    }

    /// Connects and sends a hello until one is answered; returns the time since spawn.
    fn first_hello(&mut self, limit: Duration) -> Result<Duration> {
        let hello = op_msg(1, 0, &doc! {"hello": 1, "$db": "admin"});
        let deadline = self.started + limit;
        loop {
            if let Ok(mut stream) = StdStream::connect(self.addr) {
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(limit));
                let mut len = [0u8; 4];
                if stream.write_all(&hello).is_ok() && stream.read_exact(&mut len).is_ok() {
                    return Ok(self.started.elapsed());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("ferrod did not answer a hello within {limit:?}"));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("ferrod exited early: {status}"));
            }
            // A refused connect returns at once; a short pause keeps the CPU for ferrod.
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SpawnedFerrod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- idle memory ------------------------------------------------------------

/// Opens `n` connections that each complete one driver hello, and keeps them open.
async fn open_idle(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let hello = op_msg(0, 0, &driver_hello());
    stream::iter(0..n)
        .map(|_| {
            let mut hello = hello.clone();
            async move {
                let stream = TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let mut stream = BufReader::with_capacity(64, stream);
                let mut reply = Vec::new();
                round_trip(&mut stream, &mut hello, &mut reply).await?;
                Ok::<_, String>(stream.into_inner())
            }
        })
        .buffer_unordered(64)
        .try_collect()
        .await
}

/// Resident memory growth per connection for `n` idle connections to the server at `addr`.
async fn measure_idle(addr: SocketAddr, pid: u32, n: usize, run: usize) -> Result<f64> {
    // Warm up once so that lazily built state is not charged to the connections.
    drop(open_idle(addr, 64).await?);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid)?;
    let conns = open_idle(addr, n).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid)?;
    let bytes = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    println!("  run {run}: VmRSS {before} KiB -> {after} KiB, {bytes:.0} bytes per connection");
    drop(conns);
    Ok(bytes)
}

async fn idle_mode(args: IdleArgs) -> Result<()> {
    let binary = match args.addr {
        Some(_) => PathBuf::new(),
        None => ferrod_binary(args.ferrod.as_deref())?,
    };
    println!(
        "idle: {} connections, each after one hello with client metadata; {} runs, a fresh ferrod each",
        args.connections, args.reps
    );
    let mut per_conn = Vec::new();
    if let (Some(addr), Some(pid)) = (args.addr, args.pid) {
        per_conn.push(measure_idle(addr, pid, args.connections, 1).await?);
    }
    for run in 1..=args.reps {
        if args.addr.is_some() {
            break;
        }
        let ferrod = SpawnedFerrod::start(&binary, &[])?;
        per_conn.push(measure_idle(ferrod.addr, ferrod.pid(), args.connections, run).await?);
    }
    let m = median(&mut per_conn);
    println!(
        "median: {:.0} bytes ({:.2} KiB) per idle connection; goal <= 4 KiB ({:.2}x of the goal)",
        m,
        m / 1024.0,
        m / 4096.0
    );
    Ok(())
}

// ---- startup ----------------------------------------------------------------

fn startup_mode(args: StartupArgs) -> Result<()> {
    let binary = ferrod_binary(args.ferrod.as_deref())?;
    println!("startup: {} runs of each, alternating", args.runs);
    let mut to_hello = Vec::new();
    let mut version = Vec::new();
    for _ in 0..args.runs {
        let started = Instant::now();
        let status = Command::new(&binary)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        version.push(started.elapsed().as_secs_f64() * 1000.0);
        if !status.success() {
            return Err(format!("ferrod --version failed: {status}"));
        }
        let mut ferrod = SpawnedFerrod::spawn(&binary, &[])?;
        to_hello.push(ferrod.first_hello(Duration::from_secs(10))?.as_secs_f64() * 1000.0);
    }
    let hello_ms = median(&mut to_hello);
    let version_ms = median(&mut version);
    println!(
        "start to first answered hello: median {hello_ms:.2} ms (min {:.2}, max {:.2}); goal < 10 ms",
        to_hello[0],
        to_hello[to_hello.len() - 1]
    );
    println!(
        "baseline `ferrod --version` spawn to exit: median {version_ms:.2} ms (min {:.2}, max {:.2})",
        version[0],
        version[version.len() - 1]
    );
    println!(
        "ratio: {:.2}x the baseline; the server's own part is about {:.2} ms",
        hello_ms / version_ms,
        hello_ms - version_ms
    );
    Ok(())
}
