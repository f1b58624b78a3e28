//! sleep: mongod's test command that stays in flight for a while, so that currentOp,
//! killOp, maxTimeMS and shutdown can be watched on a real operation. It exists only
//! with `--setParameter enableTestCommands=1`, as in mongod.

use super::{BoxFuture, Command, Handler, Invocation};
use crate::error::{Code, CommandError, CommandResult};
use bson::{Bson, Document};
use std::time::Duration;

pub const SLEEP: Command = Command {
    admin_only: true,
    test_only: true,
    ..Command::new(
        "sleep",
        "internal testing command. Run a no-op command for an arbitrary amount of time. \
         If neither 'secs' nor 'millis' is set, command will sleep for 10 seconds. \
         If both are set, command will sleep for the sum of 'secs' and 'millis.'\n\
         \x20  lock: r, ir, w, iw, none (ferrod has no locks; accepted for compatibility).\n\
         \x20  secs:<seconds> Amount of time to sleep, in seconds.\n\
         \x20  millis:<milliseconds> Amount of time to sleep, in ms.\n\
         'seconds' may be used as an alias for 'secs'.\n",
        Handler::Async(sleep),
    )
};

/// mongod sleeps this long when neither `secs` nor `millis` is given.
const DEFAULT_SLEEP: Duration = Duration::from_secs(10);

const LOCK_MODES: &[&str] = &["r", "ir", "w", "iw", "none"];

/// A number as mongod's `numberLong()` reads it (doubles truncate).
fn number(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(n) => Some(*n as i64),
        Bson::Int64(n) => Some(*n),
        Bson::Double(d) if d.is_finite() => Some(*d as i64),
        Bson::Double(_) => Some(0),
        _ => None,
    }
}

/// How long to sleep, with mongod's checks and error codes.
fn duration(cmd: &Document) -> CommandResult<Duration> {
    let (secs, seconds, millis) = (cmd.get("secs"), cmd.get("seconds"), cmd.get("millis"));
    if secs.is_none() && seconds.is_none() && millis.is_none() {
        return Ok(DEFAULT_SLEEP);
    }
    if secs.is_some() && seconds.is_some() {
        return Err(CommandError::new(
            Code::Location51153,
            "Only one of 'secs' and 'seconds' may be specified",
        ));
    }
    let mut ms: i64 = 0;
    if let Some(v) = secs {
        let n = number(v)
            .ok_or_else(|| CommandError::new(Code::Location34344, "'secs' must be a number."))?;
        ms = ms.saturating_add(n.saturating_mul(1000));
    } else if let Some(v) = seconds {
        let n = number(v)
            .ok_or_else(|| CommandError::new(Code::Location51154, "'seconds' must be a number."))?;
        ms = ms.saturating_add(n.saturating_mul(1000));
    }
    if let Some(v) = millis {
        let n = number(v)
            .ok_or_else(|| CommandError::new(Code::Location34345, "'millis' must be a number."))?;
        ms = ms.saturating_add(n);
    }
    Ok(Duration::from_millis(ms.max(0) as u64))
}

fn check_lock(cmd: &Document) -> CommandResult<()> {
    let Some(lock) = cmd.get("lock") else {
        return Ok(());
    };
    if cmd.contains_key("w") {
        return Err(CommandError::new(
            Code::Location34346,
            "Only one of 'w' and 'lock' may be set.",
        ));
    }
    match lock {
        Bson::String(mode) if LOCK_MODES.contains(&mode.as_str()) => Ok(()),
        _ => Err(CommandError::new(
            Code::Location34347,
            "'lock' must be one of 'r', 'ir', 'w', 'iw', 'none'.",
        )),
    }
}

fn sleep(inv: Invocation, cmd: Document) -> BoxFuture {
    Box::pin(async move {
        check_lock(&cmd)?;
        let how_long = duration(&cmd)?;
        tracing::info!(target: "COMMAND", id = 20504, ctx = format!("conn{}", inv.client.id),
            "Test-only command 'sleep' invoked");
        // The dispatcher races this against killOp, maxTimeMS and shutdown.
        tokio::time::sleep(how_long).await;
        Ok(Document::new())
    })
}
