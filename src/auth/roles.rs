//! Built-in roles with MongoDB's action sets (for the actions ferrod has), and the table
//! of action names a privilege may use.

use super::privilege::{Privilege, ResourcePattern};

/// Every action name MongoDB knows; a privilege naming anything else is refused.
pub const KNOWN_ACTIONS: &[&str] = &[
    "addShard",
    "advanceClusterTime",
    "analyzeShardKey",
    "anyAction",
    "appendOplogNote",
    "applicationMessage",
    "applyOps",
    "auditConfigure",
    "auditLogRotate",
    "authSchemaUpgrade",
    "bypassDocumentValidation",
    "bypassWriteBlockingMode",
    "changeCustomData",
    "changePassword",
    "changeOwnPassword",
    "changeOwnCustomData",
    "changeStream",
    "checkFreeMonitoringStatus",
    "checkMetadataConsistency",
    "cleanupOrphaned",
    "clearJumboFlag",
    "collMod",
    "collStats",
    "compact",
    "compactStructuredEncryptionData",
    "connPoolStats",
    "connPoolSync",
    "convertToCapped",
    "cpuProfiler",
    "createCollection",
    "createDatabase",
    "createIndex",
    "createRole",
    "createSearchIndexes",
    "createUser",
    "dbCheck",
    "dbHash",
    "dbStats",
    "dropAllRolesFromDatabase",
    "dropAllUsersFromDatabase",
    "dropCollection",
    "dropConnections",
    "dropDatabase",
    "dropIndex",
    "dropRole",
    "dropSearchIndex",
    "dropUser",
    "emptycapped",
    "enableProfiler",
    "enableSharding",
    "exportCollection",
    "find",
    "flushRouterConfig",
    "forceUUID",
    "fsync",
    "getClusterParameter",
    "getCmdLineOpts",
    "getDatabaseVersion",
    "getDefaultRWConcern",
    "getLog",
    "getParameter",
    "getShardMap",
    "getShardVersion",
    "grantRole",
    "hostInfo",
    "importCollection",
    "impersonate",
    "indexStats",
    "inprog",
    "insert",
    "internal",
    "invalidateUserCache",
    "killAnyCursor",
    "killAnySession",
    "killCursors",
    "killop",
    "listCachedAndActiveUsers",
    "listCollections",
    "listDatabases",
    "listIndexes",
    "listSearchIndexes",
    "listSessions",
    "listShards",
    "logRotate",
    "moveChunk",
    "netstat",
    "oidReset",
    "planCacheIndexFilter",
    "planCacheRead",
    "planCacheWrite",
    "refineCollectionShardKey",
    "reIndex",
    "remove",
    "removeShard",
    "renameCollection",
    "renameCollectionSameDB",
    "repairDatabase",
    "replSetConfigure",
    "replSetGetConfig",
    "replSetGetStatus",
    "replSetHeartbeat",
    "replSetReconfig",
    "replSetResizeOplog",
    "replSetStateChange",
    "reshardCollection",
    "resync",
    "revokeRole",
    "rotateCertificates",
    "runTenantMigration",
    "serverStatus",
    "setAuthenticationRestriction",
    "setClusterParameter",
    "setDefaultRWConcern",
    "setFeatureCompatibilityVersion",
    "setFreeMonitoring",
    "setParameter",
    "setUserWriteBlockMode",
    "shardCollection",
    "shardedDataDistribution",
    "shardingState",
    "shutdown",
    "splitChunk",
    "splitVector",
    "storageDetails",
    "top",
    "touch",
    "trafficRecord",
    "unlock",
    "update",
    "updateSearchIndex",
    "useTenant",
    "useUUID",
    "validate",
    "viewRole",
    "viewUser",
];

pub fn is_known_action(action: &str) -> bool {
    KNOWN_ACTIONS.contains(&action)
}

