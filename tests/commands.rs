//! The dispatcher and the core commands against a real ferrod, reply shapes and error
//! codes as mongod 7.0 gives them. Run with `cargo test --test commands`.

mod common;
mod support;

use bson::spec::BinarySubtype;
use bson::{doc, Bson, Document, Timestamp};
use common::{op_msg, Ferrod};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

const TEST_COMMANDS: &[&str] = &["--setParameter", "enableTestCommands=1"];

/// The core commands with a minimal valid invocation each (shutdown has its own tests).
fn core_commands() -> Vec<Document> {
    vec![
        doc! {"hello": 1},
        doc! {"isMaster": 1},
        doc! {"ismaster": 1},
        doc! {"ping": 1},
        doc! {"buildInfo": 1},
        doc! {"buildinfo": 1},
        doc! {"getParameter": 1, "logLevel": 1},
        doc! {"setParameter": 1, "logLevel": 0},
        doc! {"getCmdLineOpts": 1},
        doc! {"getLog": "startupWarnings"},
        doc! {"connectionStatus": 1},
        doc! {"whatsmyuri": 1},
        doc! {"hostInfo": 1},
        doc! {"serverStatus": 1},
        doc! {"listCommands": 1},
        doc! {"listDatabases": 1},
        doc! {"endSessions": []},
        doc! {"refreshSessions": []},
        doc! {"killSessions": []},
        doc! {"currentOp": 1},
        doc! {"killOp": 1, "op": 123456},
        doc! {"logRotate": 1},
    ]
}

/// The generic arguments of SPEC section 3 that mean the same on every command.
fn with_generic_arguments(mut cmd: Document, comment: Bson) -> Document {
    let ts = Timestamp {
        time: 1,
        increment: 1,
    };
    cmd.insert("$db", "admin");
    cmd.insert("lsid", doc! {"id": bson::Uuid::new()});
    cmd.insert(
        "$clusterTime",
        doc! {"clusterTime": ts, "signature": {"hash": bson::Binary{subtype: BinarySubtype::Generic, bytes: vec![0; 20]}, "keyId": 0_i64}},
    );
    cmd.insert("$readPreference", doc! {"mode": "primaryPreferred"});
    cmd.insert("apiVersion", "1");
    cmd.insert("apiDeprecationErrors", false);
    cmd.insert("comment", comment);
    cmd.insert("maxTimeMS", 5000);
    cmd.insert("readConcern", doc! {"level": "local"});
    cmd.insert("writeConcern", doc! {"w": 1});
    cmd
}

fn raw(cmd: &Document, s: &mut TcpStream) -> Document {
    common::op_msg_roundtrip(s, cmd)
}

fn cluster_time(reply: &Document) -> Timestamp {
    let ct = reply
        .get_document("$clusterTime")
        .unwrap_or_else(|_| panic!("no $clusterTime in {reply}"));
    let signature = ct.get_document("signature").unwrap();
    match signature.get("hash") {
        Some(Bson::Binary(b)) => {
            assert_eq!(b.subtype, BinarySubtype::Generic, "{reply}");
            assert_eq!(b.bytes, vec![0u8; 20], "{reply}");
        }
        other => panic!("signature.hash is {other:?}"),
    }
    assert_eq!(signature.get("keyId"), Some(&Bson::Int64(0)), "{reply}");
    let operation_time = reply
        .get_timestamp("operationTime")
        .unwrap_or_else(|_| panic!("no operationTime in {reply}"));
    let cluster = ct.get_timestamp("clusterTime").unwrap();
    assert!(operation_time <= cluster, "{reply}");
    cluster
}

// ---- dispatcher --------------------------------------------------------------------

#[test]
fn missing_db_is_40571() {
    let server = Ferrod::start(&[]);
    let reply = raw(&doc! {"ping": 1}, &mut server.raw());
    let msg = assert_error(&reply, 40571, "Location40571");
    assert_eq!(msg, "OP_MSG requests require a $db argument");
    cluster_time(&reply);
}

#[test]
fn unknown_command_is_59_with_mongods_message() {
    let server = Ferrod::start(&[]);
    let reply = admin(&mut server.raw(), doc! {"frobnicate": 1});
    let msg = assert_error(&reply, 59, "CommandNotFound");
    assert_eq!(msg, "no such command: 'frobnicate'");
}

#[test]
fn every_reply_carries_cluster_time_and_it_never_goes_back() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let mut last = Timestamp {
        time: 0,
        increment: 0,
    };
    let mut requests = core_commands();
    requests.push(doc! {"noSuchCommand": 1});
    requests.push(doc! {"getLog": 5});
    requests.push(doc! {"getParameter": 1, "noSuchParameter": 1});
    for round in 0..3 {
        for cmd in &requests {
            let reply = admin(&mut s, cmd.clone());
            let now = cluster_time(&reply);
            assert!(
                now >= last,
                "round {round}: {cmd} went back from {last:?} to {now:?}"
            );
            last = now;
        }
        // On another connection too.
        let reply = admin(&mut server.raw(), doc! {"ping": 1});
        let now = cluster_time(&reply);
        assert!(now >= last);
        last = now;
    }
    // Even the reply to a request without $db.
    let now = cluster_time(&raw(&doc! {"ping": 1}, &mut s));
    assert!(now >= last);
}

