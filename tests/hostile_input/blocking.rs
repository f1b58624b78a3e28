//! Hostile input: blocking (cases added by that work).
