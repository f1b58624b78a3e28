//! OP_COMPRESSED over raw bytes: replies come back with the request's compressor (the
//! handshake excepted), and serverStatus.network.compression counts the bytes.
//!
//! The test compresses and decompresses with the compression crates directly, not with
//! ferrod's own code, so a fault there cannot hide itself.

mod common;

use bson::{doc, Bson, Document};
use common::{op_msg, parse_op_msg_reply, read_frame, Ferrod, OP_COMPRESSED, OP_MSG};
use std::io::{Read, Write};
use std::net::TcpStream;

/// (name, compressorId) as MongoDB numbers them.
const COMPRESSORS: [(&str, u8); 3] = [("snappy", 1), ("zlib", 2), ("zstd", 3)];

fn compress(id: u8, data: &[u8]) -> Vec<u8> {
    match id {
        0 => data.to_vec(),
        1 => snap::raw::Encoder::new().compress_vec(data).unwrap(),
        2 => {
            let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        }
        3 => zstd::bulk::compress(data, 3).unwrap(),
        _ => unreachable!("compressor id {id}"),
    }
}

fn decompress(id: u8, data: &[u8]) -> Vec<u8> {
    match id {
        1 => snap::raw::Decoder::new().decompress_vec(data).unwrap(),
        2 => {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        3 => zstd::stream::decode_all(data).unwrap(),
        _ => unreachable!("compressor id {id}"),
    }
}

/// Byte counts of one OP_COMPRESSED frame: (uncompressed body, compressed payload).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sizes {
    uncompressed: i64,
    compressed: i64,
}

impl std::ops::AddAssign for Sizes {
    fn add_assign(&mut self, other: Sizes) {
        self.uncompressed += other.uncompressed;
        self.compressed += other.compressed;
    }
}

/// Wraps a whole OP_MSG frame (header included) as OP_COMPRESSED with compressor `id`.
fn op_compressed(message: &[u8], id: u8) -> (Vec<u8>, Sizes) {
    let original_body = &message[16..];
    let compressed = compress(id, original_body);
    let mut body = Vec::new();
    body.extend_from_slice(&OP_MSG.to_le_bytes());
    body.extend_from_slice(&(original_body.len() as i32).to_le_bytes());
    body.push(id);
    body.extend_from_slice(&compressed);
    let request_id = i32::from_le_bytes(message[4..8].try_into().unwrap());
    let sizes = Sizes {
        uncompressed: original_body.len() as i64,
        compressed: compressed.len() as i64,
    };
    (common::frame(request_id, OP_COMPRESSED, &body), sizes)
}

/// How a reply travelled: its compressor id (None for plain OP_MSG), its body and sizes.
struct Reply {
    compressor: Option<u8>,
    body: Document,
    sizes: Sizes,
}

fn read_reply(s: &mut TcpStream, request_id: i32) -> Reply {
    let (_, response_to, op, body) = read_frame(s).expect("a reply");
    assert_eq!(response_to, request_id, "responseTo must be the requestID");
    match op {
        OP_MSG => Reply {
            compressor: None,
            body: parse_op_msg_reply(&body),
            sizes: Sizes::default(),
        },
        OP_COMPRESSED => {
            let original_op = i32::from_le_bytes(body[0..4].try_into().unwrap());
            let size = i32::from_le_bytes(body[4..8].try_into().unwrap());
            let id = body[8];
            assert_eq!(original_op, OP_MSG, "a compressed reply wraps an OP_MSG");
            let original = decompress(id, &body[9..]);
            assert_eq!(
                original.len(),
                size as usize,
                "uncompressedSize must match the data"
            );
            Reply {
                compressor: Some(id),
                body: parse_op_msg_reply(&original),
                sizes: Sizes {
                    uncompressed: size as i64,
                    compressed: (body.len() - 9) as i64,
                },
            }
        }
        other => panic!("unexpected reply opcode {other}"),
    }
}

/// Sends `cmd` compressed with `id` and returns the reply and the request's sizes.
fn compressed_roundtrip(
    s: &mut TcpStream,
    request_id: i32,
    id: u8,
    cmd: &Document,
) -> (Reply, Sizes) {
    let (frame, sent) = op_compressed(&op_msg(request_id, 0, cmd), id);
    s.write_all(&frame).unwrap();
    (read_reply(s, request_id), sent)
}

