// db.serverStatus() through mongosh against a ferrod set member (issue 11, item 6): the
// sections monitoring tools read, in mongod's shape, and a command counter that moves.
//
// Usage: mongosh --quiet "mongodb://127.0.0.1:PORT/admin?directConnection=true" --file server_status_mongosh.js
// Exits non-zero with a message on the first failed check.

function fail(message) {
  print(`server_status_mongosh: FAILED: ${message}`);
  quit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  print(`ok: ${message}`);
}

// Int64 values come back as Long objects.
const num = (v) => (typeof v === 'number' ? v : Number(v.toString()));

const before = db.serverStatus();
check(before.ok === 1 && before.process === 'mongod', `process is mongod (${before.process})`);
check(before.repl && before.repl.setName === 'rs0' && before.repl.isWritablePrimary === true &&
  before.repl.me === before.repl.primary && before.repl.hosts.length === 1,
  `repl section of the primary: ${EJSON.stringify(before.repl)}`);
check(['regular', 'warning', 'msg', 'user', 'tripwire', 'rollovers']
  .every((f) => typeof before.asserts[f] === 'number'), 'asserts has its six counters');
check(before.extra_info.note === 'fields vary by platform' &&
  num(before.extra_info.page_faults) >= 0, 'extra_info with page_faults');
check(num(before.globalLock.totalTime) > 0 && before.globalLock.currentQueue.total === 0 &&
  before.globalLock.activeClients.total === 0, 'globalLock');
check(['1.0', '1.1', '1.2', '1.3', 'unknown']
  .every((v) => num(before.transportSecurity[v]) === 0), 'transportSecurity, all 0 without TLS');

db.runCommand({ ping: 1, comment: 'counted' });
let failed = false;
try {
  db.runCommand({ replSetFreeze: 'x' });
} catch (e) {
  failed = e.code === 14;
}
check(failed, 'a failing command (TypeMismatch)');
const after = db.serverStatus();
const moved = (name, field) => num(after.metrics.commands[name][field]) -
  num(before.metrics.commands[name][field]);
check(moved('ping', 'total') >= 1, 'metrics.commands.ping.total moves');
check(moved('replSetFreeze', 'failed') === 1, 'metrics.commands.replSetFreeze.failed moves');
check(after.asserts.user > before.asserts.user, 'asserts.user moves');
print('server_status_mongosh: all checks passed');
