//! The MongoDB version ferrod answers as: a leaf every layer may read.

/// The MongoDB server version ferrod answers as (wire version 21).
pub const MONGODB_VERSION: &str = "7.0.0";
pub const FEATURE_COMPATIBILITY_VERSION: &str = "7.0";
