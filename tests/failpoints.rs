//! Fail points (issue 11): configureFailPoint's modes and reply, failCommand's options
//! and waitForFailPoint, over raw connections; tests/interop.rs drives them through the
//! drivers.

mod common;

use bson::{doc, Bson, Document};
use common::{is_closed, op_msg_roundtrip, Ferrod};
use std::time::Duration;

fn test_server() -> Ferrod {
    Ferrod::start(&["--setParameter", "enableTestCommands=1"])
}

fn configure(server: &Ferrod, mode: Bson, data: Document) -> Document {
    let reply = server.command(doc! {
        "configureFailPoint": "failCommand", "mode": mode, "data": data, "$db": "admin",
    });
    assert_eq!(reply.get_f64("ok").unwrap(), 1.0, "{reply}");
    reply
}

fn list_databases() -> Document {
    doc! {"listDatabases": 1, "nameOnly": true, "$db": "admin"}
}

fn code(reply: &Document) -> Option<i32> {
    reply.get_i32("code").ok()
}

#[test]
fn configure_fail_point_exists_only_with_test_commands() {
    let server = Ferrod::start(&[]);
    let reply = server.command(doc! {
        "configureFailPoint": "failCommand", "mode": "alwaysOn", "$db": "admin",
    });
    assert_eq!(code(&reply), Some(59), "{reply}");
    assert_eq!(
        reply.get_str("errmsg").unwrap(),
        "no such command: 'configureFailPoint'"
    );
}

#[test]
fn times_fires_that_often_and_count_reports_entries() {
    let server = test_server();
    let reply = configure(
        &server,
        doc! {"times": 2}.into(),
        doc! {"failCommands": ["listDatabases"], "errorCode": 91},
    );
    assert_eq!(reply.get_i32("count").unwrap(), 0);
    let mut s = server.raw();
    for _ in 0..2 {
        let r = op_msg_roundtrip(&mut s, &list_databases());
        assert_eq!(code(&r), Some(91), "{r}");
        assert_eq!(r.get_str("codeName").unwrap(), "ShutdownInProgress");
        assert_eq!(
            r.get_str("errmsg").unwrap(),
            "Failing command via 'failCommand' failpoint"
        );
    }
    let r = op_msg_roundtrip(&mut s, &list_databases());
    assert_eq!(r.get_f64("ok").unwrap(), 1.0, "third run passes: {r}");
    // A command the data does not name is untouched and uses no pass.
    let reply = configure(&server, "off".into(), doc! {});
    assert_eq!(reply.get_i32("count").unwrap(), 2, "{reply}");
}

#[test]
fn skip_and_probability_modes() {
    let server = test_server();
    let mut s = server.raw();
    configure(
        &server,
        doc! {"skip": 1}.into(),
        doc! {"failCommands": ["listDatabases"], "errorCode": 2},
    );
    let oks: Vec<bool> = (0..3)
        .map(|_| code(&op_msg_roundtrip(&mut s, &list_databases())).is_none())
        .collect();
    assert_eq!(oks, [true, false, false]);

    configure(
        &server,
        doc! {"activationProbability": 0.0}.into(),
        doc! {"failCommands": ["listDatabases"], "errorCode": 2},
    );
    assert!((0..5).all(|_| code(&op_msg_roundtrip(&mut s, &list_databases())).is_none()));
    configure(
        &server,
        doc! {"activationProbability": 1.0}.into(),
        doc! {"failCommands": ["listDatabases"], "errorCode": 2},
    );
    assert!((0..5).all(|_| code(&op_msg_roundtrip(&mut s, &list_databases())) == Some(2)));
}

#[test]
fn mode_and_name_errors_are_mongods() {
    let server = test_server();
    let run = |cmd: Document| server.command(cmd);
    let r = run(doc! {"configureFailPoint": "noSuchFailPoint", "mode": "off", "$db": "admin"});
    assert_eq!(code(&r), Some(157), "{r}");
    assert_eq!(r.get_str("errmsg").unwrap(), "noSuchFailPoint not found");
    let r = run(doc! {"configureFailPoint": "failCommand", "$db": "admin"});
    assert_eq!(code(&r), Some(20), "{r}");
    let r = run(doc! {"configureFailPoint": "failCommand", "mode": {"times": -1}, "$db": "admin"});
    assert_eq!(code(&r), Some(2), "{r}");
    let r = run(doc! {"configureFailPoint": "failCommand", "mode": "off", "$db": "test"});
    assert_eq!(code(&r), Some(13), "admin only: {r}");
}

#[test]
fn error_labels_and_unlisted_codes() {
    let server = test_server();
    configure(
        &server,
        "alwaysOn".into(),
        doc! {"failCommands": ["listDatabases"], "errorCode": 12345,
        "errorLabels": ["RetryableWriteError", "Custom"]},
    );
    let r = server.command(list_databases());
    assert_eq!(code(&r), Some(12345), "{r}");
    assert_eq!(r.get_str("codeName").unwrap(), "Location12345");
    let labels = r.get_array("errorLabels").unwrap();
    assert_eq!(
        labels,
        &vec![Bson::from("RetryableWriteError"), Bson::from("Custom")]
    );
    // configureFailPoint itself is never failed, even when listed.
    configure(
        &server,
        "alwaysOn".into(),
        doc! {"failCommands": ["configureFailPoint"], "errorCode": 2},
    );
    configure(&server, "off".into(), doc! {});
}

