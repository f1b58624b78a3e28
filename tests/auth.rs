//! Authentication and authorization against a real ferrod: SCRAM over raw wire and the
//! official Rust driver, the order of checks, user and role commands, bad input, and
//! durability of the catalog across restarts and `kill -9`.

mod common;

use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, Document};
use common::{op_msg_roundtrip, Ferrod};
use ferrod::auth::scram::{Mechanism, ScramClient};
use mongodb::options::AuthMechanism;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Fewer PBKDF2 rounds keep debug-build tests fast; mongod's minimum is 5000.
const FAST_SCRAM: &[&str] = &[
    "--setParameter",
    "scramIterationCount=5000",
    "--setParameter",
    "scramSHA256IterationCount=5000",
];

fn start_with_auth() -> Ferrod {
    let mut args = vec!["--auth"];
    args.extend_from_slice(FAST_SCRAM);
    Ferrod::start(&args)
}

fn run(s: &mut TcpStream, cmd: Document) -> Document {
    op_msg_roundtrip(s, &cmd)
}

fn ok(reply: &Document) -> bool {
    reply.get_f64("ok") == Ok(1.0)
}

fn code(reply: &Document) -> i32 {
    assert!(!ok(reply), "expected an error, got {reply}");
    reply.get_i32("code").unwrap()
}

fn assert_ok(reply: Document) -> Document {
    assert!(ok(&reply), "expected ok, got {reply}");
    reply
}

