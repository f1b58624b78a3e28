//! The network side: listeners with the connection limit, one task per connection,
//! and graceful shutdown.

mod connection;
pub mod fast_lane;
mod listener;
mod tls;

pub use listener::{bind, run, Listeners};

/// After the grace period, how long interrupted commands get to send their error replies.
pub const INTERRUPTED_REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