/// Opens a connection and negotiates `name` through hello, as drivers do.
fn negotiated(server: &Ferrod, name: &str) -> TcpStream {
    let mut s = server.raw();
    let reply = common::op_msg_roundtrip(
        &mut s,
        &doc! {"hello": 1, "compression": [name], "$db": "admin"},
    );
    assert_eq!(
        reply.get_array("compression").unwrap(),
        &vec![Bson::String(name.into())],
        "hello must agree on {name}"
    );
    s
}

fn assert_ok(reply: &Document, what: &str) {
    assert_eq!(reply.get_f64("ok"), Ok(1.0), "{what}: {reply}");
}

#[test]
fn compressed_commands_are_answered_with_the_same_compressor() {
    let server = Ferrod::start(&[]);
    for (name, id) in COMPRESSORS {
        let mut s = negotiated(&server, name);
        for (n, cmd) in [
            doc! {"ping": 1, "$db": "admin"},
            doc! {"buildInfo": 1, "$db": "admin"},
            doc! {"serverStatus": 1, "$db": "admin"},
        ]
        .iter()
        .enumerate()
        {
            let (reply, _) = compressed_roundtrip(&mut s, 100 + n as i32, id, cmd);
            assert_eq!(reply.compressor, Some(id), "{name}: reply to {cmd}");
            assert_ok(&reply.body, name);
        }
        // An error reply is compressed too.
        let (reply, _) =
            compressed_roundtrip(&mut s, 200, id, &doc! {"noSuchCmd": 1, "$db": "admin"});
        assert_eq!(reply.compressor, Some(id), "{name}: error reply");
        assert_eq!(reply.body.get_i32("code"), Ok(59));
    }
}

#[test]
fn handshake_replies_are_never_compressed() {
    let server = Ferrod::start(&[]);
    for (name, id) in COMPRESSORS {
        let mut s = negotiated(&server, name);
        for (n, hello) in ["hello", "isMaster", "ismaster"].into_iter().enumerate() {
            let (reply, _) =
                compressed_roundtrip(&mut s, 300 + n as i32, id, &doc! {hello: 1, "$db": "admin"});
            assert_eq!(
                reply.compressor, None,
                "{name}: {hello} reply must be plain OP_MSG"
            );
            assert_ok(&reply.body, hello);
        }
        // The connection still compresses everything else.
        let (reply, _) = compressed_roundtrip(&mut s, 400, id, &common::ping_doc());
        assert_eq!(reply.compressor, Some(id), "{name}: ping after hello");
    }
}

/// serverStatus.network.compression.<name>: what went through the compressor (replies)
/// and the decompressor (requests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counters {
    compressed: Sizes,
    decompressed: Sizes,
}

fn compression_section(server: &Ferrod) -> Option<Document> {
    let status = server.command(doc! {"serverStatus": 1, "$db": "admin"});
    assert_ok(&status, "serverStatus");
    let network = status.get_document("network").unwrap();
    network.get_document("compression").ok().cloned()
}

fn counters(section: &Document, name: &str) -> Counters {
    let entry = section
        .get_document(name)
        .unwrap_or_else(|_| panic!("no {name} in {section}"));
    // mongod reports these as 64-bit integers.
    let pair = |which: &str| {
        let d = entry.get_document(which).unwrap();
        (
            d.get_i64("bytesIn").unwrap(),
            d.get_i64("bytesOut").unwrap(),
        )
    };
    let (compressor_in, compressor_out) = pair("compressor");
    let (decompressor_in, decompressor_out) = pair("decompressor");
    Counters {
        // The compressor takes uncompressed bytes in; the decompressor gives them out.
        compressed: Sizes {
            uncompressed: compressor_in,
            compressed: compressor_out,
        },
        decompressed: Sizes {
            uncompressed: decompressor_out,
            compressed: decompressor_in,
        },
    }
}

