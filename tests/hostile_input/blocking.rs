//! Hostile input: heavy requests (large compressed frames) must not stall the async
//! workers that serve every other client, and compressors the server was not
//! configured with are refused before any decompression.

use super::common::*;
use bson::{doc, spec::BinarySubtype, Binary, Document};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ZLIB: u8 = 2;

/// An OP_COMPRESSED (zlib) ping that inflates to `inflated` bytes: a ping padded with a
/// binary field of zeros, so the frame itself stays small.
fn inflating_ping(request_id: i32, inflated: usize) -> Vec<u8> {
    let plain = op_msg(
        request_id,
        0,
        &doc! {
            "ping": 1,
            "pad": Binary { subtype: BinarySubtype::Generic, bytes: vec![0; inflated - 64] },
            "$db": "admin",
        },
    );
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&plain[16..]).unwrap();
    let data = enc.finish().unwrap();
    let mut body = OP_MSG.to_le_bytes().to_vec();
    body.extend_from_slice(&((plain.len() - 16) as i32).to_le_bytes());
    body.push(ZLIB);
    body.extend_from_slice(&data);
    frame(request_id, OP_COMPRESSED, &body)
}

/// The reply to a (possibly compressed) request: its responseTo and document.
fn read_any_reply(s: &mut TcpStream) -> (i32, Document) {
    let (_, response_to, op, body) = read_frame(s).expect("a reply");
    let body = match op {
        OP_MSG => body,
        OP_COMPRESSED => {
            assert_eq!(
                body[8], ZLIB,
                "the reply travels with the request's compressor"
            );
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&body[9..]), &mut plain)
                .unwrap();
            plain
        }
        other => panic!("reply with opcode {other}"),
    };
    (response_to, parse_op_msg_reply(&body))
}

#[test]
fn pings_are_answered_while_other_connections_send_huge_compressed_frames() {
    // Each heavy frame inflates to 8 MB; 8 connections pipeline 3 each, so the server
    // has 24 of them to inflate and parse while one more client pings.
    const HEAVY_CONNECTIONS: usize = 8;
    const FRAMES_EACH: i32 = 3;
    const PINGS: i32 = 50;
    let total = HEAVY_CONNECTIONS * FRAMES_EACH as usize;
    let server = Ferrod::start(&[]);
    let heavy: Vec<u8> = (1..=FRAMES_EACH)
        .flat_map(|id| inflating_ping(id, 8 << 20))
        .collect();
    let answered = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..HEAVY_CONNECTIONS)
        .map(|_| {
            let mut s = server.raw();
            s.write_all(&heavy).unwrap();
            let answered = answered.clone();
            std::thread::spawn(move || {
                for id in 1..=FRAMES_EACH {
                    let (response_to, reply) = read_any_reply(&mut s);
                    assert_eq!(response_to, id, "heavy replies in request order");
                    assert_eq!(reply.get_f64("ok"), Ok(1.0), "{reply}");
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Once the server is working through the heavy frames, another client pings.
    eventually(Duration::from_secs(120), "a first heavy reply", || {
        (answered.load(Ordering::SeqCst) > 0).then_some(())
    });
    let mut probe = server.raw();
    for id in 1..=PINGS {
        probe.write_all(&op_msg(1000 + id, 0, &ping_doc())).unwrap();
        let (_, response_to, op, body) = read_frame(&mut probe).expect("a ping reply");
        assert_eq!((response_to, op), (1000 + id, OP_MSG));
        assert_eq!(parse_op_msg_reply(&body).get_f64("ok"), Ok(1.0));
    }
    // The ordering that shows the workers were free: all the pings were answered while
    // heavy frames were still waiting. With the inflating done on the async workers, the
    // pings queue behind it and the heavy frames finish first.
    let done_when_pings_finished = answered.load(Ordering::SeqCst);
    assert!(
        done_when_pings_finished < total,
        "all {total} heavy frames were answered before {PINGS} pings were"
    );
    for reader in readers {
        reader.join().expect("every heavy frame answered");
    }
    assert_eq!(answered.load(Ordering::SeqCst), total);
    assert_eq!(
        op_msg_roundtrip(&mut probe, &ping_doc()).get_f64("ok"),
        Ok(1.0)
    );
}
