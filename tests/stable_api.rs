//! The Stable API parameters (issue 11, item 8): apiVersion, apiStrict and
//! apiDeprecationErrors as mongod checks them; tests/interop.rs checks PyMongo's strict
//! client.

mod common;

use bson::{doc, Document};
use common::Ferrod;

fn code(reply: &Document) -> Option<i32> {
    reply.get_i32("code").ok()
}

#[test]
fn strict_refuses_commands_outside_version_1() {
    let server = Ferrod::start(&[]);
    for name in ["connPoolStats", "serverStatus", "buildInfo", "isMaster"] {
        let r =
            server.command(doc! {name: 1, "apiVersion": "1", "apiStrict": true, "$db": "admin"});
        assert_eq!(code(&r), Some(323), "{name}: {r}");
        assert_eq!(r.get_str("codeName").unwrap(), "APIStrictError");
        assert!(
            r.get_str("errmsg").unwrap().starts_with(&format!(
                "Provided apiStrict:true, but the command {name} is not in API Version 1."
            )),
            "{r}"
        );
    }
    for name in ["hello", "ping", "listDatabases"] {
        let r =
            server.command(doc! {name: 1, "apiVersion": "1", "apiStrict": true, "$db": "admin"});
        assert_eq!(r.get_f64("ok").unwrap(), 1.0, "{name} is in version 1: {r}");
    }
    // Without apiStrict, any command runs under version 1.
    let r = server.command(doc! {"connPoolStats": 1, "apiVersion": "1", "$db": "admin"});
    assert_eq!(r.get_f64("ok").unwrap(), 1.0, "{r}");
    let r = server.command(
        doc! {"connPoolStats": 1, "apiVersion": "1", "apiStrict": false, "apiDeprecationErrors": true, "$db": "admin"},
    );
    assert_eq!(r.get_f64("ok").unwrap(), 1.0, "{r}");
}

#[test]
fn version_errors_are_mongods() {
    let server = Ferrod::start(&[]);
    let r = server.command(doc! {"ping": 1, "apiVersion": "3", "$db": "admin"});
    assert_eq!(code(&r), Some(322), "{r}");
    assert_eq!(r.get_str("errmsg").unwrap(), "API version must be \"1\"");
    let r = server.command(doc! {"ping": 1, "apiVersion": "2", "$db": "admin"});
    assert_eq!(code(&r), Some(322), "{r}");
    let r = server.command(doc! {"ping": 1, "apiStrict": true, "$db": "admin"});
    assert_eq!(code(&r), Some(4886600), "{r}");
    let r = server.command(doc! {"ping": 1, "apiDeprecationErrors": false, "$db": "admin"});
    assert_eq!(code(&r), Some(4886600), "{r}");
    let r = server.command(doc! {"ping": 1, "apiVersion": 1, "$db": "admin"});
    assert_eq!(code(&r), Some(14), "{r}");
    assert_eq!(
        r.get_str("errmsg").unwrap(),
        "BSON field 'APIParametersFromClient.apiVersion' is the wrong type 'int', expected type 'string'"
    );
    let r = server.command(doc! {"ping": 1, "apiVersion": "1", "apiStrict": 1, "$db": "admin"});
    assert_eq!(code(&r), Some(14), "{r}");
    let r = server.command(doc! {
        "aggregate": 1, "pipeline": [{"$currentOp": {}}], "cursor": {},
        "apiVersion": "1", "apiStrict": true, "$db": "admin",
    });
    assert_eq!(code(&r), Some(323), "{r}");
    assert_eq!(
        r.get_str("errmsg").unwrap(),
        "$currentOp is not allowed with 'apiStrict: true' in API Version 1"
    );
}