const READ: &[&str] = &[
    "changeStream",
    "collStats",
    "dbHash",
    "dbStats",
    "find",
    "killCursors",
    "listCollections",
    "listIndexes",
    "listSearchIndexes",
];
const READ_WRITE_EXTRA: &[&str] = &[
    "convertToCapped",
    "createCollection",
    "createIndex",
    "createSearchIndexes",
    "dropCollection",
    "dropIndex",
    "dropSearchIndex",
    "insert",
    "remove",
    "renameCollectionSameDB",
    "update",
    "updateSearchIndex",
];
const DB_ADMIN: &[&str] = &[
    "bypassDocumentValidation",
    "collMod",
    "collStats",
    "compact",
    "convertToCapped",
    "createCollection",
    "createIndex",
    "dbStats",
    "dropCollection",
    "dropDatabase",
    "dropIndex",
    "enableProfiler",
    "listCollections",
    "listIndexes",
    "planCacheIndexFilter",
    "planCacheRead",
    "planCacheWrite",
    "reIndex",
    "renameCollectionSameDB",
    "storageDetails",
    "validate",
];
const USER_ADMIN: &[&str] = &[
    "changeCustomData",
    "changePassword",
    "createRole",
    "createUser",
    "dropRole",
    "dropUser",
    "grantRole",
    "revokeRole",
    "setAuthenticationRestriction",
    "viewRole",
    "viewUser",
];
const CLUSTER_MONITOR: &[&str] = &[
    "checkFreeMonitoringStatus",
    "connPoolStats",
    "getCmdLineOpts",
    "getDefaultRWConcern",
    "getLog",
    "getParameter",
    "getShardMap",
    "hostInfo",
    "inprog",
    "listDatabases",
    "listSessions",
    "listShards",
    "netstat",
    "replSetGetConfig",
    "replSetGetStatus",
    "serverStatus",
    "shardingState",
    "top",
    "useUUID",
    "getClusterParameter",
];
const HOST_MANAGER: &[&str] = &[
    "applicationMessage",
    "connPoolSync",
    "dropConnections",
    "flushRouterConfig",
    "fsync",
    "invalidateUserCache",
    "killAnyCursor",
    "killAnySession",
    "killop",
    "logRotate",
    "resync",
    "rotateCertificates",
    "setParameter",
    "shutdown",
    "touch",
    "unlock",
];
const CLUSTER_MANAGER: &[&str] = &[
    "appendOplogNote",
    "applicationMessage",
    "checkMetadataConsistency",
    "cleanupOrphaned",
    "flushRouterConfig",
    "getDefaultRWConcern",
    "getClusterParameter",
    "listSessions",
    "listShards",
    "removeShard",
    "replSetConfigure",
    "replSetGetConfig",
    "replSetGetStatus",
    "replSetStateChange",
    "resync",
    "setClusterParameter",
    "setDefaultRWConcern",
    "setFeatureCompatibilityVersion",
    "setFreeMonitoring",
];
const USER_ADMIN_ANY_CLUSTER: &[&str] =
    &["authSchemaUpgrade", "invalidateUserCache", "listDatabases"];

/// mongod's enableSharding role, on any normal resource.
const ENABLE_SHARDING: &[&str] = &[
    "enableSharding",
    "refineCollectionShardKey",
    "reshardCollection",
    "analyzeShardKey",
];
/// __queryableBackup (and so backup) on any normal resource, and on the cluster.
const QUERYABLE_BACKUP: &[&str] = &["collStats", "find", "listCollections", "listIndexes"];
const QUERYABLE_BACKUP_CLUSTER: &[&str] = &["getParameter", "listDatabases", "useUUID"];
const BACKUP_CLUSTER: &[&str] = &["appendOplogNote", "serverStatus", "setUserWriteBlockMode"];
/// restore on any normal resource (with userAdmin's actions), and on the cluster.
const RESTORE: &[&str] = &[
    "bypassDocumentValidation",
    "collMod",
    "convertToCapped",
    "createCollection",
    "createIndex",
    "dropCollection",
    "insert",
    "listCollections",
];
const RESTORE_CLUSTER: &[&str] = &[
    "getParameter",
    "forceUUID",
    "useUUID",
    "bypassWriteBlockingMode",
    "setUserWriteBlockMode",
    "applyOps",
];

/// Roles that exist on every database.
const DATABASE_ROLES: &[&str] = &[
    "read",
    "readWrite",
    "dbAdmin",
    "dbOwner",
    "userAdmin",
    "enableSharding",
];
/// Roles that exist only on `admin`.
const ADMIN_ROLES: &[&str] = &[
    "readAnyDatabase",
    "readWriteAnyDatabase",
    "userAdminAnyDatabase",
    "dbAdminAnyDatabase",
    "clusterMonitor",
    "clusterManager",
    "hostManager",
    "clusterAdmin",
    "root",
    "__system",
    "__queryableBackup",
    "backup",
    "restore",
    "directShardOperations",
];

pub fn is_builtin(role: &str, db: &str) -> bool {
    DATABASE_ROLES.contains(&role) || (db == "admin" && ADMIN_ROLES.contains(&role))
}

/// Names of the built-in roles of `db`, for rolesInfo's `showBuiltinRoles`.
pub fn builtin_names(db: &str) -> Vec<&'static str> {
    let mut names: Vec<&str> = DATABASE_ROLES.to_vec();
    if db == "admin" {
        names.extend_from_slice(ADMIN_ROLES);
    }
    names
}

fn on(resource: ResourcePattern, actions: &[&[&str]]) -> Privilege {
    Privilege::new(resource, actions.iter().flat_map(|a| a.iter().copied()))
}

