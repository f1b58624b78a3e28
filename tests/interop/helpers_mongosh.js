// mongosh's shell helpers against ferrod (issue 11, item 7): db.getLogComponents(),
// db.setLogLevel(), db.currentOp(), a user with the built-in backup role, and, when
// SYNC_FROM names a member (the shell being connected to another, secondary, one),
// rs.syncFrom().
//
// Usage: FERROD_PORT=PORT mongosh --quiet "mongodb://127.0.0.1:PORT/admin?directConnection=true" --file helpers_mongosh.js
// Exits non-zero with a message on the first failed check.

function fail(message) {
  print(`helpers_mongosh: FAILED: ${message}`);
  quit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  print(`ok: ${message}`);
}

const admin = db.getSiblingDB('admin');
const syncFrom = process.env.SYNC_FROM;

if (syncFrom) {
  const reply = rs.syncFrom(syncFrom);
  check(reply.ok === 1 && reply.syncFromRequested === syncFrom,
    `rs.syncFrom answers as mongod: ${EJSON.stringify(reply)}`);
  quit(0);
}

const components = db.getLogComponents();
check(components.verbosity === 0 && components.network.verbosity === -1 &&
  components.replication.election.verbosity === -1,
  'db.getLogComponents() shows the default and the inheriting components');

db.setLogLevel(1);
check(db.getLogComponents().verbosity === 1, 'db.setLogLevel(1) sets the default verbosity');
check(admin.runCommand({ getParameter: 1, logLevel: 1 }).logLevel === 1, 'which is logLevel');
db.setLogLevel(2, 'replication.election');
const after = db.getLogComponents();
check(after.replication.election.verbosity === 2 && after.replication.verbosity === -1,
  'db.setLogLevel(2, "replication.election") sets that component only');
db.setLogLevel(0);

const ops = db.currentOp();
check(ops.ok === 1 && Array.isArray(ops.inprog), 'db.currentOp() answers inprog');
check(ops.inprog.some((op) => op.command && op.command.aggregate === 1 && op.command.pipeline),
  'db.currentOp() lists its own $currentOp aggregate');
// The shell's own streaming monitor keeps an awaitable hello in progress, which
// currentOp lists as mongod does: filter on what no operation holds, and on what one does.
const none = db.currentOp({ 'command.noSuchCommand': 1 });
const aggregates = db.currentOp({ 'command.aggregate': 1 });
check(none.inprog.length === 0 && aggregates.inprog.length >= 1 &&
  aggregates.inprog.every((op) => op.command.aggregate === 1),
  'db.currentOp(filter) applies the filter');

admin.createUser({ user: 'backupUser', pwd: 'pw', roles: ['backup', 'restore'] });
const user = admin.getUser('backupUser');
check(user.roles.length === 2, `createUser with the backup and restore roles (${EJSON.stringify(user.roles)})`);
print('helpers_mongosh: all checks passed');
