// The Node.js driver against a running ferrod started with --auth and a user
// `root`/`rootpw` created with both SCRAM mechanisms: default mechanism negotiation must
// pick SCRAM-SHA-256 (from saslSupportedMechs) and authenticate speculatively inside the
// first hello. The driver's handshake is invisible to command monitoring, so the caller
// (tests/interop.rs) reads the mechanism and isSpeculative from the server's
// "Successfully authenticated" log lines; this script checks that no saslStart or
// saslContinue ever shows up as an ordinary command. A wrong password is code 18.
//
// Usage: node auth_node.mjs PORT   (or FERROD_PORT=PORT node auth_node.mjs)
// Exits non-zero with a message on the first failed check.

import { loadDriver, reporter } from './harness.mjs';

const mongodb = loadDriver('auth_node');
const { fail, check } = reporter('auth_node');
const { MongoClient } = mongodb;

const port = process.argv[2] || process.env.FERROD_PORT;
if (!port) fail('no port: pass it as the first argument or in FERROD_PORT');
const uri = (user, pwd) =>
  `mongodb://${user}:${encodeURIComponent(pwd)}@127.0.0.1:${port}/?directConnection=true&authSource=admin&serverSelectionTimeoutMS=5000`;

const commands = [];
const client = new MongoClient(uri('root', 'rootpw'), { monitorCommands: true });
client.on('commandStarted', (event) => commands.push(event.commandName));
await client.connect();
const admin = client.db('admin');
const status = await admin.command({ connectionStatus: 1 });
check(status.authInfo.authenticatedUsers.length === 1 &&
  status.authInfo.authenticatedUsers[0].user === 'root', 'default negotiation logs in as root');
const reply = await admin.command({ dropConnections: 1, hostAndPort: [] });
check(reply.ok === 1, 'root runs dropConnections');
// Several connections (the pool opens more under concurrency): each logs in.
await Promise.all(Array.from({ length: 4 }, () => admin.command({ ping: 1 })));
check(!commands.includes('saslStart') && !commands.includes('saslContinue'),
  `no saslStart/saslContinue outside the handshake (commands: ${[...new Set(commands)]})`);
await client.close();

const bad = new MongoClient(uri('root', 'wrong'));
try {
  await bad.connect();
  await bad.db('admin').command({ ping: 1 });
  fail('a wrong password logged in');
} catch (e) {
  check(e.code === 18 && e.codeName === 'AuthenticationFailed',
    `wrong password: ${e.code} ${e.codeName} ${e.message}`);
} finally {
  await bad.close();
}
console.log('auth_node: all checks passed');