#[test]
fn server_status_counts_the_bytes_each_compressor_handled() {
    let server = Ferrod::start(&[]);
    for (name, id) in COMPRESSORS {
        let before = compression_section(&server).expect("compression section");
        let mut s = negotiated(&server, name);
        let mut sent = Sizes::default();
        let mut received = Sizes::default();
        for n in 0..5 {
            let (reply, request) = compressed_roundtrip(&mut s, 500 + n, id, &common::ping_doc());
            assert_eq!(reply.compressor, Some(id));
            sent += request;
            received += reply.sizes;
        }
        // A compressed hello is decompressed (and counted) but answered uncompressed.
        let (reply, request) =
            compressed_roundtrip(&mut s, 600, id, &doc! {"hello": 1, "$db": "admin"});
        assert_eq!(reply.compressor, None);
        sent += request;

        let after = compression_section(&server).expect("compression section");
        let (was, now) = (counters(&before, name), counters(&after, name));
        assert_eq!(
            now.decompressed.compressed - was.decompressed.compressed,
            sent.compressed,
            "{name}: decompressor.bytesIn counts the compressed request bytes"
        );
        assert_eq!(
            now.decompressed.uncompressed - was.decompressed.uncompressed,
            sent.uncompressed,
            "{name}: decompressor.bytesOut counts what they expanded to"
        );
        assert_eq!(
            now.compressed.uncompressed - was.compressed.uncompressed,
            received.uncompressed,
            "{name}: compressor.bytesIn counts the reply bytes before compression"
        );
        assert_eq!(
            now.compressed.compressed - was.compressed.compressed,
            received.compressed,
            "{name}: compressor.bytesOut counts the compressed reply bytes"
        );
        for (other, _) in COMPRESSORS.iter().filter(|(n, _)| *n != name) {
            assert_eq!(
                counters(&before, other),
                counters(&after, other),
                "{other} must not move while only {name} is used"
            );
        }
    }
}

#[test]
fn compression_section_lists_the_configured_compressors() {
    let default = Ferrod::start(&[]);
    let section = compression_section(&default).expect("compression section by default");
    let names: Vec<&str> = section.keys().map(String::as_str).collect();
    assert_eq!(names, ["snappy", "zstd", "zlib"], "mongod's default order");
    for name in names {
        assert_eq!(
            counters(&section, name),
            Counters::default(),
            "{name} starts at 0"
        );
    }

    let zlib_only = Ferrod::start(&["--networkMessageCompressors", "zlib"]);
    let section = compression_section(&zlib_only).expect("compression section");
    assert_eq!(section.keys().collect::<Vec<_>>(), ["zlib"]);

    let disabled = Ferrod::start(&["--networkMessageCompressors", "disabled"]);
    assert_eq!(
        compression_section(&disabled),
        None,
        "mongod leaves the section out when no compressor is configured"
    );
}

/// mongod registers only the configured compressors (`net.compression.compressors`)
/// and ends the connection when a frame names any other, negotiated or not
/// (MessageCompressorManager::decompressMessage: InternalError, "Compression algorithm
/// specified in message is not available").
#[test]
fn compressors_that_are_not_configured_end_the_connection() {
    const NOT_AVAILABLE: &str = "Compression algorithm specified in message is not available";
    let ping = doc! {"ping": 1, "$db": "admin"};
    let snappy_only = Ferrod::start(&["--networkMessageCompressors", "snappy"]);
    let mut bystander = snappy_only.raw();
    // zlib and zstd are refused even after a hello that asked for them (which agrees on
    // nothing); so is noop, which mongod registers only when it is configured.
    for (name, id) in [("zlib", 2), ("zstd", 3), ("noop", 0)] {
        let mut s = snappy_only.raw();
        let reply = common::op_msg_roundtrip(
            &mut s,
            &doc! {"hello": 1, "compression": [name], "$db": "admin"},
        );
        assert!(reply.get("compression").is_none(), "{name}: {reply}");
        let (frame, _) = op_compressed(&op_msg(7, 0, &ping), id);
        s.write_all(&frame).unwrap();
        assert!(
            common::is_closed(&mut s),
            "{name} frame must end the connection"
        );
        assert_ok(
            &common::op_msg_roundtrip(&mut bystander, &ping),
            "another client",
        );
    }
    snappy_only.wait_for_log(NOT_AVAILABLE, std::time::Duration::from_secs(10));
    // The configured one works, negotiated or not.
    for mut s in [negotiated(&snappy_only, "snappy"), snappy_only.raw()] {
        let (reply, _) = compressed_roundtrip(&mut s, 8, 1, &ping);
        assert_eq!(reply.compressor, Some(1));
        assert_ok(&reply.body, "snappy");
    }

    let disabled = Ferrod::start(&["--networkMessageCompressors", "disabled"]);
    for (_, id) in COMPRESSORS {
        let mut s = disabled.raw();
        let (frame, _) = op_compressed(&op_msg(9, 0, &ping), id);
        s.write_all(&frame).unwrap();
        assert!(
            common::is_closed(&mut s),
            "compressor {id} with compression disabled"
        );
    }
    disabled.wait_for_log(NOT_AVAILABLE, std::time::Duration::from_secs(10));
    assert_ok(&disabled.command(ping), "after the refused frames");
}
