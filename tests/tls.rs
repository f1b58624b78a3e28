//! TLS on the listener (issue 14): mongod's tlsMode values against TLS and plain
//! clients, the CA file and client certificates, and the errors a client sees for a wrong
//! CA, a wrong host name and an expired certificate. Certificates come from
//! `ferrod cert-gen` and its library, not openssl.

mod common;

use bson::doc;
use common::{op_msg, Ferrod, FERROD};
use ferrod::tls::certgen::{Ca, Leaf};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `ferrod cert-gen` into a fresh directory: ca.pem, server.pem, client.pem.
fn cert_gen() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(
        {
            let mut c = Command::new(FERROD);
            c.arg("cert-gen")
                .arg("--out")
                .arg(dir.path())
                .args(["--host", "db1.example"]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(out.success, "{}", out.text);
    for f in ["ca.pem", "server.pem", "client.pem"] {
        assert!(dir.path().join(f).exists(), "{f}: {}", out.text);
    }
    dir
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

fn tls_args<'a>(mode: &'a str, dir: &'a Path) -> Vec<String> {
    vec![
        "--tlsMode".into(),
        mode.into(),
        "--tlsCertificateKeyFile".into(),
        path(dir, "server.pem"),
    ]
}

fn start(args: &[String]) -> Ferrod {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ferrod::start(&args)
}

/// A driver client over TLS to 127.0.0.1 with `extra` URI options.
async fn tls_client(server: &Ferrod, ca: &str, extra: &str) -> mongodb::Client {
    let uri = format!(
        "mongodb://127.0.0.1:{}/?directConnection=true&tls=true&tlsCAFile={ca}{extra}",
        server.port
    );
    let mut options = mongodb::options::ClientOptions::parse(&uri).await.unwrap();
    options.server_selection_timeout = Some(Duration::from_secs(3));
    mongodb::Client::with_options(options).unwrap()
}

async fn tls_ping(server: &Ferrod, ca: &str, extra: &str) -> Result<(), String> {
    let client = tls_client(server, ca, extra).await;
    let reply = client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(reply.get_f64("ok").unwrap(), 1.0);
    Ok(())
}

/// A plain OP_MSG ping on a raw socket: Ok when answered, Err when the server closed.
fn plain_ping(server: &Ferrod) -> Result<(), ()> {
    let mut s = server.raw();
    s.write_all(&op_msg(1, 0, &common::ping_doc())).unwrap();
    match common::read_frame(&mut s) {
        Ok((_, _, _, body)) => {
            assert_eq!(
                common::parse_op_msg_reply(&body).get_f64("ok").unwrap(),
                1.0
            );
            Ok(())
        }
        Err(_) => Err(()),
    }
}

#[tokio::test]
async fn driver_connects_over_tls_with_the_ca_file_and_is_counted() {
    let certs = cert_gen();
    let server = start(&tls_args("requireTLS", certs.path()));
    tls_ping(&server, &path(certs.path(), "ca.pem"), "")
        .await
        .unwrap();
    let client = tls_client(&server, &path(certs.path(), "ca.pem"), "").await;
    let status = client
        .database("admin")
        .run_command(doc! {"serverStatus": 1})
        .await
        .unwrap();
    let ts = status.get_document("transportSecurity").unwrap();
    assert!(ts.get_i64("1.3").unwrap() >= 1, "{ts}");
    assert!(server
        .log_lines()
        .iter()
        .any(|l| l.contains("Waiting for connections") && l.contains("\"ssl\":\"on\"")));
}

#[tokio::test]
async fn every_tls_mode_against_tls_and_plain_clients() {
    let certs = cert_gen();
    let ca = path(certs.path(), "ca.pem");
    // disabled: plain only; a TLS client is refused with mongod's log line.
    let server = start(&[]);
    assert!(plain_ping(&server).is_ok());
    assert!(tls_ping(&server, &ca, "").await.is_err());
    server.wait_for_log(
        "server is started without SSL support",
        Duration::from_secs(5),
    );
    // allowTLS and preferTLS: both on one port; preferTLS logs the plain connection.
    for mode in ["allowTLS", "preferTLS"] {
        let server = start(&tls_args(mode, certs.path()));
        assert!(plain_ping(&server).is_ok(), "{mode}");
        tls_ping(&server, &ca, "").await.unwrap();
        if mode == "preferTLS" {
            let line = server.wait_for_log("is not using SSL", Duration::from_secs(5));
            assert!(line.contains("\"id\":23838"), "{line}");
        }
    }
    // requireTLS: TLS only; a plain client's connection is closed.
    let server = start(&tls_args("requireTLS", certs.path()));
    assert!(plain_ping(&server).is_err());
    let line = server.wait_for_log(
        "The server is configured to only allow SSL connections",
        Duration::from_secs(5),
    );
    assert!(line.contains("SSLHandshakeFailed"), "{line}");
    tls_ping(&server, &ca, "").await.unwrap();
}

#[tokio::test]
async fn a_plain_first_message_that_starts_like_tls_stays_plain_under_allow_tls() {
    // A 790-byte OP_MSG starts with 16 03 00 00; its responseTo of 0 makes it plain.
    let certs = cert_gen();
    let server = start(&tls_args("allowTLS", certs.path()));
    let pad = "x".repeat(790 - 16 - 5 - 4 - 1 - 7 - 1 - 13 - 12 - 6);
    let frame = op_msg(0, 0, &doc! {"ping": 1, "$db": "admin", "comment": pad});
    assert_eq!(&frame[..4], &[0x16, 0x03, 0x00, 0x00]);
    let mut s = server.raw();
    s.write_all(&frame).unwrap();
    let (_, _, _, body) = common::read_frame(&mut s).unwrap();
    assert_eq!(
        common::parse_op_msg_reply(&body).get_f64("ok").unwrap(),
        1.0
    );
}

#[tokio::test]
async fn a_wrong_ca_fails_in_the_driver_and_is_logged_by_the_server() {
    let certs = cert_gen();
    let other = cert_gen();
    let server = start(&tls_args("requireTLS", certs.path()));
    let err = tls_ping(&server, &path(other.path(), "ca.pem"), "")
        .await
        .unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");
    let line = server.wait_for_log("SSLHandshakeFailed", Duration::from_secs(5));
    assert!(line.contains("\"id\":22988"), "{line}");
}

/// A server certificate from `ca` with only `names`, written to `dir/name`.
fn issue(ca: &Ca, dir: &Path, name: &str, names: &[&str], expired: bool) -> PathBuf {
    let pem = ca
        .issue(&Leaf {
            common_name: names[0].into(),
            organizational_unit: "ferrod-members".into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            expired,
            serial: None,
        })
        .unwrap();
    let file = dir.join(name);
    std::fs::write(&file, pem).unwrap();
    file
}

#[tokio::test]
async fn a_wrong_host_name_fails_unless_the_client_lets_it_pass() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA").unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let cert = issue(&ca, dir.path(), "server.pem", &["db.example"], false);
    let server = start(&[
        "--tlsMode".into(),
        "requireTLS".into(),
        "--tlsCertificateKeyFile".into(),
        cert.display().to_string(),
    ]);
    let ca_file = path(dir.path(), "ca.pem");
    let err = tls_ping(&server, &ca_file, "").await.unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
    // The Rust driver's rustls backend has no tlsAllowInvalidHostnames (only its openssl
    // one does); tlsAllowInvalidCertificates also lets the name pass.
    tls_ping(&server, &ca_file, "&tlsAllowInvalidCertificates=true")
        .await
        .unwrap();
}

#[tokio::test]
async fn an_expired_server_certificate_fails_in_the_driver() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA").unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let cert = issue(&ca, dir.path(), "server.pem", &["127.0.0.1"], true);
    let server = start(&[
        "--tlsMode".into(),
        "requireTLS".into(),
        "--tlsCertificateKeyFile".into(),
        cert.display().to_string(),
    ]);
    let err = tls_ping(&server, &path(dir.path(), "ca.pem"), "")
        .await
        .unwrap_err();
    assert!(err.contains("certificate expired"), "{err}");
    server.wait_for_log("SSLHandshakeFailed", Duration::from_secs(5));
}