fn bin(bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

fn payload(reply: &Document) -> Vec<u8> {
    reply.get_binary_generic("payload").unwrap().clone()
}

/// A full SCRAM login over raw OP_MSG with ferrod's own client half; Err is the failing reply.
fn login(
    s: &mut TcpStream,
    mech: Mechanism,
    user: &str,
    pwd: &str,
    db: &str,
) -> Result<(), Document> {
    let mut client = ScramClient::new(mech, user, pwd).unwrap();
    let start = run(
        s,
        doc! {"saslStart": 1, "mechanism": mech.name(), "payload": bin(client.first().as_bytes()),
        "options": {"skipEmptyExchange": true}, "$db": db},
    );
    if !ok(&start) {
        return Err(start);
    }
    let client_final = client.respond(&payload(&start)).unwrap();
    let fin = run(
        s,
        doc! {"saslContinue": 1, "conversationId": 1, "payload": bin(client_final.as_bytes()), "$db": db},
    );
    if !ok(&fin) {
        return Err(fin);
    }
    assert!(fin.get_bool("done").unwrap());
    client.verify(&payload(&fin)).expect("server signature");
    Ok(())
}

/// Creates the first user through the localhost exception, then logs in as it.
fn admin_connection(server: &Ferrod) -> TcpStream {
    let mut s = server.raw();
    assert_ok(run(
        &mut s,
        doc! {"createUser": "admin", "pwd": "adminpw", "roles": ["root"], "$db": "admin"},
    ));
    login(&mut s, Mechanism::ScramSha256, "admin", "adminpw", "admin").unwrap();
    s
}

async fn driver(
    server: &Ferrod,
    user: &str,
    pwd: &str,
    mechanism: Option<AuthMechanism>,
) -> mongodb::Client {
    common::driver(&server.uri(), Some((user, pwd)), mechanism).await
}

fn driver_error_is_auth_failure(err: &mongodb::error::Error) -> bool {
    matches!(*err.kind, mongodb::error::ErrorKind::Authentication { .. })
        || err.to_string().contains("Authentication failed")
}

#[tokio::test]
async fn rust_driver_negotiates_sha256_and_authenticates_speculatively() {
    let server = start_with_auth();
    let mut s = admin_connection(&server);
    // SCRAM-SHA-1 first in the list: negotiation must still pick SHA-256.
    assert_ok(run(
        &mut s,
        doc! {"createUser": "both", "pwd": "pw", "roles": ["clusterMonitor"],
        "mechanisms": ["SCRAM-SHA-1", "SCRAM-SHA-256"], "$db": "admin"},
    ));
    let hello = assert_ok(run(
        &mut s,
        doc! {"hello": 1, "saslSupportedMechs": "admin.both", "$db": "admin"},
    ));
    let mechs = hello.get_array("saslSupportedMechs").unwrap();
    assert!(mechs.contains(&Bson::String("SCRAM-SHA-256".into())));

    let client = driver(&server, "both", "pw", None).await;
    let status = client
        .database("admin")
        .run_command(doc! {"serverStatus": 1})
        .await
        .unwrap();
    assert_eq!(status.get_f64("ok").unwrap(), 1.0);
    server.wait_for_log("\"user\":\"both\"", Duration::from_secs(5));
    let lines = server.auth_success_lines("both");
    assert!(!lines.is_empty());
    for line in &lines {
        assert_eq!(line["attr"]["mechanism"], "SCRAM-SHA-256", "{line}");
        assert_eq!(
            line["attr"]["isSpeculative"], true,
            "driver logins must be speculative: {line}"
        );
    }
}

#[tokio::test]
async fn rust_driver_logs_in_with_explicit_sha1_and_sha256() {
    let server = start_with_auth();
    let mut s = admin_connection(&server);
    assert_ok(run(
        &mut s,
        doc! {"createUser": "u1", "pwd": "secret1", "roles": [{"role": "clusterMonitor", "db": "admin"}], "$db": "admin"},
    ));
    for mechanism in [AuthMechanism::ScramSha1, AuthMechanism::ScramSha256] {
        let client = driver(&server, "u1", "secret1", Some(mechanism.clone())).await;
        let reply = client
            .database("admin")
            .run_command(doc! {"connectionStatus": 1})
            .await
            .unwrap();
        let users = reply
            .get_document("authInfo")
            .unwrap()
            .get_array("authenticatedUsers")
            .unwrap();
        assert_eq!(
            users,
            &vec![Bson::Document(doc! {"user": "u1", "db": "admin"})]
        );
        let bad = driver(&server, "u1", "wrong", Some(mechanism)).await;
        let err = bad
            .database("admin")
            .run_command(doc! {"ping": 1})
            .await
            .unwrap_err();
        assert!(driver_error_is_auth_failure(&err), "{err}");
    }
    // The log lines arrive through a reader thread.
    common::wait_until(Duration::from_secs(5), "both mechanisms' log lines", || {
        let mechs: Vec<String> = server
            .auth_success_lines("u1")
            .iter()
            .map(|l| l["attr"]["mechanism"].as_str().unwrap().to_owned())
            .collect();
        let both = mechs.contains(&"SCRAM-SHA-1".to_owned())
            && mechs.contains(&"SCRAM-SHA-256".to_owned());
        if both {
            Ok(())
        } else {
            Err(format!("{mechs:?}"))
        }
    });
}

#[tokio::test]
async fn saslprep_makes_equivalent_passwords_log_in_for_sha256() {
    let server = start_with_auth();
    let mut s = admin_connection(&server);
    // U+00AD (soft hyphen) maps to nothing and U+2168 (roman numeral nine) to "IX".
    assert_ok(run(
        &mut s,
        doc! {"createUser": "prep", "pwd": "I\u{00AD}X", "roles": [], "mechanisms": ["SCRAM-SHA-256"], "$db": "admin"},
    ));
    for pwd in ["IX", "I\u{00AD}X", "\u{2168}"] {
        let client = driver(&server, "prep", pwd, Some(AuthMechanism::ScramSha256)).await;
        client
            .database("admin")
            .run_command(doc! {"ping": 1})
            .await
            .unwrap_or_else(|e| panic!("password {pwd:?} must log in: {e}"));
    }
    let mut raw = server.raw();
    let err = login(&mut raw, Mechanism::ScramSha256, "prep", "IY", "admin").unwrap_err();
    assert_eq!(code(&err), 18);
}

#[test]
fn wrong_password_is_18_and_connection_stays_usable() {
    let server = start_with_auth();
    let _admin = admin_connection(&server);
    let mut s = server.raw();
    for mech in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
        let err = login(&mut s, mech, "admin", "nope", "admin").unwrap_err();
        assert_eq!(code(&err), 18);
        assert_eq!(err.get_str("errmsg").unwrap(), "Authentication failed.");
        assert_eq!(err.get_str("codeName").unwrap(), "AuthenticationFailed");
    }
    // A missing user is the same answer: nothing tells who exists.
    let err = login(&mut s, Mechanism::ScramSha256, "ghost", "x", "admin").unwrap_err();
    assert_eq!(code(&err), 18);
    assert_ok(run(&mut s, common::ping_doc()));
    login(&mut s, Mechanism::ScramSha256, "admin", "adminpw", "admin").unwrap();
}

#[test]
fn not_logged_in_gets_13_requires_authentication_and_only_the_handshake_commands() {
    let server = start_with_auth();
    let _admin = admin_connection(&server);
    let mut s = server.raw();
    for name in [
        "hello",
        "isMaster",
        "ismaster",
        "ping",
        "buildInfo",
        "connectionStatus",
        "whatsmyuri",
        "logout",
    ] {
        assert_ok(run(&mut s, doc! {name: 1, "$db": "admin"}));
    }
    let reply = run(&mut s, doc! {"serverStatus": 1, "$db": "admin"});
    assert_eq!(code(&reply), 13);
    assert_eq!(
        reply.get_str("errmsg").unwrap(),
        "command serverStatus requires authentication"
    );
    // Admin-only comes first (SPEC section 4 order), then authentication, then parsing.
    let reply = run(&mut s, doc! {"getCmdLineOpts": 1, "$db": "test"});
    assert_eq!(
        reply.get_str("errmsg").unwrap(),
        "getCmdLineOpts may only be run against the admin database."
    );
    let reply = run(&mut s, doc! {"createUser": 5, "$db": "admin"});
    assert_eq!(
        reply.get_str("errmsg").unwrap(),
        "command createUser requires authentication"
    );
}