#[test]
fn generic_arguments_are_accepted_by_every_core_command() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    for cmd in core_commands() {
        let reply = raw(
            &with_generic_arguments(cmd.clone(), Bson::from("generic")),
            &mut s,
        );
        assert_eq!(ok(&reply), 1.0, "{cmd} with generic arguments: {reply}");
        cluster_time(&reply);
    }
}

#[test]
fn admin_only_commands_on_another_db_are_13() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    for name in [
        "getParameter",
        "setParameter",
        "getCmdLineOpts",
        "getLog",
        "listDatabases",
        "currentOp",
        "killOp",
        "logRotate",
        "shutdown",
    ] {
        let reply = on_db(&mut s, "test", doc! {name: 1});
        let msg = assert_error(&reply, 13, "Unauthorized");
        assert_eq!(
            msg,
            format!("{name} may only be run against the admin database.")
        );
    }
    // Commands that are not admin-only run anywhere.
    for name in [
        "ping",
        "hello",
        "buildInfo",
        "serverStatus",
        "hostInfo",
        "connectionStatus",
    ] {
        assert_ok(&on_db(&mut s, "test", doc! {name: 1}));
    }
}

/// comment values of many BSON types, each as it must appear in relaxed extended JSON.
fn comments() -> Vec<Bson> {
    vec![
        Bson::from("a string"),
        Bson::Int32(42),
        Bson::Int64(1 << 40),
        Bson::Double(2.5),
        Bson::Boolean(true),
        Bson::Null,
        Bson::Document(doc! {"app": "reports", "run": 7}),
        Bson::Array(vec![Bson::from("x"), Bson::Int32(1)]),
        Bson::ObjectId(bson::oid::ObjectId::new()),
        Bson::DateTime(bson::DateTime::from_millis(1_700_000_000_000)),
    ]
}

