//! The network side: listeners with the connection limit, one task per connection,
//! and graceful shutdown.

mod connection;
mod listener;

pub use listener::{bind, run, Listeners};

/// How long shutdown waits for in-flight commands before closing anyway.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
