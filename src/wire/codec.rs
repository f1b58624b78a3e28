//! Whole messages to and from bytes, and the tokio-util codec built on that.

use super::op_msg::append_checksum;
use super::*;
use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// One frame the decoder took off the stream: its header, and the message or the reason
/// it could not be parsed (one whose disposition is not [`Disposition::Close`]).
#[derive(Debug)]
pub struct Incoming {
    pub header: Header,
    /// The raw OP_MSG `moreToCome` bit, readable even when the rest does not parse: mongod
    /// sends no reply to such a request, not even an error.
    pub more_to_come: bool,
    /// The compressor of an OP_COMPRESSED frame, so that an error reply to it can travel
    /// compressed the same way, as mongod's does.
    pub compressor: Option<Compressor>,
    pub message: Result<Message, ParseError>,
    /// Set when the frame was OP_COMPRESSED and decompressed cleanly.
    pub compressed: Option<CompressedSizes>,
    /// From [`WireCodec::decode_request`]: the raw OP_MSG body, when the decoded body
    /// leaves out [`super::ELIDED_ARGUMENTS`].
    pub raw_body: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A fault after which mongod closes the connection.
    #[error("{0}")]
    Fatal(ParseError),
}

/// Checks the length prefix of a frame: 16 .. 48,000,000 bytes.
pub fn check_length(length: i32) -> Result<usize, ParseError> {
    if (length as i64) < HEADER_LEN as i64 || length as usize > MAX_MESSAGE_SIZE {
        return Err(ParseError::BadLength(length as i64));
    }
    Ok(length as usize)
}

/// Parses one whole message (header included) whose length has been checked.
pub fn decode_message(frame: &[u8]) -> Result<Message, ParseError> {
    decode_message_eliding(frame, false).map(|(message, _)| message)
}

/// [`decode_message`]; with `elide`, an uncompressed OP_MSG body may leave out
/// [`super::ELIDED_ARGUMENTS`], and then its raw bytes come back too.
fn decode_message_eliding(
    frame: &[u8],
    elide: bool,
) -> Result<(Message, Option<Vec<u8>>), ParseError> {
    if frame.len() < HEADER_LEN {
        return Err(ParseError::BadLength(frame.len() as i64));
    }
    let header = Header::read(frame);
    if header.message_length as usize != frame.len() {
        return Err(ParseError::BadLength(header.message_length as i64));
    }
    let rest = &frame[HEADER_LEN..];
    let mut raw_body = None;
    let (compressor, body) = match header.op_code {
        OP_COMPRESSED => {
            let (compressor, body) = decode_compressed(&header, rest)?;
            (Some(compressor), body)
        }
        OP_MSG if elide => {
            let (msg, raw) = OpMsg::parse_request(&frame[..HEADER_LEN], rest, true)?;
            raw_body = raw;
            (None, Body::Msg(msg))
        }
        op => (None, decode_body(op, &frame[..HEADER_LEN], rest)?),
    };
    let message = Message {
        request_id: header.request_id,
        response_to: header.response_to,
        compressor,
        body,
    };
    Ok((message, raw_body))
}

fn decode_body(op_code: i32, header: &[u8], bytes: &[u8]) -> Result<Body, ParseError> {
    Ok(match op_code {
        OP_MSG => Body::Msg(OpMsg::parse(header, bytes)?),
        OP_QUERY => Body::Query(OpQuery::parse(bytes)?),
        OP_REPLY => Body::Reply(OpReply::parse(bytes)?),
        other => return Err(ParseError::UnsupportedOpcode(other)),
    })
}

/// OP_COMPRESSED, checked in the order of mongod's MessageCompressorManager: the 9-byte
/// compression header, the compressor id, the claimed size (0 .. 48,000,000 with the
/// header), then the data, which must expand to exactly that size. The wrapped opcode is
/// not checked until the message is handled, as in mongod.
fn decode_compressed(header: &Header, bytes: &[u8]) -> Result<(Compressor, Body), ParseError> {
    if bytes.len() < 9 {
        return Err(ParseError::Decompression(
            "Invalid compressed message header".into(),
        ));
    }
    let mut r = Reader::new(bytes);
    let original_op = r.i32("originalOpcode")?;
    let size = r.i32("uncompressedSize")?;
    let id = r.u8("compressorId")?;
    let compressor = Compressor::from_id(id).ok_or(ParseError::UnknownCompressor(id))?;
    if size < 0 {
        return Err(ParseError::Decompression(format!(
            "Decompressed message would be negative in size: {size}"
        )));
    }
    let size = size as usize;
    if size + HEADER_LEN > MAX_MESSAGE_SIZE {
        return Err(ParseError::Decompression(format!(
            "Decompressed message would be larger than maximum message size: {size}"
        )));
    }
    let body = compressor.decompress(&bytes[r.pos..], size)?;
    // The checksum of a compressed OP_MSG covers the original, uncompressed message.
    let mut original = Vec::with_capacity(HEADER_LEN);
    Header {
        message_length: (HEADER_LEN + size) as i32,
        op_code: original_op,
        ..*header
    }
    .write(&mut original);
    Ok((compressor, decode_body(original_op, &original, &body)?))
}

