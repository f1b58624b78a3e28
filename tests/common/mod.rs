//! Test harness: start a real ferrod process on a free port and talk to it.
#![allow(dead_code)]

use bson::{doc, Document};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const FERROD: &str = env!("CARGO_BIN_EXE_ferrod");

/// A running ferrod with its own data directory; killed when dropped.
pub struct Ferrod {
    child: Option<Child>,
    pub port: u16,
    pub dbpath: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
}

impl Ferrod {
    /// Starts ferrod on 127.0.0.1 and a free port, with JSON logs, plus `args`.
    pub fn start(args: &[&str]) -> Ferrod {
        let dbpath = tempfile::tempdir().expect("temp dir");
        Self::start_in(dbpath, args)
    }

    /// Starts ferrod on an existing data directory (for restart tests).
    pub fn start_in(dbpath: tempfile::TempDir, args: &[&str]) -> Ferrod {
        Self::start_on_port(dbpath, 0, args)
    }

    /// Starts ferrod on `port` (0: a free one) and an existing data directory.
    pub fn start_on_port(dbpath: tempfile::TempDir, port: u16, args: &[&str]) -> Ferrod {
        let mut cmd = Command::new(FERROD);
        cmd.args([
            "--port",
            &port.to_string(),
            "--logFormat",
            "json",
            "--dbpath",
        ])
        .arg(dbpath.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ferrod");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("\"Waiting for connections\"") {
                        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                        let _ = tx.send(v["attr"]["port"].as_u64().unwrap() as u16);
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(format!("stderr: {line}"));
                }
            });
        }
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "ferrod did not start listening; its output:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Ferrod {
            child: Some(child),
            port,
            dbpath,
            log,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`, or panics after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log_lines().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line containing {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The "Successfully authenticated" log lines (mongod 7.0's id 5286306) for `user`.
    pub fn auth_success_lines(&self, user: &str) -> Vec<serde_json::Value> {
        self.log_lines()
            .iter()
            .filter(|l| l.contains("\"Successfully authenticated\""))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["attr"]["user"] == user)
            .collect()
    }

    /// A raw connection with a read timeout.
    pub fn raw(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Runs a command over a fresh raw connection (OP_MSG) and returns the reply body.
    pub fn command(&self, cmd: Document) -> Document {
        let mut s = self.raw();
        op_msg_roundtrip(&mut s, &cmd)
    }

    /// Sends SIGTERM and waits for the exit status (bounded).
    pub fn terminate(&mut self) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        unsafe {
            libc_kill(child.id() as i32, 15);
        }
        self.wait(Duration::from_secs(20))
    }

    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("ferrod did not exit in time");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// Stops the process and hands back its data directory.
    pub fn into_dbpath(mut self) -> tempfile::TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dbpath, dir)
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for Ferrod {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `cmd` run on the `admin` database of `node`.
pub fn admin(node: &Ferrod, mut cmd: Document) -> Document {
    cmd.insert("$db", "admin");
    node.command(cmd)
}

/// Whether a reply says `ok: 1`.
pub fn ok(reply: &Document) -> bool {
    reply.get_f64("ok") == Ok(1.0)
}

// ---- raw wire helpers -------------------------------------------------------

pub const OP_MSG: i32 = 2013;
pub const OP_QUERY: i32 = 2004;
pub const OP_REPLY: i32 = 1;
pub const OP_COMPRESSED: i32 = 2012;

/// Builds a frame from an opcode and a body (header filled in).
pub fn frame(request_id: i32, op_code: i32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&((16 + body.len()) as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&op_code.to_le_bytes());
    out.extend_from_slice(body);
    out
}

pub fn bson_bytes(doc: &Document) -> Vec<u8> {
    let mut v = Vec::new();
    doc.to_writer(&mut v).unwrap();
    v
}

/// An OP_MSG with flags and one body section.
pub fn op_msg(request_id: i32, flags: u32, doc: &Document) -> Vec<u8> {
    let mut body = flags.to_le_bytes().to_vec();
    body.push(0);
    body.extend(bson_bytes(doc));
    frame(request_id, OP_MSG, &body)
}

/// Reads one whole frame; returns (header fields, body after the header).
pub fn read_frame(s: &mut TcpStream) -> std::io::Result<(i32, i32, i32, Vec<u8>)> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = i32::from_le_bytes(len) as usize;
    assert!((16..=48_000_000).contains(&len), "bad reply length {len}");
    let mut rest = vec![0u8; len - 4];
    s.read_exact(&mut rest)?;
    let request_id = i32::from_le_bytes(rest[0..4].try_into().unwrap());
    let response_to = i32::from_le_bytes(rest[4..8].try_into().unwrap());
    let op = i32::from_le_bytes(rest[8..12].try_into().unwrap());
    Ok((request_id, response_to, op, rest[12..].to_vec()))
}

/// Parses an OP_MSG reply body, asserting SPEC section 1: flags 0, one kind-0 section only.
pub fn parse_op_msg_reply(body: &[u8]) -> Document {
    assert_eq!(&body[0..4], &[0, 0, 0, 0], "reply flags must be 0");
    assert_eq!(body[4], 0, "reply must start with a kind-0 section");
    let doc = Document::from_reader(&body[5..]).unwrap();
    let doc_len = i32::from_le_bytes(body[5..9].try_into().unwrap()) as usize;
    assert_eq!(
        5 + doc_len,
        body.len(),
        "reply must hold exactly one section"
    );
    doc
}

/// Sends `cmd` as OP_MSG and returns the reply document.
pub fn op_msg_roundtrip(s: &mut TcpStream, cmd: &Document) -> Document {
    s.write_all(&op_msg(42, 0, cmd)).unwrap();
    let (_, response_to, op, body) = read_frame(s).expect("reply");
    assert_eq!(response_to, 42);
    assert_eq!(op, OP_MSG);
    parse_op_msg_reply(&body)
}

/// True if the peer closed the connection (read returns EOF or reset) within the timeout.
pub fn is_closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(s.read(&mut buf), Ok(0))
        || matches!(s.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
}

pub fn ping_doc() -> Document {
    doc! {"ping": 1, "$db": "admin"}
}

/// Polls `probe` every 50 ms until it returns Some, for at most `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    wait_until(timeout, what, || probe().ok_or_else(String::new))
}

