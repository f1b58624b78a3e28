//! Malformed frames and commands sent as raw bytes to a real ferrod.
//!
//! Each row of [`cases`] names one bad input and the outcome mongod 7.0 gives it: an
//! error reply with an exact code, a closed connection, or silence. After every row, a
//! client connection opened before the first row must still be served, and the server
//! must still be running.

mod common;

use bson::{doc, Document};
use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// The request id of every bad frame; error replies must answer it.
const BAD_ID: i32 = 7;
/// The request id of the ping that follows a frame on the same connection.
const FOLLOW_UP_ID: i32 = 99;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// An OP_MSG error reply with this code; the connection stays usable.
    Error(i32),
    /// An OP_REPLY with `$err` and this code; the connection stays usable.
    LegacyError(i32),
    /// An ordinary `ok: 1` reply.
    Accepted,
    /// The server hangs up.
    Closed,
    /// No reply at all; the next request on the same connection is answered.
    Silent,
    /// The client sends the bytes and disconnects; the server must shrug it off.
    ClientHangsUp,
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, bytes: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        bytes,
        expect,
    }
}

// ---- frame builders ---------------------------------------------------------

fn ping() -> Document {
    ping_doc()
}

/// A frame whose length field says `length`, whatever follows.
fn header(length: i32, op_code: i32) -> Vec<u8> {
    let mut out = Vec::new();
    for field in [length, BAD_ID, 0, op_code] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out
}

/// An OP_MSG from flags and already-encoded sections.
fn msg(flags: u32, sections: &[u8]) -> Vec<u8> {
    let mut body = flags.to_le_bytes().to_vec();
    body.extend_from_slice(sections);
    frame(BAD_ID, OP_MSG, &body)
}

/// A kind-0 section.
fn body(doc: &Document) -> Vec<u8> {
    body_raw(&bson_bytes(doc))
}

fn body_raw(bson: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(bson);
    out
}

/// A kind-1 section with the size computed from its contents.
fn sequence(identifier: &str, docs: &[Document]) -> Vec<u8> {
    let mut payload = identifier.as_bytes().to_vec();
    payload.push(0);
    for d in docs {
        payload.extend(bson_bytes(d));
    }
    sequence_with_size((payload.len() + 4) as i32, &payload)
}