/// The compressor id of an OP_COMPRESSED frame, read straight from its compression header.
fn raw_compressor(frame: &[u8]) -> Option<Compressor> {
    (frame.len() > HEADER_LEN + 8 && le_i32(frame, 12) == OP_COMPRESSED)
        .then(|| Compressor::from_id(frame[HEADER_LEN + 8]))
        .flatten()
}

/// A frame that has wholly arrived at the front of a read buffer, seen before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivedFrame {
    pub len: usize,
    /// What decoding it produces, in bytes: an OP_COMPRESSED frame's claimed
    /// `uncompressedSize` (so a small frame that inflates to 47 MB counts as 47 MB),
    /// otherwise its length.
    pub decoded_size: usize,
    /// The compressor id of an OP_COMPRESSED frame whose compression header is there.
    pub compressor_id: Option<u8>,
}

/// The frame at the front of `src` once all of it is there; None before, and for a
/// length outside the limits (the decoder refuses it).
pub fn arrived_frame(src: &[u8]) -> Option<ArrivedFrame> {
    let len = check_length(le_i32(src.get(..4)?, 0)).ok()?;
    let frame = src.get(..len)?;
    let compressed =
        len >= HEADER_LEN + COMPRESSED_PREAMBLE_LEN && le_i32(frame, 12) == OP_COMPRESSED;
    Some(ArrivedFrame {
        len,
        decoded_size: if compressed {
            usize::try_from(le_i32(frame, HEADER_LEN + 4)).unwrap_or(0)
        } else {
            len
        },
        compressor_id: compressed.then(|| frame[HEADER_LEN + 8]),
    })
}

/// The `moreToCome` bit of an uncompressed OP_MSG frame, read straight from its flags.
fn raw_more_to_come(frame: &[u8]) -> bool {
    frame.len() >= HEADER_LEN + 4
        && le_i32(frame, 12) == OP_MSG
        && (le_i32(frame, HEADER_LEN) as u32) & op_msg::MORE_TO_COME != 0
}

/// Writes a message. With a compressor it goes out as OP_COMPRESSED, and the sizes
/// before and after compression are returned.
pub fn encode_message(msg: &Message, out: &mut Vec<u8>) -> Option<CompressedSizes> {
    let start = out.len();
    let mut header = Header {
        message_length: 0,
        request_id: msg.request_id,
        response_to: msg.response_to,
        op_code: msg.body.op_code(),
    };
    header.write(out);
    match &msg.body {
        Body::Msg(m) => m.write(out),
        Body::Query(q) => q.write(out),
        Body::Reply(r) => r.write(out),
    }
    let len = (out.len() - start) as i32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    if let Body::Msg(m) = &msg.body {
        if m.checksum_present() {
            let mut whole = out.split_off(start);
            append_checksum(&mut whole);
            out.extend_from_slice(&whole);
        }
    }
    let compressor = msg.compressor?;
    let body = out.split_off(start + HEADER_LEN);
    out.truncate(start);
    let compressed = compressor.compress(&body);
    header.op_code = OP_COMPRESSED;
    header.write(out);
    out.extend_from_slice(&msg.body.op_code().to_le_bytes());
    out.extend_from_slice(&(body.len() as i32).to_le_bytes());
    out.push(compressor.id());
    out.extend_from_slice(&compressed);
    let len = (out.len() - start) as i32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Some(CompressedSizes {
        compressor,
        uncompressed: body.len(),
        compressed: compressed.len(),
    })
}

/// The decoder's contract, checked by the fuzz target and the seed-corpus test: any bytes
/// either fail to decode (without panicking) or decode to a message whose encoding decodes
/// again and encodes to the very same bytes. Returns whether `frame` decoded.
///
/// Byte equality with `frame` itself is not required: decoding accepts what mongod
/// accepts (invalid UTF-8, repeated keys), which has no single encoding.
pub fn check_roundtrip(frame: &[u8]) -> Result<bool, String> {
    let Ok(message) = decode_message(frame) else {
        return Ok(false);
    };
    let mut encoded = Vec::new();
    encode_message(&message, &mut encoded);
    let again = decode_message(&encoded)
        .map_err(|e| format!("the encoding of a decoded message does not decode: {e}"))?;
    let mut reencoded = Vec::new();
    encode_message(&again, &mut reencoded);
    if reencoded != encoded {
        return Err("encoding is not stable across a decode".into());
    }
    Ok(true)
}

