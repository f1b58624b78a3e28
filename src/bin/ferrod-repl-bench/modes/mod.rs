//! One module per goal.

pub mod disk;
pub mod join;
pub mod kill9;
pub mod latency;
pub mod memory;
pub mod restart;
