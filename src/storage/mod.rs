//! Documents on disk: namespaces, collections of raw BSON keyed by an order-preserving
//! encoding of `_id`, and their indexes, in the embedded store under `--dbpath`.
