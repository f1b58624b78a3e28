//! The official Rust driver against a real ferrod.

mod common;

use common::Ferrod;
use mongodb::bson::doc;
use mongodb::options::{ClientOptions, Compressor};
use mongodb::Client;

async fn client(server: &Ferrod) -> Client {
    Client::with_uri_str(server.uri()).await.unwrap()
}

#[tokio::test]
async fn rust_driver_runs_ping_buildinfo_hello_and_serverstatus() {
    let server = Ferrod::start(&[]);
    let db = client(&server).await.database("admin");
    let ping = db.run_command(doc! {"ping": 1}).await.unwrap();
    assert_eq!(ping.get_f64("ok").unwrap(), 1.0);
    assert!(ping.get_document("$clusterTime").is_ok());
    assert!(ping.get_timestamp("operationTime").is_ok());
    let build = db.run_command(doc! {"buildInfo": 1}).await.unwrap();
    assert_eq!(build.get_str("version").unwrap(), "7.0.0");
    let hello = db.run_command(doc! {"hello": 1}).await.unwrap();
    assert!(hello.get_bool("isWritablePrimary").unwrap());
    assert_eq!(hello.get_i32("maxWireVersion").unwrap(), 21);
    let status = db.run_command(doc! {"serverStatus": 1}).await.unwrap();
    let connections = status.get_document("connections").unwrap();
    assert!(connections.get_i32("current").unwrap() >= 1);
    assert!(
        status
            .get_document("network")
            .unwrap()
            .get_i64("numRequests")
            .unwrap()
            >= 3
    );
}

#[tokio::test]
async fn rust_driver_sees_unknown_command_as_59() {
    let server = Ferrod::start(&[]);
    let db = client(&server).await.database("admin");
    let err = db.run_command(doc! {"noSuchThing": 1}).await.unwrap_err();
    match *err.kind {
        mongodb::error::ErrorKind::Command(ref e) => {
            assert_eq!(e.code, 59);
            assert_eq!(e.code_name, "CommandNotFound");
            assert_eq!(e.message, "no such command: 'noSuchThing'");
        }
        other => panic!("expected a command error, got {other:?}"),
    }
}

#[tokio::test]
async fn rust_driver_compresses_with_each_compressor() {
    let server = Ferrod::start(&[]);
    for compressor in [
        Compressor::Zlib { level: None },
        Compressor::Zstd { level: None },
        Compressor::Snappy,
    ] {
        let mut options = ClientOptions::parse(server.uri()).await.unwrap();
        options.compressors = Some(vec![compressor.clone()]);
        let client = Client::with_options(options).unwrap();
        let reply = client
            .database("admin")
            .run_command(doc! {"ping": 1})
            .await
            .unwrap();
        assert_eq!(reply.get_f64("ok").unwrap(), 1.0, "{compressor:?}");
    }
}
