//! Runs every mode of `ferrod-repl-bench` with tiny sizes against this build's ferrod, so
//! that the benchmark of the replication log's goals keeps working. The figures are not
//! checked (they mean little at these sizes on a shared machine); that each mode runs to
//! the end, prints its reproducing command, date and goal line, and exits 0 is. `kill9`
//! also exits non-zero when an acknowledged write is lost.

mod common;

use std::process::Command;
use std::time::Duration;

fn bench(mode: &str, args: &[&str], goal_line: &str) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrod-repl-bench"));
    cmd.arg(mode)
        .args(["--ferrod", env!("CARGO_BIN_EXE_ferrod")])
        .args(args);
    // A guard against a hang, not a bound on the figures.
    let outcome = common::run(cmd, Duration::from_secs(120));
    assert!(outcome.success, "{}", outcome.text);
    for needle in ["reproduce: ", "\ndate: ", goal_line] {
        assert!(
            outcome.stdout.contains(needle),
            "no {needle:?} in:\n{}",
            outcome.text
        );
    }
}

#[test]
fn latency_mode_runs() {
    let args = [
        "--entries",
        "200",
        "--early",
        "100",
        "--window",
        "5",
        "--connections",
        "2",
    ];
    bench("latency", &args, "latency goal: ");
}

#[test]
fn disk_mode_runs() {
    bench(
        "disk",
        &["--sizes", "100,200", "--connections", "2"],
        "after     200 entries: log file",
    );
}

#[test]
fn restart_mode_runs() {
    let args = ["--entries", "200", "--reps", "1", "--connections", "2"];
    bench("restart", &args, "restart goal (writable primary < 1 s): ");
}

#[test]
fn join_mode_runs() {
    bench(
        "join",
        &["--entries", "200", "--connections", "2"],
        "join goal (caught up by snapshot in < 5 s): ",
    );
}

/// With a snapshot every 100 entries the primary has purged the log a new member needs,
/// so it catches up by a snapshot, which the tool must find in the new member's log.
#[test]
fn join_mode_sees_a_snapshot_install() {
    let args = [
        "--entries",
        "400",
        "--connections",
        "2",
        "--set-parameter",
        "replLogEntriesPerSnapshot=100",
    ];
    bench("join", &args, "  by snapshot: yes (");
}

#[test]
fn kill9_mode_runs() {
    bench(
        "kill9",
        &["--kills", "2"],
        "kill9 goal (no acknowledged write lost): met",
    );
}

#[test]
fn memory_mode_runs() {
    let args = [
        "--minutes",
        "0.34",
        "--baseline-secs",
        "5",
        "--stepdown-secs",
        "10",
    ];
    bench(
        "memory",
        &args,
        "memory goal (end within 1.5x of the baseline): ",
    );
}
