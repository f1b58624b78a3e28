//! mongod's log components (logv2's list): the `logComponentVerbosity` parameter as a
//! tree of `{verbosity}` documents, and the level each component logs at.

use crate::error::{bad_value, CommandResult};
use bson::{Bson, Document};

/// (short name, the name in log lines' `c`, parent's short name; "" for the default).
pub const COMPONENTS: &[(&str, &str, &str)] = &[
    ("accessControl", "ACCESS", ""),
    ("assert", "ASSERT", ""),
    ("command", "COMMAND", ""),
    ("control", "CONTROL", ""),
    ("executor", "EXECUTOR", ""),
    ("geo", "GEO", ""),
    ("globalIndex", "GBL_IDX", ""),
    ("index", "INDEX", ""),
    ("network", "NETWORK", ""),
    ("processHealth", "HEALTH", ""),
    ("query", "QUERY", ""),
    ("replication", "REPL", ""),
    ("election", "ELECTION", "replication"),
    ("heartbeats", "REPL_HB", "replication"),
    ("initialSync", "INITSYNC", "replication"),
    ("rollback", "ROLLBACK", "replication"),
    ("sharding", "SHARDING", ""),
    ("rangeDeleter", "RDELETER", "sharding"),
    ("shardingCatalogRefresh", "SH_REFR", "sharding"),
    ("migration", "MIGRATE", "sharding"),
    ("reshard", "RESHARD", "sharding"),
    ("migrationPerf", "MIG_PERF", "sharding"),
    ("storage", "STORAGE", ""),
    ("recovery", "RECOVERY", "storage"),
    ("journal", "JOURNAL", "storage"),
    ("wt", "WT", "storage"),
    ("wtBackup", "WTBACKUP", "wt"),
    ("wtCheckpoint", "WTCHKPT", "wt"),
    ("wtCompact", "WTCMPCT", "wt"),
    ("wtEviction", "WTEVICT", "wt"),
    ("wtHS", "WTHS", "wt"),
    ("wtRecovery", "WTRECOV", "wt"),
    ("wtRTS", "WTRTS", "wt"),
    ("wtSalvage", "WTSLVG", "wt"),
    ("wtTiered", "WTTIER", "wt"),
    ("wtTimestamp", "WTTS", "wt"),
    ("wtTransaction", "WTTXN", "wt"),
    ("wtVerify", "WTVRFY", "wt"),
    ("wtWriteLog", "WTWRTLOG", "wt"),
    ("write", "WRITE", ""),
    ("ftdc", "FTDC", ""),
    ("asio", "ASIO", "network"),
    ("bridge", "BRIDGE", "network"),
    ("tracking", "TRACKING", ""),
    ("transaction", "TXN", ""),
    ("tenantMigration", "TENANT_M", ""),
    ("connectionPool", "CONNPOOL", "network"),
    ("test", "TEST", ""),
    ("resourceConsumption", "RES_CONS", ""),
];

const VERBOSITY: &str = "verbosity";

fn subtree(parent: &str, default_verbosity: i32) -> Document {
    let mut tree = Document::new();
    tree.insert(
        VERBOSITY,
        if parent.is_empty() {
            default_verbosity
        } else {
            -1
        },
    );
    for (short, _, p) in COMPONENTS {
        if *p == parent {
            tree.insert(*short, subtree(short, default_verbosity));
        }
    }
    tree
}

/// The parameter as mongod shows it with nothing set: the default verbosity, and -1
/// (inherit from the parent) for every component.
pub fn default_tree() -> Bson {
    Bson::Document(subtree("", 0))
}

fn level(value: &Bson, dotted: &str) -> CommandResult<i32> {
    match value {
        Bson::Int32(n) => Ok(*n),
        Bson::Int64(n) => Ok((*n).clamp(i32::MIN as i64, i32::MAX as i64) as i32),
        Bson::Double(d) if d.is_finite() => Ok(*d as i32),
        other => Err(bad_value(format!(
            "Expected {dotted} to be a number but found {other}"
        ))),
    }
}

/// Applies `update` (`{verbosity: n, <component>: n | {...}}`) to `tree`, checking every
/// name first. A negative level makes a component inherit again; the default component
/// cannot go below 0.
pub fn merge(tree: &mut Document, update: &Document) -> CommandResult<()> {
    let mut next = tree.clone();
    merge_at(&mut next, update, "", "")?;
    *tree = next;
    Ok(())
}

fn merge_at(
    tree: &mut Document,
    update: &Document,
    parent: &str,
    dotted: &str,
) -> CommandResult<()> {
    for (name, value) in update {
        let path = if dotted.is_empty() {
            name.clone()
        } else {
            format!("{dotted}.{name}")
        };
        if name == VERBOSITY {
            let n = level(
                value,
                &format!(
                    "verbosity for \"{}\"",
                    if dotted.is_empty() { "default" } else { dotted }
                ),
            )?;
            let n = if parent.is_empty() {
                n.max(0)
            } else {
                n.max(-1)
            };
            tree.insert(VERBOSITY, n);
            continue;
        }
        if !COMPONENTS
            .iter()
            .any(|(short, _, p)| short == name && *p == parent)
        {
            return Err(bad_value(format!("Invalid component name {path}")));
        }
        let child = match tree.get_mut(name) {
            Some(Bson::Document(child)) => child,
            _ => return Err(bad_value(format!("Invalid component name {path}"))),
        };
        match value {
            Bson::Document(sub) => merge_at(child, sub, name, &path)?,
            // `{network: 2}` is short for `{network: {verbosity: 2}}`.
            other => {
                let n = level(other, &format!("verbosity for \"{path}\""))?;
                child.insert(VERBOSITY, n.max(-1));
            }
        }
    }
    Ok(())
}

/// The level each component logs at, by its name in log lines (a -1 inherits).
pub fn effective(tree: &Bson) -> Vec<(&'static str, i32)> {
    let Bson::Document(tree) = tree else {
        return Vec::new();
    };
    let default = tree.get_i32(VERBOSITY).unwrap_or(0);
    let mut out = Vec::new();
    walk(tree, "", default, &mut out);
    out
}

fn walk(tree: &Document, parent: &str, inherited: i32, out: &mut Vec<(&'static str, i32)>) {
    for (short, log_name, p) in COMPONENTS {
        if *p != parent {
            continue;
        }
        let Ok(child) = tree.get_document(*short) else {
            continue;
        };
        let own = child.get_i32(VERBOSITY).unwrap_or(-1);
        let level = if own < 0 { inherited } else { own };
        out.push((*log_name, level));
        walk(child, short, level, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn set_log_level_shapes_merge_and_inherit() {
        let Bson::Document(mut tree) = default_tree() else {
            unreachable!()
        };
        merge(&mut tree, &doc! {"verbosity": 1}).unwrap();
        merge(&mut tree, &doc! {"network": {"verbosity": 3}}).unwrap();
        merge(&mut tree, &doc! {"replication": {"election": 2}}).unwrap();
        let levels = effective(&Bson::Document(tree.clone()));
        let of = |c: &str| levels.iter().find(|(n, _)| *n == c).unwrap().1;
        assert_eq!((of("COMMAND"), of("NETWORK"), of("ASIO")), (1, 3, 3));
        assert_eq!((of("REPL"), of("ELECTION")), (1, 2));
        assert!(merge(&mut tree, &doc! {"nosuch": 1}).is_err());
        assert!(merge(&mut tree, &doc! {"network": {"election": 1}}).is_err());
        assert!(merge(&mut tree, &doc! {"verbosity": "x"}).is_err());
    }
}
