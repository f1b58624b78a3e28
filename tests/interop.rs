//! mongosh, PyMongo and the Node.js driver against fresh ferrod processes, through the
//! scripts in tests/interop/: the core commands (issue 2), authentication and roles
//! (issue 3), and three-member replica sets (issue 4). The first test to get here runs
//! tests/interop/install.sh (a few minutes on a fresh checkout, nothing afterwards); the
//! others wait for it. The tests run in parallel, each with its own servers.

mod common;

use bson::{doc, Bson};
use common::{run, Ferrod};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const INSTALL_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(3 * 60);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
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
            Err(outcome.text)
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
    run_script(&[&server], build(&server, &interop_dir()));
}

/// Runs a client script (with a private HOME, so that mongosh's history and logs stay out
/// of the user's) and asserts it passed; on failure shows the servers' last log lines.
fn run_script(servers: &[&Ferrod], cmd: Command) {
    run_script_within(servers, cmd, SCRIPT_TIMEOUT);
}

fn run_script_within(servers: &[&Ferrod], mut cmd: Command, timeout: Duration) {
    let home = tempfile::tempdir().unwrap();
    cmd.current_dir(interop_dir()).env("HOME", home.path());
    if let Some(first) = servers.first() {
        cmd.env("FERROD_PORT", first.port.to_string());
    }
    let outcome = run(cmd, timeout);
    if !outcome.success {
        let mut logs = String::new();
        for server in servers {
            let lines = server.log_lines();
            let tail = &lines[lines.len().saturating_sub(40)..];
            logs.push_str(&format!(
                "\n--- last lines of the log of ferrod on port {}\n{}",
                server.port,
                tail.join("\n")
            ));
        }
        panic!("{}{logs}", outcome.text);
    }
    // The scripts print a line per check; show them with --nocapture.
    println!("{}", outcome.text);
}

fn mongosh(uri: &str) -> Command {
    let mut cmd = Command::new(interop_dir().join(".deps/node/node_modules/.bin/mongosh"));
    cmd.arg("--quiet").arg(uri);
    cmd
}

fn node(script: &str) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(interop_dir().join(script));
    cmd
}

fn python(script: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(interop_dir().join(script));
    cmd
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

// ---- issue 11, item 6: serverStatus -----------------------------------------------------

#[test]
fn mongosh_reads_server_status_of_a_set_member() {
    install();
    let server = Ferrod::start(&["--replSet", SET]);
    let config = doc! {"_id": SET, "members": [{"_id": 0, "host": server.addr()}]};
    let reply = server.command(doc! {"replSetInitiate": config, "$db": "admin"});
    assert_eq!(reply.get("ok"), Some(&Bson::Double(1.0)), "{reply}");
    common::eventually(Duration::from_secs(10), "a primary", || {
        let hello = server.command(doc! {"hello": 1, "$db": "admin"});
        hello.get_bool("isWritablePrimary").ok()?.then_some(())
    });
    let mut cmd = mongosh(&format!(
        "mongodb://{}/admin?directConnection=true&serverSelectionTimeoutMS=10000",
        server.addr()
    ));
    cmd.arg("--file")
        .arg(interop_dir().join("server_status_mongosh.js"));
    run_script(&[&server], cmd);
}

// ---- issue 3: authentication and roles ---------------------------------------------------

fn start_with_auth() -> Ferrod {
    Ferrod::start(&["--auth"])
}

#[test]
fn mongosh_localhost_exception_custom_role_and_login_as_the_new_user() {
    install();
    let server = start_with_auth();
    let uri = format!(
        "mongodb://127.0.0.1:{}/admin?directConnection=true&serverSelectionTimeoutMS=10000",
        server.port
    );
    // Anonymous: the first user, then logged in as it, the role and the user.
    let mut setup = mongosh(&uri);
    setup
        .arg("--file")
        .arg(interop_dir().join("auth_mongosh.js"));
    run_script(&[&server], setup);
    // A new mongosh logged in as the new user.
    let mut as_ops = mongosh(&uri);
    as_ops
        .args([
            "-u",
            "ops",
            "-p",
            "opspw",
            "--authenticationDatabase",
            "admin",
        ])
        .arg("--file")
        .arg(interop_dir().join("auth_mongosh.js"))
        .env("AUTH_STEP", "as-ops");
    run_script(&[&server], as_ops);
    let ops = server.auth_success_lines("ops");
    assert!(!ops.is_empty(), "no login of ops in the server log");
    assert!(ops.iter().all(|l| l["attr"]["db"] == "admin"), "{ops:?}");
}

#[test]
fn pymongo_scram_sha256_sha1_saslprep_and_privilege_errors() {
    install();
    let server = start_with_auth();
    run_script(&[&server], {
        let mut cmd = python("auth_pymongo.py");
        cmd.arg(server.port.to_string());
        cmd
    });
    // The explicit mechanisms reached the server as asked.
    let ops = server.auth_success_lines("ops");
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-1"] {
        assert!(
            ops.iter().any(|l| l["attr"]["mechanism"] == mechanism),
            "no {mechanism} login of ops in the server log: {ops:?}"
        );
    }
    let prep = server.auth_success_lines("prep");
    assert!(prep.len() >= 3, "{prep:?}");
    assert!(prep
        .iter()
        .all(|l| l["attr"]["mechanism"] == "SCRAM-SHA-256"));
}

