//! A fresh clone's first commands: README.md opens with a command that runs the server on
//! its defaults and the test command, `.ci/run` runs exactly that test command, and the
//! defaults need nothing that a fresh clone lacks.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The commands (comments cut) of the first code block after `after` in README.md.
fn readme_block_after(after: &str) -> Vec<String> {
    let readme = read("README.md");
    let section = readme
        .split_once(after)
        .unwrap_or_else(|| panic!("README.md has {after:?}"))
        .1;
    let block = section
        .split_once("```")
        .expect("a code block follows")
        .1
        .split_once("```")
        .expect("the code block ends")
        .0;
    block
        .lines()
        .skip(1) // the fence's language tag
        .map(|l| l.split_once('#').map_or(l, |(cmd, _)| cmd).trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The first command under "## Tests".
fn readme_test_command() -> String {
    readme_block_after("\n## Tests\n")
        .into_iter()
        .next()
        .expect("'## Tests' has a command")
}

/// The last command of .ci/run, without `exec`.
fn ci_test_command() -> String {
    read(".ci/run")
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .expect(".ci/run has a command")
        .trim_start_matches("exec ")
        .to_owned()
}

fn is_executable(relative: &str) -> bool {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::metadata(&path).unwrap().permissions().mode() & 0o111 != 0
}

#[test]
fn ci_runs_exactly_the_readme_test_command() {
    assert_eq!(ci_test_command(), readme_test_command());
}

#[test]
fn readme_opens_with_the_run_and_test_commands() {
    let readme = read("README.md");
    let before_prose = readme
        .split_once("\n\n")
        .map(|(title, rest)| (title, rest.trim_start()))
        .expect("README.md has a title");
    assert!(
        before_prose.1.starts_with("```"),
        "README.md's first block after the title is the commands"
    );
    let first = readme_block_after(before_prose.0);
    assert_eq!(
        first,
        vec!["cargo run --release".to_owned(), readme_test_command()]
    );
    assert!(
        readme.lines().count() <= 250,
        "README.md is at most 250 lines"
    );
}

#[test]
fn test_command_does_the_setup_and_passes_arguments_to_cargo_test() {
    let command = readme_test_command();
    assert!(is_executable(&command), "{command} must be executable");
    let script = read(&command);
    for setup in ["tests/interop/install.sh", "dockerd", "apt-get install"] {
        assert!(script.contains(setup), "{command} does not run {setup}");
    }
    assert_eq!(
        script.lines().map(str::trim).rfind(|l| !l.is_empty()),
        Some(r#"exec cargo test "$@""#)
    );
}

#[test]
fn ci_script_is_executable() {
    assert!(is_executable(".ci/run"), ".ci/run must be executable");
}

/// `cargo run --release` gives no flags: the default dbpath (./data, relative to the
/// working directory) is created, as on a fresh clone, and the server listens.
#[test]
fn defaults_need_no_existing_data_directory() {
    let cwd = tempfile::tempdir().unwrap();
    // Port 0 only because tests run in parallel; every other setting is the default.
    let mut child = Command::new(common::FERROD)
        .args(["--port", "0"])
        .current_dir(cwd.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("Waiting for connections") {
                let _ = tx.send(line);
            }
        }
    });
    let listening = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening.is_ok(), "ferrod on its defaults did not listen");
    assert!(cwd.path().join("data").is_dir(), "./data was not created");
}
