//! One client connection: read frames, run their commands one at a time, write replies.
//!
//! An idle connection holds no read or write buffer and its task keeps only the small
//! read loop (a request's state is boxed while it runs), so thousands of idle clients
//! cost little.

use super::fast_lane;
use super::tls::Stream;
use crate::blocking;
use crate::client::Client;
use crate::commands::{self, Dispatched, ReplyBody};
use crate::error::{from_parse_error, Code, CommandError};
use crate::state::{ServerState, Stats};
use crate::wire::codec::{arrived_frame, encode_message, ArrivedFrame};
use crate::wire::op_msg::MORE_TO_COME;
use crate::wire::{
    Body, CodecError, Compressor, Disposition, Incoming, Message, OpMsg, OpQuery, OpReply,
    ParseError, WireCodec, OP_QUERY,
};
use bson::Document;
use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::task::Poll;
use tokio::io::AsyncWriteExt;

/// First read size; the codec reserves more once a frame's length is known. Kept at
/// 1 KiB: the buffer is allocated afresh for every request (it is given back when the
/// connection goes idle), and glibc serves blocks up to 1 KiB from its per-thread cache,
/// while a 4 KiB one goes through the shared bins and `malloc_consolidate` each time.
const READ_CHUNK: usize = 1024;
/// Room reserved for a reply up front, so that encoding a typical one allocates once.
const REPLY_CAPACITY: usize = 512;

static NEXT_RESPONSE_ID: AtomicI32 = AtomicI32::new(1);

/// OP_REPLY's responseFlags bit 1: the query failed and the document describes why.
const QUERY_FAILURE: i32 = 1 << 1;

fn ctx(client: &Client) -> String {
    format!("conn{}", client.id)
}

pub async fn serve(server: &Arc<ServerState>, mut stream: Stream, client: &Arc<Client>) {
    let mut codec = WireCodec;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    // One shutdown waiter for the whole connection, not a new registration per read.
    let shutdown = server.shutdown.cancelled();
    tokio::pin!(shutdown);
    // Until the first 16 bytes are in: they may be a TLS ClientHello.
    let mut first_bytes = true;
    loop {
        let read = tokio::select! {
            read = read_more(&mut stream, &mut buf, &mut out) => read,
            _ = &mut shutdown => return,
        };
        match read {
            Ok(0) => return,
            Ok(n) => Stats::add(&server.stats.bytes_in, n as u64),
            Err(e) => {
                tracing::debug!(target: "NETWORK", id = 22989, ctx = ctx(client), error = %e, "Error receiving request from client");
                return;
            }
        }
        if first_bytes && buf.len() >= TLS_PROBE_LEN {
            first_bytes = false;
            if is_tls_client_hello(&buf) {
                tracing::info!(target: "NETWORK", id = 22988, ctx = ctx(client),
                    error = "SSLHandshakeFailed: SSL handshake received but server is started without SSL support",
                    remote = %client.remote, "Error receiving request from client. Ending connection from remote");
                return;
            }
        }
        loop {
            let mut from_bytes = None;
            if let Some(len) = fast_lane::whole_frame(&buf) {
                out.clear();
                out.reserve(REPLY_CAPACITY);
                if fast_lane::answer(server, &buf[..len], &mut out) {
                    buf.advance(len);
                    Stats::add(&server.stats.num_requests, 1);
                    if !send(server, client, &mut stream, &out).await {
                        return;
                    }
                    continue;
                }
                let active = ActiveGuard::enter(&server.stats);
                from_bytes = raw_now(server, client, &buf[..len]).map(|handled| {
                    buf.advance(len);
                    (handled, active)
                });
            }
            let (handled, exhaust, active) = match from_bytes {
                Some((handled, active)) => {
                    Stats::add(&server.stats.num_requests, 1);
                    (handled, false, active)
                }
                None => match decode_next(server, client, &mut codec, &mut buf).await {
                    Some(Ok(incoming)) => {
                        Stats::add(&server.stats.num_requests, 1);
                        if let Some(sizes) = incoming.compressed {
                            server.stats.count_decompressed(sizes);
                        }
                        let active = ActiveGuard::enter(&server.stats);
                        let exhaust = matches!(&incoming.message, Ok(Message { body: Body::Msg(m), .. }) if m.exhaust_allowed());
                        (handle_now(server, client, incoming), exhaust, active)
                    }
                    Some(Err(())) => return,
                    None => break,
                },
            };
            out.clear();
            // A request that waits is boxed: its future is large and lives only while it
            // runs, so an idle connection's task stays small.
            let answer = match handled {
                Handled::Ready(answer) => answer,
                Handled::Pending(request) if exhaust => {
                    match watched(server, request, &mut stream, &mut buf, &mut out).await {
                        Some(answer) => answer,
                        None => return,
                    }
                }
                Handled::Pending(request) => request.await,
            };
            drop(active);
            let (mut reply, mut next) = match answer {
                Answer::Reply(reply) => (reply, None),
                Answer::Stream(reply, next) => (reply, Some(next)),
                Answer::Nothing => continue,
                Answer::HangUp => return,
            };
            loop {
                out.clear();
                out.reserve(REPLY_CAPACITY);
                if let Some(sizes) = encode_message(&reply, &mut out) {
                    server.stats.count_compressed(sizes);
                }
                if !send(server, client, &mut stream, &out).await {
                    return;
                }
                // An exhaust stream (mongod's `_isExhaust`): the next reply answers the
                // previous one, with no request in between, until one ends the stream.
                let Some(request) = next.take() else { break };
                let step = Box::pin(run_msg(
                    server,
                    client,
                    reply.request_id,
                    None,
                    request,
                    None,
                    true,
                    false,
                ));
                let answer = tokio::select! {
                    answer = watched(server, step, &mut stream, &mut buf, &mut out) => match answer {
                        Some(answer) => answer,
                        None => return,
                    },
                    _ = &mut shutdown => return,
                };
                Stats::add(&server.stats.num_requests, 1);
                (reply, next) = match answer {
                    Answer::Reply(reply) => (reply, None),
                    Answer::Stream(reply, next) => (reply, Some(next)),
                    Answer::Nothing => break,
                    Answer::HangUp => return,
                };
            }
        }
    }
}

