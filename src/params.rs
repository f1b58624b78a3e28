//! Server parameters: getParameter / setParameter at runtime, `--setParameter` at startup.
//! One table says each parameter's name, type, default and when it may be set.

use crate::error::{bad_value, Code, CommandError, CommandResult};
use bson::{Bson, Document};
use parking_lot::RwLock;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// An integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// A list of strings, written as a comma-separated string at startup.
    StringList,
    /// Shown by getParameter, never set (featureCompatibilityVersion).
    ReadOnly,
    /// `logComponentVerbosity`: a setting merges into the component tree.
    LogComponents,
}

#[derive(Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub default: fn() -> Bson,
    pub at_startup: bool,
    pub at_runtime: bool,
}

macro_rules! int_param {
    ($name:expr, $default:expr, $min:expr, $max:expr, runtime: $rt:expr) => {
        ParamSpec {
            name: $name,
            kind: Kind::Int {
                min: $min,
                max: $max,
            },
            default: || Bson::Int32($default),
            at_startup: true,
            at_runtime: $rt,
        }
    };
}

pub const LOG_LEVEL: &str = "logLevel";
/// The per-component log levels; its top `verbosity` is `logLevel`.
pub const LOG_COMPONENT_VERBOSITY: &str = "logComponentVerbosity";
pub const QUIET: &str = "quiet";
pub const SCRAM_SHA1_ITERATIONS: &str = "scramIterationCount";
pub const SCRAM_SHA256_ITERATIONS: &str = "scramSHA256IterationCount";
/// Startup-only: registers test commands such as `sleep`, as mongod's flag of the same name.
pub const ENABLE_TEST_COMMANDS: &str = "enableTestCommands";
/// How long a SIGTERM/SIGINT shutdown lets in-flight commands run (mongod's name, default 15 s).
pub const SIGNALED_SHUTDOWN_TIMEOUT_MS: &str = "shutdownTimeoutMillisForSignaledShutdown";
pub const POOL_MIN_SIZE: &str = "ShardingTaskExecutorPoolMinSize";
pub const POOL_MAX_SIZE: &str = "ShardingTaskExecutorPoolMaxSize";
pub const POOL_MAX_CONNECTING: &str = "ShardingTaskExecutorPoolMaxConnecting";
pub const POOL_HOST_TIMEOUT_MS: &str = "ShardingTaskExecutorPoolHostTimeoutMS";
pub const POOL_REFRESH_REQUIREMENT_MS: &str = "ShardingTaskExecutorPoolRefreshRequirementMS";
pub const POOL_REFRESH_TIMEOUT_MS: &str = "ShardingTaskExecutorPoolRefreshTimeoutMS";
pub const KEYS_ROTATION_INTERVAL_SEC: &str = "KeysRotationIntervalSec";
pub const PERIODIC_NOOP_INTERVAL_SECS: &str = "periodicNoopIntervalSecs";
/// Startup-only, ferrod's own: how many log entries between two snapshots of the
/// replicated catalog (mongod's oplog has no equivalent; it is capped by size instead).
pub const REPL_LOG_ENTRIES_PER_SNAPSHOT: &str = "replLogEntriesPerSnapshot";
/// Startup-only: how deeply documents in requests may nest (mongod's BSONDepth).
pub const MAX_BSON_DEPTH: &str = "maxBSONDepth";
/// The size past which a logged attribute is truncated, in KB.
pub const MAX_LOG_SIZE_KB: &str = "maxLogSizeKB";
/// How long a cursor may stay idle before it is closed (mongod's default: 10 minutes).
pub const CURSOR_TIMEOUT_MILLIS: &str = "cursorTimeoutMillis";
/// The memory `$sort` may hold without `allowDiskUse` (mongod: 100 MB).
pub const SORT_MEMORY_BYTES: &str = "internalQueryMaxBlockingSortMemoryUsageBytes";
/// The memory `$group` may hold without `allowDiskUse` (mongod: 100 MB).
pub const GROUP_MEMORY_BYTES: &str = "internalDocumentSourceGroupMaxMemoryBytes";
/// How often the TTL monitor deletes expired documents (mongod: 60 seconds).
pub const TTL_MONITOR_SLEEP_SECS: &str = "ttlMonitorSleepSecs";
/// ferrod's own (issue 14): drop pooled connections to members a committed reconfig
/// removes or moves. Off by default, as mongod does not.
pub const DROP_CONNECTIONS_TO_REMOVED_MEMBERS: &str = "dropConnectionsToRemovedMembers";

