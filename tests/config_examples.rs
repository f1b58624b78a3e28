//! Every example config file in config/ starts a server that does what the file says.
//!
//! Each example runs in its own temporary working directory, so the relative paths the
//! examples use (./data, ./ferrod.log) land there; only the port is overridden on the
//! command line, since 27017 may be taken.

mod common;

use bson::doc;
use common::{free_port, op_msg_roundtrip, FERROD};
use serde_norway::Value;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no example configs in {}", dir.display());
    files
}

/// A ferrod started from a config file; killed when dropped.
struct Started {
    child: Child,
    port: u16,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(config: &Path, workdir: &Path) -> Started {
    let port = free_port();
    let child = Command::new(FERROD)
        .arg("-f")
        .arg(config)
        .args(["--port", &port.to_string()])
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferrod");
    let mut started = Started { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = started.child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            let _ = started
                .child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr);
            panic!("{} did not start: {status}\n{stderr}", config.display());
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return started;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not listen within 20 s",
            config.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `file[a][b]...` as a string, if it is set.
fn setting(file: &Value, path: &[&str]) -> Option<String> {
    let mut value = file;
    for key in path {
        value = value.get(*key)?;
    }
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[test]
fn every_example_config_starts_the_server() {
    for config in examples() {
        let name = config.display().to_string();
        let file: Value = serde_norway::from_str(&std::fs::read_to_string(&config).unwrap())
            .unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
        let workdir = tempfile::tempdir().unwrap();
        let server = start(&config, workdir.path());

        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let ping = op_msg_roundtrip(&mut s, &doc! {"ping": 1, "$db": "admin"});
        assert_eq!(ping.get_f64("ok"), Ok(1.0), "{name}: ping");

        let opts = op_msg_roundtrip(&mut s, &doc! {"getCmdLineOpts": 1, "$db": "admin"});
        let parsed = opts.get_document("parsed").unwrap();
        assert_eq!(
            parsed.get_str("config"),
            Ok(config.to_str().unwrap()),
            "{name}: getCmdLineOpts names the file"
        );

        if let Some(db_path) = setting(&file, &["storage", "dbPath"]) {
            assert!(
                workdir.path().join(&db_path).is_dir(),
                "{name}: storage.dbPath {db_path} was created"
            );
        }

        if let Some(list) = setting(&file, &["net", "compression", "compressors"]) {
            let status = op_msg_roundtrip(&mut s, &doc! {"serverStatus": 1, "$db": "admin"});
            let offered: Vec<String> = status
                .get_document("network")
                .unwrap()
                .get_document("compression")
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default();
            let configured: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|c| *c != "disabled")
                .map(String::from)
                .collect();
            assert_eq!(offered, configured, "{name}: net.compression.compressors");
        }

        if let Some(log_path) = setting(&file, &["systemLog", "path"]) {
            let log_file = workdir.path().join(&log_path);
            let text = std::fs::read_to_string(&log_file)
                .unwrap_or_else(|e| panic!("{name}: systemLog.path {log_path}: {e}"));
            assert!(
                text.contains("Waiting for connections"),
                "{name}: the log file has the startup lines:\n{text}"
            );
            if setting(&file, &["systemLog", "logFormat"]).as_deref() == Some("json") {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let entry: serde_json::Value = serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("{name}: not a JSON log line ({e}): {line}"));
                    for field in ["t", "s", "c", "msg"] {
                        assert!(entry.get(field).is_some(), "{name}: no {field} in {line}");
                    }
                }
            }
        }
    }
}