#[test]
fn logged_in_without_the_privilege_gets_13_not_authorized() {
    let server = start_with_auth();
    let mut admin = admin_connection(&server);
    assert_ok(run(
        &mut admin,
        doc! {"createUser": "reader", "pwd": "pw", "roles": [{"role": "read", "db": "test"}], "$db": "admin"},
    ));
    let mut s = server.raw();
    login(&mut s, Mechanism::ScramSha256, "reader", "pw", "admin").unwrap();
    let reply = run(&mut s, doc! {"serverStatus": 1, "$db": "admin"});
    assert_eq!(code(&reply), 13);
    let msg = reply.get_str("errmsg").unwrap();
    assert!(
        msg.starts_with("not authorized on admin to execute command { serverStatus: 1"),
        "{msg}"
    );
    // Argument errors come before the privilege check, as in mongod.
    let reply = run(&mut s, doc! {"createUser": "x", "pwd": "p", "$db": "admin"});
    assert_eq!(code(&reply), 40414);
    let reply = run(
        &mut s,
        doc! {"createUser": "x", "pwd": "p", "roles": [], "$db": "admin"},
    );
    assert_eq!(code(&reply), 13);
    // Users may always look themselves up, but nobody else without viewUser.
    let me = assert_ok(run(&mut s, doc! {"usersInfo": "reader", "$db": "admin"}));
    assert_eq!(me.get_array("users").unwrap().len(), 1);
    assert_eq!(
        code(&run(&mut s, doc! {"usersInfo": "admin", "$db": "admin"})),
        13
    );
    assert_eq!(
        code(&run(
            &mut s,
            doc! {"usersInfo": {"forAllDBs": true}, "$db": "admin"}
        )),
        13
    );
    // After logout the connection is anonymous again.
    assert_ok(run(&mut s, doc! {"logout": 1, "$db": "admin"}));
    let reply = run(&mut s, doc! {"usersInfo": 1, "$db": "admin"});
    assert_eq!(
        reply.get_str("errmsg").unwrap(),
        "command usersInfo requires authentication"
    );
}

#[test]
fn a_database_user_admin_cannot_hand_out_roles_of_other_databases() {
    let server = start_with_auth();
    let mut admin = admin_connection(&server);
    assert_ok(run(
        &mut admin,
        doc! {"createUser": "testadmin", "pwd": "pw", "roles": [{"role": "userAdmin", "db": "test"}], "$db": "test"},
    ));
    assert_ok(run(
        &mut admin,
        doc! {"createUser": "bob", "pwd": "pw", "roles": [], "$db": "test"},
    ));
    let mut s = server.raw();
    login(&mut s, Mechanism::ScramSha256, "testadmin", "pw", "test").unwrap();
    // Roles of its own database: allowed.
    assert_ok(run(
        &mut s,
        doc! {"grantRolesToUser": "bob", "roles": ["read"], "$db": "test"},
    ));
    // root@admin through a command on `test`: mongod checks grantRole on admin.
    let reply = run(
        &mut s,
        doc! {"grantRolesToUser": "bob", "roles": [{"role": "root", "db": "admin"}], "$db": "test"},
    );
    assert_eq!(code(&reply), 13, "{reply}");
    assert_eq!(
        reply.get_str("errmsg").unwrap(),
        "Not authorized to grant role: root@admin"
    );
    let reply = run(
        &mut s,
        doc! {"createUser": "eve", "pwd": "pw", "roles": [{"role": "root", "db": "admin"}], "$db": "test"},
    );
    assert_eq!(code(&reply), 13, "{reply}");
    let reply = run(
        &mut s,
        doc! {"createRole": "escalate", "privileges": [{"resource": {"cluster": true}, "actions": ["dropConnections"]}], "roles": [], "$db": "test"},
    );
    assert_eq!(code(&reply), 13, "{reply}");
    // Nothing was written by the refused commands.
    let bob = assert_ok(run(&mut admin, doc! {"usersInfo": "bob", "$db": "test"}));
    let roles = bob.get_array("users").unwrap()[0]
        .as_document()
        .unwrap()
        .get_array("roles")
        .unwrap()
        .clone();
    assert_eq!(roles.len(), 1, "{roles:?}");
    let eve = assert_ok(run(&mut admin, doc! {"usersInfo": "eve", "$db": "test"}));
    assert!(eve.get_array("users").unwrap().is_empty());
}