#[tokio::test]
async fn with_a_ca_file_a_client_certificate_is_required() {
    let certs = cert_gen();
    let ca = path(certs.path(), "ca.pem");
    let mut args = tls_args("requireTLS", certs.path());
    args.extend(["--tlsCAFile".into(), ca.clone()]);
    let server = start(&args);
    assert!(tls_ping(&server, &ca, "").await.is_err());
    let line = server.wait_for_log("SSLHandshakeFailed", Duration::from_secs(5));
    assert!(line.to_lowercase().contains("certificate"), "{line}");
    let client_cert = format!(
        "&tlsCertificateKeyFile={}",
        path(certs.path(), "client.pem")
    );
    tls_ping(&server, &ca, &client_cert).await.unwrap();
    // A client certificate from another CA is refused.
    let other = cert_gen();
    let wrong = format!(
        "&tlsCertificateKeyFile={}",
        path(other.path(), "client.pem")
    );
    assert!(tls_ping(&server, &ca, &wrong).await.is_err());

    // tlsAllowConnectionsWithoutCertificates: a certificate is asked for, not required.
    args.push("--tlsAllowConnectionsWithoutCertificates".into());
    let server = start(&args);
    tls_ping(&server, &ca, "").await.unwrap();
    tls_ping(&server, &ca, &client_cert).await.unwrap();
}