fn sequence_with_size(size: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// An OP_MSG with the checksumPresent flag and a correct (or, with `corrupt`, wrong) CRC-32C.
fn msg_with_checksum(sections: &[u8], corrupt: bool) -> Vec<u8> {
    let mut out = msg(1, sections);
    let len = (out.len() + 4) as i32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    let mut crc = crc32c::crc32c(&out);
    if corrupt {
        crc ^= 1;
    }
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A raw BSON document from element bytes: length prefix and terminator added.
fn raw_doc(elements: &[u8]) -> Vec<u8> {
    let mut out = ((elements.len() + 5) as i32).to_le_bytes().to_vec();
    out.extend_from_slice(elements);
    out.push(0);
    out
}

/// The elements of `{ping: 1, $db: "admin"}`, then `extra` elements.
fn ping_elements(extra: &[u8]) -> Vec<u8> {
    let mut out = vec![0x10];
    out.extend_from_slice(b"ping\0");
    out.extend_from_slice(&1i32.to_le_bytes());
    out.push(0x02);
    out.extend_from_slice(b"$db\0");
    out.extend_from_slice(&6i32.to_le_bytes());
    out.extend_from_slice(b"admin\0");
    out.extend_from_slice(extra);
    out
}

/// A string element `name: <bytes>` with the given declared length.
fn string_element(name: &str, declared_len: i32, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x02];
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(&declared_len.to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

/// A JavaScript-code-with-scope element with the given code bytes and an empty scope.
fn code_with_scope_element(name: &str, code: &[u8]) -> Vec<u8> {
    let mut out = vec![0x0f];
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    let total = 4 + 4 + code.len() + 1 + 5;
    out.extend_from_slice(&(total as i32).to_le_bytes());
    out.extend_from_slice(&((code.len() + 1) as i32).to_le_bytes());
    out.extend_from_slice(code);
    out.push(0);
    out.extend(bson_bytes(&doc! {}));
    out
}

/// An element `name: {a: {a: ... {}}}` holding `levels` documents, written by hand (the
/// bson crate would recurse once per level).
fn deep_element(name: &str, levels: usize) -> Vec<u8> {
    let mut inner = raw_doc(&[]);
    for _ in 1..levels {
        let mut element = vec![0x03, b'a', 0];
        element.extend_from_slice(&inner);
        inner = raw_doc(&element);
    }
    let mut out = vec![0x03];
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(&inner);
    out
}

/// A binary element `name: BinData(0, <len zero bytes>)`.
fn binary_element(name: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0x05];
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(&(len as i32).to_le_bytes());
    out.push(0);
    out.resize(out.len() + len, 0);
    out
}

/// OP_COMPRESSED from its fields.
fn compressed(original_op: i32, uncompressed_size: i32, compressor: u8, data: &[u8]) -> Vec<u8> {
    let mut body = original_op.to_le_bytes().to_vec();
    body.extend_from_slice(&uncompressed_size.to_le_bytes());
    body.push(compressor);
    body.extend_from_slice(data);
    frame(BAD_ID, OP_COMPRESSED, &body)
}

/// The bytes after the header of an OP_MSG ping (what OP_COMPRESSED wraps).
fn ping_msg_body() -> Vec<u8> {
    msg(0, &body(&ping()))[16..].to_vec()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use flate2::{write::ZlibEncoder, Compression};
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// zstd of `len` zero bytes, written in chunks so the test never holds them all.
fn zstd_zeros(len: usize) -> Vec<u8> {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        enc.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    enc.finish().unwrap()
}

/// An OP_QUERY from its fields.
fn op_query(collection: &str, query: &Document) -> Vec<u8> {
    op_query_raw(collection, &bson_bytes(query))
}

/// An OP_QUERY whose query is given as bytes.
fn op_query_raw(collection: &str, query: &[u8]) -> Vec<u8> {
    let mut body = 0i32.to_le_bytes().to_vec();
    body.extend_from_slice(collection.as_bytes());
    body.push(0);
    body.extend_from_slice(&0i32.to_le_bytes());
    body.extend_from_slice(&(-1i32).to_le_bytes());
    body.extend_from_slice(query);
    frame(BAD_ID, OP_QUERY, &body)
}

// ---- the table --------------------------------------------------------------

fn cases() -> Vec<Case> {
    use Expect::*;
    let ping_frame = msg(0, &body(&ping()));
    let mut half_frame = ping_frame.clone();
    half_frame.truncate(ping_frame.len() / 2);
    let ping_body = ping_msg_body();
    let ping_size = ping_body.len() as i32;
    let seq_doc = doc! {"_id": 1};
    // Built by hand: the bson crate itself refuses to write something this large.
    let big_doc = raw_doc(&ping_elements(&binary_element("blob", 17 << 20)));

    vec![
        // -- framing
        case("length 0", header(0, OP_MSG), Closed),
        case("length 15", header(15, OP_MSG), Closed),
        case("negative length", header(-1, OP_MSG), Closed),
        case(
            "length 48000001, header only",
            header(48_000_001, OP_MSG),
            Closed,
        ),
        case(
            "length i32::MAX, header only",
            header(i32::MAX, OP_MSG),
            Closed,
        ),
        case(
            "length beyond the bytes sent, then close",
            concat(&[header(1000, OP_MSG), vec![0; 100]]),
            ClientHangsUp,
        ),
        case("half a frame, then close", half_frame, ClientHangsUp),
        // -- opcodes
        case("unknown opcode", frame(BAD_ID, 9999, &ping_body), Silent),
        case(
            "OP_REPLY sent by a client",
            frame(BAD_ID, OP_REPLY, &[0; 20]),
            Silent,
        ),
        case(
            "malformed OP_REPLY sent by a client",
            frame(BAD_ID, OP_REPLY, &[1, 2, 3]),
            Silent,
        ),
        // -- OP_MSG flags and sections
        case(
            "OP_MSG without flags",
            frame(BAD_ID, OP_MSG, &[]),
            Error(15),
        ),
        case("OP_MSG without sections", msg(0, &[]), Error(40587)),
        case(
            "unknown section kind",
            msg(0, &concat(&[body(&ping()), vec![3, 0, 0, 0, 0]])),
            Error(40432),
        ),
        case(
            "security token section (kind 2)",
            msg(0, &concat(&[vec![2], bson_bytes(&doc! {})])),
            Error(13),
        ),
        case(
            "kind-1 size overflow",
            msg(
                0,
                &concat(&[body(&ping()), sequence_with_size(1000, b"docs\0")]),
            ),
            Error(15),
        ),
        case(
            "kind-1 size underflow",
            msg(
                0,
                &concat(&[body(&ping()), sequence_with_size(2, b"docs\0")]),
            ),
            Error(15),
        ),
        case(
            "kind-1 negative size",
            msg(
                0,
                &concat(&[body(&ping()), sequence_with_size(-8, b"docs\0")]),
            ),
            Error(15),
        ),
        case(
            "kind-1 without identifier",
            msg(0, &concat(&[body(&ping()), sequence_with_size(4, b"")])),
            Error(15),
        ),
        case(
            "two kind-0 sections",
            msg(0, &concat(&[body(&ping()), body(&ping())])),
            Error(40430),
        ),
        case(
            "no kind-0 section",
            msg(0, &sequence("docs", std::slice::from_ref(&seq_doc))),
            Error(40587),
        ),
        case(
            "three document sequences",
            msg(
                0,
                &concat(&[
                    body(&ping()),
                    sequence("a", &[]),
                    sequence("b", &[]),
                    sequence("c", &[]),
                ]),
            ),
            Closed,
        ),
        case(
            "duplicate sequence identifier",
            msg(
                0,
                &concat(&[body(&ping()), sequence("a", &[]), sequence("a", &[])]),
            ),
            Error(40431),
        ),
        case(
            "sequence shadows a body field",
            msg(
                0,
                &concat(&[
                    sequence("ping", std::slice::from_ref(&seq_doc)),
                    body(&ping()),
                ]),
            ),
            Error(40433),
        ),
        case(
            "dotted sequence shadows a nested field",
            msg(
                0,
                &concat(&[
                    body(&doc! {"ping": 1, "$db": "admin", "a": {"b": 1}}),
                    sequence("a.b", &[]),
                ]),
            ),
            Error(40433),
        ),
        case(
            "document in a sequence is truncated",
            msg(
                0,
                &concat(&[body(&ping()), sequence_with_size(11, b"d\0\x20\0\0\0\0")]),
            ),
            Error(22),
        ),
        // -- BSON
        case(
            "bad BSON type byte",
            msg(0, &body_raw(&raw_doc(&ping_elements(b"\x55x\0")))),
            Error(22),
        ),
        case(
            "bad BSON string length",
            msg(
                0,
                &body_raw(&raw_doc(&ping_elements(&string_element(
                    "s", 100, b"abc\0",
                )))),
            ),
            Error(22),
        ),
        case(
            "BSON string without its NUL",
            msg(
                0,
                &body_raw(&raw_doc(&ping_elements(&string_element("s", 4, b"abcd")))),
            ),
            Error(22),
        ),
        case(
            "BSON document without terminator",
            msg(
                0,
                &body_raw(&{
                    let mut d = raw_doc(&ping_elements(&[]));
                    let n = d.len();
                    d[n - 1] = 7;
                    d
                }),
            ),
            Error(22),
        ),
        case(
            "BSON document length below 5",
            msg(0, &body_raw(&[4, 0, 0, 0])),
            Error(22),
        ),
        case(
            "truncated BSON",
            msg(0, &body_raw(&raw_doc(&ping_elements(&[]))[..20])),
            Error(22),
        ),
        case(
            "BSON document declared larger than the message",
            msg(
                0,
                &body_raw(&{
                    let mut d = raw_doc(&ping_elements(&[]));
                    d[..4].copy_from_slice(&(17i32 << 20).to_le_bytes());
                    d
                }),
            ),
            Error(22),
        ),
        case(
            "BSON document over 16 MiB",
            msg(0, &body_raw(&big_doc)),
            Error(10334),
        ),
        // -- nesting past maxBSONDepth (200): Overflow, as mongod's validateBSON says
        case(
            "ping nested 200 levels",
            msg(
                0,
                &body_raw(&raw_doc(&ping_elements(&deep_element("x", 200)))),
            ),
            Accepted,
        ),
        case(
            "ping nested 201 levels",
            msg(
                0,
                &body_raw(&raw_doc(&ping_elements(&deep_element("x", 201)))),
            ),
            Error(15),
        ),
        case(
            "ping nested 20,000 levels",
            msg(
                0,
                &body_raw(&raw_doc(&ping_elements(&deep_element("x", 20_000)))),
            ),
            Error(15),
        ),
        case(
            "a document sequence nested 300 levels",
            msg(
                0,
                &concat(&[body(&ping()), {
                    let deep = raw_doc(&deep_element("x", 300));
                    let mut seq = vec![1u8];
                    seq.extend_from_slice(&((4 + 2 + deep.len()) as i32).to_le_bytes());
                    seq.extend_from_slice(b"d\0");
                    seq.extend_from_slice(&deep);
                    seq
                }]),
            ),
            Error(15),
        ),
        case(
            "zlib-compressed ping nested 5,000 levels",
            {
                let plain = msg(
                    0,
                    &body_raw(&raw_doc(&ping_elements(&deep_element("x", 5_000)))),
                );
                compressed(OP_MSG, (plain.len() - 16) as i32, 2, &zlib(&plain[16..]))
            },
            Error(15),
        ),
        case(
            "OP_QUERY hello nested 5,000 levels",
            op_query_raw(
                "admin.$cmd",
                &raw_doc(&concat(&[
                    {
                        let mut hello = vec![0x10];
                        hello.extend_from_slice(b"hello\0");
                        hello.extend_from_slice(&1i32.to_le_bytes());
                        hello
                    },
                    deep_element("x", 5_000),
                ])),
            ),
            LegacyError(15),
        ),
        // bson 2.15 cannot decode this one lossily (the fuzz target's first find).
        case(
            "invalid UTF-8 in JavaScript code with scope",
            msg(
                0,
                &body_raw(&raw_doc(&ping_elements(&code_with_scope_element(
                    "c", &[0xff; 8],
                )))),
            ),
            Error(22),
        ),
        // mongod's default BSON validation is structural only: invalid UTF-8 passes.
        case(
            "invalid UTF-8 in a string",
            msg(
                0,
                &body_raw(&raw_doc(&ping_elements(&string_element(
                    "s",
                    3,
                    b"\xff\xfe\0",
                )))),
            ),
            Accepted,
        ),
        // -- checksum
        case(
            "valid checksum",
            msg_with_checksum(&body(&ping()), false),
            Accepted,
        ),
        case(
            "bad checksum",
            msg_with_checksum(&body(&ping()), true),
            Closed,
        ),
        case(
            "bad checksum and no body: the section error wins",
            msg_with_checksum(&sequence("a", &[]), true),
            Error(40587),
        ),
        case(
            "checksum flag without room for it",
            msg(1, &[]),
            Error(51252),
        ),
        case(
            "checksum flag with only the checksum",
            msg(1, &[0, 0, 0, 0]),
            Error(51252),
        ),
        // -- flag bits
        case(
            "unknown required flag bit 2",
            msg(1 << 2, &body(&ping())),
            Closed,
        ),
        case(
            "unknown required flag bit 15",
            msg(1 << 15, &body(&ping())),
            Closed,
        ),
        case(
            "exhaustAllowed (bit 16)",
            msg(1 << 16, &body(&ping())),
            Accepted,
        ),
        case(
            "optional high flag bit 24",
            msg(1 << 24, &body(&ping())),
            Accepted,
        ),
        case("moreToCome ping", msg(2, &body(&ping())), Silent),
        case(
            "moreToCome with an unparsable section",
            msg(2, &concat(&[body(&ping()), vec![9]])),
            Silent,
        ),
        // -- OP_COMPRESSED
        case(
            "OP_COMPRESSED header too short",
            frame(BAD_ID, OP_COMPRESSED, &[0; 5]),
            Closed,
        ),
        case(
            "unknown compressor id",
            compressed(OP_MSG, ping_size, 4, &ping_body),
            Closed,
        ),
        // Only the configured compressors (snappy, zstd, zlib by default) are available:
        // mongod ends the connection for noop, which it registers only when configured.
        case(
            "noop compressor, not configured",
            compressed(OP_MSG, ping_size, 0, &ping_body),
            Closed,
        ),
        case(
            "uncompressedSize larger than the data",
            compressed(OP_MSG, ping_size + 10, 2, &zlib(&ping_body)),
            Closed,
        ),
        case(
            "uncompressedSize smaller than the data",
            compressed(OP_MSG, ping_size - 1, 2, &zlib(&ping_body)),
            Closed,
        ),
        case(
            "negative uncompressedSize",
            compressed(OP_MSG, -5, 2, &zlib(&ping_body)),
            Closed,
        ),
        case(
            "uncompressedSize over 48000000",
            compressed(OP_MSG, 48_000_000, 3, &zstd_zeros(16)),
            Closed,
        ),
        case(
            "zlib bomb claiming 100 bytes",
            compressed(OP_MSG, 100, 2, &zlib(&vec![0u8; 16 << 20])),
            Closed,
        ),
        case(
            "zstd bomb claiming 47 MB",
            compressed(OP_MSG, 47_000_000, 3, &zstd_zeros(64 << 20)),
            Closed,
        ),
        case(
            "garbage snappy data",
            compressed(OP_MSG, ping_size, 1, &[0xff; 40]),
            Closed,
        ),
        case(
            "garbage zlib data",
            compressed(OP_MSG, ping_size, 2, &[0xff; 40]),
            Closed,
        ),
        case(
            "garbage zstd data",
            compressed(OP_MSG, ping_size, 3, &[0xff; 40]),
            Closed,
        ),
        case(
            "OP_COMPRESSED wrapping OP_COMPRESSED",
            {
                let inner = compressed(OP_MSG, ping_size, 2, &zlib(&ping_body))[16..].to_vec();
                compressed(OP_COMPRESSED, inner.len() as i32, 2, &zlib(&inner))
            },
            Silent,
        ),
        case(
            "OP_COMPRESSED wrapping an unknown opcode",
            compressed(9999, ping_size, 2, &zlib(&ping_body)),
            Silent,
        ),
        // The error reply travels compressed like the request (zlib here).
        case(
            "OP_COMPRESSED wrapping invalid OP_MSG sections",
            compressed(OP_MSG, 9, 2, &zlib(&[0, 0, 0, 0, 4, 0, 0, 0, 0])),
            Error(40432),
        ),
        // -- OP_QUERY (SPEC.md section 1: anything but the handshake gets 5739101)
        case(
            "OP_QUERY to a non-$cmd collection",
            op_query("test.coll", &doc! {"hello": 1}),
            LegacyError(5739101),
        ),
        case(
            "OP_QUERY with a non-handshake command",
            op_query("admin.$cmd", &doc! {"ping": 1}),
            LegacyError(5739101),
        ),
        case(
            "OP_QUERY with invalid BSON",
            frame(
                BAD_ID,
                OP_QUERY,
                &concat(&[
                    vec![0; 4],
                    b"admin.$cmd\0".to_vec(),
                    vec![0; 8],
                    vec![9, 0, 0, 0, 0x55, 0, 0, 0, 0],
                ]),
            ),
            LegacyError(22),
        ),
        case(
            "OP_QUERY without a query document",
            frame(
                BAD_ID,
                OP_QUERY,
                &concat(&[vec![0; 4], b"admin.$cmd\0".to_vec(), vec![0; 8]]),
            ),
            LegacyError(22),
        ),
        // -- commands
        case(
            "OP_MSG missing $db",
            msg(0, &body(&doc! {"ping": 1})),
            Error(40571),
        ),
        case(
            "$db of the wrong type",
            msg(0, &body(&doc! {"ping": 1, "$db": 1})),
            Error(13111),
        ),
        case(
            "empty command document",
            msg(0, &body(&doc! {})),
            Error(40571),
        ),
        case("only $db", msg(0, &body(&doc! {"$db": "admin"})), Error(59)),
        case(
            "unknown command name",
            msg(0, &body(&doc! {"noSuchCommand": 1, "$db": "admin"})),
            Error(59),
        ),
        case(
            "empty command name",
            msg(0, &body(&doc! {"": 1, "$db": "admin"})),
            Error(59),
        ),
    ]
}

// ---- running a row ----------------------------------------------------------

fn connect(server: &Ferrod) -> TcpStream {
    let s = server.raw();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one reply and returns (responseTo, opcode, document).
fn read_reply(s: &mut TcpStream) -> Result<(i32, i32, Document), String> {
    let (_, response_to, mut op, mut body) =
        read_frame(s).map_err(|e| format!("no reply ({e})"))?;
    if op == OP_COMPRESSED {
        // Only zlib is used by the rows that get compressed replies.
        if body.len() < 9 || body[8] != 2 {
            return Err("compressed reply not with zlib".into());
        }
        op = i32::from_le_bytes(body[0..4].try_into().unwrap());
        let mut plain = Vec::new();
        flate2::read::ZlibDecoder::new(&body[9..])
            .read_to_end(&mut plain)
            .map_err(|e| format!("reply does not inflate: {e}"))?;
        body = plain;
    }
    let doc = match op {
        OP_MSG => parse_op_msg_reply(&body),
        OP_REPLY => {
            let flags = i32::from_le_bytes(body[0..4].try_into().unwrap());
            let returned = i32::from_le_bytes(body[16..20].try_into().unwrap());
            if returned != 1 {
                return Err(format!("OP_REPLY with {returned} documents"));
            }
            let mut doc = Document::from_reader(&body[20..]).map_err(|e| e.to_string())?;
            doc.insert("__responseFlags", flags);
            doc
        }
        other => return Err(format!("reply with opcode {other}")),
    };
    Ok((response_to, op, doc))
}

/// The connection answers a ping, and that answer is the next thing it sends.
fn answers_ping(s: &mut TcpStream) -> Result<(), String> {
    s.write_all(&op_msg(FOLLOW_UP_ID, 0, &ping()))
        .map_err(|e| format!("cannot send ping: {e}"))?;
    let (response_to, op, doc) = read_reply(s)?;
    if response_to != FOLLOW_UP_ID || op != OP_MSG || doc.get_f64("ok") != Ok(1.0) {
        return Err(format!(
            "expected the ping's ok reply next, got responseTo {response_to}, opcode {op}: {doc}"
        ));
    }
    Ok(())
}

fn check_error_reply(s: &mut TcpStream, code: i32, legacy: bool) -> Result<(), String> {
    let (response_to, op, doc) = read_reply(s)?;
    if response_to != BAD_ID {
        return Err(format!("reply answers {response_to}, not {BAD_ID}"));
    }
    let expected_op = if legacy { OP_REPLY } else { OP_MSG };
    if op != expected_op {
        return Err(format!("reply opcode {op}, expected {expected_op}: {doc}"));
    }
    if doc.get_i32("code") != Ok(code) || doc.get_f64("ok") != Ok(0.0) {
        return Err(format!("expected error code {code}, got {doc}"));
    }
    if doc.get_str("codeName").is_err() || doc.get_str("errmsg").is_err() {
        return Err(format!("error reply lacks codeName or errmsg: {doc}"));
    }
    if legacy {
        if doc.get_str("$err").is_err() || doc.get_i32("__responseFlags") != Ok(2) {
            return Err(format!("legacy error needs $err and QueryFailure: {doc}"));
        }
    } else if doc.get_document("$clusterTime").is_err()
        || doc.get_timestamp("operationTime").is_err()
    {
        return Err(format!(
            "error reply lacks $clusterTime/operationTime: {doc}"
        ));
    }
    answers_ping(s).map_err(|e| format!("after the error reply: {e}"))
}

/// True once the server has closed the connection (EOF or reset), false on a timeout.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => return false,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    false
}

fn run_case(server: &Ferrod, case: &Case) -> Result<(), String> {
    let mut s = connect(server);
    let sent = s.write_all(&case.bytes);
    match case.expect {
        Expect::Closed => {
            // The server may hang up before all bytes are written; that is fine here.
            if !closed_by_server(&mut s) {
                return Err("the connection was not closed".into());
            }
            Ok(())
        }
        _ if sent.is_err() => Err(format!("sending failed: {}", sent.unwrap_err())),
        Expect::Error(code) => check_error_reply(&mut s, code, false),
        Expect::LegacyError(code) => check_error_reply(&mut s, code, true),
        Expect::Accepted => {
            let (response_to, op, doc) = read_reply(&mut s)?;
            if response_to != BAD_ID || op != OP_MSG || doc.get_f64("ok") != Ok(1.0) {
                return Err(format!("expected ok: 1, got {doc}"));
            }
            answers_ping(&mut s)
        }
        Expect::Silent => answers_ping(&mut s),
        Expect::ClientHangsUp => {
            s.shutdown(Shutdown::Both).map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}

#[test]
fn every_bad_input_gets_mongods_outcome_and_others_are_still_served() {
    let mut server = Ferrod::start(&[]);
    let mut bystander = connect(&server);
    answers_ping(&mut bystander).expect("bystander ping before the first row");

    let table = cases();
    assert!(table.len() >= 30, "the suite must hold at least 30 rows");
    let mut failures = Vec::new();
    for case in &table {
        if let Err(e) = run_case(&server, case) {
            failures.push(format!("{}: {e}", case.name));
        }
        if let Err(e) = answers_ping(&mut bystander) {
            failures.push(format!(
                "{}: the other client was not served: {e}",
                case.name
            ));
            bystander = connect(&server);
        }
        assert!(server.alive(), "ferrod died after row {:?}", case.name);
    }
    let panics: Vec<_> = server
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("panicked"))
        .collect();
    assert!(panics.is_empty(), "ferrod panicked: {panics:?}");
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn many_tiny_pipelined_pings_in_one_write_are_answered_in_order() {
    const COUNT: i32 = 20_000;
    let server = Ferrod::start(&[]);
    let mut s = connect(&server);
    let mut batch = Vec::new();
    for id in 1..=COUNT {
        batch.extend(op_msg(id, 0, &ping()));
    }
    // Write from another thread: the replies flow back while the requests still go out.
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&batch));
    for id in 1..=COUNT {
        let (_, response_to, op, body) = read_frame(&mut s).expect("a reply for every ping");
        assert_eq!((response_to, op), (id, OP_MSG), "replies out of order");
        assert_eq!(parse_op_msg_reply(&body).get_f64("ok"), Ok(1.0));
    }
    sender.join().unwrap().expect("the whole batch was sent");
}
