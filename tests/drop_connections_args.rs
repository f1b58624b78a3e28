//! SPEC section 4's argument table for dropConnections, every row, through the official
//! Rust driver.

mod common;
mod peer;

use common::Ferrod;
use mongodb::bson::{doc, Bson, Document};
use mongodb::Client;
use peer::Peer;

async fn client(server: &Ferrod) -> Client {
    Client::with_uri_str(server.uri()).await.unwrap()
}

/// Runs `cmd` on `db` and returns (code, codeName, message) of the error it must give.
async fn error(client: &Client, db: &str, cmd: Document) -> (i32, String, String) {
    let err = client
        .database(db)
        .run_command(cmd.clone())
        .await
        .expect_err(&format!("{cmd} should fail"));
    match *err.kind {
        mongodb::error::ErrorKind::Command(ref e) => {
            (e.code, e.code_name.clone(), e.message.clone())
        }
        ref other => panic!("{cmd}: expected a command error, got {other:?}"),
    }
}

async fn succeeds(client: &Client, cmd: Document) -> Document {
    let reply = client
        .database("admin")
        .run_command(cmd.clone())
        .await
        .unwrap_or_else(|e| panic!("{cmd} failed: {e}"));
    assert_eq!(reply.get("ok"), Some(&Bson::Double(1.0)), "{reply}");
    assert!(reply.get_document("$clusterTime").is_ok(), "{reply}");
    assert!(reply.get_timestamp("operationTime").is_ok(), "{reply}");
    reply
}

#[tokio::test]
async fn only_against_admin_and_before_any_parsing() {
    let server = Ferrod::start(&[]);
    let c = client(&server).await;
    let (code, name, msg) = error(
        &c,
        "test",
        doc! {"dropConnections": 1, "hostAndPort": ["a:1"]},
    )
    .await;
    assert_eq!((code, name.as_str()), (13, "Unauthorized"));
    assert_eq!(
        msg,
        "dropConnections may only be run against the admin database."
    );
    // The database check comes before the arguments are read.
    let (code, ..) = error(&c, "test", doc! {"dropConnections": 1}).await;
    assert_eq!(code, 13);
}

#[tokio::test]
async fn host_and_port_missing_or_null_is_40414() {
    let server = Ferrod::start(&[]);
    let c = client(&server).await;
    for cmd in [
        doc! {"dropConnections": 1},
        doc! {"dropConnections": 1, "hostAndPort": Bson::Null},
    ] {
        let (code, name, msg) = error(&c, "admin", cmd).await;
        assert_eq!((code, name.as_str()), (40414, "IDLFailedToParse"));
        assert_eq!(
            msg,
            "BSON field 'dropConnections.hostAndPort' is missing but a required field"
        );
    }
}

#[tokio::test]
async fn host_and_port_not_an_array_is_14() {
    let server = Ferrod::start(&[]);
    let c = client(&server).await;
    for (value, type_name) in [
        (Bson::String("a:1".into()), "string"),
        (Bson::Document(doc! {"0": "a:1"}), "object"),
        (Bson::Int32(1), "int"),
        (Bson::Boolean(true), "bool"),
    ] {
        let (code, name, msg) = error(
            &c,
            "admin",
            doc! {"dropConnections": 1, "hostAndPort": value},
        )
        .await;
        assert_eq!((code, name.as_str()), (14, "TypeMismatch"));
        assert_eq!(
            msg,
            format!("BSON field 'dropConnections.hostAndPort' is the wrong type '{type_name}', expected type 'array'")
        );
    }
}

#[tokio::test]
async fn an_element_that_is_not_a_string_is_14_with_its_index() {
    let server = Ferrod::start(&[]);
    let c = client(&server).await;
    let cases = [
        (vec![Bson::Int32(5)], "dropConnections.hostAndPort.0", "int"),
        (
            vec!["a:1".into(), Bson::Document(doc! {"host": "a"})],
            "dropConnections.hostAndPort.1",
            "object",
        ),
        (
            vec![Bson::Null, "a:1".into(), Bson::Double(1.5)],
            "dropConnections.hostAndPort.2",
            "double",
        ),
    ];
    for (hosts, path, type_name) in cases {
        let (code, _, msg) = error(
            &c,
            "admin",
            doc! {"dropConnections": 1, "hostAndPort": hosts},
        )
        .await;
        assert_eq!(code, 14);
        assert_eq!(
            msg,
            format!("BSON field '{path}' is the wrong type '{type_name}', expected type 'string'")
        );
    }
}