#[test]
fn passwords_never_appear_in_errors_or_logs() {
    // --slowms 0 logs every command with its body, as mongod's "Slow query" line.
    let mut args = vec!["--auth", "--slowms", "0"];
    args.extend_from_slice(FAST_SCRAM);
    let server = Ferrod::start(&args);
    let mut root = admin_connection(&server);
    assert_ok(run(
        &mut root,
        doc! {"createUser": "weak", "pwd": "firstSecret1", "roles": ["read"], "$db": "admin"},
    ));
    assert_ok(run(
        &mut root,
        doc! {"updateUser": "weak", "pwd": "secondSecret2", "$db": "admin"},
    ));
    let mut weak = server.raw();
    login(
        &mut weak,
        Mechanism::ScramSha256,
        "weak",
        "secondSecret2",
        "admin",
    )
    .unwrap();
    let denied = run(
        &mut weak,
        doc! {"createUser": "x", "pwd": "thirdSecret3", "roles": [], "$db": "admin"},
    );
    assert_eq!(code(&denied), 13, "{denied}");
    let msg = denied.get_str("errmsg").unwrap();
    assert!(
        msg.starts_with("not authorized on admin to execute command { createUser: \"x\", pwd: \"xxx\", roles: [], "),
        "{msg}"
    );
    server.wait_for_log("\"commandName\":\"updateUser\"", Duration::from_secs(5));
    let log = server.log_lines().join("\n");
    for secret in ["firstSecret1", "secondSecret2", "thirdSecret3"] {
        assert!(!log.contains(secret), "{secret} was logged");
    }
    assert!(
        log.contains("\"pwd\":\"xxx\""),
        "the slow-query lines show pwd as xxx"
    );
}

#[test]
fn localhost_exception_allows_only_the_first_user() {
    let server = start_with_auth();
    let mut s = server.raw();
    // Nothing but the first user and the handshake commands.
    for cmd in [
        doc! {"serverStatus": 1, "$db": "admin"},
        doc! {"usersInfo": 1, "$db": "admin"},
        doc! {"createRole": "r", "privileges": [], "roles": [], "$db": "admin"},
    ] {
        assert_eq!(code(&run(&mut s, cmd)), 13);
    }
    assert_ok(run(
        &mut s,
        doc! {"createUser": "first", "pwd": "pw", "roles": ["root"], "$db": "admin"},
    ));
    // The exception closes as soon as a user exists.
    let reply = run(
        &mut s,
        doc! {"createUser": "second", "pwd": "pw", "roles": ["root"], "$db": "admin"},
    );
    assert_eq!(
        reply.get_str("errmsg").unwrap(),
        "command createUser requires authentication"
    );
    login(&mut s, Mechanism::ScramSha256, "first", "pw", "admin").unwrap();
    assert_ok(run(
        &mut s,
        doc! {"createUser": "second", "pwd": "pw", "roles": ["root"], "$db": "admin"},
    ));
}

