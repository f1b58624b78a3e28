//! The replica-set config document: parsing, validation and rendering as mongod 7.0 does.

use crate::error::{bad_value, type_mismatch, Code, CommandError, CommandResult};
use crate::pool::host_and_port::{HostAndPort, Parsed};
use bson::{doc, Bson, Document};
use serde::{Deserialize, Serialize};

pub const MAX_MEMBERS: usize = 50;
pub const MAX_VOTING_MEMBERS: usize = 7;
pub const DEFAULT_HEARTBEAT_INTERVAL_MILLIS: i64 = 2000;
pub const DEFAULT_ELECTION_TIMEOUT_MILLIS: i64 = 10_000;
pub const DEFAULT_HEARTBEAT_TIMEOUT_SECS: i32 = 10;

/// One entry of `members`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberConfig {
    pub id: u64,
    pub host: String,
    pub priority: f64,
    pub votes: i32,
    pub hidden: bool,
    pub build_indexes: bool,
    pub secondary_delay_secs: i64,
    /// `tags`, kept as given (relaxed extended JSON, so it survives the Raft log).
    pub tags: String,
}

impl MemberConfig {
    /// `tags` as a document.
    pub fn tags_document(&self) -> Document {
        serde_json::from_str::<serde_json::Value>(&self.tags)
            .ok()
            .and_then(|v| Bson::try_from(v).ok())
            .and_then(|b| b.as_document().cloned())
            .unwrap_or_default()
    }

    pub fn is_voter(&self) -> bool {
        self.votes > 0
    }

    /// Can become primary (mongod: priority > 0, which hidden and non-voting forbid).
    pub fn is_electable(&self) -> bool {
        self.priority > 0.0 && self.is_voter() && !self.hidden
    }
}

/// `settings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub heartbeat_interval_millis: i64,
    pub election_timeout_millis: i64,
    pub heartbeat_timeout_secs: i32,
    pub chaining_allowed: bool,
    pub catch_up_timeout_millis: i64,
    pub catch_up_takeover_delay_millis: i64,
    /// `replicaSetId`, an ObjectId made at initiate (hex).
    pub replica_set_id: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            heartbeat_interval_millis: DEFAULT_HEARTBEAT_INTERVAL_MILLIS,
            election_timeout_millis: DEFAULT_ELECTION_TIMEOUT_MILLIS,
            heartbeat_timeout_secs: DEFAULT_HEARTBEAT_TIMEOUT_SECS,
            chaining_allowed: true,
            catch_up_timeout_millis: -1,
            catch_up_takeover_delay_millis: 30_000,
            replica_set_id: String::new(),
        }
    }
}

/// A whole replica-set config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplSetConfig {
    pub set_name: String,
    pub version: i64,
    pub term: i64,
    pub members: Vec<MemberConfig>,
    pub settings: Settings,
}

const MEMBER_FIELDS: &[&str] = &[
    "_id",
    "host",
    "priority",
    "votes",
    "hidden",
    "arbiterOnly",
    "buildIndexes",
    "tags",
    "secondaryDelaySecs",
    "slaveDelay",
];

const CONFIG_FIELDS: &[&str] = &[
    "_id",
    "version",
    "term",
    "protocolVersion",
    "writeConcernMajorityJournalDefault",
    "configsvr",
    "members",
    "settings",
];

const SETTINGS_FIELDS: &[&str] = &[
    "heartbeatIntervalMillis",
    "electionTimeoutMillis",
    "heartbeatTimeoutSecs",
    "chainingAllowed",
    "catchUpTimeoutMillis",
    "catchUpTakeoverDelayMillis",
    "getLastErrorModes",
    "getLastErrorDefaults",
    "replicaSetId",
];

fn invalid(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::InvalidReplicaSetConfig, msg)
}

/// A whole number of any numeric BSON type, as mongod's config parser accepts.
fn number(field: &str, value: &Bson) -> CommandResult<f64> {
    match value {
        Bson::Int32(n) => Ok(*n as f64),
        Bson::Int64(n) => Ok(*n as f64),
        Bson::Double(d) => Ok(*d),
        other => Err(type_mismatch(field, other, "number")),
    }
}