#[tokio::test]
async fn null_elements_are_skipped() {
    let server = Ferrod::start(&[]);
    let c = client(&server).await;
    succeeds(
        &c,
        doc! {"dropConnections": 1, "hostAndPort": [Bson::Null, "a:1", Bson::Null]},
    )
    .await;
}

#[tokio::test]
async fn unknown_fields_are_40415_but_generic_arguments_are_fine() {
    let server = Ferrod::start(&[]);
    let c = client(&server).await;
    let (code, name, msg) = error(
        &c,
        "admin",
        doc! {"dropConnections": 1, "hostAndPort": [], "force": true},
    )
    .await;
    assert_eq!((code, name.as_str()), (40415, "IDLUnknownField"));
    assert_eq!(
        msg,
        "BSON field 'dropConnections.force' is an unknown field."
    );
    // Fields are read in order: a bad hostAndPort before the unknown field wins.
    let (code, ..) = error(
        &c,
        "admin",
        doc! {"dropConnections": 1, "hostAndPort": 1, "force": true},
    )
    .await;
    assert_eq!(code, 14);
    for comment in [
        Bson::String("why".into()),
        Bson::Int32(7),
        Bson::Document(doc! {"a": [1]}),
    ] {
        succeeds(
            &c,
            doc! {"dropConnections": 1, "hostAndPort": [], "comment": comment, "maxTimeMS": 1000},
        )
        .await;
    }
}

#[tokio::test]
async fn malformed_host_strings_are_9() {
    let server = Ferrod::start(&[]);
    let c = client(&server).await;
    for bad in [
        ":27017",
        "host:0",
        "host:65536",
        "host:port",
        "host:",
        "a:b:c",
        "[::1",
        "::1]:5",
        "x[::1]:5",
    ] {
        let (code, name, _) = error(
            &c,
            "admin",
            doc! {"dropConnections": 1, "hostAndPort": [bad]},
        )
        .await;
        assert_eq!((code, name.as_str()), (9, "FailedToParse"), "{bad}");
    }
}

#[tokio::test]
async fn empty_lists_unknown_hosts_and_portless_hosts_do_nothing() {
    let server = Ferrod::start(&["--setParameter", "enableTestCommands=1"]);
    let peer = Peer::start();
    let c = client(&server).await;
    let admin = c.database("admin");
    admin
        .run_command(doc! {"_ferrodPoolCheckout": &peer.host})
        .await
        .unwrap();
    succeeds(&c, doc! {"dropConnections": 1, "hostAndPort": []}).await;
    succeeds(
        &c,
        doc! {"dropConnections": 1, "hostAndPort": ["nosuchhost:1", "[::1]:1"]},
    )
    .await;
    // Without an explicit port the string names no pool: silently ignored.
    succeeds(
        &c,
        doc! {"dropConnections": 1, "hostAndPort": ["127.0.0.1", "[::1]"]},
    )
    .await;
    let stats = admin.run_command(doc! {"connPoolStats": 1}).await.unwrap();
    let host = stats
        .get_document("hosts")
        .unwrap()
        .get_document(&peer.host)
        .unwrap();
    assert_eq!(host.get_i32("available").unwrap(), 1, "{stats}");
    assert_eq!(peer.open(), 1);
    // With the port it does drop.
    succeeds(&c, doc! {"dropConnections": 1, "hostAndPort": [&peer.host]}).await;
    let stats = admin.run_command(doc! {"connPoolStats": 1}).await.unwrap();
    let host = stats
        .get_document("hosts")
        .unwrap()
        .get_document(&peer.host)
        .unwrap();
    assert_eq!(host.get_i32("available").unwrap(), 0, "{stats}");
}
