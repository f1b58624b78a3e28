//! Hostile input against real ferrod processes: what an attacker or a careless client
//! sends must never crash the server, stall other clients or lose an acknowledged write.
//!
//! One file per concern; every case asserts the server is still up and still serving
//! other clients afterwards.

#[path = "../common/mod.rs"]
#[allow(unused_imports)]
mod common;

mod auth;
mod blocking;
mod depth;
mod log_size;
