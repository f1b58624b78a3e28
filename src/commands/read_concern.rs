//! The `readConcern` of the read commands (find, aggregate, count, distinct), parsed,
//! checked and waited for as mongod 7.0 does (`ReadConcernArgs::parse`, the command's
//! `supportsReadConcern`, `waitForReadConcern`).
//!
//! What each level gives on ferrod: the state machine applies only committed log
//! entries, so what a member has applied is majority-committed: `local`, `available`,
//! `majority` and `snapshot` all read the member's applied state. `linearizable` (on the
//! primary only) confirms, after the read, that this member was still the primary by
//! committing a no-op through the log. `afterClusterTime`/`afterOpTime` wait until this
//! member has applied an entry at that time or later (causal consistency).

use super::Invocation;
use crate::clock::pack;
use crate::error::{type_name, Code, CommandError, CommandResult};
use crate::repl::raft::ReplOp;
use bson::{Bson, Document, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Local,
    Majority,
    Linearizable,
    Available,
    Snapshot,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Local => "local",
            Level::Majority => "majority",
            Level::Linearizable => "linearizable",
            Level::Available => "available",
            Level::Snapshot => "snapshot",
        }
    }
}

/// A parsed `readConcern`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadConcern {
    pub level: Option<Level>,
    pub after_op_time: Option<Timestamp>,
    pub after_cluster_time: Option<Timestamp>,
    pub at_cluster_time: Option<Timestamp>,
}

fn invalid(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::InvalidOptions, msg)
}

/// bson_extract's wrong-type error.
fn wrong_type(field: &str, expected: &str, got: &Bson) -> CommandError {
    CommandError::new(
        Code::TypeMismatch,
        format!(
            "\"{field}\" had the wrong type. Expected {expected}, found {}",
            type_name(got)
        ),
    )
}

fn timestamp(field: &str, value: &Bson) -> CommandResult<Timestamp> {
    match value {
        Bson::Timestamp(ts) => Ok(*ts),
        other => Err(wrong_type(field, "timestamp", other)),
    }
}

fn ts_string(ts: Timestamp) -> String {
    format!("Timestamp({}, {})", ts.time, ts.increment)
}

impl ReadConcern {
    pub fn level(&self) -> Level {
        self.level.unwrap_or(Level::Local)
    }

    /// `{ readConcern: { level: "x", ... } }`, as mongod prints it in errors.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(level) = self.level {
            parts.push(format!("level: \"{}\"", level.name()));
        }
        if let Some(ts) = self.after_cluster_time {
            parts.push(format!("afterClusterTime: {}", ts_string(ts)));
        }
        format!("{{ readConcern: {{ {} }} }}", parts.join(", "))
    }
}

/// Reads `readConcern` from a command (None when absent), with mongod's errors.
pub fn parse(cmd: &Document) -> CommandResult<Option<ReadConcern>> {
    let rc = match cmd.get("readConcern") {
        None => return Ok(None),
        Some(Bson::Document(d)) => d,
        Some(_) => {
            return Err(CommandError::new(
                Code::FailedToParse,
                "readConcern field should be an object",
            ))
        }
    };
    let mut out = ReadConcern::default();
    for (key, value) in rc {
        match key.as_str() {
            "level" => {
                let Bson::String(s) = value else {
                    return Err(wrong_type("level", "string", value));
                };
                out.level = Some(match s.as_str() {
                    "local" => Level::Local,
                    "majority" => Level::Majority,
                    "linearizable" => Level::Linearizable,
                    "available" => Level::Available,
                    "snapshot" => Level::Snapshot,
                    _ => return Err(CommandError::new(
                        Code::FailedToParse,
                        "readConcern.level must be either 'local', 'majority', 'linearizable', 'available', or 'snapshot'",
                    )),
                });
            }
            "afterOpTime" => {
                let Bson::Document(op) = value else {
                    return Err(wrong_type("afterOpTime", "object", value));
                };
                let ts = op
                    .get("ts")
                    .ok_or_else(|| CommandError::new(Code::NoSuchKey, "Missing expected field \"ts\""))?;
                let ts = timestamp("ts", ts)?;
                match op.get("t") {
                    Some(Bson::Int64(_)) => {}
                    Some(other) => return Err(wrong_type("t", "long", other)),
                    None => {
                        return Err(CommandError::new(
                            Code::NoSuchKey,
                            "Missing expected field \"t\"",
                        ))
                    }
                }
                out.after_op_time = Some(ts);
            }
            "afterClusterTime" => out.after_cluster_time = Some(timestamp(key, value)?),
            "atClusterTime" => out.at_cluster_time = Some(timestamp(key, value)?),
            "provenance" => match value {
                Bson::String(s)
                    if ["clientSupplied", "implicitDefault", "customDefault", "getLastErrorDefaults"]
                        .contains(&s.as_str()) => {}
                Bson::String(s) => {
                    return Err(CommandError::new(
                        Code::BadValue,
                        format!(
                            "Enumeration value '{s}' for field 'ReadConcernArgs::parse.provenance' is not a valid value."
                        ),
                    ))
                }
                other => return Err(wrong_type("provenance", "string", other)),
            },
            other => {
                return Err(invalid(format!(
                    "Unrecognized option in readConcern: {other}"
                )))
            }
        }
    }
    let level = out.level();
    if out.after_cluster_time.is_some() && out.after_op_time.is_some() {
        return Err(invalid(
            "Can not specify both afterClusterTime and afterOpTime",
        ));
    }
    if out.after_cluster_time.is_some() && out.at_cluster_time.is_some() {
        return Err(invalid("Specifying a timestamp for readConcern snapshot in a causally consistent session is not allowed. See https://docs.mongodb.com/manual/core/read-isolation-consistency-recency/#causal-consistency"));
    }
    if out.after_cluster_time.is_some()
        && !matches!(level, Level::Majority | Level::Local | Level::Snapshot)
    {
        return Err(invalid(
            "afterClusterTime field can be set only if level is equal to majority, local, or snapshot",
        ));
    }
    if out.after_op_time.is_some() && level == Level::Snapshot {
        return Err(invalid(
            "afterOpTime field cannot be set if level is equal to snapshot",
        ));
    }
    if out.at_cluster_time.is_some() && level != Level::Snapshot {
        return Err(invalid(
            "atClusterTime field can be set only if level is equal to snapshot",
        ));
    }
    if out
        .at_cluster_time
        .is_some_and(|t| t.time == 0 && t.increment == 0)
    {
        return Err(invalid("atClusterTime cannot be a null timestamp"));
    }
    if out
        .after_cluster_time
        .is_some_and(|t| t.time == 0 && t.increment == 0)
    {
        return Err(invalid("afterClusterTime cannot be a null timestamp"));
    }
    Ok(Some(out))
}