#[tokio::test]
async fn tls_versions_follow_disabled_protocols() {
    let certs = cert_gen();
    let mut args = tls_args("requireTLS", certs.path());
    args.extend(["--tlsDisabledProtocols".into(), "TLS1_3".into()]);
    let server = start(&args);
    let client = tls_client(&server, &path(certs.path(), "ca.pem"), "").await;
    let status = client
        .database("admin")
        .run_command(doc! {"serverStatus": 1})
        .await
        .unwrap();
    let ts = status.get_document("transportSecurity").unwrap();
    assert!(ts.get_i64("1.2").unwrap() >= 1, "{ts}");
    assert_eq!(ts.get_i64("1.3").unwrap(), 0, "{ts}");
}

fn startup_failure(args: &[&str]) -> (bool, String) {
    let dbpath = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(FERROD);
    cmd.args(["--port", "0", "--logFormat", "json", "--dbpath"])
        .arg(dbpath.path())
        .args(args);
    let out = common::run(cmd, Duration::from_secs(30));
    (out.success, out.text)
}

#[test]
fn bad_tls_startup_options_stop_the_server_with_a_clear_message() {
    let (ok, text) = startup_failure(&["--tlsMode", "requireTLS"]);
    assert!(!ok && text.contains("need tlsCertificateKeyFile"), "{text}");
    let (ok, text) = startup_failure(&[
        "--tlsMode",
        "requireTLS",
        "--tlsCertificateKeyFile",
        "/nonexistent/server.pem",
    ]);
    assert!(!ok && text.contains("Unable to initialize TLS"), "{text}");
    assert!(text.contains("/nonexistent/server.pem"), "{text}");

    // An encrypted key is refused by name, not misread.
    let dir = tempfile::tempdir().unwrap();
    let enc = dir.path().join("enc.pem");
    std::fs::write(
        &enc,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let enc = enc.display().to_string();
    let (ok, text) = startup_failure(&[
        "--tlsMode",
        "requireTLS",
        "--tlsCertificateKeyFile",
        &enc,
        "--tlsCertificateKeyFilePassword",
        "secret",
    ]);
    assert!(!ok && text.contains("encrypted"), "{text}");

    // A CA file that is not one.
    let certs = cert_gen();
    let bad_ca = path(certs.path(), "server.pem");
    let _ = std::fs::write(certs.path().join("empty.pem"), "");
    let (ok, text) = startup_failure(&[
        "--tlsMode",
        "requireTLS",
        "--tlsCertificateKeyFile",
        &bad_ca,
        "--tlsCAFile",
        &path(certs.path(), "empty.pem"),
    ]);
    assert!(!ok && text.contains("CA file"), "{text}");
}

#[tokio::test]
async fn rotate_certificates_switches_new_handshakes_and_keeps_old_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (ca1, ca2) = (Ca::new("first CA").unwrap(), Ca::new("second CA").unwrap());
    let ca1_file = dir.path().join("ca1.pem");
    let ca2_file = dir.path().join("ca2.pem");
    std::fs::write(&ca1_file, ca1.pem()).unwrap();
    std::fs::write(&ca2_file, ca2.pem()).unwrap();
    let (ca1_file, ca2_file) = (
        ca1_file.display().to_string(),
        ca2_file.display().to_string(),
    );
    let cert = issue(&ca1, dir.path(), "server.pem", &["127.0.0.1"], false);
    let server = start(&[
        "--tlsMode".into(),
        "requireTLS".into(),
        "--tlsCertificateKeyFile".into(),
        cert.display().to_string(),
    ]);
    // One pooled connection, made with the first certificate.
    let old = tls_client(&server, &ca1_file, "&maxPoolSize=1").await;
    let admin = old.database("admin");
    admin.run_command(doc! {"ping": 1}).await.unwrap();

    issue(&ca2, dir.path(), "server.pem", &["127.0.0.1"], false);
    let reply = admin
        .run_command(doc! {"rotateCertificates": 1, "message": "to the second CA"})
        .await
        .unwrap();
    assert_eq!(reply.get_f64("ok").unwrap(), 1.0);
    let line = server.wait_for_log(
        "Certificate rotation completed successfully",
        Duration::from_secs(5),
    );
    assert!(line.contains("to the second CA"), "{line}");
    // New handshakes use the new certificate; the old connection keeps working.
    tls_ping(&server, &ca2_file, "").await.unwrap();
    let err = tls_ping(&server, &ca1_file, "").await.unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");
    admin.run_command(doc! {"ping": 1}).await.unwrap();

    // Bad files: the command fails with mongod's code, the current material stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    let err = admin
        .run_command(doc! {"rotateCertificates": 1})
        .await
        .unwrap_err();
    match *err.kind {
        mongodb::error::ErrorKind::Command(ref e) => {
            assert_eq!(e.code, 140, "{e:?}");
            assert_eq!(e.code_name, "InvalidSSLConfiguration");
        }
        ref other => panic!("expected a command error, got {other:?}"),
    }
    tls_ping(&server, &ca2_file, "").await.unwrap();
}

