//! BSON's comparison order, as mongod compares values (filters, sort, index keys).
