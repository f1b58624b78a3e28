//! mongosh, PyMongo and the Node.js driver against a fresh ferrod each, through the
//! scripts in tests/interop/. The first test to get here runs tests/interop/install.sh
//! (a few minutes on a fresh checkout, nothing afterwards); the others wait for it.

mod common;

use common::Ferrod;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const INSTALL_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(3 * 60);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// What a finished (or timed-out) process printed.
struct Outcome {
    success: bool,
    output: String,
}

/// Runs `cmd` to the end, or kills it after `timeout`; collects stdout and stderr.
fn run(mut cmd: Command, timeout: Duration) -> Outcome {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
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
    let output = format!(
        "$ {what}\n--- stdout\n{}--- stderr\n{}--- {note}",
        stdout.join().unwrap(),
        stderr.join().unwrap()
    );
    Outcome { success, output }
}

/// Runs install.sh once per test process; a failure fails every interop test with its output.
fn install() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        let mut cmd = Command::new("bash");
        cmd.arg(interop_dir().join("install.sh"));
        let outcome = run(cmd, INSTALL_TIMEOUT);
        if outcome.success {
            Ok(())
        } else {
            Err(outcome.output)
        }
    });
    if let Err(output) = result {
        panic!(
            "tests/interop/install.sh failed; it needs node and npm (Node.js 18+) and python3 with pip:\n{output}"
        );
    }
}

/// Runs one client script against a fresh ferrod and asserts it passed.
fn run_client(build: impl FnOnce(&Ferrod, &Path) -> Command) {
    install();
    let server = Ferrod::start(&[]);
    // A private home, so that the clients' own files (mongosh's history and logs) stay out
    // of the user's.
    let home = tempfile::tempdir().unwrap();
    let mut cmd = build(&server, &interop_dir());
    cmd.current_dir(interop_dir())
        .env("FERROD_PORT", server.port.to_string())
        .env("HOME", home.path());
    let outcome = run(cmd, SCRIPT_TIMEOUT);
    let server_log = server.log_lines();
    let tail = &server_log[server_log.len().saturating_sub(40)..];
    assert!(
        outcome.success,
        "{}\n--- last lines of the ferrod log\n{}",
        outcome.output,
        tail.join("\n")
    );
    // The scripts print a line per check; show them with --nocapture.
    println!("{}", outcome.output);
}

#[test]
fn mongosh_runs_core_commands_and_each_compressor() {
    run_client(|server, dir| {
        let mut cmd = Command::new(dir.join(".deps/node/node_modules/.bin/mongosh"));
        cmd.arg("--quiet")
            .arg(format!(
                "mongodb://127.0.0.1:{}/admin?directConnection=true&serverSelectionTimeoutMS=10000",
                server.port
            ))
            .arg("--file")
            .arg(dir.join("mongosh_core.js"));
        cmd
    });
}

#[test]
fn pymongo_runs_core_commands_and_each_compressor() {
    run_client(|server, dir| {
        let mut cmd = Command::new("python3");
        cmd.arg(dir.join("pymongo_core.py"))
            .arg(server.port.to_string());
        cmd
    });
}

#[test]
fn node_driver_runs_core_commands_and_each_compressor() {
    run_client(|server, dir| {
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("node_core.mjs"))
            .arg(server.port.to_string());
        cmd
    });
}
