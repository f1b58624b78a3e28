//! `.ci/run` runs exactly the test command README.md gives, so the two cannot drift apart.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first line of the first code block under "## Tests".
fn readme_test_command() -> String {
    let readme = read("README.md");
    let section = readme
        .split_once("\n## Tests\n")
        .expect("README.md has a '## Tests' section")
        .1;
    let block = section
        .split_once("```")
        .expect("'## Tests' has a code block")
        .1;
    block
        .lines()
        .skip(1) // the fence's language tag
        .map(str::trim)
        .find(|l| !l.is_empty())
        .expect("the code block has a command")
        .to_owned()
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

#[test]
fn ci_runs_exactly_the_readme_test_command() {
    assert_eq!(ci_test_command(), readme_test_command());
}

#[test]
fn ci_script_is_executable() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, ".ci/run must be executable");
}
