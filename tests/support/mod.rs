//! Helpers for the server and command tests: ferrod processes started with exactly the
//! arguments a test gives (fixed ports, text logs, config files), JSON log parsing, and
//! small command wrappers on raw connections.
#![allow(dead_code)]

pub use crate::common::eventually;
use crate::common::{op_msg, op_msg_roundtrip, read_frame, FERROD};
use bson::{doc, Bson, Document};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// True if nothing listens on 127.0.0.1:`port` (we can bind it ourselves).
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A ferrod started with the given arguments only; killed when dropped.
pub struct Proc {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn pump(stream: impl std::io::Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    });
}

impl Proc {
    /// A ferrod on `--port 0` with a fresh data directory, plus `extra` (which must leave
    /// the log on standard output), once it listens: the port it bound and the directory,
    /// which lives as long as the returned handle.
    pub fn listening(extra: &[&str]) -> (Proc, u16, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--port", "0", "--dbpath", dir.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut proc = Proc::spawn(&args);
        let port = proc.wait_bound_port();
        (proc, port, dir)
    }

    /// The port from the "Waiting for connections" log line (text or JSON) on standard
    /// output, once it is there: the port a `--port 0` server bound.
    pub fn wait_bound_port(&mut self) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self.stdout().iter().find_map(|line| {
                let after = line.split_once("Waiting for connections")?.1;
                let digits = after.split_once("\"port\":")?.1;
                let end = digits.find(|c: char| !c.is_ascii_digit())?;
                digits[..end].parse().ok()
            });
            if let Some(port) = found {
                return port;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "ferrod exited ({status}) before listening; stderr:\n{}\nstdout:\n{}",
                    self.stderr(),
                    self.stdout().join("\n")
                );
            }
            assert!(Instant::now() < deadline, "ferrod never listened");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(FERROD)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ferrod");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        pump(child.stdout.take().unwrap(), lines.clone());
        pump(child.stderr.take().unwrap(), stderr.clone());
        Proc {
            child: Some(child),
            lines,
            stderr,
        }
    }

    pub fn stdout(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the process to exit (bounded); the output pumps get a moment to drain.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "ferrod did not exit within {timeout:?}; stdout:\n{}",
                    self.stdout().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until 127.0.0.1:`port` accepts connections, failing if the process exits.
    pub fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "ferrod exited ({status}) before listening on {port}; stderr:\n{}\nstdout:\n{}",
                    self.stderr(),
                    self.stdout().join("\n")
                );
            }
            assert!(Instant::now() < deadline, "ferrod never listened on {port}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as i32, sig);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A raw connection with a read timeout, so that no test can hang on a read.
pub fn connect(addr: impl std::net::ToSocketAddrs) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

pub fn connect_port(port: u16) -> TcpStream {
    connect(("127.0.0.1", port))
}

/// Runs `cmd` on the `admin` database over `s`.
pub fn admin(s: &mut TcpStream, mut cmd: Document) -> Document {
    cmd.insert("$db", "admin");
    op_msg_roundtrip(s, &cmd)
}

/// Runs `cmd` on database `db` over `s`.
pub fn on_db(s: &mut TcpStream, db: &str, mut cmd: Document) -> Document {
    cmd.insert("$db", db);
    op_msg_roundtrip(s, &cmd)
}

/// Sends `cmd` (on admin) without reading the reply.
pub fn send(s: &mut TcpStream, request_id: i32, mut cmd: Document) {
    cmd.insert("$db", "admin");
    s.write_all(&op_msg(request_id, 0, &cmd)).unwrap();
}

/// Reads one OP_MSG reply and returns (responseTo, body).
pub fn receive(s: &mut TcpStream) -> (i32, Document) {
    let (_, response_to, _, body) = read_frame(s).expect("a reply");
    (response_to, crate::common::parse_op_msg_reply(&body))
}

pub fn ok(reply: &Document) -> f64 {
    reply
        .get_f64("ok")
        .unwrap_or_else(|_| panic!("no double ok in {reply}"))
}

/// Asserts an error reply with this code and code name; returns its errmsg.
pub fn assert_error(reply: &Document, code: i32, code_name: &str) -> String {
    assert_eq!(ok(reply), 0.0, "expected an error: {reply}");
    assert_eq!(reply.get_i32("code").unwrap(), code, "{reply}");
    assert_eq!(reply.get_str("codeName").unwrap(), code_name, "{reply}");
    reply.get_str("errmsg").unwrap().to_owned()
}

pub fn assert_ok(reply: &Document) {
    assert_eq!(ok(reply), 1.0, "expected success: {reply}");
}

/// The JSON log lines among `lines` (stderr lines and the like are skipped).
pub fn json_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.is_object())
        .collect()
}

/// Log entries with mongod's log id `id`.
pub fn with_id(lines: &[String], id: i64) -> Vec<serde_json::Value> {
    json_lines(lines)
        .into_iter()
        .filter(|v| v["id"].as_i64() == Some(id))
        .collect()
}

/// The `inprog` entries another connection sees.
pub fn in_progress(s: &mut TcpStream) -> Vec<Document> {
    let reply = admin(s, doc! {"currentOp": 1});
    assert_ok(&reply);
    reply
        .get_array("inprog")
        .unwrap()
        .iter()
        .filter_map(|b| b.as_document().cloned())
        .collect()
}

/// The in-flight `sleep` operation, once currentOp shows it.
pub fn wait_for_sleep_op(observer: &mut TcpStream) -> Document {
    eventually(Duration::from_secs(10), "the sleep op in currentOp", || {
        in_progress(observer).into_iter().find(|op| {
            op.get_document("command")
                .is_ok_and(|c| c.contains_key("sleep"))
        })
    })
}

pub fn addr_v6(port: u16) -> SocketAddr {
    SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
}

pub fn bson_i64(v: &Bson) -> i64 {
    match v {
        Bson::Int32(n) => *n as i64,
        Bson::Int64(n) => *n,
        Bson::Double(d) => *d as i64,
        other => panic!("not a number: {other}"),
    }
}