#[test]
fn node_driver_negotiates_sha256_and_authenticates_speculatively() {
    install();
    let server = start_with_auth();
    // The first user, through the localhost exception, with both mechanisms listed
    // SHA-1 first: negotiation must still pick SHA-256.
    let reply = server.command(doc! {
        "createUser": "root", "pwd": "rootpw", "roles": ["root"],
        "mechanisms": ["SCRAM-SHA-1", "SCRAM-SHA-256"], "$db": "admin",
    });
    assert_eq!(reply.get("ok"), Some(&Bson::Double(1.0)), "{reply}");
    run_script(&[&server], {
        let mut cmd = node("auth_node.mjs");
        cmd.arg(server.port.to_string());
        cmd
    });
    let lines = server.auth_success_lines("root");
    assert!(!lines.is_empty(), "no login of root in the server log");
    for line in &lines {
        assert_eq!(line["attr"]["mechanism"], "SCRAM-SHA-256", "{line}");
        assert_eq!(
            line["attr"]["isSpeculative"], true,
            "the Node driver's logins must be speculative: {line}"
        );
    }
}

// ---- issue 4: replica sets ----------------------------------------------------------------

const SET: &str = "rs0";

/// Three members with --replSet rs0, started in parallel.
/// Three members of the set `SET`, started side by side, each with `extra` arguments.
fn start_members(extra: &[&str]) -> Vec<Ferrod> {
    let mut args = vec!["--replSet", SET];
    args.extend_from_slice(extra);
    let args = &args;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(move || Ferrod::start(args)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn seed_list(members: &[Ferrod]) -> String {
    members
        .iter()
        .map(Ferrod::addr)
        .collect::<Vec<_>>()
        .join(",")
}

/// replSetInitiate on the first member with fast heartbeats and elections.
fn initiate(members: &[Ferrod]) {
    let config = doc! {
        "_id": SET, "version": 1,
        "members": members.iter().enumerate()
            .map(|(i, m)| Bson::Document(doc! {"_id": i as i32, "host": m.addr()}))
            .collect::<Vec<_>>(),
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
    };
    let reply = members[0].command(doc! {"replSetInitiate": config, "$db": "admin"});
    assert_eq!(reply.get("ok"), Some(&Bson::Double(1.0)), "{reply}");
}

#[test]
fn pymongo_follows_a_stepdown_and_gets_every_dropconnections_error() {
    install();
    let members = start_members(&[]);
    initiate(&members);
    let mut cmd = python("repl_pymongo.py");
    cmd.arg(seed_list(&members)).arg(SET);
    run_script(&members.iter().collect::<Vec<_>>(), cmd);
}

#[test]
fn mongosh_removes_a_member_with_a_key_file_and_authorization() {
    install();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keyfile");
    std::fs::write(&key, "c2hhcmVkLXNlY3JldC1mb3ItdGhlLXNldA==\n").unwrap();
    // mongod refuses a key file that group or others can read.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let key = key.to_str().unwrap();
    let members = start_members(&[
        "--keyFile",
        key,
        "--setParameter",
        "scramSHA256IterationCount=5000",
    ]);
    run_repl_mongosh(
        &members,
        &[("AUTH_USER", "clusterops"), ("AUTH_PWD", "opspw")],
    );
}

/// repl_mongosh.js (issue 4's documented flow) against three uninitiated members.
fn run_repl_mongosh(members: &[Ferrod], env: &[(&str, &str)]) {
    let mut cmd = mongosh(&format!(
        "mongodb://{}/admin?directConnection=true&serverSelectionTimeoutMS=10000",
        members[0].addr()
    ));
    cmd.arg("--file")
        .arg(interop_dir().join("repl_mongosh.js"))
        .env("HOSTS", seed_list(members))
        .env("SET_NAME", SET)
        .envs(env.iter().copied());
    run_script(&members.iter().collect::<Vec<_>>(), cmd);
}

#[test]
fn node_driver_follows_a_stepdown() {
    install();
    let members = start_members(&[]);
    initiate(&members);
    let mut cmd = node("repl_node.mjs");
    cmd.arg(seed_list(&members)).arg(SET);
    run_script(&members.iter().collect::<Vec<_>>(), cmd);
}

#[test]
fn mongosh_removes_a_member_and_drops_its_connections() {
    install();
    run_repl_mongosh(&start_members(&[]), &[]);
}

// ---- issue 5: a replicated catalog through failover ---------------------------------------

#[test]
fn pymongo_carries_on_after_the_primary_is_killed_and_it_rejoins_caught_up() {
    install();
    let mut members = start_members(&[]);
    initiate(&members);
    let targets: Vec<String> = members
        .iter()
        .map(|m| format!("{}={}", m.addr(), m.pid()))
        .collect();
    let mut cmd = python("repl_failover_pymongo.py");
    cmd.arg(targets.join(",")).arg(SET);
    cmd.current_dir(interop_dir());
    let outcome = run(cmd, SCRIPT_TIMEOUT);
    assert!(outcome.success, "{}", outcome.text);
    println!("{}", outcome.text);
    let killed = outcome
        .text
        .lines()
        .find_map(|l| l.strip_prefix("killed "))
        .expect("the script names the member it killed")
        .trim()
        .to_owned();
    let acknowledged: Vec<String> = outcome
        .text
        .lines()
        .find_map(|l| l.strip_prefix("acknowledged "))
        .expect("the script lists the acknowledged users")
        .trim()
        .split(',')
        .map(str::to_owned)
        .collect();
    // The killed member comes back on its port and data, as a secondary with every user.
    let i = members.iter().position(|m| m.addr() == killed).unwrap();
    let port = members[i].port;
    let old = members.remove(i);
    let dbpath = old.into_dbpath();
    let back = Ferrod::start_on_port(dbpath, port, &["--replSet", SET]);
    common::wait_until(
        Duration::from_secs(30),
        "the old primary to rejoin caught up",
        || {
            let hello = back.command(doc! {"hello": 1, "$db": "admin"});
            let users = back.command(doc! {"usersInfo": 1, "$db": "admin"});
            let names: Vec<&str> = users
                .get_array("users")
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_document()?.get_str("user").ok())
                        .collect()
                })
                .unwrap_or_default();
            if hello.get_bool("secondary") == Ok(true)
                && acknowledged.iter().all(|u| names.contains(&u.as_str()))
            {
                Ok(())
            } else {
                Err(format!("{hello} {users}"))
            }
        },
    );
}