#[test]
fn custom_role_with_drop_connections_then_user_grant_and_info() {
    let server = start_with_auth();
    let mut admin = admin_connection(&server);
    assert_ok(run(
        &mut admin,
        doc! {"createRole": "dropConnectionsRole",
        "privileges": [{"resource": {"cluster": true}, "actions": ["dropConnections"]}],
        "roles": [], "$db": "admin"},
    ));
    assert_ok(run(
        &mut admin,
        doc! {"createUser": "ops", "pwd": "opspw", "roles": ["dropConnectionsRole"],
        "customData": {"team": "net"}, "$db": "admin"},
    ));
    assert_ok(run(
        &mut admin,
        doc! {"grantRolesToUser": "ops", "roles": [{"role": "clusterMonitor", "db": "admin"}], "$db": "admin"},
    ));

    let info = assert_ok(run(
        &mut admin,
        doc! {"usersInfo": "ops", "showPrivileges": true, "showCredentials": true, "$db": "admin"},
    ));
    let users = info.get_array("users").unwrap();
    assert_eq!(users.len(), 1);
    let user = users[0].as_document().unwrap();
    assert_eq!(user.get_str("_id").unwrap(), "admin.ops");
    assert_eq!(
        user.get_document("customData").unwrap(),
        &doc! {"team": "net"}
    );
    let roles = user.get_array("roles").unwrap();
    assert!(roles.contains(&Bson::Document(
        doc! {"role": "dropConnectionsRole", "db": "admin"}
    )));
    assert!(roles.contains(&Bson::Document(
        doc! {"role": "clusterMonitor", "db": "admin"}
    )));
    let creds = user.get_document("credentials").unwrap();
    for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256"] {
        let c = creds.get_document(mech).unwrap();
        assert!(
            c.contains_key("salt") && c.contains_key("storedKey") && c.contains_key("serverKey")
        );
        assert_eq!(c.get_i32("iterationCount").unwrap(), 5000);
    }
    assert!(
        !format!("{user}").contains("opspw"),
        "the password must never be stored"
    );
    let inherited = user.get_array("inheritedPrivileges").unwrap();
    let cluster_actions: Vec<&str> = inherited
        .iter()
        .filter_map(|p| p.as_document())
        .filter(|p| p.get_document("resource").unwrap() == &doc! {"cluster": true})
        .flat_map(|p| {
            p.get_array("actions")
                .unwrap()
                .iter()
                .filter_map(|a| a.as_str())
        })
        .collect();
    assert!(
        cluster_actions.contains(&"dropConnections") && cluster_actions.contains(&"connPoolStats"),
        "{cluster_actions:?}"
    );

    let info = assert_ok(run(
        &mut admin,
        doc! {"rolesInfo": "dropConnectionsRole", "showPrivileges": true, "$db": "admin"},
    ));
    let role = info.get_array("roles").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert!(!role.get_bool("isBuiltin").unwrap());
    assert_eq!(
        role.get_array("privileges").unwrap()[0]
            .as_document()
            .unwrap(),
        &doc! {"resource": {"cluster": true}, "actions": ["dropConnections"]}
    );
    let builtin = assert_ok(run(
        &mut admin,
        doc! {"rolesInfo": 1, "showBuiltinRoles": true, "$db": "admin"},
    ));
    let names: Vec<&str> = builtin
        .get_array("roles")
        .unwrap()
        .iter()
        .map(|r| r.as_document().unwrap().get_str("role").unwrap())
        .collect();
    for expected in [
        "dropConnectionsRole",
        "hostManager",
        "clusterAdmin",
        "root",
        "__system",
        "read",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    // The new user logs in and sees its own privileges; clusterMonitor lets it run serverStatus.
    let mut ops = server.raw();
    login(&mut ops, Mechanism::ScramSha256, "ops", "opspw", "admin").unwrap();
    let status = assert_ok(run(
        &mut ops,
        doc! {"connectionStatus": 1, "showPrivileges": true, "$db": "admin"},
    ));
    let auth = status.get_document("authInfo").unwrap();
    assert!(auth
        .get_array("authenticatedUserRoles")
        .unwrap()
        .contains(&Bson::Document(
            doc! {"role": "dropConnectionsRole", "db": "admin"}
        )));
    let privs = format!(
        "{:?}",
        auth.get_array("authenticatedUserPrivileges").unwrap()
    );
    assert!(privs.contains("dropConnections"), "{privs}");
    assert_ok(run(&mut ops, doc! {"serverStatus": 1, "$db": "admin"}));
    // Revoking takes effect at once for the logged-in user.
    assert_ok(run(
        &mut admin,
        doc! {"revokeRolesFromUser": "ops", "roles": [{"role": "clusterMonitor", "db": "admin"}], "$db": "admin"},
    ));
    assert_eq!(
        code(&run(&mut ops, doc! {"serverStatus": 1, "$db": "admin"})),
        13
    );
}

#[test]
fn role_graphs_nest_and_cycles_are_refused() {
    let server = start_with_auth();
    let mut admin = admin_connection(&server);
    let create = |name: &str, roles: Vec<Bson>| doc! {"createRole": name, "privileges": [], "roles": roles, "$db": "test"};
    assert_ok(run(
        &mut admin,
        doc! {"createRole": "a", "privileges": [{"resource": {"db": "test", "collection": ""}, "actions": ["find"]}], "roles": [], "$db": "test"},
    ));
    assert_ok(run(&mut admin, create("b", vec!["a".into()])));
    assert_ok(run(&mut admin, create("c", vec!["b".into()])));
    let reply = run(
        &mut admin,
        doc! {"grantRolesToRole": "a", "roles": ["c"], "$db": "test"},
    );
    assert_eq!(code(&reply), 5, "{reply}");
    let reply = run(
        &mut admin,
        doc! {"grantRolesToRole": "a", "roles": ["a"], "$db": "test"},
    );
    assert_eq!(code(&reply), 5);
    let info = assert_ok(run(
        &mut admin,
        doc! {"rolesInfo": "c", "showPrivileges": true, "$db": "test"},
    ));
    let c = info.get_array("roles").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(c.get_array("inheritedRoles").unwrap().len(), 2);
    assert!(format!("{c}").contains("find"));
    assert_ok(run(
        &mut admin,
        doc! {"grantPrivilegesToRole": "c", "privileges": [{"resource": {"cluster": true}, "actions": ["serverStatus"]}], "$db": "test"},
    ));
    assert_ok(run(
        &mut admin,
        doc! {"revokePrivilegesFromRole": "c", "privileges": [{"resource": {"cluster": true}, "actions": ["serverStatus"]}], "$db": "test"},
    ));
    assert_ok(run(
        &mut admin,
        doc! {"revokeRolesFromRole": "c", "roles": ["b"], "$db": "test"},
    ));
    assert_ok(run(
        &mut admin,
        doc! {"updateRole": "c", "roles": ["a"], "$db": "test"},
    ));
    // Dropping a role removes it from whoever had it.
    assert_ok(run(
        &mut admin,
        doc! {"createUser": "t", "pwd": "p", "roles": ["a"], "$db": "test"},
    ));
    assert_ok(run(&mut admin, doc! {"dropRole": "a", "$db": "test"}));
    let info = assert_ok(run(&mut admin, doc! {"usersInfo": "t", "$db": "test"}));
    assert!(info.get_array("users").unwrap()[0]
        .as_document()
        .unwrap()
        .get_array("roles")
        .unwrap()
        .is_empty());
    let n = assert_ok(run(
        &mut admin,
        doc! {"dropAllRolesFromDatabase": 1, "$db": "test"},
    ));
    assert_eq!(n.get_i32("n").unwrap(), 2);
    let n = assert_ok(run(
        &mut admin,
        doc! {"dropAllUsersFromDatabase": 1, "$db": "test"},
    ));
    assert_eq!(n.get_i32("n").unwrap(), 1);
}