const I32_MAX: i64 = i32::MAX as i64;

/// Every parameter ferrod knows, with mongod's names and defaults.
pub static PARAMETERS: &[ParamSpec] = &[
    int_param!(LOG_LEVEL, 0, 0, 5, runtime: true),
    ParamSpec {
        name: LOG_COMPONENT_VERBOSITY,
        kind: Kind::LogComponents,
        default: crate::log_components::default_tree,
        at_startup: false,
        at_runtime: true,
    },
    ParamSpec {
        name: QUIET,
        kind: Kind::Bool,
        default: || Bson::Boolean(false),
        at_startup: true,
        at_runtime: true,
    },
    int_param!(SCRAM_SHA1_ITERATIONS, 10_000, 5_000, I32_MAX, runtime: true),
    int_param!(SCRAM_SHA256_ITERATIONS, 15_000, 5_000, I32_MAX, runtime: true),
    ParamSpec {
        name: "authenticationMechanisms",
        kind: Kind::StringList,
        default: || Bson::Array(vec!["SCRAM-SHA-1".into(), "SCRAM-SHA-256".into()]),
        at_startup: true,
        at_runtime: false,
    },
    ParamSpec {
        name: "featureCompatibilityVersion",
        kind: Kind::ReadOnly,
        default: || {
            Bson::Document(bson::doc! {"version": crate::version::FEATURE_COMPATIBILITY_VERSION})
        },
        at_startup: false,
        at_runtime: false,
    },
    ParamSpec {
        name: ENABLE_TEST_COMMANDS,
        kind: Kind::Bool,
        default: || Bson::Boolean(false),
        at_startup: true,
        at_runtime: false,
    },
    int_param!(SIGNALED_SHUTDOWN_TIMEOUT_MS, 15_000, 0, I32_MAX, runtime: true),
    int_param!(POOL_MIN_SIZE, 1, 0, I32_MAX, runtime: true),
    int_param!(POOL_MAX_SIZE, 32_767, 1, I32_MAX, runtime: true),
    int_param!(POOL_MAX_CONNECTING, 2, 1, I32_MAX, runtime: true),
    int_param!(POOL_HOST_TIMEOUT_MS, 300_000, 1, I32_MAX, runtime: true),
    int_param!(POOL_REFRESH_REQUIREMENT_MS, 60_000, 1, I32_MAX, runtime: true),
    int_param!(POOL_REFRESH_TIMEOUT_MS, 20_000, 1, I32_MAX, runtime: true),
    int_param!("cursorTimeoutMillis", 600_000, 0, I32_MAX, runtime: true),
    // How long each key that signs $clusterTime is used (90 days).
    int_param!(KEYS_ROTATION_INTERVAL_SEC, 7_776_000, 1, I32_MAX, runtime: false),
    // The primary's no-op writes that keep the cluster time moving while idle.
    int_param!(PERIODIC_NOOP_INTERVAL_SECS, 10, 1, 10, runtime: false),
    int_param!(REPL_LOG_ENTRIES_PER_SNAPSHOT, 10_000, 10, I32_MAX, runtime: false),
    int_param!("maxTransactionLockRequestTimeoutMillis", 5, -1, I32_MAX, runtime: true),
    int_param!(
        MAX_BSON_DEPTH,
        crate::wire::depth::DEFAULT_MAX_BSON_DEPTH as i32,
        crate::wire::depth::MIN_MAX_BSON_DEPTH as i64,
        crate::wire::depth::MAX_MAX_BSON_DEPTH as i64,
        runtime: false
    ),
    int_param!(MAX_LOG_SIZE_KB, 10, 0, I32_MAX, runtime: true),
    int_param!(CURSOR_TIMEOUT_MILLIS, 600_000, 0, I32_MAX, runtime: true),
    int_param!(SORT_MEMORY_BYTES, 104_857_600, 1, I32_MAX, runtime: true),
    int_param!(GROUP_MEMORY_BYTES, 104_857_600, 1, I32_MAX, runtime: true),
    int_param!(TTL_MONITOR_SLEEP_SECS, 60, 1, I32_MAX, runtime: true),
    ParamSpec {
        name: DROP_CONNECTIONS_TO_REMOVED_MEMBERS,
        kind: Kind::Bool,
        default: || Bson::Boolean(false),
        at_startup: true,
        at_runtime: true,
    },
];