/// The most the decoder reserves ahead of bytes that have not arrived yet.
const MAX_RESERVE_AHEAD: usize = 1 << 20;

/// The tokio-util codec: frames by length, checking it before reserving any memory.
#[derive(Debug, Default, Clone, Copy)]
pub struct WireCodec;

impl WireCodec {
    /// [`Decoder::decode`] for a server reading requests: an OP_MSG body may leave out
    /// [`super::ELIDED_ARGUMENTS`] (see [`Incoming::raw_body`]).
    pub fn decode_request(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, CodecError> {
        decode_frame(src, true)
    }
}

impl Decoder for WireCodec {
    type Item = Incoming;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, CodecError> {
        decode_frame(src, false)
    }
}

fn decode_frame(src: &mut BytesMut, elide: bool) -> Result<Option<Incoming>, CodecError> {
    if src.len() < 4 {
        return Ok(None);
    }
    let length = check_length(le_i32(src, 0)).map_err(CodecError::Fatal)?;
    if src.len() < length {
        // Grow with what arrives rather than with what the header claims, so a header
        // alone cannot make the server hold 48 MB.
        src.reserve((length - src.len()).min(MAX_RESERVE_AHEAD));
        return Ok(None);
    }
    // Read in place, then consumed: splitting the frame off would make the buffer shared,
    // which allocates once per request.
    let frame = &src[..length];
    let header = Header::read(frame);
    let (message, raw_body) = match decode_message_eliding(frame, elide) {
        Ok((message, raw_body)) => (Ok(message), raw_body),
        Err(e) => (Err(e), None),
    };
    let more_to_come = raw_more_to_come(frame);
    let compressor = raw_compressor(frame);
    let compressed = match &message {
        Err(e) if e.closes_connection() => {
            src.advance(length);
            return Err(CodecError::Fatal(e.clone()));
        }
        Ok(Message {
            compressor: Some(compressor),
            ..
        }) => Some(CompressedSizes {
            compressor: *compressor,
            // decode_message checked both: the preamble is there and the size
            // field matches what the body expanded to.
            uncompressed: le_i32(frame, HEADER_LEN + 4) as usize,
            compressed: length - HEADER_LEN - COMPRESSED_PREAMBLE_LEN,
        }),
        _ => None,
    };
    src.advance(length);
    Ok(Some(Incoming {
        header,
        more_to_come,
        compressor,
        message,
        compressed,
        raw_body,
    }))
}

impl Encoder<&Message> for WireCodec {
    type Error = CodecError;

