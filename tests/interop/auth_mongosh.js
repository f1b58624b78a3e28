// mongosh against a ferrod started with --auth and no users: issue 3's walkthrough. Run it
// twice: first anonymously (the localhost exception creates the first user, then the
// script logs in and builds the role and user), then as the new user.
//
// Usage:
//   mongosh --quiet "mongodb://127.0.0.1:PORT/admin?directConnection=true" --file auth_mongosh.js
//   AUTH_STEP=as-ops mongosh --quiet "mongodb://127.0.0.1:PORT/admin?directConnection=true" \
//       -u ops -p opspw --authenticationDatabase admin --file auth_mongosh.js
// Exits non-zero with a message on the first failed check.

function fail(message) {
  print(`auth_mongosh: FAILED: ${message}`);
  quit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  print(`ok: ${message}`);
}

// The server error a call gives, whether the helper throws it or returns it.
function errorOf(fn) {
  let reply;
  try {
    reply = fn();
  } catch (e) {
    return { code: e.code, codeName: e.codeName, errmsg: e.errmsg || e.message };
  }
  if (reply && reply.ok === 0) return reply;
  return null;
}

function expectCode(code, fn, message, errmsg) {
  const e = errorOf(fn);
  if (!e) fail(`${message}: no error, want code ${code}`);
  check(e.code === code, `${message} (code ${e.code} ${e.codeName}, want ${code}: ${e.errmsg})`);
  if (errmsg !== undefined) check(e.errmsg === errmsg, `${message}: message ${JSON.stringify(e.errmsg)}`);
}

function expectOk(fn, message) {
  const e = errorOf(fn);
  if (e) fail(`${message}: code ${e.code} ${e.errmsg}`);
  check(true, message);
}

const admin = db.getSiblingDB('admin');

if (process.env.AUTH_STEP === 'as-ops') {
  const status = admin.runCommand({ connectionStatus: 1, showPrivileges: true });
  check(status.authInfo.authenticatedUsers.length === 1 &&
    status.authInfo.authenticatedUsers[0].user === 'ops' &&
    status.authInfo.authenticatedUsers[0].db === 'admin', 'logged in as ops@admin');
  check(JSON.stringify(status.authInfo.authenticatedUserPrivileges).includes('dropConnections'),
    'ops holds dropConnections');
  expectOk(() => admin.runCommand({ dropConnections: 1, hostAndPort: [] }),
    'dropConnections with hostAndPort: [] is allowed for ops');
  expectOk(() => admin.runCommand({ dropConnections: 1, hostAndPort: ['127.0.0.1:1'], comment: 'walkthrough' }),
    'dropConnections for a host without a pool is allowed for ops');
  expectOk(() => admin.runCommand({ serverStatus: 1 }), 'clusterMonitor (granted) lets ops run serverStatus');
  expectCode(13, () => admin.runCommand({ shutdown: 1 }), 'ops lacks the shutdown privilege');
  const denied = errorOf(() => admin.createUser({ user: 'x', pwd: 'notShown9', roles: [] }));
  check(denied && denied.code === 13, 'ops lacks createUser');
  check(denied.errmsg.startsWith('not authorized on admin to execute command { createUser: "x", pwd: "xxx", ') &&
    !denied.errmsg.includes('notShown9'), `the message hides the password: ${denied.errmsg}`);
  expectCode(13, () => db.getSiblingDB('test').runCommand({ dropConnections: 1, hostAndPort: [] }),
    'dropConnections outside admin', 'dropConnections may only be run against the admin database.');
  print('auth_mongosh: all checks passed (as ops)');
} else {
  expectCode(13, () => admin.runCommand({ serverStatus: 1 }), 'serverStatus before login',
    'command serverStatus requires authentication');
  expectCode(13, () => admin.runCommand({ dropConnections: 1, hostAndPort: [] }),
    'dropConnections before login', 'command dropConnections requires authentication');
  admin.createUser({ user: 'root', pwd: 'rootpw', roles: ['root'] });
  check(true, 'first user created through the localhost exception');
  expectCode(13, () => admin.createUser({ user: 'second', pwd: 'x', roles: [] }),
    'the localhost exception ends with the first user');
  expectCode(18, () => admin.auth('root', 'wrong'), 'wrong password');
  check(admin.auth('root', 'rootpw').ok === 1, 'root logs in');
  admin.createRole({
    role: 'dropConnectionsRole',
    privileges: [{ resource: { cluster: true }, actions: ['dropConnections'] }],
    roles: [],
  });
  check(true, 'createRole with the dropConnections privilege on the cluster resource');
  admin.createUser({ user: 'ops', pwd: 'opspw', roles: ['dropConnectionsRole'] });
  check(true, 'createUser with that role');
  admin.grantRolesToUser('ops', [{ role: 'clusterMonitor', db: 'admin' }]);
  check(true, 'grantRolesToUser clusterMonitor');
  const users = admin.runCommand({ usersInfo: 'ops' }).users;
  check(users.length === 1 && users[0].user === 'ops' && users[0].db === 'admin', 'usersInfo finds ops');
  const roleNames = users[0].roles.map((r) => `${r.role}@${r.db}`).sort();
  check(JSON.stringify(roleNames) === JSON.stringify(['clusterMonitor@admin', 'dropConnectionsRole@admin']),
    `usersInfo shows both roles: ${roleNames}`);
  check(admin.getUser('ops').roles.length === 2, 'getUser agrees');
  const roles = admin.runCommand({ rolesInfo: 'dropConnectionsRole', showPrivileges: true }).roles;
  check(roles.length === 1 && roles[0].privileges.length === 1 &&
    roles[0].privileges[0].resource.cluster === true &&
    JSON.stringify(roles[0].privileges[0].actions) === '["dropConnections"]',
  'rolesInfo shows the privilege');
  check(admin.getRole('dropConnectionsRole', { showPrivileges: true }).privileges[0].actions[0] === 'dropConnections',
    'getRole agrees');
  print('auth_mongosh: all checks passed (setup)');
}