/// Polls `probe` every 50 ms until it returns Ok, for at most `timeout`; on timeout the
/// failure names `what` and the last state `probe` reported.
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe() {
            Ok(v) => return v,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last seen: {last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a finished (or timed-out) process printed: `text` holds the command line, both
/// streams and how it ended.
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub text: String,
}

/// Runs `cmd` to the end or kills it after `timeout`, collecting its output.
pub fn run(mut cmd: Command, timeout: Duration) -> Outcome {
    let what = format!("{cmd:?}");
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return Outcome {
                success: false,
                stdout: String::new(),
                text: format!("$ {what}\ncannot start it: {e}"),
            }
        }
    };
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let (success, note) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status.success(), format!("exit status: {status}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (false, format!("killed after {} s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap();
    let text = format!(
        "$ {what}\n--- stdout\n{stdout}--- stderr\n{}--- {note}",
        stderr.join().unwrap()
    );
    Outcome {
        success,
        stdout,
        text,
    }
}

/// A port for a ferrod that must know it before it starts (replica-set members named in
/// each other's configs or command lines, a port written into a config file, a restart
/// on the same port); everything else starts on `--port 0` and reads the bound port from
/// the log. Bind-and-release alone races: the kernel hands the same port to the next
/// `:0` bind or outgoing connection, and test processes run side by side. So ports come
/// from below the kernel's ephemeral range (never handed out by it), each claimed for
/// this process's lifetime by an exclusive lock on a file named after it (released by
/// the kernel when the process exits, however it ends), and checked free by a bind.
pub fn free_port() -> u16 {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicU32, Ordering};
    static CLAIMED: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // 20000..32768: below Linux's default ephemeral range (32768..60999).
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_768;
    let dir = std::env::temp_dir().join("ferrod-test-ports");
    std::fs::create_dir_all(&dir).expect("port lock directory");
    let start = std::process::id().wrapping_mul(7919);
    for _ in 0..COUNT {
        let port = (FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT) as u16;
        let Ok(file) = std::fs::File::create(dir.join(port.to_string())) else {
            continue;
        };
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue; // another test process holds it
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue; // something outside the tests listens there
        }
        CLAIMED.lock().unwrap().push(file);
        return port;
    }
    panic!("no free port left in {FIRST}..{}", FIRST + COUNT);
}

/// A Rust-driver client for `uri` (5 s server selection), logged in to `admin` as
/// `login` with `mechanism` (None: negotiated) when given.
pub async fn driver(
    uri: &str,
    login: Option<(&str, &str)>,
    mechanism: Option<mongodb::options::AuthMechanism>,
) -> mongodb::Client {
    let mut options = mongodb::options::ClientOptions::parse(uri).await.unwrap();
    options.server_selection_timeout = Some(Duration::from_secs(5));
    if let Some((user, pwd)) = login {
        options.credential = Some(
            mongodb::options::Credential::builder()
                .username(user.to_owned())
                .password(pwd.to_owned())
                .source("admin".to_owned())
                .mechanism(mechanism)
                .build(),
        );
    }
    mongodb::Client::with_options(options).unwrap()
}

/// Three members on free ports, initiated as `rs0` with fast heartbeats and elections;
/// returns them and the index of the primary once one is writable.
pub fn three_member_set() -> (Vec<Ferrod>, usize) {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let nodes: Vec<Ferrod> = ports
        .iter()
        .map(|p| Ferrod::start_on_port(tempfile::tempdir().unwrap(), *p, &["--replSet", "rs0"]))
        .collect();
    let config = doc! {
        "_id": "rs0", "version": 1,
        "members": nodes.iter().enumerate()
            .map(|(i, n)| bson::Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
            .collect::<Vec<_>>(),
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
    };
    let reply = nodes[0].command(doc! {"replSetInitiate": config, "$db": "admin"});
    assert!(ok(&reply), "{reply}");
    let p = eventually(Duration::from_secs(30), "a primary", || {
        nodes.iter().position(|n| {
            n.command(doc! {"hello": 1, "$db": "admin"})
                .get_bool("isWritablePrimary")
                == Ok(true)
        })
    });
    (nodes, p)
}
