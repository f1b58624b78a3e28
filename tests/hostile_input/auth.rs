//! Hostile input against user management and the test commands: users and roles on
//! `local`, a race for the localhost exception, test commands that reach out run by a
//! user without the privilege, and concurrent read-modify-write edits of users and roles.

use super::common::*;
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, Document};
use ferrod::auth::scram::{Mechanism, ScramClient};
use std::net::{TcpListener, TcpStream};
use std::sync::Barrier;
use std::time::Duration;

/// Fewer PBKDF2 rounds keep debug-build tests fast; mongod's minimum is 5000.
const FAST_SCRAM: [&str; 4] = [
    "--setParameter",
    "scramIterationCount=5000",
    "--setParameter",
    "scramSHA256IterationCount=5000",
];

fn with_fast_scram<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = FAST_SCRAM.to_vec();
    all.extend_from_slice(args);
    all
}

fn run(s: &mut TcpStream, db: &str, mut cmd: Document) -> Document {
    cmd.insert("$db", db);
    op_msg_roundtrip(s, &cmd)
}

fn ok(reply: &Document) -> bool {
    reply.get_f64("ok") == Ok(1.0)
}

fn assert_ok(reply: Document) -> Document {
    assert!(ok(&reply), "expected ok, got {reply}");
    reply
}

fn error(reply: &Document) -> (i32, &str) {
    assert!(!ok(reply), "expected an error, got {reply}");
    (
        reply.get_i32("code").unwrap(),
        reply.get_str("errmsg").unwrap(),
    )
}