/// Decodes the next request in `buf`: None when it has not all arrived, Err when the
/// connection is to be closed (the reason logged).
async fn decode_next(
    server: &ServerState,
    client: &Client,
    codec: &mut WireCodec,
    buf: &mut BytesMut,
) -> Option<Result<Incoming, ()>> {
    let decoded = match arrived_frame(buf) {
        Some(ArrivedFrame {
            compressor_id: Some(id),
            ..
        }) if !configured_compressor(server, id) => {
            Err(CodecError::Fatal(ParseError::UnknownCompressor(id)))
        }
        // A large frame is decompressed and parsed off the async workers, so that
        // other connections are still served meanwhile.
        Some(frame) if frame.decoded_size >= INLINE_DECODE_LIMIT => {
            let mut whole = buf.split_to(frame.len);
            blocking::cpu(move || WireCodec.decode_request(&mut whole)).await
        }
        _ => codec.decode_request(buf),
    };
    match decoded {
        Ok(Some(incoming)) => Some(Ok(incoming)),
        Ok(None) => None,
        Err(CodecError::Fatal(e)) => {
            tracing::info!(target: "NETWORK", id = 22988, ctx = ctx(client), error = %e, remote = %client.remote,
                "Error receiving request from client. Ending connection from remote");
            Some(Err(()))
        }
        Err(CodecError::Io(_)) => Some(Err(())),
    }
}

/// A request the dispatcher answers from its bytes, without decoding it (see
/// `commands::dispatch_raw_now`); None, having done nothing, for the others. The answer
/// no longer needs `frame`.
fn raw_now<'a>(
    server: &'a Arc<ServerState>,
    client: &'a Arc<Client>,
    frame: &[u8],
) -> Option<Handled<'a>> {
    let body = crate::wire::op_msg::plain_body(frame)?;
    let request_id = crate::wire::le_i32(frame, 4);
    let answer = move |reply| msg_answer(request_id, None, None, false, reply);
    Some(match commands::dispatch_raw_now(server, client, body)? {
        Dispatched::Ready(reply) => Handled::Ready(answer(reply)),
        Dispatched::Pending(reply) => {
            Handled::Pending(Box::pin(async move { answer(reply.await) }))
        }
    })
}

/// A message header's length: what mongod looks at before it knows a frame.
const TLS_PROBE_LEN: usize = 16;