#[test]
fn bad_input_gets_mongods_errors_and_never_breaks_the_connection() {
    let server = start_with_auth();
    let mut admin = admin_connection(&server);
    let cases: Vec<(Document, i32)> = vec![
        (doc! {"createUser": "nopwd", "roles": [], "$db": "admin"}, 2),
        (
            doc! {"createUser": "", "pwd": "p", "roles": [], "$db": "admin"},
            2,
        ),
        (
            doc! {"createUser": "admin", "pwd": "p", "roles": [], "$db": "admin"},
            51003,
        ),
        (
            doc! {"createUser": "x", "pwd": "p", "roles": ["noSuchRole"], "$db": "admin"},
            31,
        ),
        (
            doc! {"createUser": "x", "pwd": "p", "roles": [{"role": "clusterAdmin", "db": "test"}], "$db": "admin"},
            31,
        ),
        (
            doc! {"createUser": "x", "pwd": "p", "roles": [], "bogus": 1, "$db": "admin"},
            40415,
        ),
        (
            doc! {"createUser": "x", "pwd": 5, "roles": [], "$db": "admin"},
            14,
        ),
        (
            doc! {"createUser": "x", "pwd": "p", "roles": [], "mechanisms": ["PLAIN"], "$db": "admin"},
            2,
        ),
        (
            doc! {"createUser": "x", "pwd": "p", "roles": [], "digestPassword": false, "$db": "admin"},
            2,
        ),
        (
            doc! {"createRole": "r", "privileges": [{"resource": {"cluster": true}, "actions": ["fly"]}], "roles": [], "$db": "admin"},
            2,
        ),
        (
            doc! {"createRole": "root", "privileges": [], "roles": [], "$db": "admin"},
            2,
        ),
        (doc! {"createRole": "r", "roles": [], "$db": "admin"}, 40414),
        (doc! {"dropUser": "ghost", "$db": "admin"}, 11),
        (doc! {"updateUser": "ghost", "pwd": "x", "$db": "admin"}, 11),
        (
            doc! {"grantRolesToUser": "ghost", "roles": ["read"], "$db": "admin"},
            11,
        ),
        (
            doc! {"grantRolesToUser": "admin", "roles": [], "$db": "admin"},
            2,
        ),
        (doc! {"dropRole": "ghost", "$db": "admin"}, 31),
        (
            doc! {"updateRole": "ghost", "roles": [], "$db": "admin"},
            31,
        ),
        (
            doc! {"saslContinue": 1, "conversationId": 1, "payload": bin(b"c=biws,r=x,p=eA=="), "$db": "admin"},
            17,
        ),
        (
            doc! {"saslStart": 1, "mechanism": "PLAIN", "payload": bin(b"x"), "$db": "admin"},
            334,
        ),
        (
            doc! {"saslStart": 1, "payload": bin(b"x"), "$db": "admin"},
            40414,
        ),
        (
            doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "$db": "admin"},
            40414,
        ),
    ];
    for (cmd, expected) in cases {
        let reply = run(&mut admin, cmd.clone());
        assert_eq!(code(&reply), expected, "{cmd} -> {reply}");
        assert_ok(run(&mut admin, common::ping_doc()));
    }
    let dup = run(
        &mut admin,
        doc! {"createUser": "admin", "pwd": "p", "roles": [], "$db": "admin"},
    );
    assert_eq!(
        dup.get_str("errmsg").unwrap(),
        "User \"admin@admin\" already exists"
    );
    let unknown = run(
        &mut admin,
        doc! {"createUser": "x", "pwd": "p", "roles": ["noSuchRole"], "$db": "admin"},
    );
    assert_eq!(
        unknown.get_str("errmsg").unwrap(),
        "Could not find role: noSuchRole@admin"
    );

    // Malformed SASL first messages: 18, and the connection carries on.
    let mut s = server.raw();
    for bad in [
        &b""[..],
        b"garbage",
        b"n,,n=admin",
        b"p=tls-unique,,n=admin,r=abc",
        b"n,,n=admin,r=",
        &[0xff, 0xfe, 0x00],
    ] {
        let reply = run(
            &mut s,
            doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": bin(bad), "$db": "admin"},
        );
        assert_eq!(code(&reply), 18, "{bad:?}");
        assert_ok(run(&mut s, common::ping_doc()));
    }

    // Wrong conversationId (17), then a truncated proof (18), then a replayed proof (17).
    for mutate in ["conversation", "truncate", "replay"] {
        let mut client = ScramClient::new(Mechanism::ScramSha256, "admin", "adminpw").unwrap();
        let start = assert_ok(run(
            &mut s,
            doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": bin(client.first().as_bytes()), "options": {"skipEmptyExchange": true}, "$db": "admin"},
        ));
        assert_eq!(start.get_i32("conversationId").unwrap(), 1);
        let proof = client.respond(&payload(&start)).unwrap();
        match mutate {
            "conversation" => {
                let reply = run(
                    &mut s,
                    doc! {"saslContinue": 1, "conversationId": 7, "payload": bin(proof.as_bytes()), "$db": "admin"},
                );
                assert_eq!(code(&reply), 17);
                assert_eq!(
                    reply.get_str("errmsg").unwrap(),
                    "sasl: Mismatched conversation id"
                );
            }
            "truncate" => {
                let reply = run(
                    &mut s,
                    doc! {"saslContinue": 1, "conversationId": 1, "payload": bin(&proof.as_bytes()[..proof.len() - 6]), "$db": "admin"},
                );
                assert_eq!(code(&reply), 18);
            }
            _ => {
                let good = doc! {"saslContinue": 1, "conversationId": 1, "payload": bin(proof.as_bytes()), "$db": "admin"};
                assert_ok(run(&mut s, good.clone()));
                let reply = run(&mut s, good);
                assert_eq!(code(&reply), 17);
                assert_eq!(
                    reply.get_str("errmsg").unwrap(),
                    "No SASL session state found"
                );
            }
        }
        assert_ok(run(&mut s, common::ping_doc()));
    }
}

