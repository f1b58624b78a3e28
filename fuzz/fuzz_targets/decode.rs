//! Feeds arbitrary bytes to the wire decoder: it must never panic, and whatever decodes
//! must encode to bytes that decode and re-encode identically.
#![no_main]

use bytes::BytesMut;
use ferrod::wire::codec::check_roundtrip;
use ferrod::wire::WireCodec;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = check_roundtrip(data) {
        panic!("{e}");
    }
    // The streaming decoder too: all frames it can take off these bytes, as one read.
    let mut codec = WireCodec;
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
});