/// Whether a connection's first bytes are a TLS record (content type 22, handshake;
/// version 3.x) rather than a message header. mongod reads them as a header whose
/// `responseTo` is not 0 or -1 (here the ClientHello's version bytes, 0x03), which no
/// client's first request has, and ends the connection at once (SSLHandshakeFailed),
/// where a wait for the "frame" that the record's bytes seem to announce would leave a TLS
/// client hanging until its timeout.
fn is_tls_client_hello(first: &[u8]) -> bool {
    let response_to = i32::from_le_bytes([first[8], first[9], first[10], first[11]]);
    first[0] == 0x16
        && first[1] == 0x03
        && first[2] <= 0x04
        && response_to != 0
        && response_to != -1
}

/// Runs a request that may start or continue an exhaust stream, watching the socket
/// meanwhile (an awaitable hello waits up to maxAwaitTimeMS): None when the client closed,
/// so that it is let go at once. A client that sends a request instead ends the stream:
/// the reply being made goes out without `moreToCome`, and the request is served next.
async fn watched(
    server: &ServerState,
    request: impl std::future::Future<Output = Answer>,
    stream: &mut Stream,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
) -> Option<Answer> {
    tokio::pin!(request);
    tokio::select! {
        answer = &mut request => Some(answer),
        read = read_more(stream, buf, out) => match read {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                Stats::add(&server.stats.bytes_in, n as u64);
                Some(match request.await {
                    Answer::Stream(mut reply, _) => {
                        if let Body::Msg(msg) = &mut reply.body {
                            msg.flags &= !MORE_TO_COME;
                        }
                        Answer::Reply(reply)
                    }
                    answer => answer,
                })
            }
        },
    }
}

/// Frames that decode to less than this are decoded inline: handing them to another
/// thread would cost more than it saves (a ping is tens of bytes; 64 KiB inflate and
/// parse in well under a millisecond).
const INLINE_DECODE_LIMIT: usize = 64 << 10;

/// Whether compressor `id` may be used on input. mongod registers only the configured
/// compressors (`--networkMessageCompressors`) and ends the connection for any other,
/// negotiated or not, before decompressing anything. An id no compressor has is left to
/// the decoder, which refuses it the same way.
fn configured_compressor(server: &ServerState, id: u8) -> bool {
    Compressor::from_id(id).is_none_or(|c| server.config.compressors.contains(&c))
}

/// Reads what has arrived into `buf`, waiting if nothing has. Before waiting, the
/// connection is going idle, so it gives its buffers back; the next request allocates
/// again. (A read that does not fill the buffer tells tokio the socket is drained, so a
/// request costs one read call, not a second one that finds nothing.)
async fn read_more(
    stream: &mut Stream,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        if buf.capacity() == buf.len() {
            buf.reserve(READ_CHUNK);
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, buf) {
            Poll::Pending => {
                if buf.is_empty() {
                    *buf = BytesMut::new();
                }
                *out = Vec::new();
                Poll::Pending
            }
            ready => ready,
        }
    })
    .await
}

/// Writes a reply; false when the client has gone.
async fn send(server: &ServerState, client: &Client, stream: &mut Stream, out: &[u8]) -> bool {
    if let Err(e) = stream.write_all(out).await {
        // A client may close before reading its reply (the Node driver does so after
        // endSessions); that is an ordinary end of the connection.
        tracing::debug!(target: "NETWORK", id = 22990, ctx = ctx(client), error = %e, "Client went away before its reply was sent");
        return false;
    }
    Stats::add(&server.stats.bytes_out, out.len() as u64);
    true
}

pub fn next_response_id() -> i32 {
    NEXT_RESPONSE_ID.fetch_add(1, Ordering::Relaxed)
}

/// Counts the connection in serverStatus `connections.active` while it runs a command.
struct ActiveGuard<'a>(&'a Stats);

impl<'a> ActiveGuard<'a> {
    fn enter(stats: &'a Stats) -> Self {
        Stats::add(&stats.connections_active, 1);
        ActiveGuard(stats)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn reply_to(request_id: i32, compressor: Option<crate::wire::Compressor>, body: Body) -> Message {
    Message {
        request_id: next_response_id(),
        response_to: request_id,
        compressor,
        body,
    }
}

/// What a request leaves the connection to do.
// Lives for one request on the stack; boxing the reply would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(super) enum Answer {
    Reply(Message),
    /// A reply flagged `moreToCome`, and the request whose reply follows it unasked.
    Stream(Message, Document),
    /// `moreToCome`: the client wants no reply.
    Nothing,
    /// Close the connection without replying (mongod's `shutdown` does).
    HangUp,
}

/// A request's answer, or the future that makes it when its command waits.
// Lives for one request on the stack, like `Answer`; boxing it would cost an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Handled<'a> {
    Ready(Answer),
    Pending(Pin<Box<dyn std::future::Future<Output = Answer> + Send + 'a>>),
}

/// Runs one request as far as it goes without waiting: an OP_MSG whose command answers at
/// once is answered without a future (see `commands::dispatch_now`).
pub(super) fn handle_now<'a>(
    server: &'a Arc<ServerState>,
    client: &'a Arc<Client>,
    incoming: Incoming,
) -> Handled<'a> {
    let Incoming {
        header,
        more_to_come,
        compressor: frame_compressor,
        message,
        compressed,
        raw_body,
    } = incoming;
    match message {
        Ok(Message {
            compressor,
            body: Body::Msg(msg),
            ..
        }) => msg_now(server, client, header.request_id, compressor, msg, raw_body),
        message => Handled::Pending(Box::pin(handle(
            server,
            client,
            Incoming {
                header,
                more_to_come,
                compressor: frame_compressor,
                message,
                compressed,
                raw_body,
            },
        ))),
    }
}