// ---- issue 11: fail points -----------------------------------------------------------

fn run_with_test_commands(script: fn(&Ferrod) -> Command) {
    install();
    let server = Ferrod::start(&["--setParameter", "enableTestCommands=1"]);
    run_script(&[&server], script(&server));
}

#[test]
fn pymongo_retries_and_is_blocked_through_fail_command() {
    run_with_test_commands(|server| {
        let mut cmd = python("failpoints_pymongo.py");
        cmd.arg(server.port.to_string());
        cmd
    });
}

#[test]
fn node_driver_retries_and_is_blocked_through_fail_command() {
    run_with_test_commands(|server| {
        let mut cmd = node("failpoints_node.mjs");
        cmd.arg(server.port.to_string());
        cmd
    });
}

#[test]
fn pymongo_strict_stable_api_refuses_commands_outside_version_1() {
    run_client(|server, _| {
        let mut cmd = python("stable_api_pymongo.py");
        cmd.arg(server.port.to_string());
        cmd
    });
}

#[test]
fn pymongo_with_tls_fails_fast_against_a_server_without_tls() {
    install();
    let server = Ferrod::start(&[]);
    let mut cmd = python("tls_pymongo.py");
    cmd.arg(server.port.to_string());
    run_script(&[&server], cmd);
    server.wait_for_log(
        "SSL handshake received but server is started without SSL support",
        Duration::from_secs(5),
    );
}

