//! Feeds arbitrary bytes to what a server connection runs on every read: the fast lane
//! (a bare ping answered from its bytes) and the request decoder (`decode_request`). No
//! input may panic either, and whatever the fast lane answers must be one well-formed
//! OP_MSG reply to the frame it was given.
#![no_main]

use bytes::BytesMut;
use ferrod::config::Config;
use ferrod::log::{LogFormat, LogSink};
use ferrod::server::fast_lane;
use ferrod::state::ServerState;
use ferrod::wire::codec::decode_message;
use ferrod::wire::WireCodec;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn server() -> &'static Arc<ServerState> {
    static SERVER: OnceLock<Arc<ServerState>> = OnceLock::new();
    SERVER.get_or_init(|| {
        let log = LogSink::new(LogFormat::Text, None, false, true).expect("a stdout log");
        ServerState::new(Config::default(), log)
    })
}

fuzz_target!(|data: &[u8]| {
    let server = server();
    let mut rest = data;
    while let Some(len) = fast_lane::whole_frame(rest) {
        let mut out = Vec::new();
        if fast_lane::answer(server, &rest[..len], &mut out) {
            let reply = decode_message(&out).expect("the fast lane's reply decodes");
            assert_eq!(reply.response_to, i32::from_le_bytes(rest[4..8].try_into().unwrap()));
        }
        rest = &rest[len..];
    }
    let mut codec = WireCodec;
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode_request(&mut buf) {}
});