#[test]
fn sasl_without_skip_empty_exchange_takes_one_more_round() {
    let server = start_with_auth();
    let _admin = admin_connection(&server);
    let mut s = server.raw();
    let mut client = ScramClient::new(Mechanism::ScramSha1, "admin", "adminpw").unwrap();
    // The payload as a base64 string (older shells) is answered in the same form.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let start = assert_ok(run(
        &mut s,
        doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-1", "payload": b64.encode(client.first()), "$db": "admin"},
    ));
    let server_first = b64.decode(start.get_str("payload").unwrap()).unwrap();
    let proof = client.respond(&server_first).unwrap();
    let second = assert_ok(run(
        &mut s,
        doc! {"saslContinue": 1, "conversationId": 1, "payload": bin(proof.as_bytes()), "$db": "admin"},
    ));
    assert!(!second.get_bool("done").unwrap());
    client.verify(&payload(&second)).unwrap();
    let last = assert_ok(run(
        &mut s,
        doc! {"saslContinue": 1, "conversationId": 1, "payload": bin(b""), "$db": "admin"},
    ));
    assert!(last.get_bool("done").unwrap());
    assert_ok(run(&mut s, doc! {"serverStatus": 1, "$db": "admin"}));
}

#[test]
fn users_and_roles_survive_a_restart() {
    let server = start_with_auth();
    let mut admin = admin_connection(&server);
    assert_ok(run(
        &mut admin,
        doc! {"createRole": "keep", "privileges": [{"resource": {"cluster": true}, "actions": ["dropConnections"]}], "roles": [], "$db": "admin"},
    ));
    assert_ok(run(
        &mut admin,
        doc! {"createUser": "kept", "pwd": "pw", "roles": ["keep"], "$db": "admin"},
    ));
    drop(admin);
    let dbpath = server.into_dbpath();
    let mut args = vec!["--auth"];
    args.extend_from_slice(FAST_SCRAM);
    let server = Ferrod::start_in(dbpath, &args);
    let mut s = server.raw();
    login(&mut s, Mechanism::ScramSha256, "kept", "pw", "admin").unwrap();
    let status = assert_ok(run(
        &mut s,
        doc! {"connectionStatus": 1, "showPrivileges": true, "$db": "admin"},
    ));
    assert!(format!("{status}").contains("dropConnections"));
    // The localhost exception does not reopen after a restart.
    let mut anon = server.raw();
    assert_eq!(
        code(&run(
            &mut anon,
            doc! {"createUser": "late", "pwd": "p", "roles": [], "$db": "admin"}
        )),
        13
    );
}

