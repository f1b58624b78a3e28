//! The docker-compose cluster of docker-compose.yml, for real: builds the static binary
//! (in target/static, apart from the normal build), packages it with the Dockerfile's
//! `prebuilt` target (FROM scratch: nothing is pulled), brings the three members up under
//! a project name of its own with random loopback ports, waits for their healthchecks
//! (`ferrod healthcheck`, no shell in the image), and runs tests/docker/cluster.py's
//! scenario with PyMongo from the host: discovery through replicaSet=rs0, the root user
//! of MONGO_INITDB_ROOT_* on every member, the dropConnections flow after a reconfig, a
//! member cut off with `docker network disconnect` and reconnected, and `docker stop` of
//! the primary with the time until PyMongo sees the new one. Everything it made (the
//! containers, the network, the volumes, the image) is removed at the end, also when a
//! check fails.
//!
//! Needs a running Docker engine and Compose (`docker compose` or `docker-compose`);
//! `scripts/test` (README's test command) installs and starts them. Without them this test
//! fails and says so.

mod common;

use common::run;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const TARGET: &str = "x86_64-unknown-linux-gnu";
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DOCKER_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(120);

/// The runtime image must stay small (goal: 15 MB): 12.9 MB on 2026-12-02 with documents,
/// indexes and TLS, built with Cargo.toml's size-optimised `image` profile.
const IMAGE_LIMIT_BYTES: u64 = 15 * 1024 * 1024;
const SERVICES: [&str; 3] = ["ferrod1", "ferrod2", "ferrod3"];
const ROOT_USER: &str = "root";
const ROOT_PASSWORD: &str = "docker-test-pw";