#[test]
fn comment_of_any_type_appears_in_the_slow_query_line() {
    let server = Ferrod::start(&["--slowms", "0"]);
    let mut s = server.raw();
    for (i, comment) in comments().into_iter().enumerate() {
        let name = if i % 2 == 0 { "ping" } else { "buildInfo" };
        let cmd = doc! {name: 1, "comment": comment.clone(), "$db": "admin"};
        assert_ok(&raw(&cmd, &mut s));
        let expected = comment.clone().into_relaxed_extjson();
        let line = eventually(Duration::from_secs(5), "the slow query line", || {
            with_id(&server.log_lines(), 51803).into_iter().find(|l| {
                l["attr"]["command"]["comment"] == expected
                    && l["attr"]["command"].get(name).is_some()
            })
        });
        assert_eq!(line["msg"], "Slow query");
        assert_eq!(line["c"], "COMMAND");
        assert_eq!(line["attr"]["type"], "command");
        assert_eq!(line["attr"]["ns"], "admin.$cmd");
        assert!(line["ctx"].as_str().unwrap().starts_with("conn"));
        assert!(line["attr"]["durationMillis"].is_u64());
        assert_eq!(line["attr"]["numYields"], 0);
        assert!(line["attr"]["remote"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"));
        // No application name was given, so there is no appName; the command succeeded,
        // so there are no error fields.
        assert!(line["attr"].get("appName").is_none(), "{line}");
        for field in ["ok", "errMsg", "errName", "errCode"] {
            assert!(line["attr"].get(field).is_none(), "{field} in {line}");
        }
    }
}

#[test]
fn slow_query_threshold_comes_from_slowms() {
    let server = Ferrod::start(&["--setParameter", "enableTestCommands=1"]);
    let mut s = server.raw();
    admin(&mut s, doc! {"ping": 1, "comment": "fast ping"});
    admin(&mut s, doc! {"ping": 1, "comment": "marker"});
    // A command past the default 100 ms threshold, after the quick ones on the same
    // connection: once its slow-query line is there, theirs would be too.
    admin(&mut s, doc! {"sleep": 1, "millis": 150, "lock": "none"});
    server.wait_for_log("\"commandName\":\"sleep\"", Duration::from_secs(10));
    // The default 100 ms threshold keeps quick commands out of the log.
    let slow = with_id(&server.log_lines(), 51803);
    assert!(
        slow.iter().all(|l| l["attr"]["commandName"] == "sleep"),
        "{slow:?}"
    );
}

#[test]
fn inflight_op_shows_its_comment_in_current_op_and_kill_op_interrupts_it() {
    let server = Ferrod::start(&["--setParameter", "enableTestCommands=1", "--slowms", "0"]);
    let mut observer = server.raw();
    for comment in [
        Bson::Document(doc! {"tag": "long", "n": 1}),
        Bson::Int32(7),
        Bson::from("plain"),
        Bson::Array(vec![Bson::Boolean(false)]),
    ] {
        let mut busy = server.raw();
        let busy_id = bson_i64(
            admin(&mut busy, doc! {"hello": 1})
                .get("connectionId")
                .unwrap(),
        );
        let lsid = doc! {"id": bson::Uuid::new()};
        send(
            &mut busy,
            31,
            doc! {"sleep": 1, "secs": 30, "lsid": lsid.clone(), "lock": "none", "comment": comment.clone()},
        );
        let op = wait_for_sleep_op(&mut observer);
        let command = op.get_document("command").unwrap();
        assert_eq!(command.get("comment"), Some(&comment), "{op}");
        // The session id the server leaves out of the parsed request shows, in its place.
        assert_eq!(command.get_document("lsid"), Ok(&lsid), "{op}");
        assert_eq!(op.get_document("lsid"), Ok(&lsid), "{op}");
        let keys: Vec<&str> = command.keys().map(String::as_str).collect();
        assert_eq!(
            keys[..5],
            ["sleep", "secs", "lsid", "lock", "comment"],
            "{op}"
        );
        assert_eq!(op.get_str("op"), Ok("command"));
        assert_eq!(op.get_str("ns"), Ok("admin.$cmd"));
        assert_eq!(op.get_bool("active"), Ok(true));
        assert_eq!(bson_i64(op.get("connectionId").unwrap()), busy_id);
        assert_eq!(op.get_str("desc"), Ok(format!("conn{busy_id}").as_str()));
        assert!(op.contains_key("secs_running") && op.contains_key("microsecs_running"));
        assert_eq!(op.get_str("type"), Ok("op"));
        assert!(op
            .get_str("host")
            .unwrap()
            .ends_with(&format!(":{}", server.port)));
        assert!(op.get_str("client").unwrap().starts_with("127.0.0.1:"));
        assert!(op.get_datetime("currentOpTime").is_ok());
        assert_eq!(op.get_bool("waitingForLock"), Ok(false));

        let started = Instant::now();
        let killed = admin(
            &mut observer,
            doc! {"killOp": 1, "op": op.get("opid").unwrap().clone()},
        );
        assert_ok(&killed);
        assert_eq!(killed.get_str("info"), Ok("attempting to kill op"));
        let (response_to, reply) = receive(&mut busy);
        assert_eq!(response_to, 31);
        let msg = assert_error(&reply, 11601, "Interrupted");
        assert_eq!(msg, "operation was interrupted");
        assert!(started.elapsed() < Duration::from_secs(5));
        cluster_time(&reply);
        // Gone from currentOp once finished.
        let left = in_progress(&mut observer);
        assert!(
            !left.iter().any(|o| o
                .get_document("command")
                .is_ok_and(|c| c.contains_key("sleep"))),
            "{left:?}"
        );
        // Its slow-query line carries the comment and the error.
        let expected = comment.clone().into_relaxed_extjson();
        let line = eventually(Duration::from_secs(5), "the slow sleep line", || {
            with_id(&server.log_lines(), 51803)
                .into_iter()
                .find(|l| l["attr"]["command"]["comment"] == expected)
        });
        assert_eq!(line["attr"]["errCode"], 11601);
        assert_eq!(line["attr"]["errName"], "Interrupted");
    }
}

#[test]
fn max_time_ms_expiry_is_50() {
    let server = Ferrod::start(TEST_COMMANDS);
    let mut s = server.raw();
    let started = Instant::now();
    let reply = admin(
        &mut s,
        doc! {"sleep": 1, "secs": 30, "lock": "none", "maxTimeMS": 100},
    );
    let msg = assert_error(&reply, 50, "MaxTimeMSExpired");
    assert_eq!(msg, "operation exceeded time limit");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Within its time limit the command succeeds.
    assert_ok(&admin(
        &mut s,
        doc! {"sleep": 1, "millis": 10, "maxTimeMS": 5000},
    ));
    // Bad maxTimeMS values.
    let reply = admin(&mut s, doc! {"ping": 1, "maxTimeMS": -1});
    assert_error(&reply, 2, "BadValue");
    let reply = admin(&mut s, doc! {"ping": 1, "maxTimeMS": "soon"});
    assert_error(&reply, 14, "TypeMismatch");
}

#[test]
fn sleep_exists_only_with_enable_test_commands() {
    let plain = Ferrod::start(&[]);
    let mut s = plain.raw();
    let msg = assert_error(
        &admin(&mut s, doc! {"sleep": 1, "millis": 1}),
        59,
        "CommandNotFound",
    );
    assert_eq!(msg, "no such command: 'sleep'");
    let commands = admin(&mut s, doc! {"listCommands": 1});
    assert!(!commands
        .get_document("commands")
        .unwrap()
        .contains_key("sleep"));
    let param = admin(&mut s, doc! {"getParameter": 1, "enableTestCommands": 1});
    assert_eq!(param.get_bool("enableTestCommands"), Ok(false));
    // Startup-only.
    let reply = admin(&mut s, doc! {"setParameter": 1, "enableTestCommands": true});
    let msg = assert_error(&reply, 20, "IllegalOperation");
    assert_eq!(msg, "not allowed to change [enableTestCommands] at runtime");

    let testing = Ferrod::start(TEST_COMMANDS);
    let mut s = testing.raw();
    assert_ok(&admin(&mut s, doc! {"sleep": 1, "millis": 1}));
    let commands = admin(&mut s, doc! {"listCommands": 1});
    let sleep = commands
        .get_document("commands")
        .unwrap()
        .get_document("sleep")
        .unwrap();
    assert_eq!(sleep.get_bool("adminOnly"), Ok(true));
    let msg = assert_error(
        &on_db(&mut s, "test", doc! {"sleep": 1, "millis": 1}),
        13,
        "Unauthorized",
    );
    assert_eq!(msg, "sleep may only be run against the admin database.");
    for (cmd, code, message) in [
        (
            doc! {"sleep": 1, "secs": "x"},
            34344,
            "'secs' must be a number.",
        ),
        (
            doc! {"sleep": 1, "seconds": "x"},
            51154,
            "'seconds' must be a number.",
        ),
        (
            doc! {"sleep": 1, "millis": "x"},
            34345,
            "'millis' must be a number.",
        ),
        (
            doc! {"sleep": 1, "secs": 1, "seconds": 1},
            51153,
            "Only one of 'secs' and 'seconds' may be specified",
        ),
        (
            doc! {"sleep": 1, "millis": 1, "lock": "x"},
            34347,
            "'lock' must be one of 'r', 'ir', 'w', 'iw', 'none'.",
        ),
        (
            doc! {"sleep": 1, "millis": 1, "lock": "r", "w": true},
            34346,
            "Only one of 'w' and 'lock' may be set.",
        ),
    ] {
        let reply = admin(&mut s, cmd.clone());
        let msg = assert_error(&reply, code, &format!("Location{code}"));
        assert_eq!(msg, message, "{cmd}");
    }
}

// ---- handshake ---------------------------------------------------------------------

fn assert_standalone_hello(reply: &Document, client_connection_id: i64) {
    assert_ok(reply);
    assert_eq!(reply.get_i32("maxBsonObjectSize"), Ok(16_777_216));
    assert_eq!(reply.get_i32("maxMessageSizeBytes"), Ok(48_000_000));
    assert_eq!(reply.get_i32("maxWriteBatchSize"), Ok(100_000));
    assert!(reply.get_datetime("localTime").is_ok());
    assert_eq!(reply.get_i32("logicalSessionTimeoutMinutes"), Ok(30));
    assert_eq!(
        bson_i64(reply.get("connectionId").unwrap()),
        client_connection_id
    );
    assert_eq!(reply.get_i32("minWireVersion"), Ok(0));
    assert_eq!(reply.get_i32("maxWireVersion"), Ok(21));
    assert_eq!(reply.get_bool("readOnly"), Ok(false));
    for replica_field in ["setName", "hosts", "primary", "me", "secondary"] {
        assert!(
            !reply.contains_key(replica_field),
            "standalone hello has {replica_field}"
        );
    }
    cluster_time(reply);
}

#[test]
fn hello_and_is_master_reply_with_standalone_fields() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let hello = admin(
        &mut s,
        doc! {"hello": 1, "helloOk": true, "compression": ["zstd", "lz4", "zlib"]},
    );
    let id = bson_i64(hello.get("connectionId").unwrap());
    assert_standalone_hello(&hello, id);
    assert_eq!(hello.get_bool("isWritablePrimary"), Ok(true));
    assert!(!hello.contains_key("ismaster"));
    assert_eq!(hello.get_bool("helloOk"), Ok(true));
    // The intersection, in the client's order.
    assert_eq!(
        hello.get_array("compression").unwrap(),
        &vec![Bson::from("zstd"), Bson::from("zlib")]
    );
    for legacy in ["isMaster", "ismaster"] {
        let reply = admin(&mut s, doc! {legacy: 1});
        assert_standalone_hello(&reply, id);
        assert_eq!(reply.get_bool("ismaster"), Ok(true), "{reply}");
        assert!(!reply.contains_key("helloOk"), "helloOk only when asked");
    }
    // Unknown fields are accepted.
    assert_ok(&admin(
        &mut s,
        doc! {"hello": 1, "someFutureField": {"x": 1}},
    ));
}

fn metadata() -> Document {
    doc! {
        "application": {"name": "meta-test"},
        "driver": {"name": "raw-tests", "version": "1.0"},
        "os": {"type": "Linux", "name": "test"},
    }
}

#[test]
fn client_metadata_is_only_accepted_on_the_first_hello() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let first = admin(
        &mut s,
        doc! {"hello": 1, "client": metadata(), "compression": ["zlib"]},
    );
    assert_ok(&first);
    let reply = admin(&mut s, doc! {"isMaster": 1, "client": metadata()});
    let msg = assert_error(&reply, 186, "ClientMetadataCannotBeMutated");
    assert_eq!(
        msg,
        "The client metadata document may only be sent in the first hello"
    );
    // A first hello without metadata also closes the door.
    let mut t = server.raw();
    assert_ok(&admin(&mut t, doc! {"hello": 1}));
    let reply = admin(&mut t, doc! {"hello": 1, "client": metadata()});
    assert_error(&reply, 186, "ClientMetadataCannotBeMutated");
    // The accepted metadata is logged once (51800), with the negotiated compressors.
    let line = server.wait_for_log("\"id\":51800", Duration::from_secs(5));
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["msg"], "client metadata");
    assert_eq!(line["attr"]["doc"]["application"]["name"], "meta-test");
    assert_eq!(
        line["attr"]["negotiatedCompressors"],
        serde_json::json!(["zlib"])
    );
    let id = bson_i64(first.get("connectionId").unwrap());
    assert_eq!(line["attr"]["client"], format!("conn{id}"));
    assert_eq!(with_id(&server.log_lines(), 51800).len(), 1);
    // appName shows in currentOp.
    let ops = in_progress(&mut s);
    assert_eq!(ops[0].get_str("appName"), Ok("meta-test"), "{:?}", ops);
}