fn spec(name: &str) -> Option<&'static ParamSpec> {
    PARAMETERS.iter().find(|p| p.name == name)
}

/// Current values of every parameter.
#[derive(Debug)]
pub struct Parameters {
    values: RwLock<BTreeMap<&'static str, Bson>>,
}

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            values: RwLock::new(PARAMETERS.iter().map(|p| (p.name, (p.default)())).collect()),
        }
    }
}

fn unrecognized(name: &str) -> CommandError {
    CommandError::new(
        Code::InvalidOptions,
        format!("attempted to set unrecognized parameter [{name}], use help:true to see options "),
    )
}

/// Reads `value` as the parameter's kind. Strings are accepted for numbers and booleans,
/// as `--setParameter name=value` gives them.
fn coerce(spec: &ParamSpec, value: &Bson) -> CommandResult<Bson> {
    let invalid = || {
        bad_value(format!(
            "Invalid value for parameter {}: {value}",
            spec.name
        ))
    };
    match spec.kind {
        Kind::Int { min, max } => {
            let n = match value {
                Bson::Int32(n) => *n as i64,
                Bson::Int64(n) => *n,
                Bson::Double(d) if d.fract() == 0.0 => *d as i64,
                Bson::String(s) => s.trim().parse::<i64>().map_err(|_| invalid())?,
                _ => return Err(invalid()),
            };
            if n < min || n > max {
                return Err(bad_value(format!(
                    "Invalid value for parameter {}: {n} is not in the range [{min}, {max}]",
                    spec.name
                )));
            }
            Ok(Bson::Int32(n as i32))
        }
        Kind::Bool => match value {
            Bson::Boolean(b) => Ok(Bson::Boolean(*b)),
            Bson::Int32(n) => Ok(Bson::Boolean(*n != 0)),
            Bson::Int64(n) => Ok(Bson::Boolean(*n != 0)),
            Bson::Double(d) => Ok(Bson::Boolean(*d != 0.0)),
            Bson::String(s) if s == "true" || s == "1" => Ok(Bson::Boolean(true)),
            Bson::String(s) if s == "false" || s == "0" => Ok(Bson::Boolean(false)),
            _ => Err(invalid()),
        },
        Kind::StringList => match value {
            Bson::String(s) => Ok(Bson::Array(
                s.split(',')
                    .map(|x| Bson::String(x.trim().to_owned()))
                    .collect(),
            )),
            Bson::Array(items) if items.iter().all(|i| matches!(i, Bson::String(_))) => {
                Ok(value.clone())
            }
            _ => Err(invalid()),
        },
        Kind::ReadOnly => Err(bad_value(format!("{} cannot be set", spec.name))),
        Kind::LogComponents => match value {
            Bson::Document(_) => Ok(value.clone()),
            _ => Err(bad_value(format!(
                "Invalid value for parameter {}: expected an object",
                spec.name
            ))),
        },
    }
}

fn as_i64(values: &BTreeMap<&'static str, Bson>, name: &str) -> i64 {
    match values.get(name) {
        Some(Bson::Int32(n)) => *n as i64,
        Some(Bson::Int64(n)) => *n,
        _ => 0,
    }
}

