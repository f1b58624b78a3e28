//! SCRAM-SHA-256 login benchmark: N client threads log in over and over against one
//! ferrod, and the server's CPU time per login is read from /proc before and after.
//! The baseline is the client's own PBKDF2 (what each login costs a client), measured
//! in the same run.
//!
//! Reproduce: `cargo build --release --bin ferrod --bin scram_bench &&
//!             target/release/scram_bench [clients=8] [seconds=10]`

use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, Document};
use ferrod::auth::scram::{Mechanism, ScramClient};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ITERATIONS: u32 = 15_000;

fn roundtrip(s: &mut TcpStream, cmd: &Document) -> Document {
    let mut body = 0u32.to_le_bytes().to_vec();
    body.push(0);
    cmd.to_writer(&mut body).unwrap();
    let mut frame = ((16 + body.len()) as i32).to_le_bytes().to_vec();
    frame.extend_from_slice(&1i32.to_le_bytes());
    frame.extend_from_slice(&0i32.to_le_bytes());
    frame.extend_from_slice(&2013i32.to_le_bytes());
    frame.extend_from_slice(&body);
    s.write_all(&frame).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut rest = vec![0u8; i32::from_le_bytes(len) as usize - 4];
    s.read_exact(&mut rest).unwrap();
    Document::from_reader(&rest[17..]).unwrap()
}

fn bin(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

fn login(s: &mut TcpStream) {
    let mut client = ScramClient::new(Mechanism::ScramSha256, "bench", "benchpw").unwrap();
    let start = roundtrip(
        s,
        &doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-256",
        "payload": bin(client.first().as_bytes()), "options": {"skipEmptyExchange": true}, "$db": "admin"},
    );
    let server_first = start
        .get_binary_generic("payload")
        .expect("saslStart reply");
    let proof = client.respond(server_first).unwrap();
    let fin = roundtrip(
        s,
        &doc! {"saslContinue": 1, "conversationId": 1, "payload": bin(proof.as_bytes()), "$db": "admin"},
    );
    assert!(fin.get_bool("done").unwrap_or(false), "login failed: {fin}");
    client
        .verify(fin.get_binary_generic("payload").unwrap())
        .unwrap();
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clients: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let ferrod = std::env::current_exe().unwrap().with_file_name("ferrod");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dbpath = std::env::temp_dir().join(format!("scram_bench_{}", std::process::id()));
    let mut child = Command::new(&ferrod)
        .args(["--auth", "--quiet", "--port", &port.to_string(), "--dbpath"])
        .arg(&dbpath)
        .stdout(Stdio::null())
        .spawn()
        .expect("start ferrod (build it with --release first)");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut admin = loop {
        match TcpStream::connect(&addr) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("ferrod did not listen: {e}"),
        }
    };
    let created = roundtrip(
        &mut admin,
        &doc! {"createUser": "bench", "pwd": "benchpw", "roles": [], "mechanisms": ["SCRAM-SHA-256"], "$db": "admin"},
    );
    assert_eq!(created.get_f64("ok").unwrap(), 1.0, "{created}");

    // Baseline: one client-side PBKDF2 at the server's iteration count.
    let rounds = 20;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(
            Mechanism::ScramSha256.salted_password(b"benchpw", &[7u8; 28], ITERATIONS),
        );
    }
    let pbkdf2 = t.elapsed().as_secs_f64() / rounds as f64;

    let stop = Arc::new(AtomicBool::new(false));
    let logins = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_seconds(child.id());
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, logins, addr) = (stop.clone(), logins.clone(), addr.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    login(&mut s);
                    logins.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(child.id()) - cpu_before;
    let n = logins.load(Ordering::Relaxed) as f64;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dbpath);

    let per_login_us = server_cpu / n * 1e6;
    println!("command: target/release/scram_bench {clients} {seconds}");
    println!(
        "clients={clients} seconds={elapsed:.1} logins={n} logins/s={:.0}",
        n / elapsed
    );
    println!("server CPU per login: {per_login_us:.1} us (utime+stime {server_cpu:.2} s)");
    println!(
        "client PBKDF2 ({ITERATIONS} iterations, SHA-256): {:.1} us",
        pbkdf2 * 1e6
    );
    println!(
        "server cost / client PBKDF2 cost: {:.3}",
        per_login_us / (pbkdf2 * 1e6)
    );
}