const MISSING_DOCKER: &str = "this test needs a running Docker engine and Compose: on Debian \
    `apt-get install docker.io docker-compose` and start `dockerd` (scripts/test does both)";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd` and panics with its output unless it succeeds; returns its stdout.
fn must(cmd: Command, timeout: Duration) -> String {
    let outcome = run(cmd, timeout);
    assert!(outcome.success, "{}", outcome.text);
    outcome.stdout
}

fn docker(args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    cmd
}

/// `docker compose` (v2) where the plugin is there, else `docker-compose` (v1).
fn compose_program() -> Vec<String> {
    let v2 = run(docker(&["compose", "version"]), Duration::from_secs(30));
    if v2.success {
        return vec!["docker".into(), "compose".into()];
    }
    let mut v1 = Command::new("docker-compose");
    v1.arg("version");
    let v1 = run(v1, Duration::from_secs(30));
    assert!(
        v1.success,
        "{MISSING_DOCKER}; neither `docker compose` nor `docker-compose` runs:\n{}\n{}",
        v2.text, v1.text
    );
    vec!["docker-compose".into()]
}

/// Builds the static binary (the `image` profile) the `prebuilt` stage packages.
fn build_static_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo())
        .args([
            "build",
            "--profile",
            "image",
            "--bin",
            "ferrod",
            "--target",
            TARGET,
        ])
        .args(["--target-dir", "target/static"])
        .env("RUSTFLAGS", "-C target-feature=+crt-static");
    let started = Instant::now();
    must(cmd, BUILD_TIMEOUT);
    println!("static build: {:.1} s", started.elapsed().as_secs_f64());
    let binary = repo().join(format!("target/static/{TARGET}/image/ferrod"));
    assert!(binary.is_file(), "{} was not built", binary.display());
    binary
}

/// Everything this test started in Docker; removed on drop, also after a failed check
/// (then the members' last log lines are printed first).
struct Cluster {
    compose: Vec<String>,
    project: String,
    image: String,
    env: Vec<(String, String)>,
}

impl Cluster {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.compose[0]);
        cmd.args(&self.compose[1..])
            .args(self.compose_options())
            .args(args)
            .current_dir(repo())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    fn compose_options(&self) -> Vec<String> {
        vec![
            "-p".into(),
            self.project.clone(),
            "-f".into(),
            repo().join("docker-compose.yml").display().to_string(),
        ]
    }

    fn container(&self, service: &str) -> String {
        let out = must(self.command(&["ps", "-a", "-q", service]), DOCKER_TIMEOUT);
        let id = out.trim().to_owned();
        assert!(!id.is_empty(), "no container for {service}");
        id
    }

    /// `running/healthy`, `running/starting`, `exited/unhealthy`, ...
    fn health(&self, service: &str) -> String {
        let id = self.container(service);
        must(
            docker(&[
                "inspect",
                "-f",
                "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}",
                &id,
            ]),
            DOCKER_TIMEOUT,
        )
        .trim()
        .to_owned()
    }

    fn wait_healthy(&self) -> Duration {
        let started = Instant::now();
        loop {
            let states: Vec<String> = SERVICES.iter().map(|s| self.health(s)).collect();
            if states.iter().all(|s| s == "running/healthy") {
                return started.elapsed();
            }
            assert!(
                !states
                    .iter()
                    .any(|s| s.starts_with("exited") || s.starts_with("dead")),
                "a member stopped before it was healthy: {states:?}"
            );
            assert!(
                started.elapsed() < HEALTH_TIMEOUT,
                "the members are not healthy after {HEALTH_TIMEOUT:?}: {states:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The host port compose published for `service`'s 27017 (on 127.0.0.1).
    fn published_port(&self, service: &str) -> u16 {
        let out = must(self.command(&["port", service, "27017"]), DOCKER_TIMEOUT);
        let (host, port) = out.trim().rsplit_once(':').expect("HOST:PORT");
        assert_eq!(host, "127.0.0.1", "published on loopback only: {out}");
        port.parse().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = run(
                self.command(&["logs", "--no-color", "--tail", "60"]),
                DOCKER_TIMEOUT,
            );
            eprintln!("--- the members' last log lines\n{}", logs.text);
        }
        let down = run(
            self.command(&["down", "-v", "--remove-orphans", "-t", "2"]),
            DOCKER_TIMEOUT,
        );
        if !down.success {
            eprintln!("teardown failed:\n{}", down.text);
        }
        let _ = run(docker(&["rmi", "-f", &self.image]), DOCKER_TIMEOUT);
    }
}

fn install_pymongo() {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("tests/interop/install.sh"));
    let outcome = run(cmd, Duration::from_secs(20 * 60));
    assert!(
        outcome.success,
        "tests/interop/install.sh failed; it needs python3 with pip (and Node.js with npm):\n{}",
        outcome.text
    );
}

/// The committed test key is checked out 0644 (git keeps no other modes); ferrod refuses a
/// key others may read, so it is made owner-only, as README.md tells users to do.
fn key_file() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let key = repo().join("docker/keyfile");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400))
        .unwrap_or_else(|e| panic!("chmod 400 {}: {e}", key.display()));
    key
}

#[test]
fn compose_cluster_discovery_auth_drop_connections_partition_and_failover() {
    let info = run(
        docker(&["info", "--format", "{{.ServerVersion}}"]),
        Duration::from_secs(30),
    );
    assert!(info.success, "{MISSING_DOCKER}:\n{}", info.text);
    let compose = compose_program();
    install_pymongo();
    build_static_binary();
    key_file();

    let unique = format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000
    );
    let image = format!("ferrod-test:{unique}");
    let env = vec![
        ("FERROD_IMAGE".to_owned(), image.clone()),
        (
            "MONGO_INITDB_ROOT_USERNAME".to_owned(),
            ROOT_USER.to_owned(),
        ),
        (
            "MONGO_INITDB_ROOT_PASSWORD".to_owned(),
            ROOT_PASSWORD.to_owned(),
        ),
        // Random host ports, on loopback only: no clash with anything on 27017-27019.
        ("FERROD1_PUBLISH".to_owned(), "127.0.0.1:".to_owned()),
        ("FERROD2_PUBLISH".to_owned(), "127.0.0.1:".to_owned()),
        ("FERROD3_PUBLISH".to_owned(), "127.0.0.1:".to_owned()),
    ];
    let cluster = Cluster {
        compose,
        project: format!("ferrodtest{unique}"),
        image: image.clone(),
        env,
    };

    // The image: the prebuilt target only, so nothing is pulled.
    let mut build = docker(&["build", "--target", "prebuilt", "-t", &image, "."]);
    build.current_dir(repo());
    must(build, DOCKER_TIMEOUT);
    let size: u64 = must(
        docker(&["image", "inspect", "-f", "{{.Size}}", &image]),
        DOCKER_TIMEOUT,
    )
    .trim()
    .parse()
    .unwrap();
    println!("image {image}: {size} bytes");
    assert!(
        size <= IMAGE_LIMIT_BYTES,
        "the runtime image is {size} bytes, over 15 MB"
    );

    let up_started = Instant::now();
    must(cluster.command(&["up", "-d", "--no-build"]), DOCKER_TIMEOUT);
    let healthy_after = cluster.wait_healthy();
    println!(
        "compose up -> three healthy members: {:.1} s (healthy {:.1} s after up returned)",
        up_started.elapsed().as_secs_f64(),
        healthy_after.as_secs_f64()
    );

    // From the host through a published port: the healthcheck subcommand and a
    // one-member client (directConnection) both work there.
    for service in SERVICES {
        let port = cluster.published_port(service).to_string();
        let mut check = Command::new(env!("CARGO_BIN_EXE_ferrod"));
        check.args(["healthcheck", "--host", "127.0.0.1", "--port", &port]);
        let out = must(check, Duration::from_secs(30));
        println!("{service} via 127.0.0.1:{port}: {}", out.trim());
    }

    let mut compose_cmd = cluster.compose.clone();
    compose_cmd.extend(cluster.compose_options());
    let mut scenario = Command::new("python3");
    scenario
        .arg(repo().join("tests/docker/cluster.py"))
        .arg("scenario")
        .current_dir(repo())
        .env(
            "FERROD_COMPOSE",
            serde_json::to_string(&compose_cmd).unwrap(),
        )
        .env("FERROD_ROOT_USER", ROOT_USER)
        .env("FERROD_ROOT_PASSWORD", ROOT_PASSWORD);
    let outcome = run(scenario, SCENARIO_TIMEOUT);
    assert!(outcome.success, "{}", outcome.text);
    println!("{}", outcome.text);
    assert!(
        outcome.stdout.contains("FAILOVER docker stop"),
        "{}",
        outcome.text
    );
    drop(cluster);
    let project = format!("name=ferrodtest{unique}");
    for what in [
        &["ps", "-aq", "--filter"][..],
        &["volume", "ls", "-q", "--filter"],
        &["network", "ls", "-q", "--filter"],
    ] {
        let mut args = what.to_vec();
        args.push(&project);
        let left = must(docker(&args), DOCKER_TIMEOUT);
        assert!(left.trim().is_empty(), "left behind ({what:?}): {left}");
    }
}