#[test]
fn invalid_client_metadata_is_refused_with_mongods_codes() {
    let server = Ferrod::start(&[]);
    let mut without = metadata();
    without.remove("driver");
    let mut no_os = metadata();
    no_os.remove("os");
    let mut no_version = metadata();
    no_version.insert("driver", doc! {"name": "x"});
    let mut os_type = metadata();
    os_type.insert("os", doc! {"type": 5});
    let mut app = metadata();
    app.insert("application", "not a document");
    let mut long_name = metadata();
    long_name.insert("application", doc! {"name": "n".repeat(129)});
    let mut huge = metadata();
    huge.insert("padding", "p".repeat(600));
    let cases = [
        (without, 183, "ClientMetadataMissingField", "Missing required sub-document 'driver' in the client metadata document"),
        (no_os, 183, "ClientMetadataMissingField", "Missing required sub-document 'os' in the client metadata document"),
        (no_version, 183, "ClientMetadataMissingField", "Missing required field 'driver.version' in the client metadata document"),
        (os_type, 14, "TypeMismatch", "The 'os.type' field must be a string in the client metadata document"),
        (app, 14, "TypeMismatch", "The 'application' field is required to be a BSON document in the client metadata document"),
        (long_name, 184, "ClientMetadataAppNameTooLarge", "The 'application.name' field must be less then or equal to 128 bytes in the client metadata document"),
        (huge, 185, "ClientMetadataDocumentTooLarge", "The client metadata document must be less then or equal to 512 bytes"),
    ];
    for (meta, code, name, message) in cases {
        let mut s = server.raw();
        let reply = admin(&mut s, doc! {"hello": 1, "client": meta});
        assert_eq!(assert_error(&reply, code, name), message);
        // A refused first hello finalizes nothing: valid metadata is still welcome.
        assert_ok(&admin(&mut s, doc! {"hello": 1, "client": metadata()}));
    }
}