    fn encode(&mut self, msg: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        let mut out = Vec::with_capacity(256);
        encode_message(msg, &mut out);
        dst.extend_from_slice(&out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn roundtrip(msg: Message) {
        let mut bytes = Vec::new();
        encode_message(&msg, &mut bytes);
        assert_eq!(decode_message(&bytes).unwrap(), msg);
        if msg.compressor.is_none() {
            let mut again = Vec::new();
            encode_message(&decode_message(&bytes).unwrap(), &mut again);
            assert_eq!(again, bytes);
        }
    }

    #[test]
    fn op_msg_with_checksum_and_sequence_round_trips() {
        roundtrip(Message {
            request_id: 7,
            response_to: 0,
            compressor: None,
            body: Body::Msg(OpMsg {
                flags: op_msg::CHECKSUM_PRESENT,
                sections: vec![
                    Section::Sequence {
                        identifier: "documents".into(),
                        documents: vec![doc! {"a": 1}, doc! {"b": 2}],
                    },
                    Section::Body(doc! {"insert": "c", "$db": "test"}),
                ],
            }),
        });
    }

    #[test]
    fn every_compressor_round_trips() {
        for c in [
            Compressor::Noop,
            Compressor::Snappy,
            Compressor::Zlib,
            Compressor::Zstd,
        ] {
            roundtrip(Message {
                request_id: 1,
                response_to: 2,
                compressor: Some(c),
                body: Body::Msg(OpMsg::from_body(doc! {"ping": 1, "$db": "admin"})),
            });
        }
    }

    #[test]
    fn a_header_alone_does_not_reserve_the_whole_frame() {
        let mut buf = BytesMut::from(&47_000_000i32.to_le_bytes()[..]);
        assert!(WireCodec.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() <= 2 * MAX_RESERVE_AHEAD,
            "{}",
            buf.capacity()
        );
    }

    #[test]
    fn lengths_outside_the_limits_are_refused_from_four_bytes() {
        for length in [-1, 0, 15, 48_000_001, i32::MAX] {
            let mut buf = BytesMut::from(&length.to_le_bytes()[..]);
            assert!(
                matches!(
                    WireCodec.decode(&mut buf),
                    Err(CodecError::Fatal(ParseError::BadLength(_)))
                ),
                "{length}"
            );
        }
    }

    #[test]
    fn encoder_and_decoder_report_the_same_compressed_sizes() {
        for compressor in [None, Some(Compressor::Snappy), Some(Compressor::Zstd)] {
            let msg = Message {
                request_id: 3,
                response_to: 0,
                compressor,
                body: Body::Msg(OpMsg::from_body(doc! {"ping": 1, "$db": "admin"})),
            };
            let mut bytes = Vec::new();
            let sent = encode_message(&msg, &mut bytes);
            let mut buf = BytesMut::from(&bytes[..]);
            let received = WireCodec.decode(&mut buf).unwrap().unwrap().compressed;
            assert_eq!(sent, received, "{compressor:?}");
            if let Some(sizes) = sent {
                assert_eq!(sizes.compressor, compressor.unwrap());
                assert_eq!(
                    sizes.compressed,
                    bytes.len() - HEADER_LEN - COMPRESSED_PREAMBLE_LEN
                );
            }
        }
    }

    #[test]
    fn dollar_keyed_subdocuments_stay_documents() {
        let body = doc! {"ping": 1, "$db": "admin",
        "a": {"$oid": "000000000000000000000000"},
        "b": {"$numberLong": "5"},
        "c": {"$date": 5i64}};
        roundtrip(Message {
            request_id: 1,
            response_to: 0,
            compressor: None,
            body: Body::Msg(OpMsg::from_body(body)),
        });
    }

    #[test]
    fn requests_leave_out_lsid_and_cluster_time_and_keep_them_raw() {
        use bson::{spec::BinarySubtype, Binary, Timestamp};
        let lsid = doc! {"id": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] }};
        let time = doc! {"clusterTime": Timestamp { time: 5, increment: 1 }, "signature": {"keyId": 0_i64}};
        let cases = [
            (
                doc! {"ping": 1, "lsid": lsid.clone(), "$clusterTime": time.clone(), "$db": "admin"},
                None,
                true,
            ),
            // The command name is never left out.
            (doc! {"lsid": 1, "$db": "admin"}, None, false),
            (doc! {"ping": 1, "$db": "admin"}, None, false),
            (
                doc! {"ping": 1, "$clusterTime": time, "$db": "admin"},
                None,
                true,
            ),
            // A sequence must still meet the field it would shadow.
            (
                doc! {"insert": "c", "lsid": lsid.clone(), "$db": "a"},
                Some("lsid.id"),
                false,
            ),
            (
                doc! {"insert": "c", "lsid": lsid, "$db": "a"},
                Some("documents"),
                true,
            ),
        ];
        for (body, sequence, elided) in cases {
            let mut sections = vec![Section::Body(body.clone())];
            if let Some(identifier) = sequence {
                sections.push(Section::Sequence {
                    identifier: identifier.into(),
                    documents: vec![doc! {"a": 1}],
                });
            }
            let mut bytes = Vec::new();
            encode_message(
                &Message {
                    request_id: 1,
                    response_to: 0,
                    compressor: None,
                    body: Body::Msg(OpMsg { flags: 0, sections }),
                },
                &mut bytes,
            );
            let usual = decode_message(&bytes);
            let incoming = WireCodec
                .decode_request(&mut BytesMut::from(&bytes[..]))
                .unwrap()
                .unwrap();
            assert_eq!(incoming.raw_body.is_some(), elided, "{body}");
            match (usual, incoming.message) {
                (Ok(usual), Ok(message)) => {
                    let (Body::Msg(usual), Body::Msg(msg)) = (usual.body, message.body) else {
                        unreachable!("OP_MSG")
                    };
                    let command = msg.into_command();
                    let full = super::full_command(&command, incoming.raw_body.as_deref());
                    assert_eq!(*full, usual.into_command(), "{body}");
                    assert_eq!(*full != command, elided, "{body}");
                    // Left out of the parsed request, kept in the raw one.
                    assert!(command.get("$clusterTime").is_none(), "{body}");
                }
                (Err(a), Err(b)) => assert_eq!(a, b),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn corrupted_checksum_is_refused() {
        let msg = Message {
            request_id: 1,
            response_to: 0,
            compressor: None,
            body: Body::Msg(OpMsg {
                flags: op_msg::CHECKSUM_PRESENT,
                sections: vec![Section::Body(doc! {"ping": 1})],
            }),
        };
        let mut bytes = Vec::new();
        encode_message(&msg, &mut bytes);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert_eq!(decode_message(&bytes), Err(ParseError::ChecksumMismatch));
    }
}
