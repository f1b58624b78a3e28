//! A blocking OP_MSG client: one request at a time on one connection.

use super::Result;
use bson::{doc, Bson, Document};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const OP_MSG: i32 = 2013;

pub struct Conn {
    stream: TcpStream,
    next_id: i32,
    timeout: Duration,
}

impl Conn {
    pub fn connect(port: u16, timeout: Duration) -> Result<Conn> {
        let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)
            .map_err(|e| format!("connect to port {port}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        Ok(Conn {
            stream,
            next_id: 1,
            timeout,
        })
    }

    /// Sends one command (on `admin` unless it names its `$db`) and returns the reply,
    /// whether or not it is `ok: 1`.
    pub fn command(&mut self, mut cmd: Document) -> Result<Document> {
        if !cmd.contains_key("$db") {
            cmd.insert("$db", "admin");
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut out = vec![0u8; 16];
        out[4..8].copy_from_slice(&id.to_le_bytes());
        out[12..16].copy_from_slice(&OP_MSG.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.push(0);
        cmd.to_writer(&mut out).map_err(|e| e.to_string())?;
        let len = out.len() as i32;
        out[0..4].copy_from_slice(&len.to_le_bytes());
        self.stream.write_all(&out).map_err(|e| e.to_string())?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| self.io_error(e, &cmd))?;
        let len = i32::from_le_bytes(len);
        if !(21..=48_000_000).contains(&len) {
            return Err(format!("bad reply length {len}"));
        }
        let mut rest = vec![0u8; len as usize - 4];
        self.stream
            .read_exact(&mut rest)
            .map_err(|e| self.io_error(e, &cmd))?;
        let response_to = i32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if response_to != id {
            return Err(format!("reply to {response_to}, expected {id}"));
        }
        // Header rest (12 bytes), flags (4), section kind (1), then the body.
        Document::from_reader(&rest[17..]).map_err(|e| e.to_string())
    }
}

impl Conn {
    fn io_error(&self, e: std::io::Error, cmd: &Document) -> String {
        let name = cmd.keys().next().map(String::as_str).unwrap_or("?");
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                format!("{name}: no reply within {:?}: {cmd}", self.timeout)
            }
            _ => format!("{name}: {e}"),
        }
    }
}

/// One command over a fresh connection.
pub fn once(port: u16, cmd: Document) -> Result<Document> {
    Conn::connect(port, Duration::from_secs(10))?.command(cmd)
}

/// `ok: 1` and no write concern error.
pub fn ok(reply: &Document) -> bool {
    let ok = match reply.get("ok") {
        Some(Bson::Double(v)) => *v == 1.0,
        Some(Bson::Int32(v)) => *v == 1,
        Some(Bson::Int64(v)) => *v == 1,
        _ => false,
    };
    ok && !reply.contains_key("writeConcernError")
}

pub fn checked(reply: Document, what: &str) -> Result<Document> {
    if ok(&reply) {
        Ok(reply)
    } else {
        Err(format!("{what} failed: {reply}"))
    }
}

pub fn create_user(name: &str, wc: &Document) -> Document {
    doc! {"createUser": name, "pwd": "bench", "roles": [], "writeConcern": wc.clone()}
}

pub fn update_user(name: &str, n: u64, wc: &Document) -> Document {
    doc! {"updateUser": name, "customData": {"n": n as i64}, "writeConcern": wc.clone()}
}

/// `{ts, t}` of an optime as a comparable pair (seconds, increment).
pub fn optime_ts(optime: &Document) -> Option<(u32, u32)> {
    let ts = optime.get_timestamp("ts").ok()?;
    Some((ts.time, ts.increment))
}

/// The `optime` a member reports for itself in replSetGetStatus.
pub fn own_optime(port: u16) -> Option<(u32, u32)> {
    let status = once(port, doc! {"replSetGetStatus": 1}).ok()?;
    status
        .get_array("members")
        .ok()?
        .iter()
        .filter_map(Bson::as_document)
        .find(|m| m.get_bool("self") == Ok(true))
        .and_then(|m| optime_ts(m.get_document("optime").ok()?))
}

/// The names of the users in `admin`.
pub fn user_names(port: u16) -> Result<Vec<String>> {
    let reply = checked(once(port, doc! {"usersInfo": 1})?, "usersInfo")?;
    Ok(reply
        .get_array("users")
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(Bson::as_document)
        .filter_map(|u| u.get_str("user").ok().map(str::to_string))
        .collect())
}