fn msg_now<'a>(
    server: &'a Arc<ServerState>,
    client: &'a Arc<Client>,
    request_id: i32,
    compressor: Option<Compressor>,
    msg: OpMsg,
    raw_body: Option<Vec<u8>>,
) -> Handled<'a> {
    let more_to_come = msg.more_to_come();
    let exhaust = msg.exhaust_allowed();
    let command = msg.into_command();
    run_msg_now(
        server,
        client,
        request_id,
        compressor,
        command,
        raw_body,
        exhaust,
        more_to_come,
    )
}

/// Runs one request.
pub(super) async fn handle(
    server: &Arc<ServerState>,
    client: &Arc<Client>,
    incoming: Incoming,
) -> Answer {
    // Taken apart first, so that the future keeps only what it needs across the await.
    let Incoming {
        header,
        more_to_come,
        compressor: frame_compressor,
        message,
        raw_body,
        ..
    } = incoming;
    let request_id = header.request_id;
    let Message {
        compressor, body, ..
    } = match message {
        Ok(message) => message,
        Err(e) if e.disposition() == Disposition::Ignore => {
            tracing::info!(target: "NETWORK", id = 21968, ctx = ctx(client), operation = header.op_code, error = %e, "Operation isn't supported");
            return Answer::Nothing;
        }
        Err(e) => {
            tracing::debug!(target: "NETWORK", id = 22632, ctx = ctx(client), error = %e, "invalid message");
            if more_to_come {
                return Answer::Nothing;
            }
            let error = from_parse_error(&e).to_document();
            let body = if header.op_code == OP_QUERY {
                Body::Reply(legacy_error_reply(error))
            } else {
                Body::Msg(OpMsg::from_body(with_cluster_time(server, error)))
            };
            return Answer::Reply(reply_to(request_id, frame_compressor, body));
        }
    };
    // This future is boxed by the connection, once per request; the dispatcher's runs
    // inside it (one allocation, not one per layer), while the slow handlers' futures are
    // boxed where they are awaited: inline, they made it 10 KB.
    match body {
        Body::Msg(msg) => match msg_now(server, client, request_id, compressor, msg, raw_body) {
            Handled::Ready(answer) => answer,
            Handled::Pending(answer) => answer.await,
        },
        Body::Query(query) => {
            Stats::add(&server.stats.op_query, 1);
            let command = handshake_command(&query);
            drop(query);
            let body = match command {
                Ok(command) => {
                    let reply = Box::pin(commands::dispatch(server, client, command, false)).await;
                    if reply.hang_up {
                        return Answer::HangUp;
                    }
                    reply.body.into_document()
                }
                Err(e) => {
                    return Answer::Reply(reply_to(
                        request_id,
                        None,
                        Body::Reply(legacy_error_reply(e.to_document())),
                    ))
                }
            };
            Answer::Reply(reply_to(
                request_id,
                None,
                Body::Reply(OpReply::single(body)),
            ))
        }
        // A client has no business sending a reply; mongod logs it and answers nothing.
        Body::Reply(_) => {
            tracing::info!(target: "NETWORK", id = 21968, ctx = ctx(client), operation = crate::wire::OP_REPLY, "Operation isn't supported");
            Answer::Nothing
        }
    }
}

