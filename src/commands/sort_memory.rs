//! find's blocking sort and its memory limit (`internalQueryMaxBlockingSortMemoryUsageBytes`,
//! 100 MB): past it the sort fails with 292 unless disk use is allowed. As in mongod 7.0
//! (`allowDiskUseByDefault: true`) only an explicit `allowDiskUse: false` enforces it; with
//! disk use allowed ferrod still sorts in memory (it has no external sorter).

use super::documents as d;
use super::Invocation;
use crate::error::{Code, CommandError, CommandResult};
use bson::Document;

/// Checks the memory a sort of `docs` holds: all of them, or with a limit only the
/// `keep` first after sorting (mongod's top-k sort holds no more).
pub fn check(
    inv: &Invocation,
    cmd: &Document,
    docs: &[Document],
    keep: Option<usize>,
) -> CommandResult<()> {
    if d::bool_arg(cmd, "find", "allowDiskUse", true)? {
        return Ok(());
    }
    let limit = inv
        .server
        .params
        .get_i64(crate::params::SORT_MEMORY_BYTES)
        .max(0) as usize;
    let held = docs[..keep.unwrap_or(docs.len()).min(docs.len())]
        .iter()
        .map(d::bson_size)
        .sum::<usize>();
    if held > limit {
        return Err(CommandError::new(
            Code::QueryExceededMemoryLimitNoDiskUseAllowed,
            format!(
                "Executor error during find command :: caused by :: Sort exceeded memory limit of {limit} bytes, but did not opt in to external sorting."
            ),
        ));
    }
    Ok(())
}