#[test]
fn ping_and_build_info() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let ping = admin(&mut s, doc! {"ping": 1});
    assert_ok(&ping);
    let keys: Vec<&str> = ping.keys().map(String::as_str).collect();
    assert_eq!(keys, ["ok", "$clusterTime", "operationTime"]);
    for name in ["buildInfo", "buildinfo"] {
        let info = on_db(&mut s, "test", doc! {name: 1});
        assert_ok(&info);
        assert_eq!(info.get_str("version"), Ok("7.0.0"));
        assert_eq!(
            info.get_array("versionArray").unwrap(),
            &vec![
                Bson::Int32(7),
                Bson::Int32(0),
                Bson::Int32(0),
                Bson::Int32(0)
            ]
        );
        assert!(info.get_str("gitVersion").is_ok());
        assert!(info.get_array("modules").is_ok());
        assert_eq!(info.get_i32("bits"), Ok(64));
        assert!(info.get_bool("debug").is_ok());
        assert_eq!(info.get_i32("maxBsonObjectSize"), Ok(16_777_216));
        assert!(info.get_document("openssl").is_ok());
        assert!(info.get_document("buildEnvironment").is_ok());
        assert!(info.get_array("storageEngines").is_ok());
    }
}

// ---- parameters --------------------------------------------------------------------

#[test]
fn get_parameter_one_several_all_and_unknown() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let one = admin(&mut s, doc! {"getParameter": 1, "logLevel": 1});
    assert_ok(&one);
    assert_eq!(one.get_i32("logLevel"), Ok(0));
    assert!(!one.contains_key("quiet"));

    let several = admin(
        &mut s,
        doc! {"getParameter": 1, "logLevel": 1, "ShardingTaskExecutorPoolMaxConnecting": 1, "noSuchParameter": 1},
    );
    assert_eq!(several.get_i32("logLevel"), Ok(0));
    assert_eq!(
        several.get_i32("ShardingTaskExecutorPoolMaxConnecting"),
        Ok(2)
    );
    assert!(!several.contains_key("noSuchParameter"));

    let all = admin(&mut s, doc! {"getParameter": "*"});
    assert_ok(&all);
    for (name, value) in [
        ("ShardingTaskExecutorPoolMinSize", 1),
        ("ShardingTaskExecutorPoolMaxSize", 32_767),
        ("ShardingTaskExecutorPoolMaxConnecting", 2),
        ("ShardingTaskExecutorPoolHostTimeoutMS", 300_000),
        ("ShardingTaskExecutorPoolRefreshRequirementMS", 60_000),
        ("ShardingTaskExecutorPoolRefreshTimeoutMS", 20_000),
        ("scramIterationCount", 10_000),
        ("scramSHA256IterationCount", 15_000),
    ] {
        assert_eq!(all.get_i32(name), Ok(value), "{name}");
    }
    assert_eq!(
        all.get_document("featureCompatibilityVersion").unwrap(),
        &doc! {"version": "7.0"}
    );

    let fcv = admin(
        &mut s,
        doc! {"getParameter": 1, "featureCompatibilityVersion": 1},
    );
    assert_eq!(
        fcv.get_document("featureCompatibilityVersion").unwrap(),
        &doc! {"version": "7.0"}
    );

    let details = admin(
        &mut s,
        doc! {"getParameter": {"showDetails": true}, "logLevel": 1, "authenticationMechanisms": 1},
    );
    assert_eq!(
        details.get_document("logLevel").unwrap(),
        &doc! {"value": 0, "settableAtRuntime": true, "settableAtStartup": true}
    );
    let mechanisms = details.get_document("authenticationMechanisms").unwrap();
    assert_eq!(mechanisms.get_bool("settableAtRuntime"), Ok(false));
    assert_eq!(mechanisms.get_bool("settableAtStartup"), Ok(true));
    let everything = admin(
        &mut s,
        doc! {"getParameter": {"showDetails": true, "allParameters": true}},
    );
    assert_eq!(
        everything
            .get_document("featureCompatibilityVersion")
            .unwrap()
            .get_document("value")
            .unwrap(),
        &doc! {"version": "7.0"}
    );

    let unknown = admin(&mut s, doc! {"getParameter": 1, "noSuchParameter": 1});
    let msg = assert_error(&unknown, 72, "InvalidOptions");
    assert_eq!(msg, "no option found to get");
}