/// Runs one OP_MSG command. With `exhaustAllowed`, a reply that the command continues
/// (an awaitable hello) is flagged `moreToCome` and comes with the request to run next.
#[allow(clippy::too_many_arguments)]
async fn run_msg(
    server: &Arc<ServerState>,
    client: &Arc<Client>,
    request_id: i32,
    compressor: Option<Compressor>,
    command: Document,
    raw_body: Option<Vec<u8>>,
    exhaust: bool,
    more_to_come: bool,
) -> Answer {
    let now = run_msg_now(
        server,
        client,
        request_id,
        compressor,
        command,
        raw_body,
        exhaust,
        more_to_come,
    );
    match now {
        Handled::Ready(answer) => answer,
        Handled::Pending(answer) => answer.await,
    }
}

/// [`run_msg`] as far as it goes without waiting.
#[allow(clippy::too_many_arguments)]
fn run_msg_now<'a>(
    server: &'a Arc<ServerState>,
    client: &'a Arc<Client>,
    request_id: i32,
    compressor: Option<Compressor>,
    command: Document,
    raw_body: Option<Vec<u8>>,
    exhaust: bool,
    more_to_come: bool,
) -> Handled<'a> {
    // Kept only for a request that may start a stream: it is what runs next.
    let again = (exhaust && !more_to_come).then(|| command.clone());
    let answer = move |reply| msg_answer(request_id, compressor, again, more_to_come, reply);
    match commands::dispatch_now(server, client, command, raw_body, exhaust) {
        Dispatched::Ready(reply) => Handled::Ready(answer(reply)),
        Dispatched::Pending(reply) => {
            Handled::Pending(Box::pin(async move { answer(reply.await) }))
        }
    }
}

/// The answer to an OP_MSG. With `exhaustAllowed`, a reply that the command continues
/// (an awaitable hello) is flagged `moreToCome` and comes with `again`, the request to
/// run next.
fn msg_answer(
    request_id: i32,
    compressor: Option<Compressor>,
    again: Option<Document>,
    more_to_come: bool,
    reply: commands::Reply,
) -> Answer {
    if reply.hang_up {
        return Answer::HangUp;
    }
    if more_to_come {
        return Answer::Nothing;
    }
    let next = match (&again, &reply.body) {
        (Some(request), ReplyBody::Document(body)) => {
            let body = bson::RawDocumentBuf::from_document(body).ok();
            body.and_then(|body| commands::exhaust_next(request, &body))
        }
        (Some(request), ReplyBody::Encoded(body)) => commands::exhaust_next(request, body),
        _ => None,
    };
    let compressor = compressor.filter(|_| reply.compress);
    let mut msg = match reply.body {
        ReplyBody::Document(body) => OpMsg::from_body(body),
        ReplyBody::Encoded(body) => OpMsg::from_encoded_body(body),
    };
    let reply = |msg| reply_to(request_id, compressor, Body::Msg(msg));
    match next {
        Some(next) => {
            msg.flags |= MORE_TO_COME;
            Answer::Stream(reply(msg), next)
        }
        None => Answer::Reply(reply(msg)),
    }
}

fn with_cluster_time(server: &ServerState, mut body: Document) -> Document {
    server.clock.stamp_reply(&mut body);
    body
}

/// An OP_REPLY carrying an error: `$err` besides `errmsg`, as legacy clients expect, and
/// the QueryFailure response flag, as mongod's legacy query error replies set it.
fn legacy_error_reply(mut error: Document) -> OpReply {
    if let Ok(msg) = error.get_str("errmsg") {
        let msg = msg.to_owned();
        error.insert("$err", msg);
    }
    OpReply {
        response_flags: QUERY_FAILURE,
        ..OpReply::single(error)
    }
}

/// OP_QUERY is accepted for the handshake only: `{hello|isMaster|ismaster: ...}` on `<db>.$cmd`.
fn handshake_command(query: &OpQuery) -> Result<Document, CommandError> {
    let refuse = |what: &str| {
        CommandError::new(
            Code::Location5739101,
            format!("OP_QUERY is no longer supported. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal ({what})"),
        )
    };
    let Some(db) = query.command_database() else {
        return Err(refuse(&format!(
            "collection '{}'",
            query.full_collection_name
        )));
    };
    // Drivers may wrap the command as {$query: {...}, $readPreference: ...}.
    let mut command = match query.query.get_document("$query") {
        Ok(inner) => inner.clone(),
        Err(_) => query.query.clone(),
    };
    let name = command.keys().next().cloned().unwrap_or_default();
    if !matches!(name.as_str(), "hello" | "isMaster" | "ismaster") {
        return Err(refuse(&format!("command '{name}'")));
    }
    command.insert("$db", db);
    Ok(command)
}
