// mongosh's replication helpers against a two-member ferrod set (issue 13, oplog):
// db.getReplicationInfo() / rs.printReplicationInfo() read local.oplog.rs (its first and
// last entries, $collStats' maxSize and size) and db.printSecondaryReplicationInfo()
// reads local.system.replset and replSetGetStatus's optimes.
//
// Usage: mongosh --quiet "mongodb://127.0.0.1:PORT/admin?directConnection=true" --file oplog_mongosh.js
// Exits non-zero with a message on the first failed check.

function fail(message) {
  print(`oplog_mongosh: FAILED: ${message}`);
  quit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  print(`ok: ${message}`);
}

const app = db.getSiblingDB('app');
for (let i = 0; i < 3; i++) {
  app.c.insertOne({ _id: i, s: 'x' }, { writeConcern: { w: 2 } });
}

const local = db.getSiblingDB('local');
check(local.getCollectionNames().includes('oplog.rs'), 'local lists oplog.rs');
const last = local.oplog.rs.find().sort({ $natural: -1 }).limit(1).next();
check(last.op === 'i' && last.ns === 'app.c' && last.o._id === 2,
  `the newest entry is the last insert: ${EJSON.stringify(last)}`);

const info = db.getReplicationInfo();
check(info.usedMB > 0 && info.logSizeMB > 0 && info.configuredLogSizeMB > 0,
  `getReplicationInfo sizes: ${EJSON.stringify(info)}`);
check(typeof info.tFirst === 'string' && typeof info.tLast === 'string' && info.timeDiff >= 0,
  `getReplicationInfo times: ${info.tFirst} .. ${info.tLast}`);

const printed = rs.printReplicationInfo();
const text = JSON.stringify(printed.value);
check(text.includes('configured oplog size') && text.includes('log length start to end'),
  `rs.printReplicationInfo: ${text}`);

const secondary = db.printSecondaryReplicationInfo();
const sources = Object.keys(secondary.value).filter((k) => k.startsWith('source: '));
check(sources.length === 1, `one secondary reported: ${EJSON.stringify(secondary.value)}`);
const entry = secondary.value[sources[0]];
check(typeof entry.syncedTo === 'string' && /behind the primary/.test(entry.replLag),
  `the secondary's lag: ${EJSON.stringify(entry)}`);
print('oplog_mongosh: all checks passed');
