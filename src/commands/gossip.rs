//! The dispatcher's side of `$clusterTime` gossip: cluster_time checks the time, the
//! command layer answers whether this client may advance it.

use crate::auth::privilege::ResourcePattern;
use crate::client::Client;
use crate::state::ServerState;
use bson::Document;

use crate::error::CommandResult;

pub fn gossip_in(
    server: &ServerState,
    client: &Client,
    body: &Document,
    raw_body: Option<&[u8]>,
) -> CommandResult<()> {
    let may_advance = || {
        crate::auth::is_authorized(
            server,
            client,
            &[(ResourcePattern::Cluster, "advanceClusterTime")],
        )
    };
    crate::cluster_time::gossip_in(&server.clock, may_advance, body, raw_body)
}
