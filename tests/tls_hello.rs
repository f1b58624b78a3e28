//! A TLS ClientHello sent to a ferrod without TLS ends the connection at once, with
//! mongod's SSLHandshakeFailed log line (issue 11, item 9), instead of being read as the
//! header of a 33 MB message that never comes.

mod common;

use common::{is_closed, Ferrod};
use std::io::Write;
use std::time::Duration;

/// The start of a TLS 1.2 ClientHello record, as a client sends it first.
fn client_hello() -> Vec<u8> {
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.extend((0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(11))); // random
    hello.extend([0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    hello
}

#[test]
fn tls_client_hello_is_refused_at_once_with_a_log_line() {
    let server = Ferrod::start(&[]);
    let mut s = server.raw();
    s.write_all(&client_hello()).unwrap();
    // The whole ClientHello is 17 bytes past its header here, far short of the frame its
    // first bytes would announce: only the TLS check can close the connection.
    assert!(is_closed(&mut s), "the server closes the connection");
    let line = server.wait_for_log(
        "server is started without SSL support",
        Duration::from_secs(5),
    );
    assert!(line.contains("\"id\":22988"), "{line}");
    assert!(line.contains("SSLHandshakeFailed"), "{line}");
    // A plain client on the same server is unaffected.
    let reply = server.command(common::ping_doc());
    assert_eq!(reply.get_f64("ok").unwrap(), 1.0);
}

#[test]
fn a_frame_whose_length_looks_like_a_tls_record_is_still_a_frame() {
    // A 790-byte OP_MSG starts with 16 03 00 00, like a TLS record; its responseTo is 0.
    let server = Ferrod::start(&[]);
    let pad = "x".repeat(790 - 16 - 5 - 4 - 1 - 7 - 1 - 13 - 12 - 6);
    let cmd = bson::doc! {"ping": 1, "$db": "admin", "comment": pad};
    let frame = common::op_msg(0, 0, &cmd);
    assert_eq!(&frame[..4], &[0x16, 0x03, 0x00, 0x00], "{}", frame.len());
    let mut s = server.raw();
    s.write_all(&frame).unwrap();
    let (_, _, _, body) = common::read_frame(&mut s).unwrap();
    let reply = common::parse_op_msg_reply(&body);
    assert_eq!(reply.get_f64("ok").unwrap(), 1.0, "{reply}");
}