fn boolean(field: &str, value: &Bson) -> CommandResult<bool> {
    match value {
        Bson::Boolean(b) => Ok(*b),
        Bson::Int32(n) => Ok(*n != 0),
        Bson::Int64(n) => Ok(*n != 0),
        Bson::Double(d) => Ok(*d != 0.0),
        other => Err(type_mismatch(field, other, "bool")),
    }
}

/// Checks `host:port` the way mongod's HostAndPort parser does.
/// Returns whether it names a port; without one a member's host means port 27017.
pub fn check_host_and_port(field: &str, host: &str) -> CommandResult<bool> {
    match HostAndPort::parse(host) {
        Ok(parsed) => Ok(matches!(parsed, Parsed::Full(_))),
        Err(e) => Err(CommandError::new(
            Code::FailedToParse,
            format!(
                "{field}: '{host}' is not a valid host:port ({})",
                e.reason()
            ),
        )),
    }
}

fn parse_member(index: usize, value: &Bson) -> CommandResult<MemberConfig> {
    let Bson::Document(m) = value else {
        return Err(type_mismatch(&format!("members.{index}"), value, "object"));
    };
    for key in m.keys() {
        if !MEMBER_FIELDS.contains(&key.as_str()) {
            return Err(CommandError::new(
                Code::IDLUnknownField,
                format!("BSON field 'MemberConfig.{key}' is an unknown field."),
            ));
        }
    }
    let id = match m.get("_id") {
        None => return Err(crate::error::missing_field("MemberConfig._id")),
        Some(v) => number("MemberConfig._id", v)?,
    };
    if id < 0.0 || id.fract() != 0.0 || id > 255.0 {
        return Err(bad_value(format!(
            "_id field value of {id} is out of range."
        )));
    }
    let host = match m.get("host") {
        Some(Bson::String(h)) => h.clone(),
        Some(other) => return Err(type_mismatch("MemberConfig.host", other, "string")),
        None => return Err(crate::error::missing_field("MemberConfig.host")),
    };
    let host = if check_host_and_port(&format!("members.{index}.host"), &host)? {
        host
    } else {
        format!("{host}:{}", crate::config::DEFAULT_PORT)
    };
    if let Some(v) = m.get("arbiterOnly") {
        if boolean("MemberConfig.arbiterOnly", v)? {
            return Err(bad_value(format!(
                "members.{index}.arbiterOnly: ferrod does not support arbiters; \
                 use a data-bearing member with priority 0 instead"
            )));
        }
    }
    let priority = match m.get("priority") {
        Some(v) => number("MemberConfig.priority", v)?,
        None => 1.0,
    };
    if !(0.0..=1000.0).contains(&priority) {
        return Err(bad_value(format!(
            "priority field value of {priority} is out of range"
        )));
    }
    let votes = match m.get("votes") {
        Some(v) => number("MemberConfig.votes", v)?,
        None => 1.0,
    };
    if votes != 0.0 && votes != 1.0 {
        return Err(bad_value(format!(
            "votes field value is {votes} but must be 0 or 1"
        )));
    }
    let hidden = match m.get("hidden") {
        Some(v) => boolean("MemberConfig.hidden", v)?,
        None => false,
    };
    let build_indexes = match m.get("buildIndexes") {
        Some(v) => boolean("MemberConfig.buildIndexes", v)?,
        None => true,
    };
    let secondary_delay_secs = match m.get("secondaryDelaySecs").or(m.get("slaveDelay")) {
        Some(v) => number("MemberConfig.secondaryDelaySecs", v)? as i64,
        None => 0,
    };
    let tags = match m.get("tags") {
        None => "{}".to_owned(),
        Some(Bson::Document(t)) => Bson::Document(t.clone()).into_relaxed_extjson().to_string(),
        Some(other) => return Err(type_mismatch("MemberConfig.tags", other, "object")),
    };
    if votes == 0.0 && priority != 0.0 {
        return Err(bad_value(format!(
            "priority must be 0 when non-voting (votes:0); member {index} has priority {priority}"
        )));
    }
    if hidden && priority != 0.0 {
        return Err(bad_value(format!(
            "priority must be 0 when hidden=true; member {index} has priority {priority}"
        )));
    }
    if !build_indexes && priority != 0.0 {
        return Err(bad_value(format!(
            "priority must be 0 when buildIndexes=false; member {index} has priority {priority}"
        )));
    }
    Ok(MemberConfig {
        id: id as u64,
        host,
        priority,
        votes: votes as i32,
        hidden,
        build_indexes,
        secondary_delay_secs,
        tags,
    })
}