#[test]
fn set_parameter_runtime_was_refusals_and_pool_ordering() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let set = admin(&mut s, doc! {"setParameter": 1, "logLevel": 2});
    assert_ok(&set);
    assert_eq!(set.get("was"), Some(&Bson::Int32(0)), "{set}");
    let again = admin(&mut s, doc! {"setParameter": 1, "logLevel": 0});
    assert_eq!(again.get("was"), Some(&Bson::Int32(2)));
    assert_eq!(
        admin(&mut s, doc! {"getParameter": 1, "logLevel": 1}).get_i32("logLevel"),
        Ok(0)
    );

    let reply = admin(
        &mut s,
        doc! {"setParameter": 1, "authenticationMechanisms": "SCRAM-SHA-256"},
    );
    let msg = assert_error(&reply, 20, "IllegalOperation");
    assert_eq!(
        msg,
        "not allowed to change [authenticationMechanisms] at runtime"
    );

    let reply = admin(&mut s, doc! {"setParameter": 1, "noSuchParameter": 1});
    let msg = assert_error(&reply, 72, "InvalidOptions");
    assert_eq!(
        msg,
        "attempted to set unrecognized parameter [noSuchParameter], use help:true to see options "
    );

    let reply = admin(&mut s, doc! {"setParameter": 1});
    assert_error(&reply, 72, "InvalidOptions");

    // HostTimeout must stay above RefreshRequirement + RefreshTimeout.
    let reply = admin(
        &mut s,
        doc! {"setParameter": 1, "ShardingTaskExecutorPoolHostTimeoutMS": 1000},
    );
    assert_error(&reply, 2, "BadValue");
    let reply = admin(
        &mut s,
        doc! {"getParameter": 1, "ShardingTaskExecutorPoolHostTimeoutMS": 1},
    );
    assert_eq!(
        reply.get_i32("ShardingTaskExecutorPoolHostTimeoutMS"),
        Ok(300_000)
    );
    let reply = admin(
        &mut s,
        doc! {"setParameter": 1, "ShardingTaskExecutorPoolRefreshRequirementMS": 290_000},
    );
    assert_error(&reply, 2, "BadValue");
    let reply = admin(
        &mut s,
        doc! {"setParameter": 1, "ShardingTaskExecutorPoolHostTimeoutMS": 90_000},
    );
    assert_ok(&reply);
    assert_eq!(reply.get("was"), Some(&Bson::Int32(300_000)));

    let reply = admin(&mut s, doc! {"setParameter": 1, "logLevel": "loud"});
    assert_error(&reply, 2, "BadValue");
}

// ---- diagnostics -------------------------------------------------------------------

#[test]
fn get_cmd_line_opts_reports_argv_and_parsed_options() {
    let server = Ferrod::start(&[
        "--setParameter",
        "logLevel=1",
        "--slowms",
        "250",
        "--maxConns",
        "50",
    ]);
    let reply = admin(&mut server.raw(), doc! {"getCmdLineOpts": 1});
    assert_ok(&reply);
    let dbpath = server.dbpath.path().to_str().unwrap().to_owned();
    let argv: Vec<&str> = reply
        .get_array("argv")
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        argv,
        [
            common::FERROD,
            "--port",
            "0",
            "--logFormat",
            "json",
            "--dbpath",
            &dbpath,
            "--setParameter",
            "logLevel=1",
            "--slowms",
            "250",
            "--maxConns",
            "50"
        ]
    );
    let parsed = reply.get_document("parsed").unwrap();
    assert_eq!(
        parsed,
        &doc! {
            "net": {"port": 0, "maxIncomingConnections": 50_i64},
            "storage": {"dbPath": dbpath},
            "operationProfiling": {"slowOpThresholdMs": 250_i64},
            "setParameter": {"logLevel": "1"},
        }
    );
}

