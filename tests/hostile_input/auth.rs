//! Hostile input: auth (cases added by that work).