fn bin(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

/// A SCRAM-SHA-256 login on `admin` over raw OP_MSG.
fn login(s: &mut TcpStream, user: &str, pwd: &str) {
    let mech = Mechanism::ScramSha256;
    let mut client = ScramClient::new(mech, user, pwd).unwrap();
    let start = assert_ok(run(
        s,
        "admin",
        doc! {"saslStart": 1, "mechanism": mech.name(), "payload": bin(client.first().as_bytes()),
        "options": {"skipEmptyExchange": true}},
    ));
    let answer = client
        .respond(start.get_binary_generic("payload").unwrap())
        .unwrap();
    let done = assert_ok(run(
        s,
        "admin",
        doc! {"saslContinue": 1, "conversationId": 1, "payload": bin(answer.as_bytes())},
    ));
    assert_eq!(done.get_bool("done"), Ok(true), "{done}");
}

fn still_serves(server: &Ferrod) {
    assert_ok(server.command(ping_doc()));
}

#[test]
fn users_and_roles_on_local_are_refused_as_mongod_refuses_them() {
    let server = Ferrod::start(&with_fast_scram(&[]));
    let mut s = server.raw();
    let reply = run(
        &mut s,
        "local",
        doc! {"createUser": "u", "pwd": "pw", "roles": []},
    );
    assert_eq!(
        error(&reply),
        (2, "Cannot create users in the local database")
    );
    let reply = run(
        &mut s,
        "local",
        doc! {"createRole": "r", "privileges": [], "roles": []},
    );
    assert_eq!(
        error(&reply),
        (2, "Cannot create roles in the local database")
    );
    let reply = run(
        &mut s,
        "$external",
        doc! {"createRole": "r", "privileges": [], "roles": []},
    );
    assert_eq!(
        error(&reply),
        (2, "Cannot create roles in the $external database")
    );
    let users = assert_ok(run(
        &mut s,
        "admin",
        doc! {"usersInfo": {"forAllDBs": true}},
    ));
    assert_eq!(users.get_array("users").unwrap().len(), 0, "{users}");
    let roles = assert_ok(run(&mut s, "local", doc! {"rolesInfo": 1}));
    assert_eq!(roles.get_array("roles").unwrap().len(), 0, "{roles}");
    still_serves(&server);
}

/// 20 loopback connections send createUser at once under the localhost exception.
fn race_for_first_user(server: &Ferrod) -> Vec<(usize, Document)> {
    const CLIENTS: usize = 20;
    let barrier = Barrier::new(CLIENTS);
    let mut connections: Vec<TcpStream> = (0..CLIENTS).map(|_| server.raw()).collect();
    std::thread::scope(|scope| {
        let barrier = &barrier;
        let handles: Vec<_> = connections
            .iter_mut()
            .enumerate()
            .map(|(i, s)| {
                scope.spawn(move || {
                    barrier.wait();
                    let cmd =
                        doc! {"createUser": format!("first{i}"), "pwd": "pw", "roles": ["root"]};
                    (i, run(s, "admin", cmd))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn localhost_exception_admits_one_first_user_among_20_simultaneous_creations() {
    for trial in 0..3 {
        let server = Ferrod::start(&with_fast_scram(&["--auth"]));
        let replies = race_for_first_user(&server);
        let winners: Vec<usize> = replies
            .iter()
            .filter(|(_, r)| ok(r))
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(winners.len(), 1, "trial {trial}: {replies:?}");
        for (_, reply) in replies.iter().filter(|(_, r)| !ok(r)) {
            assert_eq!(
                error(reply),
                (13, "command createUser requires authentication"),
                "trial {trial}"
            );
        }
        let mut s = server.raw();
        login(&mut s, &format!("first{}", winners[0]), "pw");
        let users = assert_ok(run(
            &mut s,
            "admin",
            doc! {"usersInfo": {"forAllDBs": true}},
        ));
        assert_eq!(users.get_array("users").unwrap().len(), 1, "{users}");
        // The exception is closed for good: a new loopback client is refused too.
        let reply = run(
            &mut server.raw(),
            "admin",
            doc! {"createUser": "late", "pwd": "pw", "roles": ["root"]},
        );
        assert_eq!(error(&reply).0, 13);
        still_serves(&server);
    }
}

#[test]
fn pool_test_commands_need_the_internal_action_they_imitate() {
    let target = Ferrod::start(&[]);
    let server = Ferrod::start(&with_fast_scram(&[
        "--auth",
        "--setParameter",
        "enableTestCommands=1",
    ]));
    // A port nobody may make the server connect to.
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_addr = trap.local_addr().unwrap().to_string();

    let mut admin = server.raw();
    assert_ok(run(
        &mut admin,
        "admin",
        doc! {"createUser": "admin", "pwd": "pw", "roles": ["root"]},
    ));
    login(&mut admin, "admin", "pw");
    assert_ok(run(
        &mut admin,
        "admin",
        doc! {"createUser": "reader", "pwd": "pw", "roles": ["readAnyDatabase"]},
    ));
    assert_ok(run(
        &mut admin,
        "admin",
        doc! {"createRole": "poolTester", "roles": [],
        "privileges": [{"resource": {"cluster": true}, "actions": ["internal"]}]},
    ));
    assert_ok(run(
        &mut admin,
        "admin",
        doc! {"createUser": "tester", "pwd": "pw", "roles": ["poolTester"]},
    ));

    let mut reader = server.raw();
    login(&mut reader, "reader", "pw");
    let checkout = doc! {"_ferrodPoolCheckout": &trap_addr, "timeoutMS": 2000};
    for s in [&mut reader, &mut admin] {
        let reply = run(s, "admin", checkout.clone());
        assert_eq!(error(&reply).0, 13, "{reply}");
    }
    // The refusal came before any connection: none is waiting to be accepted.
    assert_eq!(
        trap.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the server connected to the trap port"
    );
    let stats = doc! {"_ferrodRuntimeStats": 1};
    assert_eq!(error(&run(&mut reader, "admin", stats.clone())).0, 13);
    assert_ok(run(&mut admin, "admin", stats));

    // The one action it needs is enough.
    let mut tester = server.raw();
    login(&mut tester, "tester", "pw");
    let reply = assert_ok(run(
        &mut tester,
        "admin",
        doc! {"_ferrodPoolCheckout": target.addr(), "timeoutMS": 10_000},
    ));
    assert_eq!(reply.get_i32("checkedOut"), Ok(1), "{reply}");
    still_serves(&server);
}

/// Role names as `role@db` strings, sorted.
fn role_names(doc: &Document) -> Vec<String> {
    let mut names: Vec<String> = doc
        .get_array("roles")
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_document().unwrap();
            format!(
                "{}@{}",
                r.get_str("role").unwrap(),
                r.get_str("db").unwrap()
            )
        })
        .collect();
    names.sort();
    names
}

/// Per round, six clients edit the same user and the same role at once; every edit must
/// be in the documents afterwards.
fn race_user_and_role_edits(server: &Ferrod, rounds: usize) {
    let mut setup = server.raw();
    for role in ["r1", "r2"] {
        assert_ok(run(
            &mut setup,
            "admin",
            doc! {"createRole": role, "privileges": [], "roles": []},
        ));
    }
    let edits = |round: usize| -> Vec<Document> {
        let (user, role) = (format!("u{round}"), format!("g{round}"));
        vec![
            doc! {"grantRolesToUser": &user, "roles": ["r1"]},
            doc! {"grantRolesToUser": &user, "roles": ["r2"]},
            doc! {"updateUser": &user, "customData": {"round": round as i32}},
            doc! {"grantPrivilegesToRole": &role,
            "privileges": [{"resource": {"db": "a", "collection": ""}, "actions": ["find"]}]},
            doc! {"grantPrivilegesToRole": &role,
            "privileges": [{"resource": {"db": "b", "collection": ""}, "actions": ["insert"]}]},
            doc! {"grantRolesToRole": &role, "roles": ["r1"]},
        ]
    };
    let mut clients: Vec<TcpStream> = (0..edits(0).len()).map(|_| server.raw()).collect();
    for round in 0..rounds {
        assert_ok(run(
            &mut setup,
            "admin",
            doc! {"createUser": format!("u{round}"), "pwd": "pw", "roles": []},
        ));
        assert_ok(run(
            &mut setup,
            "admin",
            doc! {"createRole": format!("g{round}"), "privileges": [], "roles": []},
        ));
        let barrier = Barrier::new(clients.len());
        std::thread::scope(|scope| {
            for (s, cmd) in clients.iter_mut().zip(edits(round)) {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    assert_ok(run(s, "admin", cmd));
                });
            }
        });
        let users = assert_ok(run(
            &mut setup,
            "admin",
            doc! {"usersInfo": format!("u{round}")},
        ));
        let user = users.get_array("users").unwrap()[0].as_document().unwrap();
        assert_eq!(
            role_names(user),
            ["r1@admin", "r2@admin"],
            "round {round}: {user}"
        );
        assert_eq!(
            user.get_document("customData").ok(),
            Some(&doc! {"round": round as i32}),
            "round {round}: {user}"
        );
        let roles = assert_ok(run(
            &mut setup,
            "admin",
            doc! {"rolesInfo": format!("g{round}"), "showPrivileges": true},
        ));
        let role = roles.get_array("roles").unwrap()[0].as_document().unwrap();
        assert_eq!(role_names(role), ["r1@admin"], "round {round}: {role}");
        let mut dbs: Vec<&str> = role
            .get_array("privileges")
            .unwrap()
            .iter()
            .map(|p| {
                let p = p.as_document().unwrap();
                p.get_document("resource").unwrap().get_str("db").unwrap()
            })
            .collect();
        dbs.sort();
        assert_eq!(dbs, ["a", "b"], "round {round}: {role}");
    }
    still_serves(server);
}

#[test]
fn concurrent_user_and_role_edits_lose_no_update() {
    let server = Ferrod::start(&with_fast_scram(&[]));
    race_user_and_role_edits(&server, 40);
}

#[test]
fn concurrent_user_and_role_edits_lose_no_update_through_the_replicated_log() {
    let server = Ferrod::start(&with_fast_scram(&["--replSet", "rs0"]));
    assert_ok(server.command(doc! {"replSetInitiate": {}, "$db": "admin"}));
    eventually(Duration::from_secs(10), "a writable primary", || {
        server
            .command(doc! {"hello": 1, "$db": "admin"})
            .get_bool("isWritablePrimary")
            .ok()
            .filter(|p| *p)
    });
    race_user_and_role_edits(&server, 20);
}