// ---- issue 11, item 7: shell helpers -------------------------------------------------

#[test]
fn mongosh_log_components_current_op_roles_and_sync_from() {
    install();
    let server = Ferrod::start(&[]);
    let uri = format!(
        "mongodb://127.0.0.1:{}/admin?directConnection=true&serverSelectionTimeoutMS=10000",
        server.port
    );
    let mut cmd = mongosh(&uri);
    cmd.arg("--file")
        .arg(interop_dir().join("helpers_mongosh.js"));
    run_script(&[&server], cmd);

    // rs.syncFrom() on a secondary of a three-member set, naming the primary.
    let members = start_members(&[]);
    initiate(&members);
    let hello = |m: &Ferrod| m.command(doc! {"hello": 1, "$db": "admin"});
    let (primary, secondary) = common::eventually(Duration::from_secs(15), "a primary", || {
        let p = members
            .iter()
            .position(|m| hello(m).get_bool("isWritablePrimary").unwrap_or(false))?;
        let s = (p + 1) % members.len();
        hello(&members[s]).get_str("primary").ok()?;
        Some((p, s))
    });
    let mut cmd = mongosh(&format!(
        "mongodb://{}/admin?directConnection=true&serverSelectionTimeoutMS=10000",
        members[secondary].addr()
    ));
    cmd.env("SYNC_FROM", members[primary].addr())
        .arg("--file")
        .arg(interop_dir().join("helpers_mongosh.js"));
    run_script(&[&members[secondary]], cmd);
}

// ---- issue 11: streaming monitors, topologyVersion, tags ----------------------------------

#[test]
fn node_driver_streaming_monitor_follows_the_set_for_a_minute_and_a_stepdown() {
    install();
    let members = start_members(&[]);
    initiate(&members);
    let mut cmd = node("monitor_node.mjs");
    cmd.arg(seed_list(&members)).arg(SET);
    run_script(&members.iter().collect::<Vec<_>>(), cmd);
}

#[test]
fn mongosh_streaming_monitor_follows_the_set_for_a_minute_and_a_stepdown() {
    install();
    let members = start_members(&[]);
    initiate(&members);
    let mut cmd = mongosh(&format!(
        "mongodb://{}/admin?replicaSet={SET}&serverSelectionTimeoutMS=20000",
        seed_list(&members)
    ));
    cmd.arg("--file")
        .arg(interop_dir().join("monitor_mongosh.js"));
    run_script(&members.iter().collect::<Vec<_>>(), cmd);
}

#[test]
fn pymongo_selects_by_tags_and_takes_a_secondarys_write_error_without_a_stall() {
    install();
    let members = start_members(&[]);
    let dcs = ["east", "west", "west"];
    let config = doc! {
        "_id": SET, "version": 1,
        "members": members.iter().zip(dcs)
            .enumerate()
            .map(|(i, (m, dc))| Bson::Document(doc! {"_id": i as i32, "host": m.addr(), "tags": {"dc": dc}}))
            .collect::<Vec<_>>(),
        "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000},
    };
    let reply = members[0].command(doc! {"replSetInitiate": config, "$db": "admin"});
    assert_eq!(reply.get("ok"), Some(&Bson::Double(1.0)), "{reply}");
    let targets: Vec<String> = members
        .iter()
        .zip(dcs)
        .map(|(m, dc)| format!("{}={dc}", m.addr()))
        .collect();
    let mut cmd = python("topology_pymongo.py");
    cmd.arg(targets.join(",")).arg(SET);
    run_script(&members.iter().collect::<Vec<_>>(), cmd);
}

/// The tests listed in tests/interop/unified_crud_expected_failures.txt: `file :: test`.
fn expected_crud_failures() -> std::collections::BTreeMap<(String, String), String> {
    let path = interop_dir().join("unified_crud_expected_failures.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let mut parts = line.splitn(3, " :: ");
            let (file, test, reason) = (parts.next(), parts.next(), parts.next());
            match (file, test, reason) {
                (Some(f), Some(t), Some(r)) => ((f.to_owned(), t.to_owned()), r.to_owned()),
                _ => panic!(
                    "{}: a line is `file :: test :: reason`, not {line:?}",
                    path.display()
                ),
            }
        })
        .collect()
}

