//! `host:port` as mongod parses and prints it: IPv6 inside brackets, host names compared
//! without regard to case.

use std::fmt;

/// A remote endpoint. The host is kept lower-cased so that equal hosts compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostAndPort {
    host: String,
    port: u16,
}

/// What a `host[:port]` string turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Full(HostAndPort),
    /// A well-formed host without an explicit port.
    HostOnly(String),
}

impl HostAndPort {
    pub fn new(host: &str, port: u16) -> Self {
        HostAndPort {
            host: host.to_ascii_lowercase(),
            port,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Parses with mongod's rules. Every `host:port` ferrod reads (dropConnections,
    /// replica-set configs, `--initialMembers`, the pools) goes through here.
    pub fn parse(text: &str) -> Result<Parsed, BadHostAndPort> {
        let fail = |kind| BadHostAndPort {
            kind,
            text: text.to_owned(),
        };
        let last_colon = text.rfind(':');
        let open = text.find('[');
        let close = text.find(']');
        let (host, port_part) = match (open, close) {
            (Some(0), None) => return Err(fail(BadKind::NoClosingBracket)),
            (Some(0), Some(close)) => {
                let host = &text[1..close];
                let rest = &text[close + 1..];
                if rest.is_empty() {
                    (host, None)
                } else if let Some(port) = rest.strip_prefix(':') {
                    (host, Some(port))
                } else {
                    return Err(fail(BadKind::AfterClosingBracket));
                }
            }
            (Some(_), _) => return Err(fail(BadKind::OpeningBracketNotFirst)),
            (None, Some(_)) => return Err(fail(BadKind::ClosingBracketAlone)),
            (None, None) => {
                if text.find(':') != last_colon {
                    return Err(fail(BadKind::TwoColons));
                }
                match last_colon {
                    Some(at) => (&text[..at], Some(&text[at + 1..])),
                    None => (text, None),
                }
            }
        };
        if host.is_empty() {
            return Err(fail(BadKind::EmptyHost));
        }
        let Some(port_part) = port_part else {
            return Ok(Parsed::HostOnly(host.to_ascii_lowercase()));
        };
        if port_part.is_empty() || !port_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail(BadKind::PortNotANumber));
        }
        match port_part.parse::<u32>() {
            Ok(port @ 1..=65535) => Ok(Parsed::Full(HostAndPort::new(host, port as u16))),
            _ => Err(fail(BadKind::PortOutOfRange(port_part.to_owned()))),
        }
    }

    /// [`HostAndPort::parse`] for a replica-set member's host, which means `default_port`
    /// when it names none.
    pub fn parse_or_default(text: &str, default_port: u16) -> Result<HostAndPort, BadHostAndPort> {
        Ok(match HostAndPort::parse(text)? {
            Parsed::Full(hp) => hp,
            Parsed::HostOnly(host) => HostAndPort {
                host,
                port: default_port,
            },
        })
    }

    /// The address to connect to (IPv6 without brackets, as the resolver wants it).
    pub fn connect_target(&self) -> (&str, u16) {
        (&self.host, self.port)
    }
}

impl fmt::Display for HostAndPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What is wrong with a `host:port` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadKind {
    NoClosingBracket,
    AfterClosingBracket,
    OpeningBracketNotFirst,
    ClosingBracketAlone,
    TwoColons,
    EmptyHost,
    PortNotANumber,
    PortOutOfRange(String),
}

/// A `host:port` [`HostAndPort::parse`] refused. Displayed, it is mongod's FailedToParse
/// message; [`BadHostAndPort::reason`] is the short form replica-set config errors use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadHostAndPort {
    pub kind: BadKind,
    text: String,
}

impl BadHostAndPort {
    pub fn reason(&self) -> &'static str {
        match self.kind {
            BadKind::NoClosingBracket => "no closing ']'",
            BadKind::AfterClosingBracket
            | BadKind::OpeningBracketNotFirst
            | BadKind::ClosingBracketAlone => "misplaced brackets",
            BadKind::TwoColons => "more than one ':'",
            BadKind::EmptyHost => "empty host",
            BadKind::PortNotANumber | BadKind::PortOutOfRange(_) => "bad port",
        }
    }
}

impl fmt::Display for BadHostAndPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = &self.text;
        match &self.kind {
            BadKind::NoClosingBracket => {
                write!(
                    f,
                    "ipv6 address is missing closing ']' in hostname in {text}"
                )
            }
            BadKind::AfterClosingBracket => write!(
                f,
                "Extraneous characters between ']' and pre-port ':' in {text}"
            ),
            BadKind::OpeningBracketNotFirst => {
                write!(f, "'[' present, but not first character in {text}")
            }
            BadKind::ClosingBracketAlone => write!(f, "']' present without '[' in {text}"),
            BadKind::TwoColons => write!(
                f,
                "More than one ':' detected. If this is an ipv6 address, it needs to be \
                 surrounded by '[' and ']'; {text}"
            ),
            BadKind::EmptyHost => write!(
                f,
                "Empty host component parsing HostAndPort from \"{text}\""
            ),
            BadKind::PortNotANumber => write!(
                f,
                "Port must be a number parsing HostAndPort from \"{text}\""
            ),
            BadKind::PortOutOfRange(port) => write!(
                f,
                "Port number {port} out of range parsing HostAndPort from \"{text}\""
            ),
        }
    }
}

impl std::error::Error for BadHostAndPort {}

impl std::str::FromStr for HostAndPort {
    type Err = String;

    /// Parses a `host:port` that must name a port.
    fn from_str(text: &str) -> Result<Self, String> {
        match HostAndPort::parse(text).map_err(|e| e.to_string())? {
            Parsed::Full(hp) => Ok(hp),
            Parsed::HostOnly(_) => Err(format!("{text} has no port")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> HostAndPort {
        match HostAndPort::parse(s).unwrap() {
            Parsed::Full(hp) => hp,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn hosts_compare_without_case_and_ipv6_prints_in_brackets() {
        assert_eq!(full("LocalHost:27017"), full("localhost:27017"));
        assert_eq!(full("[::1]:27017").to_string(), "[::1]:27017");
        assert_eq!(full("[::1]:27017").connect_target(), ("::1", 27017));
    }

    #[test]
    fn bad_strings_fail_and_portless_ones_are_host_only() {
        for bad in [
            ":27017", "h:0", "h:65536", "h:x", "h:", "a:b:c", "[::1", "x]:1", "a[::1]:2",
            "[::1]x:2",
        ] {
            assert!(HostAndPort::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            HostAndPort::parse("Host").unwrap(),
            Parsed::HostOnly("host".into())
        );
        assert_eq!(
            HostAndPort::parse("[::1]").unwrap(),
            Parsed::HostOnly("::1".into())
        );
    }
}