fn parse_settings(value: Option<&Bson>) -> CommandResult<Settings> {
    let mut settings = Settings::default();
    let Some(value) = value else {
        return Ok(settings);
    };
    let Bson::Document(s) = value else {
        return Err(type_mismatch("settings", value, "object"));
    };
    for key in s.keys() {
        if !SETTINGS_FIELDS.contains(&key.as_str()) {
            return Err(CommandError::new(
                Code::IDLUnknownField,
                format!("BSON field 'ReplSetConfigSettings.{key}' is an unknown field."),
            ));
        }
    }
    if let Some(v) = s.get("heartbeatIntervalMillis") {
        settings.heartbeat_interval_millis = number("settings.heartbeatIntervalMillis", v)? as i64;
        if settings.heartbeat_interval_millis <= 0 {
            return Err(bad_value(
                "settings.heartbeatIntervalMillis field value must be positive",
            ));
        }
    }
    if let Some(v) = s.get("electionTimeoutMillis") {
        settings.election_timeout_millis = number("settings.electionTimeoutMillis", v)? as i64;
        if settings.election_timeout_millis <= 0 {
            return Err(bad_value(
                "settings.electionTimeoutMillis field value must be positive",
            ));
        }
    }
    if let Some(v) = s.get("heartbeatTimeoutSecs") {
        settings.heartbeat_timeout_secs = number("settings.heartbeatTimeoutSecs", v)? as i32;
        if settings.heartbeat_timeout_secs <= 0 {
            return Err(bad_value(
                "settings.heartbeatTimeoutSecs field value must be positive",
            ));
        }
    }
    if let Some(v) = s.get("chainingAllowed") {
        settings.chaining_allowed = boolean("settings.chainingAllowed", v)?;
    }
    if let Some(v) = s.get("catchUpTimeoutMillis") {
        settings.catch_up_timeout_millis = number("settings.catchUpTimeoutMillis", v)? as i64;
    }
    if let Some(v) = s.get("catchUpTakeoverDelayMillis") {
        settings.catch_up_takeover_delay_millis =
            number("settings.catchUpTakeoverDelayMillis", v)? as i64;
    }
    if let Some(Bson::ObjectId(id)) = s.get("replicaSetId") {
        settings.replica_set_id = id.to_hex();
    }
    // Raft needs heartbeats well inside the election timeout.
    if settings.heartbeat_interval_millis >= settings.election_timeout_millis {
        return Err(bad_value(format!(
            "settings.heartbeatIntervalMillis ({}) must be less than settings.electionTimeoutMillis ({})",
            settings.heartbeat_interval_millis, settings.election_timeout_millis
        )));
    }
    Ok(settings)
}

