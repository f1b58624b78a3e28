//! A tiny OP_MSG server that plays another mongod for ferrod's outgoing pools: answers
//! hello and anything else with `ok: 1`, and can delay, hang or hang up on request.
#![allow(dead_code)]

use bson::{doc, Document};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the peer does with a command, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Answer,
    /// Never answer (the connection stays open).
    Hang,
    /// Close the connection instead of answering.
    Close,
}

#[derive(Default)]
pub struct PeerState {
    pub accepted: AtomicUsize,
    pub open: AtomicUsize,
    pub hellos: AtomicUsize,
    pub commands: AtomicUsize,
    /// Milliseconds to wait before answering the first hello of a connection.
    pub handshake_delay_ms: AtomicU64,
    rules: Mutex<Vec<(String, Action)>>,
    stop: AtomicBool,
    streams: Mutex<Vec<TcpStream>>,
}

pub struct Peer {
    pub port: u16,
    pub host: String,
    pub state: Arc<PeerState>,
}

impl Peer {
    pub fn start() -> Peer {
        Self::start_on("127.0.0.1")
    }

    /// Listens on `ip` ("127.0.0.1" or "::1") and a free port.
    pub fn start_on(ip: &str) -> Peer {
        let listener = TcpListener::bind((ip, 0)).expect("bind peer listener");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(PeerState::default());
        let accept_state = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_state.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                accept_state.accepted.fetch_add(1, Ordering::SeqCst);
                accept_state.open.fetch_add(1, Ordering::SeqCst);
                if let Ok(clone) = stream.try_clone() {
                    accept_state.streams.lock().unwrap().push(clone);
                }
                let conn_state = accept_state.clone();
                std::thread::spawn(move || {
                    serve(&conn_state, stream);
                    conn_state.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let host = if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        };
        Peer { port, host, state }
    }

    /// Sets what happens to commands named `name` from now on.
    pub fn on(&self, name: &str, action: Action) {
        let mut rules = self.state.rules.lock().unwrap();
        rules.retain(|(n, _)| n != name);
        rules.push((name.to_owned(), action));
    }

    pub fn open(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    pub fn hellos(&self) -> usize {
        self.state.hellos.load(Ordering::SeqCst)
    }

    pub fn set_handshake_delay(&self, delay: Duration) {
        self.state
            .handshake_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Waits (bounded) until `f` holds; panics with `what` otherwise.
    pub fn wait_until(&self, what: &str, timeout: Duration, f: impl Fn(&Peer) -> bool) {
        let deadline = Instant::now() + timeout;
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "peer {}: timed out waiting for {what} (open {}, accepted {})",
                self.host,
                self.open(),
                self.accepted()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        for s in self.state.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn action_for(state: &PeerState, name: &str) -> Action {
    state
        .rules
        .lock()
        .unwrap()
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| *a)
        .unwrap_or(Action::Answer)
}

fn serve(state: &PeerState, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut first = true;
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let len = i32::from_le_bytes(len) as usize;
        if !(16..=48_000_000).contains(&len) {
            return;
        }
        let mut rest = vec![0u8; len - 4];
        if stream.read_exact(&mut rest).is_err() {
            return;
        }
        let request_id = i32::from_le_bytes(rest[0..4].try_into().unwrap());
        // flags (4 bytes) then kind-0 section: the command document.
        let Ok(command) = Document::from_reader(&rest[12 + 4 + 1..]) else {
            return;
        };
        let name = command.keys().next().cloned().unwrap_or_default();
        state.commands.fetch_add(1, Ordering::SeqCst);
        let is_hello = matches!(name.as_str(), "hello" | "isMaster" | "ismaster");
        if is_hello {
            state.hellos.fetch_add(1, Ordering::SeqCst);
            if first {
                // A slow handshake is the behaviour under test, not a wait.
                let delay = state.handshake_delay_ms.load(Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(delay));
            }
        }
        first = false;
        match action_for(state, &name) {
            Action::Answer => {}
            Action::Close => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Action::Hang => {
                // Keep the socket open until the other side closes it.
                let mut sink = [0u8; 512];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                return;
            }
        }
        let reply = if is_hello {
            doc! {"isWritablePrimary": true, "maxBsonObjectSize": 16777216,
            "maxMessageSizeBytes": 48000000, "maxWireVersion": 21, "minWireVersion": 0, "ok": 1.0}
        } else {
            doc! {"ok": 1.0}
        };
        let mut body = Vec::new();
        reply.to_writer(&mut body).unwrap();
        let mut out = Vec::with_capacity(21 + body.len());
        out.extend_from_slice(&((21 + body.len()) as i32).to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&request_id.to_le_bytes());
        out.extend_from_slice(&2013i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.push(0);
        out.extend_from_slice(&body);
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}