#[test]
fn close_connection_hangs_up_and_logs_why() {
    let server = test_server();
    configure(
        &server,
        doc! {"times": 1}.into(),
        doc! {"failCommands": ["listDatabases"], "closeConnection": true},
    );
    let mut s = server.raw();
    s.write_all_msg(&list_databases());
    assert!(
        is_closed(&mut s),
        "the connection is closed without a reply"
    );
    server.wait_for_log(
        "Failing command via 'failCommand' failpoint: closing connection",
        Duration::from_secs(5),
    );
    let r = server.command(list_databases());
    assert_eq!(r.get_f64("ok").unwrap(), 1.0, "{r}");
}

#[test]
fn hello_and_its_aliases_can_be_failed() {
    let server = test_server();
    configure(
        &server,
        doc! {"times": 1}.into(),
        doc! {"failCommands": ["isMaster"], "errorCode": 10107},
    );
    let r = server.command(doc! {"hello": 1, "$db": "admin"});
    assert_eq!(code(&r), Some(10107), "hello is isMaster's command: {r}");
}

#[test]
fn app_name_limits_the_fail_point_to_that_application() {
    let server = test_server();
    configure(
        &server,
        "alwaysOn".into(),
        doc! {"failCommands": ["ping"], "errorCode": 2, "appName": "victim"},
    );
    let handshake = |app: &str| {
        let mut s = server.raw();
        let r = op_msg_roundtrip(
            &mut s,
            &doc! {"hello": 1, "client": {"application": {"name": app},
            "driver": {"name": "t", "version": "1"}, "os": {"type": "Linux"}}, "$db": "admin"},
        );
        assert_eq!(r.get_f64("ok").unwrap(), 1.0);
        s
    };
    let mut bystander = handshake("bystander");
    let mut victim = handshake("victim");
    // A bare ping, as the fast lane would answer it: the dispatcher must still see it.
    let r = op_msg_roundtrip(&mut bystander, &doc! {"ping": 1, "$db": "admin"});
    assert_eq!(r.get_f64("ok").unwrap(), 1.0, "{r}");
    let r = op_msg_roundtrip(&mut victim, &doc! {"ping": 1, "$db": "admin"});
    assert_eq!(code(&r), Some(2), "{r}");
}

#[test]
fn block_connection_delays_the_command_and_wait_for_fail_point_sees_it() {
    let server = test_server();
    configure(
        &server,
        doc! {"times": 1}.into(),
        doc! {"failCommands": ["listDatabases"], "blockConnection": true, "blockTimeMS": 60_000},
    );
    let mut blocked = server.raw();
    blocked.write_all_msg(&list_databases());
    let r = server.command(doc! {
        "waitForFailPoint": "failCommand", "timesEntered": 1, "maxTimeMS": 30_000, "$db": "admin",
    });
    assert_eq!(r.get_f64("ok").unwrap(), 1.0, "{r}");
    server.wait_for_log(
        "Blocking command via 'failCommand' failpoint",
        Duration::from_secs(5),
    );
    // The blocked command is an operation like any other: currentOp shows it, killOp ends it.
    let ops = server.command(doc! {"currentOp": 1, "$db": "admin"});
    let opid = ops
        .get_array("inprog")
        .unwrap()
        .iter()
        .filter_map(|o| o.as_document())
        .find(|o| {
            o.get_document("command")
                .is_ok_and(|c| c.contains_key("listDatabases"))
        })
        .map(|o| o.get("opid").unwrap().clone())
        .expect("the blocked listDatabases in currentOp");
    server.command(doc! {"killOp": 1, "op": opid, "$db": "admin"});
    let (_, _, _, body) = common::read_frame(&mut blocked).unwrap();
    let r = common::parse_op_msg_reply(&body);
    assert_eq!(code(&r), Some(11601), "{r}");

    // Not yet entered twice: waitForFailPoint runs out its maxTimeMS.
    let r = server.command(doc! {
        "waitForFailPoint": "failCommand", "timesEntered": 2, "maxTimeMS": 50, "$db": "admin",
    });
    assert_eq!(code(&r), Some(50), "{r}");
    let r =
        server.command(doc! {"waitForFailPoint": "failCommand", "timesEntered": 1, "$db": "admin"});
    assert_eq!(code(&r), Some(40414), "maxTimeMS is required: {r}");
}

#[test]
fn write_concern_error_on_a_write() {
    let server = test_server();
    configure(
        &server,
        doc! {"times": 1}.into(),
        doc! {"failCommands": ["createUser"],
        "writeConcernError": {"code": 91, "errmsg": "Replication is being shut down"},
        "errorLabels": ["RetryableWriteError"]},
    );
    let r = server.command(doc! {"createUser": "u", "pwd": "p", "roles": [], "$db": "admin"});
    assert_eq!(r.get_f64("ok").unwrap(), 1.0, "{r}");
    assert_eq!(
        r.get_document("writeConcernError")
            .unwrap()
            .get_i32("code")
            .unwrap(),
        91
    );
    assert_eq!(r.get_array("errorLabels").unwrap().len(), 1);
}

trait SendMsg {
    fn write_all_msg(&mut self, cmd: &Document);
}

impl SendMsg for std::net::TcpStream {
    fn write_all_msg(&mut self, cmd: &Document) {
        use std::io::Write;
        self.write_all(&common::op_msg(42, 0, cmd)).unwrap();
    }
}
