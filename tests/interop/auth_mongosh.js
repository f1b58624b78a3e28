// mongosh against a running ferrod started with --auth: the walkthrough. Run it
// twice: first as an anonymous client (the localhost exception creates the first user,
// then the script logs in and builds the role and user), then as the new user.
//
// Usage:
//   FERROD_PORT=PORT mongosh --quiet "mongodb://127.0.0.1:PORT/admin?directConnection=true" --file auth_mongosh.js
//   FERROD_PORT=PORT AUTH_STEP=as-ops mongosh --quiet "mongodb://127.0.0.1:PORT/admin?directConnection=true" \
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

function expectCode(code, fn, message) {
  try {
    fn();
  } catch (e) {
    check(e.code === code, `${message} (code ${e.code}, want ${code})`);
    return;
  }
  fail(`${message}: no error, want code ${code}`);
}

const admin = db.getSiblingDB('admin');

if (process.env.AUTH_STEP === 'as-ops') {
  const status = admin.runCommand({ connectionStatus: 1, showPrivileges: true });
  check(status.authInfo.authenticatedUsers[0].user === 'ops', 'logged in as ops');
  check(JSON.stringify(status.authInfo.authenticatedUserPrivileges).includes('dropConnections'),
    'ops holds dropConnections');
  check(admin.runCommand({ serverStatus: 1 }).ok === 1, 'clusterMonitor lets ops run serverStatus');
  expectCode(13, () => admin.createUser({ user: 'x', pwd: 'x', roles: [] }), 'ops cannot create users');
  print('auth_mongosh: all checks passed (as ops)');
} else {
  expectCode(13, () => admin.runCommand({ serverStatus: 1, $db: 'admin' }) && admin.serverStatus(),
    'serverStatus before login');
  admin.createUser({ user: 'root', pwd: 'rootpw', roles: ['root'] });
  check(admin.auth('root', 'rootpw').ok === 1, 'root created through the localhost exception and logged in');
  admin.createRole({
    role: 'dropConnectionsRole',
    privileges: [{ resource: { cluster: true }, actions: ['dropConnections'] }],
    roles: [],
  });
  admin.createUser({ user: 'ops', pwd: 'opspw', roles: ['dropConnectionsRole'] });
  admin.grantRolesToUser('ops', [{ role: 'clusterMonitor', db: 'admin' }]);
  const user = admin.getUser('ops');
  check(user.roles.some((r) => r.role === 'clusterMonitor'), 'getUser shows the granted role');
  const role = admin.getRole('dropConnectionsRole', { showPrivileges: true });
  check(role.privileges[0].actions[0] === 'dropConnections', 'getRole shows the privilege');
  print('auth_mongosh: all checks passed (setup)');
}
