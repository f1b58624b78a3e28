//! profile: reads and sets the slow-operation threshold (`slowms`) of the "Slow query"
//! log. ferrod keeps no `system.profile` collection: levels 1 and 2 (which write it) are
//! refused; 0 (off) and -1 (only report) are served, as mongod does them.

use super::documents as d;
use super::{database, Command, Handler, Invocation, ServerState};
use crate::error::{bad_value, whole_number, CommandResult};
use bson::{doc, Bson, Document};
use std::sync::atomic::{AtomicI64, Ordering};

pub const PROFILE: Command = Command {
    privileges: &[database("enableProfiler")],
    ..Command::new(
        "profile",
        "controls the behaviour of the performance profiler, the fraction of eligible operations which are sampled for logging/profiling, and the threshold duration at which ops become eligible. See http://docs.mongodb.org/manual/reference/command/profile",
        Handler::Sync(profile),
    )
};

/// No `profile` has set it yet: `--slowms` (or its default, 100) holds.
const FROM_CONFIG: i64 = i64::MIN;

static SLOW_MS: AtomicI64 = AtomicI64::new(FROM_CONFIG);

/// The threshold, in milliseconds, above which a command is logged as slow.
pub fn slow_ms(server: &ServerState) -> i64 {
    match SLOW_MS.load(Ordering::Relaxed) {
        FROM_CONFIG => server.config.slowms as i64,
        ms => ms,
    }
}

fn profile(inv: &Invocation, cmd: &Document) -> CommandResult {
    d::check_fields(cmd, "profile", &["slowms", "sampleRate", "filter"])?;
    let level = cmd
        .get("profile")
        .and_then(whole_number)
        .ok_or_else(|| bad_value("profile level must be a number"))?;
    if !(-1..=2).contains(&level) {
        return Err(bad_value(format!("Bad profiling level: {level}")));
    }
    if level > 0 {
        return Err(bad_value(
            "ferrod does not keep system.profile yet: only profiling levels 0 and -1 are supported",
        ));
    }
    let slowms = match cmd.get("slowms") {
        None => None,
        Some(v) => Some(
            whole_number(v)
                .ok_or_else(|| crate::error::type_mismatch("profile.slowms", v, "long"))?,
        ),
    };
    if let Some(v) = cmd.get("sampleRate") {
        match v {
            Bson::Double(r) if (0.0..=1.0).contains(r) => {}
            Bson::Int32(1) | Bson::Int64(1) | Bson::Int32(0) | Bson::Int64(0) => {}
            _ => {
                return Err(bad_value(
                    "'sampleRate' must be between 0.0 and 1.0 inclusive",
                ))
            }
        }
    }
    let was = slow_ms(&inv.server);
    if let Some(ms) = slowms {
        SLOW_MS.store(ms, Ordering::Relaxed);
    }
    Ok(doc! {"was": 0, "slowms": was, "sampleRate": 1.0})
}
