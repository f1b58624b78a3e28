//! replSetStepDown: the primary steps down and stays out of elections for stepDownSecs.

use super::{cluster, BoxFuture, Command, Handler, Invocation};
use crate::error::{bad_value, type_mismatch, CommandResult};
use crate::repl::no_replication;
use bson::{Bson, Document};
use std::time::Duration;

pub const REPL_SET_STEP_DOWN: Command = Command {
    admin_only: true,
    privileges: &[cluster("replSetStateChange")],
    ..Command::new(
        "replSetStepDown",
        "Step down as primary.  Will not try to reelect self for the specified time period (1 minute if no numeric secs value specified, or secs is 0).\n(If another member with same priority takes over in the meantime, it will stay primary.)\nhttp://dochub.mongodb.org/core/replicasetcommands",
        Handler::Async(run),
    )
};

fn seconds(cmd: &Document, field: &str, default: i64) -> CommandResult<i64> {
    match cmd.get(field) {
        None | Some(Bson::Null) => Ok(default),
        Some(Bson::Int32(n)) => Ok(*n as i64),
        Some(Bson::Int64(n)) => Ok(*n),
        Some(Bson::Double(d)) => Ok(*d as i64),
        Some(other) => Err(type_mismatch(field, other, "number")),
    }
}

fn run(inv: Invocation, cmd: Document) -> BoxFuture {
    Box::pin(async move {
        let repl = inv.server.repl.clone().ok_or_else(no_replication)?;
        let mut step_down = seconds(&cmd, "replSetStepDown", 60)?;
        if step_down == 0 {
            step_down = 60;
        }
        let catch_up = seconds(&cmd, "secondaryCatchUpPeriodSecs", 10)?;
        if step_down < 0 || catch_up < 0 {
            return Err(bad_value(
                "stepdown period and secondaryCatchUpPeriodSecs must be non-negative",
            ));
        }
        if catch_up > step_down {
            return Err(bad_value(
                "stepdown period must be longer than secondaryCatchUpPeriodSecs",
            ));
        }
        let force = matches!(cmd.get("force"), Some(Bson::Boolean(true)));
        repl.step_down(
            &inv.server,
            Duration::from_secs(step_down as u64),
            Duration::from_secs(catch_up as u64),
            force,
        )
        .await
    })
}