/// The command's own refusals (mongod's supportsReadConcern): count reads no snapshot
/// outside a transaction; `$out` and `$merge` write, and cannot be linearizable.
fn check_supported(cmd: &Document, command: &str, rc: &ReadConcern) -> CommandResult<()> {
    let refusal = match (command, rc.level()) {
        ("count", Level::Snapshot) => Some("read concern snapshot not supported".to_string()),
        ("aggregate", Level::Linearizable) => {
            let last_stage = match cmd.get("pipeline") {
                Some(Bson::Array(stages)) => stages
                    .last()
                    .and_then(Bson::as_document)
                    .and_then(|s| s.keys().next().cloned()),
                _ => None,
            };
            last_stage
                .filter(|s| s == "$out" || s == "$merge")
                .map(|s| format!("{s} cannot be used with a 'linearizable' read concern level"))
        }
        _ => None,
    };
    match refusal {
        Some(cause) if rc.level.is_some() || rc.after_cluster_time.is_some() => {
            Err(invalid(format!(
                "Command {command} does not support {} :: caused by :: {cause}",
                rc.describe()
            )))
        }
        _ => Ok(()),
    }
}

/// Parses and checks the read concern of `command`, and waits for what it asks before
/// the read. Returns it, for [`confirm`] after the read.
pub async fn prepare(
    inv: &Invocation,
    cmd: &Document,
    command: &str,
) -> CommandResult<Option<ReadConcern>> {
    let Some(rc) = parse(cmd)? else {
        return Ok(None);
    };
    check_supported(cmd, command, &rc)?;
    let server = &inv.server;
    let repl = server.repl.as_ref();
    match rc.level() {
        Level::Linearizable => {
            let Some(repl) = repl else {
                return Err(CommandError::new(
                    Code::NotAReplicaSet,
                    "node needs to be a replica set member to use read concern",
                ));
            };
            if rc.after_op_time.is_some() {
                return Err(CommandError::new(
                    Code::FailedToParse,
                    "afterOpTime not compatible with linearizable read concern",
                ));
            }
            if repl.my_state(server) != crate::repl::MemberState::Primary {
                return Err(CommandError::new(
                    Code::NotWritablePrimary,
                    "cannot satisfy linearizable read concern on non-primary node",
                ));
            }
        }
        Level::Snapshot if repl.is_none() => {
            return Err(CommandError::new(
                Code::NotAReplicaSet,
                "node needs to be a replica set member to use readConcern: snapshot",
            ));
        }
        _ => {}
    }
    let (name, target) = match (rc.after_cluster_time, rc.at_cluster_time) {
        (Some(t), _) => ("afterClusterTime", Some(t)),
        (None, Some(t)) => ("atClusterTime", Some(t)),
        (None, None) => ("afterOpTime", rc.after_op_time),
    };
    let Some(target) = target else {
        return Ok(Some(rc));
    };
    let Some(repl) = repl else {
        if name == "afterOpTime" {
            // A standalone has no optimes to wait for: mongod answers at once.
            return Ok(Some(rc));
        }
        return Err(CommandError::new(
            Code::IllegalOperation,
            format!("Cannot specify {name} readConcern without replication enabled"),
        ));
    };
    if name != "afterOpTime" {
        // `$clusterTime` is left out of the parsed command; the operation keeps it.
        let now = known_cluster_time(server.clock.as_ref(), &inv.op.full_command());
        if pack(now) < pack(target) {
            return Err(invalid(format!(
                "readConcern {name} value must not be greater than the current clusterTime. Requested clusterTime: {}; current clusterTime: {}",
                ts_string(target),
                ts_string(now)
            )));
        }
    }
    // ferrod keeps no history of past states: a snapshot read can only be at the time
    // this member has applied, never before it.
    if name == "atClusterTime" && pack(target) < repl.applied_time() {
        return Err(CommandError::new(
            Code::SnapshotTooOld,
            format!(
                "Read timestamp {} is older than the oldest available timestamp.",
                ts_string(target)
            ),
        ));
    }
    repl.wait_applied_time(server.as_ref(), pack(target))
        .await?;
    Ok(Some(rc))
}