/// The drivers' CRUD specification tests (unified format, as PyMongo's source distribution
/// ships them) against a three-member set, run by tests/interop/unified_runner.py. Every
/// test whose requirements this server meets must pass, except those listed with their
/// reason in tests/interop/unified_crud_expected_failures.txt; a listed test that passes
/// fails this test too, so that the list only shrinks.
#[test]
fn crud_specification_tests_pass_against_a_replica_set() {
    install();
    // The runner's matching rules first: a runner that accepts anything would prove nothing.
    let mut check = python("unified_runner.py");
    check.arg("--self-test");
    run_script(&[], check);

    let spec_dir = interop_dir().join(".deps/spec/crud/unified");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&spec_dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; tests/interop/install.sh installs it",
                spec_dir.display()
            )
        })
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() > 100,
        "only {} CRUD test files in {}",
        files.len(),
        spec_dir.display()
    );

    // Some tests configure fail points, as drivers' test suites do against mongod.
    let members = start_members(&["--setParameter", "enableTestCommands=1"]);
    initiate(&members);
    let results = tempfile::tempdir().unwrap();
    let out = results.path().join("results.jsonl");
    let mut cmd = python("unified_runner.py");
    cmd.arg("--uri")
        .arg(format!(
            "mongodb://{}/?replicaSet={SET}",
            seed_list(&members)
        ))
        .arg("--out")
        .arg(&out)
        .args(&files);
    run_script_within(
        &members.iter().collect::<Vec<_>>(),
        cmd,
        Duration::from_secs(15 * 60),
    );

    let expected = expected_crud_failures();
    let (mut passed, mut not_applicable) = (0, 0);
    let (mut unexpected, mut fixed) = (Vec::new(), Vec::new());
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            record["file"].as_str().unwrap().to_owned(),
            record["test"].as_str().unwrap().to_owned(),
        );
        let listed = expected.contains_key(&key);
        let either = expected
            .get(&key)
            .is_some_and(|r| r.starts_with("(either)"));
        match record["status"].as_str().unwrap() {
            "pass" if either => {}
            "pass" if listed => fixed.push(format!("{} :: {}", key.0, key.1)),
            "pass" => passed += 1,
            "not-applicable" => not_applicable += 1,
            _ if listed => {}
            _ => unexpected.push(format!(
                "{} :: {} :: {}",
                key.0,
                key.1,
                record["reason"].as_str().unwrap_or("")
            )),
        }
    }
    println!(
        "CRUD specification tests: {passed} passed, {} expected failures, {not_applicable} not applicable to a 7.0 replica set",
        expected.len()
    );
    assert!(
        unexpected.is_empty() && fixed.is_empty(),
        "failed and not listed as expected ({}):\n{}\n\nlisted as expected failures but passed ({}; remove them from the list):\n{}",
        unexpected.len(),
        unexpected.join("\n"),
        fixed.len(),
        fixed.join("\n")
    );
}

// ---- issue 13: documents ------------------------------------------------------------------

#[test]
fn pymongo_crud_helpers_on_documents() {
    run_client(|server, _| {
        let mut cmd = python("documents_pymongo.py");
        cmd.arg(server.port.to_string());
        cmd
    });
}

#[test]
fn mongosh_inserts_finds_and_shows_collections() {
    run_client(|server, dir| {
        let mut cmd = mongosh(&format!(
            "mongodb://127.0.0.1:{}/test?directConnection=true&serverSelectionTimeoutMS=10000",
            server.port
        ));
        cmd.arg("--file").arg(dir.join("documents_mongosh.js"));
        cmd
    });
}

// ---- issue 13, indexes: mongosh's helpers ---------------------------------------------

#[test]
fn mongosh_creates_lists_explains_and_drops_indexes() {
    run_client(|server, dir| {
        let mut cmd = mongosh(&format!(
            "mongodb://127.0.0.1:{}/test?directConnection=true&serverSelectionTimeoutMS=10000",
            server.port
        ));
        cmd.arg("--file").arg(dir.join("indexes_mongosh.js"));
        cmd
    });
}

// ---- issue 14: TLS -------------------------------------------------------------------