impl ReplSetConfig {
    /// Parses and validates a config document (the checks of mongod's ReplSetConfig).
    pub fn parse(doc: &Document) -> CommandResult<ReplSetConfig> {
        for key in doc.keys() {
            if !CONFIG_FIELDS.contains(&key.as_str()) {
                return Err(CommandError::new(
                    Code::IDLUnknownField,
                    format!("BSON field 'ReplSetConfig.{key}' is an unknown field."),
                ));
            }
        }
        let set_name = match doc.get("_id") {
            Some(Bson::String(s)) if !s.is_empty() => s.clone(),
            Some(Bson::String(_)) => {
                return Err(bad_value(
                    "Replica set configuration must have non-empty _id field",
                ))
            }
            Some(other) => return Err(type_mismatch("ReplSetConfig._id", other, "string")),
            None => return Err(crate::error::missing_field("ReplSetConfig._id")),
        };
        let version = match doc.get("version") {
            Some(v) => number("ReplSetConfig.version", v)? as i64,
            None => return Err(crate::error::missing_field("ReplSetConfig.version")),
        };
        if version < 1 {
            return Err(bad_value(format!(
                "version field value of {version} is out of range"
            )));
        }
        let term = match doc.get("term") {
            Some(v) => number("ReplSetConfig.term", v)? as i64,
            None => -1,
        };
        if let Some(v) = doc.get("protocolVersion") {
            if number("ReplSetConfig.protocolVersion", v)? != 1.0 {
                return Err(bad_value("Only protocolVersion 1 is supported"));
            }
        }
        if let Some(v) = doc.get("configsvr") {
            if boolean("ReplSetConfig.configsvr", v)? {
                return Err(bad_value(
                    "Nodes being used for config servers must be started with the --configsvr flag",
                ));
            }
        }
        let members = match doc.get("members") {
            Some(Bson::Array(a)) => a,
            Some(other) => return Err(type_mismatch("ReplSetConfig.members", other, "array")),
            None => return Err(crate::error::missing_field("ReplSetConfig.members")),
        };
        let members = members
            .iter()
            .enumerate()
            .map(|(i, m)| parse_member(i, m))
            .collect::<CommandResult<Vec<_>>>()?;
        let settings = parse_settings(doc.get("settings"))?;
        let config = ReplSetConfig {
            set_name,
            version,
            term,
            members,
            settings,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> CommandResult<()> {
        let n = self.members.len();
        if n == 0 || n > MAX_MEMBERS {
            return Err(bad_value(format!(
                "Replica set configuration contains {n} members, but must have at least 1 and no more than  {MAX_MEMBERS}"
            )));
        }
        let voters = self.members.iter().filter(|m| m.is_voter()).count();
        if voters == 0 || voters > MAX_VOTING_MEMBERS {
            return Err(bad_value(format!(
                "Replica set configuration contains {voters} voting members, but must be at least 1 and no more than {MAX_VOTING_MEMBERS}"
            )));
        }
        for (i, a) in self.members.iter().enumerate() {
            for (j, b) in self.members.iter().enumerate().skip(i + 1) {
                if a.id == b.id {
                    return Err(bad_value(format!(
                        "Found two member configurations with same _id field, members.{i}._id == members.{j}._id == {}",
                        a.id
                    )));
                }
                // Compared as parsed, so that `H:1` and `h:01` are the same member.
                let same = |h: &str| HostAndPort::parse_or_default(h, crate::config::DEFAULT_PORT);
                if a.host.eq_ignore_ascii_case(&b.host)
                    || matches!((same(&a.host), same(&b.host)), (Ok(x), Ok(y)) if x == y)
                {
                    return Err(bad_value(format!(
                        "Found two member configurations with same host field, members.{i}.host == members.{j}.host == {}",
                        a.host
                    )));
                }
            }
        }
        if !self.members.iter().any(|m| m.is_electable()) {
            return Err(invalid(
                "Replica set configuration must contain at least one non-arbiter member with priority > 0",
            ));
        }
        Ok(())
    }

    /// The member `self_host` names, or mongod's error for a config that leaves this node out.
    pub fn find_self(&self, is_self: impl Fn(&str) -> bool) -> CommandResult<&MemberConfig> {
        self.members.iter().find(|m| is_self(&m.host)).ok_or_else(|| {
            invalid(format!(
                "No host described in new configuration with {{version: {}, term: {}}} for replica set {} maps to this node",
                self.version, self.term, self.set_name
            ))
        })
    }

    pub fn member(&self, id: u64) -> Option<&MemberConfig> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn voter_ids(&self) -> std::collections::BTreeSet<u64> {
        self.members
            .iter()
            .filter(|m| m.is_voter())
            .map(|m| m.id)
            .collect()
    }

    /// mongod's default for `rs.initiate()` with no config: this node alone.
    pub fn default_for(set_name: &str, self_host: &str) -> ReplSetConfig {
        ReplSetConfig {
            set_name: set_name.to_owned(),
            version: 1,
            term: -1,
            members: vec![MemberConfig {
                id: 0,
                host: self_host.to_owned(),
                priority: 1.0,
                votes: 1,
                hidden: false,
                build_indexes: true,
                secondary_delay_secs: 0,
                tags: "{}".into(),
            }],
            settings: Settings::default(),
        }
    }

    /// The document replSetGetConfig shows.
    pub fn to_document(&self) -> Document {
        let members: Vec<Bson> = self
            .members
            .iter()
            .map(|m| {
                let tags = m.tags_document();
                Bson::Document(doc! {
                    "_id": m.id as i32,
                    "host": m.host.clone(),
                    "arbiterOnly": false,
                    "buildIndexes": m.build_indexes,
                    "hidden": m.hidden,
                    "priority": m.priority,
                    "tags": tags,
                    "secondaryDelaySecs": m.secondary_delay_secs,
                    "votes": m.votes,
                })
            })
            .collect();
        let s = &self.settings;
        let mut settings = doc! {
            "chainingAllowed": s.chaining_allowed,
            "heartbeatIntervalMillis": s.heartbeat_interval_millis as i32,
            "heartbeatTimeoutSecs": s.heartbeat_timeout_secs,
            "electionTimeoutMillis": s.election_timeout_millis as i32,
            "catchUpTimeoutMillis": s.catch_up_timeout_millis as i32,
            "catchUpTakeoverDelayMillis": s.catch_up_takeover_delay_millis as i32,
            "getLastErrorModes": {},
            "getLastErrorDefaults": {"w": 1, "wtimeout": 0},
        };
        if let Ok(id) = bson::oid::ObjectId::parse_str(&s.replica_set_id) {
            settings.insert("replicaSetId", id);
        }
        doc! {
            "_id": self.set_name.clone(),
            "version": self.version as i32,
            "term": self.term,
            "members": members,
            "protocolVersion": 1i64,
            "writeConcernMajorityJournalDefault": true,
            "settings": settings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Document {
        doc! {"_id": "rs0", "version": 1, "members": [
            {"_id": 0, "host": "a:1"}, {"_id": 1, "host": "b:2"}, {"_id": 2, "host": "c:3"}
        ]}
    }

    #[test]
    fn defaults_match_mongod() {
        let c = ReplSetConfig::parse(&three()).unwrap();
        assert_eq!(c.settings.heartbeat_interval_millis, 2000);
        assert_eq!(c.settings.election_timeout_millis, 10_000);
        assert_eq!(c.settings.heartbeat_timeout_secs, 10);
        assert_eq!(c.members[1].priority, 1.0);
        assert_eq!(c.members[1].votes, 1);
    }

    #[test]
    fn duplicate_ids_and_hosts_are_bad_values() {
        let mut d = three();
        d.insert(
            "members",
            vec![
                Bson::Document(doc! {"_id": 0, "host": "a:1"}),
                Bson::Document(doc! {"_id": 0, "host": "b:1"}),
            ],
        );
        assert_eq!(ReplSetConfig::parse(&d).unwrap_err().code, Code::BadValue);
        d.insert(
            "members",
            vec![
                Bson::Document(doc! {"_id": 0, "host": "a:1"}),
                Bson::Document(doc! {"_id": 1, "host": "A:1"}),
            ],
        );
        assert_eq!(ReplSetConfig::parse(&d).unwrap_err().code, Code::BadValue);
        // The same member written two ways, as the host:port parser reads them.
        for (x, y) in [("a:01", "A:1"), ("a", "a:27017"), ("[::1]", "[::1]:27017")] {
            d.insert(
                "members",
                vec![
                    Bson::Document(doc! {"_id": 0, "host": x}),
                    Bson::Document(doc! {"_id": 1, "host": y}),
                ],
            );
            let err = ReplSetConfig::parse(&d).unwrap_err();
            assert_eq!(err.code, Code::BadValue, "{x} {y}: {err:?}");
        }
    }

    #[test]
    fn unknown_member_field_is_refused() {
        let mut d = three();
        d.insert(
            "members",
            vec![Bson::Document(
                doc! {"_id": 0, "host": "a:1", "color": "red"},
            )],
        );
        assert_eq!(
            ReplSetConfig::parse(&d).unwrap_err().code,
            Code::IDLUnknownField
        );
    }

    #[test]
    fn eight_voters_are_too_many() {
        let members: Vec<Bson> = (0..8)
            .map(|i| Bson::Document(doc! {"_id": i, "host": format!("h:{}", 1000 + i)}))
            .collect();
        let d = doc! {"_id": "rs0", "version": 1, "members": members};
        let err = ReplSetConfig::parse(&d).unwrap_err();
        assert_eq!(err.code, Code::BadValue);
        assert!(err.message.contains("8 voting members"), "{}", err.message);
    }

    #[test]
    /// One table of inputs that every reader of `host:port` agrees on: the parser,
    /// replica-set configs (replSetInitiate/reconfig), `--initialMembers` and is_self.
    fn every_caller_reads_host_and_port_alike() {
        use crate::pool::host_and_port::{BadKind, BadKind::*, HostAndPort, Parsed};
        let full = |h: &str, p| Ok(Parsed::Full(HostAndPort::new(h, p)));
        let only = |h: &str| Ok(Parsed::HostOnly(h.into()));
        let bad = |k| Err(k);
        let table: Vec<(&str, Result<Parsed, BadKind>)> = vec![
            ("h:1", full("h", 1)),
            ("H:65535", full("h", 65535)),
            ("LocalHost:27017", full("localhost", 27017)),
            ("h:00080", full("h", 80)),
            ("h", only("h")),
            ("h:0", bad(PortOutOfRange("0".into()))),
            ("h:65536", bad(PortOutOfRange("65536".into()))),
            ("h:", bad(PortNotANumber)),
            ("h:+5", bad(PortNotANumber)),
            ("h:x", bad(PortNotANumber)),
            ("", bad(EmptyHost)),
            (":1", bad(EmptyHost)),
            ("[]:1", bad(EmptyHost)),
            ("a:b:c", bad(TwoColons)),
            ("::1", bad(TwoColons)),
            ("::1:27017", bad(TwoColons)),
            ("[::1]", only("::1")),
            ("[::1]:27017", full("::1", 27017)),
            ("[FE80::1]:5", full("fe80::1", 5)),
            ("[::1", bad(NoClosingBracket)),
            ("[::1]x:2", bad(AfterClosingBracket)),
            ("a[::1]:2", bad(OpeningBracketNotFirst)),
            ("x]:1", bad(ClosingBracketAlone)),
        ];
        let own_name = "myhost";
        for (text, expected) in table {
            let parsed = HostAndPort::parse(text).map_err(|e| e.kind);
            assert_eq!(parsed, expected, "parse {text:?}");

            let member = check_host_and_port("members.0.host", text);
            match &expected {
                Ok(p) => assert_eq!(
                    member.unwrap(),
                    matches!(p, Parsed::Full(_)),
                    "config {text:?}"
                ),
                Err(_) => {
                    let e = member.unwrap_err();
                    assert_eq!(e.code, crate::error::Code::FailedToParse, "config {text:?}");
                }
            }

            let args = ["ferrod", "--replSet", "rs", "--initialMembers", text];
            let config = crate::config::Config::from_args(args);
            assert_eq!(
                config.is_ok(),
                matches!(expected, Ok(Parsed::Full(_))),
                "--initialMembers {text:?}"
            );

            // With no port, a member's host means 27017.
            let target = match &expected {
                Ok(Parsed::Full(hp)) => Some(hp.clone()),
                Ok(Parsed::HostOnly(h)) => Some(HostAndPort::new(h, 27017)),
                Err(_) => None,
            };
            for port in [27017, 5] {
                let is_self = target.as_ref().is_some_and(|t| {
                    t.port() == port && ["localhost", "::1", own_name].contains(&t.host())
                });
                assert_eq!(
                    crate::repl::names_self(text, port, own_name, false, &[]),
                    is_self,
                    "is_self {text:?} on port {port}"
                );
            }
        }
    }
}