/// The privileges of a built-in role, or None if `role@db` is not one.
pub fn builtin_privileges(role: &str, db: &str) -> Option<Vec<Privilege>> {
    if !is_builtin(role, db) {
        return None;
    }
    let this_db = || ResourcePattern::Database(db.to_owned());
    let any = || ResourcePattern::AnyNormal;
    let cluster = || ResourcePattern::Cluster;
    let privileges = match role {
        "read" => vec![on(this_db(), &[READ])],
        "readWrite" => vec![on(this_db(), &[READ, READ_WRITE_EXTRA])],
        "dbAdmin" => vec![on(this_db(), &[DB_ADMIN])],
        "userAdmin" => vec![on(this_db(), &[USER_ADMIN])],
        "dbOwner" => vec![on(
            this_db(),
            &[READ, READ_WRITE_EXTRA, DB_ADMIN, USER_ADMIN],
        )],
        "readAnyDatabase" => vec![on(any(), &[READ]), on(cluster(), &[&["listDatabases"]])],
        "readWriteAnyDatabase" => vec![
            on(any(), &[READ, READ_WRITE_EXTRA]),
            on(cluster(), &[&["listDatabases"]]),
        ],
        "dbAdminAnyDatabase" => vec![on(any(), &[DB_ADMIN]), on(cluster(), &[&["listDatabases"]])],
        "userAdminAnyDatabase" => vec![
            on(any(), &[USER_ADMIN]),
            on(cluster(), &[USER_ADMIN_ANY_CLUSTER]),
        ],
        "clusterMonitor" => vec![on(cluster(), &[CLUSTER_MONITOR])],
        "hostManager" => vec![on(cluster(), &[HOST_MANAGER])],
        "clusterManager" => vec![on(cluster(), &[CLUSTER_MANAGER])],
        "clusterAdmin" => vec![
            on(cluster(), &[CLUSTER_MONITOR, HOST_MANAGER, CLUSTER_MANAGER]),
            on(any(), &[&["dropDatabase"]]),
        ],
        // mongod's root includes backup and restore.
        "root" => vec![
            on(
                any(),
                &[READ, READ_WRITE_EXTRA, DB_ADMIN, USER_ADMIN, RESTORE],
            ),
            on(
                cluster(),
                &[
                    CLUSTER_MONITOR,
                    HOST_MANAGER,
                    CLUSTER_MANAGER,
                    USER_ADMIN_ANY_CLUSTER,
                    QUERYABLE_BACKUP_CLUSTER,
                    BACKUP_CLUSTER,
                    RESTORE_CLUSTER,
                ],
            ),
        ],
        "__system" => vec![on(ResourcePattern::AnyResource, &[&["anyAction"]])],
        "enableSharding" => vec![on(any(), &[ENABLE_SHARDING])],
        "__queryableBackup" => vec![
            on(any(), &[QUERYABLE_BACKUP]),
            on(cluster(), &[QUERYABLE_BACKUP_CLUSTER]),
        ],
        "backup" => vec![
            on(any(), &[QUERYABLE_BACKUP]),
            on(cluster(), &[QUERYABLE_BACKUP_CLUSTER, BACKUP_CLUSTER]),
        ],
        "restore" => vec![
            on(any(), &[RESTORE, USER_ADMIN]),
            on(cluster(), &[RESTORE_CLUSTER]),
        ],
        // mongod 7.0 gives it no privileges on a replica set member.
        "directShardOperations" => Vec::new(),
        _ => return None,
    };
    Some(privileges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(role: &str, action: &str) -> bool {
        builtin_privileges(role, "admin")
            .unwrap()
            .iter()
            .any(|p| p.resource == ResourcePattern::Cluster && p.actions.contains(action))
    }

    #[test]
    fn drop_connections_is_host_manager_not_cluster_manager_or_monitor() {
        assert!(has("hostManager", "dropConnections"));
        assert!(has("clusterAdmin", "dropConnections"));
        assert!(has("root", "dropConnections"));
        assert!(!has("clusterManager", "dropConnections"));
        assert!(!has("clusterMonitor", "dropConnections"));
        for action in [
            "connPoolStats",
            "serverStatus",
            "getCmdLineOpts",
            "getLog",
            "replSetGetStatus",
        ] {
            assert!(has("clusterMonitor", action), "{action}");
        }
    }

    #[test]
    fn every_builtin_action_is_a_known_action() {
        for db in ["admin", "test"] {
            for role in builtin_names(db) {
                for p in builtin_privileges(role, db).unwrap() {
                    for a in &p.actions {
                        assert!(is_known_action(a), "{role}: {a}");
                    }
                }
            }
        }
        assert!(builtin_privileges("clusterAdmin", "test").is_none());
        assert!(builtin_privileges("backup", "test").is_none());
        assert!(builtin_privileges("enableSharding", "test").is_some());
    }
}