/// Development certificates from `ferrod cert-gen`.
fn tls_certs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::FERROD);
    cmd.arg("cert-gen").arg("--out").arg(dir.path());
    let out = run(cmd, Duration::from_secs(30));
    assert!(out.success, "{}", out.text);
    dir
}

/// requireTLS with a CA file (client certificates optional), on 127.0.0.1 and 127.0.0.2.
fn tls_server(certs: &Path) -> Ferrod {
    let cert = certs.join("server.pem").display().to_string();
    let ca = certs.join("ca.pem").display().to_string();
    Ferrod::start(&[
        "--bind_ip",
        "127.0.0.1,127.0.0.2",
        "--tlsMode",
        "requireTLS",
        "--tlsCertificateKeyFile",
        &cert,
        "--tlsCAFile",
        &ca,
        "--tlsAllowConnectionsWithoutCertificates",
    ])
}

fn tls_script_args(cmd: &mut Command, server: &Ferrod, certs: &Path, other: &Path) {
    cmd.arg(server.port.to_string())
        .arg(certs.join("ca.pem"))
        .arg(certs.join("client.pem"))
        .arg(other.join("ca.pem"));
}

#[test]
fn pymongo_over_tls_with_a_ca_file_client_certificate_and_host_names() {
    install();
    let (certs, other) = (tls_certs(), tls_certs());
    let server = tls_server(certs.path());
    let mut cmd = python("tls_ca_pymongo.py");
    tls_script_args(&mut cmd, &server, certs.path(), other.path());
    run_script(&[&server], cmd);
    server.wait_for_log("SSLHandshakeFailed", Duration::from_secs(5));
}

#[test]
fn node_driver_over_tls_with_a_ca_file_and_client_certificate() {
    install();
    let (certs, other) = (tls_certs(), tls_certs());
    let server = tls_server(certs.path());
    let mut cmd = node("tls_node.mjs");
    tls_script_args(&mut cmd, &server, certs.path(), other.path());
    run_script(&[&server], cmd);
}

#[test]
fn mongosh_over_tls_with_a_ca_file_and_client_certificate() {
    install();
    let certs = tls_certs();
    let server = tls_server(certs.path());
    let ca = certs.path().join("ca.pem").display().to_string();
    let client = certs.path().join("client.pem").display().to_string();
    let uri = format!(
        "mongodb://127.0.0.1:{}/admin?directConnection=true&serverSelectionTimeoutMS=10000&tls=true&tlsCAFile={ca}",
        server.port
    );
    let check = "const r = db.runCommand({ping: 1}); if (r.ok !== 1) { print(r); quit(1); } \
                 const t = db.serverStatus().transportSecurity; \
                 if (t['1.3'] + t['1.2'] < 1) { print(t); quit(1); } print('ok: ping over TLS');";
    let mut cmd = mongosh(&uri);
    cmd.arg("--eval").arg(check);
    run_script(&[&server], cmd);
    let mut cmd = mongosh(&uri);
    cmd.args(["--tlsCertificateKeyFile", &client])
        .arg("--eval")
        .arg(check);
    run_script(&[&server], cmd);
}

// ---- issue 13: the oplog ----------------------------------------------------------------

#[test]
fn mongosh_prints_replication_info_from_the_oplog() {
    install();
    let nodes: Vec<Ferrod> = (0..2).map(|_| Ferrod::start(&["--replSet", SET])).collect();
    let members: Vec<Bson> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Bson::Document(doc! {"_id": i as i32, "host": n.addr()}))
        .collect();
    let config = doc! {"_id": SET, "members": members,
    "settings": {"heartbeatIntervalMillis": 200, "electionTimeoutMillis": 1000}};
    let reply = nodes[0].command(doc! {"replSetInitiate": config, "$db": "admin"});
    assert_eq!(reply.get("ok"), Some(&Bson::Double(1.0)), "{reply}");
    let p = common::eventually(Duration::from_secs(20), "a primary", || {
        nodes.iter().position(|n| {
            n.command(doc! {"hello": 1, "$db": "admin"})
                .get_bool("isWritablePrimary")
                == Ok(true)
        })
    });
    let mut cmd = mongosh(&format!(
        "mongodb://{}/admin?directConnection=true&serverSelectionTimeoutMS=10000",
        nodes[p].addr()
    ));
    cmd.arg("--file")
        .arg(interop_dir().join("oplog_mongosh.js"));
    run_script(&[&nodes[0], &nodes[1]], cmd);
}