#[test]
fn a_second_ferrod_on_the_same_dbpath_is_refused_before_listening() {
    let server = Ferrod::start(&[]);
    let output = std::process::Command::new(common::FERROD)
        .args(["--port", "0", "--dbpath"])
        .arg(server.dbpath.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DBPathInUse") && stderr.contains("mongod.lock"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("Waiting for connections"));
}

/// Creates users as fast as one connection can until the server dies; returns the
/// names whose createUser was acknowledged.
fn create_until_killed(port: u16, round: usize, acked: std::sync::mpsc::Sender<()>) -> Vec<String> {
    let mut acknowledged = Vec::new();
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return acknowledged;
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for i in 0..10_000 {
        let name = format!("r{round}u{i}");
        let cmd = doc! {"createUser": &name, "pwd": "p", "roles": [], "mechanisms": ["SCRAM-SHA-1"], "$db": "admin"};
        use std::io::Write;
        if s.write_all(&common::op_msg(1, 0, &cmd)).is_err() {
            break;
        }
        match common::read_frame(&mut s) {
            Ok((_, _, _, body)) if ok(&common::parse_op_msg_reply(&body)) => {
                acknowledged.push(name);
                let _ = acked.send(());
            }
            _ => break,
        }
    }
    acknowledged
}

#[test]
fn kill_9_loop_keeps_every_acknowledged_user_and_the_store_always_opens() {
    const ROUNDS: usize = 200;
    let started = Instant::now();
    let mut dbpath = tempfile::tempdir().unwrap();
    let mut expected: Vec<String> = Vec::new();
    let (mut starting, mut first_writes) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        // The store must open every time (start_in panics if ferrod never listens).
        let t = Instant::now();
        let server = Ferrod::start_in(dbpath, FAST_SCRAM);
        starting += t.elapsed();
        let mut s = server.raw();
        if round > 0 {
            let info = assert_ok(run(
                &mut s,
                doc! {"usersInfo": {"forAllDBs": true}, "$db": "admin"},
            ));
            let present: std::collections::HashSet<String> = info
                .get_array("users")
                .unwrap()
                .iter()
                .map(|u| u.as_document().unwrap().get_str("user").unwrap().to_owned())
                .collect();
            let missing: Vec<&String> = expected.iter().filter(|u| !present.contains(*u)).collect();
            assert!(
                missing.is_empty(),
                "round {round}: acknowledged users lost after kill -9: {missing:?}"
            );
        }
        let port = server.port;
        let (acked, first_ack) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || create_until_killed(port, round, acked));
        // After the first acknowledged write, a few pseudo-random milliseconds more,
        // then SIGKILL in the middle of the stream of writes.
        let t = Instant::now();
        let _ = first_ack.recv_timeout(Duration::from_secs(10));
        first_writes += t.elapsed();
        let wait = ferrod::random::random_bytes(1)[0] as u64 % 8;
        // A random kill point within the stream of writes: the behaviour, not a wait.
        std::thread::sleep(Duration::from_millis(wait));
        dbpath = server.into_dbpath();
        expected.extend(writer.join().unwrap());
    }
    let elapsed = started.elapsed();
    eprintln!(
        "kill -9 loop: {ROUNDS} rounds, {} acknowledged users, {:.1} s (starting {:.1} s, first write {:.1} s)",
        expected.len(),
        elapsed.as_secs_f64(),
        starting.as_secs_f64(),
        first_writes.as_secs_f64()
    );
    assert!(
        expected.len() >= ROUNDS,
        "too few writes got through to test anything: {}",
        expected.len()
    );
}

#[test]
fn key_file_secret_logs_in_as_system_at_local_with_both_mechanisms() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("keyfile");
    std::fs::write(&key_path, "c2VjcmV0a2V5Zm9y\n dGVzdHM=\n").unwrap();
    // mongod refuses a key file others may read.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let key_arg = key_path.to_str().unwrap().to_owned();
    let mut args = vec!["--keyFile", key_arg.as_str()];
    args.extend_from_slice(FAST_SCRAM);
    let server = Ferrod::start(&args);
    let mut s = server.raw();
    // --keyFile implies authorization.
    assert_eq!(
        code(&run(&mut s, doc! {"serverStatus": 1, "$db": "admin"})),
        13
    );
    let secret = "c2VjcmV0a2V5Zm9ydGVzdHM=";
    let err = login(
        &mut s,
        Mechanism::ScramSha256,
        "__system",
        "wrongsecret",
        "local",
    )
    .unwrap_err();
    assert_eq!(code(&err), 18);
    for mech in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
        login(&mut s, mech, "__system", secret, "local").unwrap();
    }
    assert_ok(run(&mut s, doc! {"serverStatus": 1, "$db": "admin"}));
    let status = assert_ok(run(&mut s, doc! {"connectionStatus": 1, "$db": "admin"}));
    assert!(format!("{status}").contains("__system"));

    std::fs::write(&key_path, "abc").unwrap();
    let output = std::process::Command::new(common::FERROD)
        .args(["--port", "0", "--keyFile", key_arg.as_str(), "--dbpath"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 6 characters"));
}