/// The latest cluster time this member may count as known. Without a keyFile ferrod takes
/// no client's `$clusterTime` into its clock (nothing is signed), where mongod gossips it
/// in before this check: the request's own `$clusterTime` is counted here instead, so a
/// lagging secondary waits for a time a causally consistent client saw elsewhere rather
/// than refusing it.
fn known_cluster_time(clock: &crate::clock::LogicalClock, cmd: &Document) -> Timestamp {
    let now = clock.now();
    if clock.keys().is_some() {
        return now;
    }
    let gossiped = match cmd.get("$clusterTime") {
        Some(Bson::Document(d)) => d.get_timestamp("clusterTime").ok(),
        _ => None,
    };
    match gossiped {
        Some(t) if pack(t) > pack(now) => t,
        _ => now,
    }
}

/// After the read: a linearizable read commits a no-op through the log, which only the
/// primary of the newest term can do, so that the read cannot have been served by a
/// primary that was already deposed.
pub async fn confirm(inv: &Invocation, rc: Option<&ReadConcern>) -> CommandResult<()> {
    if rc.map(ReadConcern::level) != Some(Level::Linearizable) {
        return Ok(());
    }
    let Some(repl) = inv.server.repl.as_ref() else {
        return Ok(());
    };
    match repl.propose(inv.server.as_ref(), ReplOp::Noop).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == Code::NotWritablePrimary => Err(CommandError::new(
            Code::NotWritablePrimary,
            "No longer primary when waiting for linearizable read concern",
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn bad_read_concerns_get_mongods_codes() {
        let ts = Bson::Timestamp(Timestamp {
            time: 5,
            increment: 1,
        });
        let table: Vec<(Bson, Code)> = vec![
            (Bson::Int32(1), Code::FailedToParse),
            (Bson::Document(doc! {"level": 1}), Code::TypeMismatch),
            (
                Bson::Document(doc! {"level": "strong"}),
                Code::FailedToParse,
            ),
            (Bson::Document(doc! {"bogus": 1}), Code::InvalidOptions),
            (
                Bson::Document(doc! {"afterClusterTime": 5}),
                Code::TypeMismatch,
            ),
            (
                Bson::Document(doc! {"level": "available", "afterClusterTime": ts.clone()}),
                Code::InvalidOptions,
            ),
            (
                Bson::Document(doc! {"level": "linearizable", "afterClusterTime": ts.clone()}),
                Code::InvalidOptions,
            ),
            (
                Bson::Document(doc! {"level": "majority", "atClusterTime": ts.clone()}),
                Code::InvalidOptions,
            ),
            (
                Bson::Document(
                    doc! {"afterClusterTime": ts.clone(), "afterOpTime": {"ts": ts.clone(), "t": 1i64}},
                ),
                Code::InvalidOptions,
            ),
            (
                Bson::Document(doc! {"afterClusterTime": Timestamp { time: 0, increment: 0 }}),
                Code::InvalidOptions,
            ),
        ];
        for (rc, code) in table {
            let err = parse(&doc! {"find": "c", "readConcern": rc.clone()})
                .expect_err(&format!("{rc} must be refused"));
            assert_eq!(err.code, code, "{rc}: {}", err.message);
        }
        let ok = parse(
            &doc! {"find": "c", "readConcern": {"level": "majority", "afterClusterTime": ts}},
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.level(), Level::Majority);
        assert_eq!(parse(&doc! {"find": "c"}).unwrap(), None);
    }
}