/// Rules that tie parameters together; checked against the values as they would be.
fn check_relations(values: &BTreeMap<&'static str, Bson>) -> CommandResult<()> {
    let host_timeout = as_i64(values, POOL_HOST_TIMEOUT_MS);
    let refresh_requirement = as_i64(values, POOL_REFRESH_REQUIREMENT_MS);
    let refresh_timeout = as_i64(values, POOL_REFRESH_TIMEOUT_MS);
    if host_timeout <= refresh_requirement + refresh_timeout {
        return Err(bad_value(format!(
            "{POOL_HOST_TIMEOUT_MS} ({host_timeout}) must be greater than \
             {POOL_REFRESH_REQUIREMENT_MS} ({refresh_requirement}) plus \
             {POOL_REFRESH_TIMEOUT_MS} ({refresh_timeout})"
        )));
    }
    if refresh_timeout >= refresh_requirement {
        return Err(bad_value(format!(
            "{POOL_REFRESH_TIMEOUT_MS} ({refresh_timeout}) must be less than \
             {POOL_REFRESH_REQUIREMENT_MS} ({refresh_requirement})"
        )));
    }
    let (min, max) = (as_i64(values, POOL_MIN_SIZE), as_i64(values, POOL_MAX_SIZE));
    if min > max {
        return Err(bad_value(format!(
            "{POOL_MIN_SIZE} ({min}) must not be greater than {POOL_MAX_SIZE} ({max})"
        )));
    }
    Ok(())
}

impl Parameters {
    pub fn get(&self, name: &str) -> Option<Bson> {
        self.values.read().get(name).cloned()
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        as_i64(&self.values.read(), name)
    }

    pub fn get_bool(&self, name: &str) -> bool {
        matches!(self.values.read().get(name), Some(Bson::Boolean(true)))
    }

    pub fn all(&self) -> Document {
        self.values
            .read()
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    pub fn is_known(name: &str) -> bool {
        spec(name).is_some()
    }

    /// Sets several parameters at once, all or nothing. Returns the previous values.
    pub fn set_many(
        &self,
        updates: &[(String, Bson)],
        at_startup: bool,
    ) -> CommandResult<Vec<Bson>> {
        let mut values = self.values.write();
        let mut next = values.clone();
        let mut previous = Vec::with_capacity(updates.len());
        for (name, value) in updates {
            let spec = spec(name).ok_or_else(|| unrecognized(name))?;
            let allowed = if at_startup {
                spec.at_startup
            } else {
                spec.at_runtime
            };
            if !allowed {
                return Err(if at_startup {
                    bad_value(format!(
                        "Cannot use --setParameter to set \"{name}\" at startup"
                    ))
                } else {
                    CommandError::new(
                        Code::IllegalOperation,
                        format!("not allowed to change [{name}] at runtime"),
                    )
                });
            }
            let value = coerce(spec, value)?;
            let value = match (&value, next.get(spec.name)) {
                (Bson::Document(update), Some(Bson::Document(tree))) => {
                    let mut tree = tree.clone();
                    crate::log_components::merge(&mut tree, update)?;
                    let top = tree.get_i32("verbosity").unwrap_or(0).min(5);
                    next.insert(LOG_LEVEL, Bson::Int32(top));
                    Bson::Document(tree)
                }
                _ => value,
            };
            let level = (spec.name == LOG_LEVEL).then(|| value.clone());
            previous.push(next.insert(spec.name, value).unwrap_or(Bson::Null));
            // logLevel is the default component's verbosity.
            if let (Some(level), Some(Bson::Document(tree))) =
                (level, next.get_mut(LOG_COMPONENT_VERBOSITY))
            {
                tree.insert("verbosity", level);
            }
        }
        check_relations(&next)?;
        *values = next;
        Ok(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeouts_must_keep_their_order() {
        let p = Parameters::default();
        let err = p
            .set_many(&[(POOL_HOST_TIMEOUT_MS.into(), Bson::Int32(1000))], false)
            .unwrap_err();
        assert_eq!(err.code, Code::BadValue);
        assert_eq!(p.get_i64(POOL_HOST_TIMEOUT_MS), 300_000);
        p.set_many(
            &[
                (POOL_REFRESH_REQUIREMENT_MS.into(), Bson::Int32(500)),
                (POOL_REFRESH_TIMEOUT_MS.into(), Bson::Int32(200)),
                (POOL_HOST_TIMEOUT_MS.into(), Bson::Int32(1000)),
            ],
            false,
        )
        .unwrap();
        assert_eq!(p.get_i64(POOL_HOST_TIMEOUT_MS), 1000);
    }

    #[test]
    fn scram_iterations_have_a_minimum() {
        let p = Parameters::default();
        let err = p
            .set_many(
                &[(SCRAM_SHA256_ITERATIONS.into(), Bson::Int32(4096))],
                false,
            )
            .unwrap_err();
        assert_eq!(err.code, Code::BadValue);
    }
}
