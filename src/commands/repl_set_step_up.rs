//! replSetStepUp: run for election now (what a stepping-down primary asks a successor).

use super::{cluster, BoxFuture, Command, Handler, Invocation};
use crate::repl::no_replication;
use bson::Document;

pub const REPL_SET_STEP_UP: Command = Command {
    admin_only: true,
    privileges: &[cluster("replSetStateChange")],
    ..Command::new("replSetStepUp", "Step up as primary.", Handler::Async(run))
};

fn run(inv: Invocation, cmd: Document) -> BoxFuture {
    Box::pin(async move {
        let repl = inv.server.repl.clone().ok_or_else(no_replication)?;
        repl.note_step_up_request(cmd.get_bool("skipDryRun").unwrap_or(false));
        crate::repl::takeover::log_step_up_request(&cmd);
        repl.step_up(&inv.server).await
    })
}