#[test]
fn rotate_certificates_without_tls_succeeds_and_checks_its_message() {
    let server = Ferrod::start(&[]);
    let reply = server.command(doc! {"rotateCertificates": 1, "message": "m", "$db": "admin"});
    assert_eq!(reply.get_f64("ok").unwrap(), 1.0, "{reply}");
    let reply = server.command(doc! {"rotateCertificates": 1, "message": 1, "$db": "admin"});
    assert_eq!(reply.get_i32("code").unwrap(), 14, "{reply}");
    let reply = server.command(doc! {"rotateCertificates": 1, "$db": "test"});
    assert_eq!(reply.get_i32("code").unwrap(), 13, "{reply}");
}

#[tokio::test]
async fn a_certificate_in_the_crl_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA").unwrap();
    let write = |name: &str, text: String| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        file.display().to_string()
    };
    let ca_file = write("ca.pem", ca.pem());
    let client = |serial| Leaf {
        common_name: "client".into(),
        organizational_unit: "ferrod-clients".into(),
        serial: Some(serial),
        ..Leaf::default()
    };
    let revoked = write("revoked.pem", ca.issue(&client(77)).unwrap());
    let good = write("good.pem", ca.issue(&client(78)).unwrap());
    let crl = write("crl.pem", ca.crl(&[77]).unwrap());
    let cert = issue(&ca, dir.path(), "server.pem", &["127.0.0.1"], false);
    let server = start(&[
        "--tlsMode".into(),
        "requireTLS".into(),
        "--tlsCertificateKeyFile".into(),
        cert.display().to_string(),
        "--tlsCAFile".into(),
        ca_file.clone(),
        "--tlsCRLFile".into(),
        crl,
    ]);
    tls_ping(&server, &ca_file, &format!("&tlsCertificateKeyFile={good}"))
        .await
        .unwrap();
    assert!(tls_ping(
        &server,
        &ca_file,
        &format!("&tlsCertificateKeyFile={revoked}")
    )
    .await
    .is_err());
    let line = server.wait_for_log("Revoked", Duration::from_secs(5));
    assert!(line.contains("SSLHandshakeFailed"), "{line}");
}

