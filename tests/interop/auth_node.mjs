// The Node.js driver against a running ferrod started with --auth and a user
// `root`/`rootpw` (e.g. after auth_mongosh.js or auth_pymongo.py): default mechanism
// negotiation must pick SCRAM-SHA-256 (from saslSupportedMechs) and authenticate
// speculatively inside the first hello (visible in the server log); a wrong password is
// code 18.
//
// Usage: node auth_node.mjs PORT   (or FERROD_PORT=PORT node auth_node.mjs)
// Exits non-zero with a message on the first failed check.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const requireDeps = createRequire(path.join(here, '.deps', 'node', 'package.json'));

let mongodb;
try {
  mongodb = requireDeps('mongodb');
} catch (e) {
  console.error(`auth_node: cannot load the mongodb package (${e.message}): run tests/interop/install.sh`);
  process.exit(1);
}
const { MongoClient } = mongodb;

function fail(message) {
  console.error(`auth_node: FAILED: ${message}`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  console.log(`ok: ${message}`);
}

const port = process.argv[2] || process.env.FERROD_PORT;
if (!port) fail('no port: pass it as the first argument or in FERROD_PORT');
const uri = (user, pwd) =>
  `mongodb://${user}:${encodeURIComponent(pwd)}@127.0.0.1:${port}/?directConnection=true&authSource=admin&serverSelectionTimeoutMS=5000`;

// The driver's handshake is invisible to command monitoring, so whether the login was
// speculative is checked in the server log by the caller (attr.speculative: true on the
// "Authentication succeeded" line), as tests/auth.rs does for the Rust driver.
const client = new MongoClient(uri('root', 'rootpw'));
await client.connect();
const status = await client.db('admin').command({ connectionStatus: 1 });
check(status.authInfo.authenticatedUsers[0].user === 'root', 'default negotiation logs in');
await client.close();

const bad = new MongoClient(uri('root', 'wrong'));
try {
  await bad.connect();
  await bad.db('admin').command({ ping: 1 });
  fail('a wrong password logged in');
} catch (e) {
  check(e.code === 18 || /Authentication failed/.test(e.message), `wrong password: ${e.code} ${e.message}`);
} finally {
  await bad.close();
}
console.log('auth_node: all checks passed');
