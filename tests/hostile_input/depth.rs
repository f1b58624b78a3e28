//! Hostile input: depth (cases added by that work).
