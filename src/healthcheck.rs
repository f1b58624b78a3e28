//! `ferrod healthcheck [--host H] [--port P] [--timeout-ms N]`: sends one OP_MSG
//! `{ping: 1, $db: "admin"}` and exits 0 when the reply says `ok: 1`, 1 otherwise (refused,
//! timed out, not a MongoDB reply, `ok: 0`). Made for container healthchecks in an image
//! with no shell: `HEALTHCHECK CMD ["/ferrod", "healthcheck"]`. `ping` needs no login, so
//! it works against a server with `--auth` or `--keyFile` too.
//!
//! main.rs hands `healthcheck` to this module before the server's own flags are parsed, so
//! the mongod-style command line stays as it is.

use ferrod::wire::{self, Body, Message, OpMsg};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 27017;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "usage: ferrod healthcheck [--host HOST] [--port PORT] [--timeout-ms MS]\n\
    Pings HOST:PORT (default 127.0.0.1:27017) over OP_MSG; exits 0 on ok: 1, else 1.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub timeout: Duration,
}

/// Parses the arguments after `healthcheck`. `Ok(None)` is `--help`.
pub fn parse_args(args: &[String]) -> Result<Option<Target>, String> {
    let mut target = Target {
        host: DEFAULT_HOST.to_owned(),
        port: DEFAULT_PORT,
        timeout: DEFAULT_TIMEOUT,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        if name == "-h" || name == "--help" {
            return Ok(None);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name {
            "--host" => target.host = value()?,
            "--port" => {
                let v = value()?;
                target.port = v
                    .parse()
                    .map_err(|_| format!("--port: not a port number: {v}"))?;
            }
            "--timeout-ms" => {
                let v = value()?;
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| format!("--timeout-ms: not a positive number: {v}"))?;
                target.timeout = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Some(target))
}

/// Pings `target` once within its timeout; Err says why the server is not healthy.
pub fn check(target: &Target) -> Result<(), String> {
    let deadline = Instant::now() + target.timeout;
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .collect();
    let mut last_error = format!("{} resolves to no address", target.host);
    for addr in addrs {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return ping(stream, deadline).map_err(|e| format!("{addr}: {e}")),
            Err(e) => last_error = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last_error)
}

fn remaining(deadline: Instant) -> Result<Duration, String> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "timed out".to_owned())
}

fn ping(mut stream: TcpStream, deadline: Instant) -> Result<(), String> {
    let request = Message {
        request_id: 1,
        response_to: 0,
        compressor: None,
        body: Body::Msg(OpMsg::from_body(bson::doc! {"ping": 1, "$db": "admin"})),
    };
    let mut bytes = Vec::new();
    wire::codec::encode_message(&request, &mut bytes);
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&bytes)
        .map_err(|e| format!("cannot send: {e}"))?;

    let mut frame = vec![0u8; 4];
    read_exact(&mut stream, &mut frame, deadline)?;
    let length =
        wire::codec::check_length(i32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]))
            .map_err(|e| format!("not a MongoDB reply: {e}"))?;
    frame.resize(length, 0);
    read_exact(&mut stream, &mut frame[4..], deadline)?;
    let reply =
        wire::codec::decode_message(&frame).map_err(|e| format!("not a MongoDB reply: {e}"))?;
    if reply.response_to != request.request_id {
        return Err(format!(
            "reply answers request {}, not {}",
            reply.response_to, request.request_id
        ));
    }
    let Body::Msg(msg) = reply.body else {
        return Err("the reply is not an OP_MSG".to_owned());
    };
    let body = msg.body().ok_or("the reply has no body")?;
    let ok = match body.get("ok") {
        Some(bson::Bson::Double(v)) => *v,
        Some(bson::Bson::Int32(v)) => *v as f64,
        Some(bson::Bson::Int64(v)) => *v as f64,
        _ => return Err(format!("the reply has no numeric ok: {body}")),
    };
    if ok == 1.0 {
        Ok(())
    } else {
        Err(format!("ping failed: {body}"))
    }
}

/// `read_exact` with the socket's read timeout kept to what is left until `deadline`.
fn read_exact(stream: &mut TcpStream, mut buf: &mut [u8], deadline: Instant) -> Result<(), String> {
    while !buf.is_empty() {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(|e| e.to_string())?;
        match stream.read(buf) {
            Ok(0) => return Err("the server closed the connection".to_owned()),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("timed out waiting for the reply".to_owned())
            }
            Err(e) => return Err(format!("cannot read the reply: {e}")),
        }
    }
    Ok(())
}

/// The subcommand: `args` are the arguments after `healthcheck`.
pub fn main(args: &[String]) -> ExitCode {
    let target = match parse_args(args) {
        Ok(Some(target)) => target,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("ferrod healthcheck: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match check(&target) {
        Ok(()) => {
            println!("ok: {}:{} answered ping", target.host, target.port);
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!(
                "ferrod healthcheck: {}:{} is not healthy: {msg}",
                target.host, target.port
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_are_the_local_default_port() {
        let t = parse_args(&[]).unwrap().unwrap();
        assert_eq!(
            t,
            Target {
                host: "127.0.0.1".into(),
                port: 27017,
                timeout: DEFAULT_TIMEOUT
            }
        );
    }

    #[test]
    fn flags_with_and_without_equals() {
        let t = parse_args(&args(&[
            "--host",
            "db1",
            "--port=27018",
            "--timeout-ms",
            "250",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(t.host, "db1");
        assert_eq!(t.port, 27018);
        assert_eq!(t.timeout, Duration::from_millis(250));
        assert_eq!(parse_args(&args(&["--help"])).unwrap(), None);
    }

    #[test]
    fn bad_arguments_are_refused() {
        for bad in [
            &["--port", "x"][..],
            &["--port"],
            &["--port", "70000"],
            &["--timeout-ms", "0"],
            &["--bogus"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