#[test]
fn get_log_names_startup_warnings_and_a_bounded_global_ring() {
    let server = Ferrod::start(&["--slowms", "0"]);
    let mut s = server.raw();
    let names = admin(&mut s, doc! {"getLog": "*"});
    assert_eq!(
        names.get_array("names").unwrap(),
        &vec![Bson::from("global"), Bson::from("startupWarnings")]
    );

    let warnings = admin(&mut s, doc! {"getLog": "startupWarnings"});
    assert_ok(&warnings);
    let lines = warnings.get_array("log").unwrap();
    assert_eq!(
        warnings.get_i32("totalLinesWritten"),
        Ok(lines.len() as i32)
    );
    let first: serde_json::Value = serde_json::from_str(lines[0].as_str().unwrap()).unwrap();
    assert_eq!(first["id"], 22120);
    assert_eq!(first["tags"], serde_json::json!(["startupWarnings"]));

    let global = admin(&mut s, doc! {"getLog": "global"});
    let lines: Vec<String> = global
        .get_array("log")
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    // Real lines, the same ones ferrod printed.
    assert!(lines
        .iter()
        .any(|l| l.contains("\"Waiting for connections\"")));
    let printed = server.log_lines();
    assert!(lines
        .iter()
        .filter(|l| l.contains("\"id\":4615611"))
        .all(|l| printed.contains(l)));

    // Each command is a slow-query line with --slowms 0: overflow the ring.
    for i in 0..1100 {
        s.write_all(&op_msg(i, 0, &doc! {"ping": 1, "$db": "admin"}))
            .unwrap();
        receive(&mut s);
    }
    let global = admin(&mut s, doc! {"getLog": "global"});
    let kept = global.get_array("log").unwrap().len();
    assert_eq!(kept, 1024, "the ring keeps mongod's 1024 lines");
    assert!(bson_i64(global.get("totalLinesWritten").unwrap()) > 1100);

    let reply = admin(&mut s, doc! {"getLog": 3});
    let msg = assert_error(&reply, 14, "TypeMismatch");
    assert_eq!(
        msg,
        "Argument to getLog must be of type String; found 3 of type int"
    );
    let reply = admin(&mut s, doc! {"getLog": "nope"});
    assert_eq!(ok(&reply), 0.0);
    assert_eq!(reply.get_str("errmsg"), Ok("no RamLog named: nope"));
}

#[test]
fn connection_status_whatsmyuri_and_host_info() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let status = admin(&mut s, doc! {"connectionStatus": 1});
    assert_ok(&status);
    assert_eq!(
        status.get_document("authInfo").unwrap(),
        &doc! {"authenticatedUsers": [], "authenticatedUserRoles": []}
    );
    let me = admin(&mut s, doc! {"whatsmyuri": 1});
    assert_eq!(
        me.get_str("you"),
        Ok(s.local_addr().unwrap().to_string().as_str())
    );

    let host = admin(&mut s, doc! {"hostInfo": 1});
    assert_ok(&host);
    let system = host.get_document("system").unwrap();
    assert!(system.get_datetime("currentTime").is_ok());
    assert!(!system.get_str("hostname").unwrap().is_empty());
    assert_eq!(system.get_i32("cpuAddrSize"), Ok(64));
    assert!(system.get_i32("numCores").unwrap() >= 1);
    assert!(bson_i64(system.get("memSizeMB").unwrap()) > 0);
    let os = host.get_document("os").unwrap();
    assert_eq!(os.get_str("type"), Ok("Linux"));
    assert!(os.get_str("name").is_ok() && os.get_str("version").is_ok());
    assert!(host.get_document("extra").is_ok());
}

#[test]
fn server_status_reports_the_fields_drivers_read() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let first = admin(&mut s, doc! {"serverStatus": 1});
    assert_ok(&first);
    assert!(first
        .get_str("host")
        .unwrap()
        .ends_with(&format!(":{}", server.port)));
    assert_eq!(first.get_str("version"), Ok("7.0.0"));
    assert!(first.get_str("process").is_ok());
    assert_eq!(bson_i64(first.get("pid").unwrap()), server.pid() as i64);
    assert!(first.get_f64("uptime").is_ok());
    assert!(first.get_i64("uptimeMillis").is_ok());
    assert!(first.get_datetime("localTime").is_ok());
    let conns = first.get_document("connections").unwrap();
    for field in ["current", "available", "totalCreated", "active"] {
        assert!(conns.get_i32(field).is_ok(), "connections.{field}: {conns}");
    }
    let net = first.get_document("network").unwrap();
    for field in ["bytesIn", "bytesOut", "numRequests"] {
        assert!(net.get_i64(field).is_ok(), "network.{field}: {net}");
    }
    for _ in 0..5 {
        admin(&mut s, doc! {"ping": 1});
    }
    let second = admin(&mut s, doc! {"serverStatus": 1});
    let count = |d: &Document, f: &str| d.get_document("opcounters").unwrap().get_i64(f).unwrap();
    assert_eq!(count(&second, "command") - count(&first, "command"), 6);
    let requests = |d: &Document| {
        d.get_document("network")
            .unwrap()
            .get_i64("numRequests")
            .unwrap()
    };
    assert_eq!(requests(&second) - requests(&first), 6);
    let bytes_in = |d: &Document| {
        d.get_document("network")
            .unwrap()
            .get_i64("bytesIn")
            .unwrap()
    };
    assert!(bytes_in(&second) > bytes_in(&first));
    assert!(second.get_i64("uptimeMillis").unwrap() >= first.get_i64("uptimeMillis").unwrap());
}