/// A driver client over TLS with a client certificate, logged in with MONGODB-X509.
async fn x509_client(server: &Ferrod, ca: &str, cert: &str) -> mongodb::Client {
    let uri = format!(
        "mongodb://127.0.0.1:{}/?directConnection=true&tls=true&tlsCAFile={ca}&tlsCertificateKeyFile={cert}",
        server.port
    );
    let mut options = mongodb::options::ClientOptions::parse(&uri).await.unwrap();
    options.server_selection_timeout = Some(Duration::from_secs(3));
    options.credential = Some(
        mongodb::options::Credential::builder()
            .mechanism(mongodb::options::AuthMechanism::MongoDbX509)
            .build(),
    );
    mongodb::Client::with_options(options).unwrap()
}

#[tokio::test]
async fn mongodb_x509_logs_in_the_external_user_named_by_the_certificate_subject() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA").unwrap();
    let write = |name: &str, text: String| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        file.display().to_string()
    };
    let ca_file = write("ca.pem", ca.pem());
    let client_leaf = |cn: &str| Leaf {
        common_name: cn.into(),
        organizational_unit: "ferrod-clients".into(),
        ..Leaf::default()
    };
    let alice = write("alice.pem", ca.issue(&client_leaf("alice")).unwrap());
    let bob = write("bob.pem", ca.issue(&client_leaf("bob")).unwrap());
    let cert = issue(&ca, dir.path(), "server.pem", &["127.0.0.1"], false);
    let server = start(&[
        "--auth".into(),
        "--tlsMode".into(),
        "requireTLS".into(),
        "--tlsCertificateKeyFile".into(),
        cert.display().to_string(),
        "--tlsCAFile".into(),
        ca_file.clone(),
        "--tlsAllowConnectionsWithoutCertificates".into(),
    ]);
    // The first user, through the localhost exception: alice's subject in $external.
    let subject = "CN=alice,OU=ferrod-clients,O=ferrod-dev";
    let setup = tls_client(
        &server,
        &ca_file,
        &format!("&tlsCertificateKeyFile={alice}"),
    )
    .await;
    setup
        .database("$external")
        .run_command(doc! {"createUser": subject, "roles": [{"role": "root", "db": "admin"}]})
        .await
        .unwrap();

    let alice_client = x509_client(&server, &ca_file, &alice).await;
    let status = alice_client
        .database("admin")
        .run_command(doc! {"connectionStatus": 1})
        .await
        .unwrap();
    let users = status
        .get_document("authInfo")
        .unwrap()
        .get_array("authenticatedUsers")
        .unwrap();
    assert_eq!(
        users[0].as_document().unwrap(),
        &doc! {"user": subject, "db": "$external"},
        "{status}"
    );
    alice_client
        .database("admin")
        .run_command(doc! {"listDatabases": 1})
        .await
        .unwrap();
    let line = server.wait_for_log("MONGODB-X509", Duration::from_secs(5));
    assert!(line.contains("Successfully authenticated"), "{line}");

    // bob's certificate is good but names no user; no certificate names nobody.
    let err = x509_client(&server, &ca_file, &bob)
        .await
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Authentication failed"), "{err}");
    server.wait_for_log("Could not find user", Duration::from_secs(5));
    let anonymous = tls_client(&server, &ca_file, "").await;
    let err = anonymous
        .database("$external")
        .run_command(doc! {"authenticate": 1, "mechanism": "MONGODB-X509"})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Authentication failed"), "{err}");
    server.wait_for_log("No verified subject name available", Duration::from_secs(5));
}
