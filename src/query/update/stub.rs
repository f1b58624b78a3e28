//! Stand-in for `query::matcher` until the QUERY engineer's matcher is on main: the same
//! names, refusing every filter, so `$pull` conditions and `arrayFilters` fail clearly.

use crate::error::{Code, CommandError};
use bson::{Bson, Document};

#[derive(Clone, Debug)]
pub struct Filter;

#[derive(Clone, Debug, Default)]
pub struct MatchDetails {
    pub array_position: Option<usize>,
}

impl Filter {
    pub fn parse(_filter: &Document) -> Result<Filter, CommandError> {
        Err(CommandError::new(
            Code::BadValue,
            "query filters are not available in this build",
        ))
    }
    pub fn matches(&self, _doc: &Document) -> bool {
        false
    }
    pub fn equalities(&self) -> Vec<(String, Bson)> {
        Vec::new()
    }
}