#[test]
fn list_commands_comes_from_the_table() {
    let server = Ferrod::start(&[]);
    let reply = admin(&mut server.raw(), doc! {"listCommands": 1});
    assert_ok(&reply);
    let commands = reply.get_document("commands").unwrap();
    for cmd in core_commands() {
        let name = cmd.keys().next().unwrap();
        let entry = commands
            .get_document(name)
            .unwrap_or_else(|_| panic!("listCommands lacks {name}"));
        assert!(!entry.get_str("help").unwrap().is_empty());
        assert!(entry.get_bool("adminOnly").is_ok());
        assert!(entry.get_bool("requiresAuth").is_ok());
        assert!(entry.get_bool("secondaryOk").is_ok());
    }
    assert!(commands.contains_key("shutdown"));
    assert_eq!(
        commands
            .get_document("getLog")
            .unwrap()
            .get_bool("adminOnly"),
        Ok(true)
    );
    assert_eq!(
        commands.get_document("ping").unwrap().get_bool("adminOnly"),
        Ok(false)
    );
}

#[test]
fn list_databases_reports_an_empty_mongod() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let reply = admin(&mut s, doc! {"listDatabases": 1});
    assert_ok(&reply);
    let dbs = reply.get_array("databases").unwrap();
    let names: Vec<&str> = dbs
        .iter()
        .map(|d| d.as_document().unwrap().get_str("name").unwrap())
        .collect();
    assert_eq!(names, ["admin", "config", "local"]);
    let mut total = 0;
    for db in dbs {
        let db = db.as_document().unwrap();
        let size = bson_i64(db.get("sizeOnDisk").unwrap());
        assert!(size > 0);
        total += size;
        assert_eq!(db.get_bool("empty"), Ok(false));
    }
    assert_eq!(bson_i64(reply.get("totalSize").unwrap()), total);
    assert_eq!(
        bson_i64(reply.get("totalSizeMb").unwrap()),
        total / (1024 * 1024)
    );

    let names_only = admin(&mut s, doc! {"listDatabases": 1, "nameOnly": true});
    assert_ok(&names_only);
    for db in names_only.get_array("databases").unwrap() {
        let keys: Vec<&String> = db.as_document().unwrap().keys().collect();
        assert_eq!(keys, ["name"]);
    }
    assert!(!names_only.contains_key("totalSize"));
}

#[test]
fn session_commands_are_accepted() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    let session = doc! {"id": bson::Uuid::new()};
    for name in ["endSessions", "refreshSessions", "killSessions"] {
        let reply = on_db(&mut s, "test", doc! {name: [session.clone()]});
        assert_ok(&reply);
        let keys: Vec<&str> = reply.keys().map(String::as_str).collect();
        assert_eq!(keys, ["ok", "$clusterTime", "operationTime"], "{name}");
        let reply = on_db(&mut s, "test", doc! {name: 1});
        let msg = assert_error(&reply, 14, "TypeMismatch");
        assert_eq!(
            msg,
            format!("BSON field '{name}.{name}' is the wrong type 'int', expected type 'array'")
        );
    }
}

#[test]
fn current_op_and_kill_op_edge_cases() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    // currentOp sees at least itself.
    let ops = in_progress(&mut s);
    assert!(ops.iter().any(|o| o
        .get_document("command")
        .is_ok_and(|c| c.contains_key("currentOp"))));
    // killOp of an unknown opid is accepted, as mongod does.
    let reply = admin(&mut s, doc! {"killOp": 1, "op": 987_654});
    assert_ok(&reply);
    let reply = admin(&mut s, doc! {"killOp": 1});
    assert_error(&reply, 4, "NoSuchKey");
}

// ---- through the official driver ---------------------------------------------------

#[tokio::test]
async fn rust_driver_sees_mongods_codes_and_ends_its_sessions_quietly() {
    let server = Ferrod::start(&["--setParameter", "enableTestCommands=1", "--slowms", "0"]);
    let client = mongodb::Client::with_uri_str(server.uri()).await.unwrap();
    let db = client.database("admin");
    let err = db
        .run_command(doc! {"sleep": 1, "secs": 30, "lock": "none", "maxTimeMS": 50})
        .await
        .unwrap_err();
    match *err.kind {
        mongodb::error::ErrorKind::Command(ref e) => {
            assert_eq!((e.code, e.code_name.as_str()), (50, "MaxTimeMSExpired"))
        }
        ref other => panic!("expected a command error, got {other:?}"),
    }
    let mut session = client.start_session().await.unwrap();
    db.run_command(doc! {"ping": 1, "comment": "in a session"})
        .session(&mut session)
        .await
        .unwrap();
    drop(session);
    client.shutdown().await;
    // The driver ends its pooled session on the way out; nothing of it is an error.
    server.wait_for_log("\"endSessions\"", Duration::from_secs(5));
    let line = server.wait_for_log("in a session", Duration::from_secs(5));
    assert!(
        line.contains("\"lsid\""),
        "the session id is in the logged command: {line}"
    );
    let problems: Vec<serde_json::Value> = json_lines(&server.log_lines())
        .into_iter()
        .filter(|l| l["s"] == "E" || (l["s"] == "W" && l.get("tags").is_none()))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
}
