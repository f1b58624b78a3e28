// mongosh against a running ferrod: core commands through the shell helpers, the
// unknown-command error, and each compressor, proven by the server's
// serverStatus.network.compression counters.
//
// Usage: FERROD_PORT=PORT mongosh --quiet "mongodb://127.0.0.1:PORT/admin?directConnection=true" --file mongosh_core.js
// Exits non-zero with a message on the first failed check.

const COMPRESSORS = ['zlib', 'snappy', 'zstd'];

function fail(message) {
  print(`mongosh_core: FAILED: ${message}`);
  quit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  print(`ok: ${message}`);
}

const port = process.env.FERROD_PORT;
if (!port) fail('no port: set FERROD_PORT');

const admin = db.getSiblingDB('admin');

function compressionCounters(name) {
  const section = admin.serverStatus().network.compression;
  if (!section || !section[name]) {
    fail(`serverStatus.network.compression has no '${name}': ${EJSON.stringify(section)}`);
  }
  const entry = section[name];
  return {
    compressor: [Number(entry.compressor.bytesIn), Number(entry.compressor.bytesOut)],
    decompressor: [Number(entry.decompressor.bytesIn), Number(entry.decompressor.bytesOut)],
  };
}

function checkCore() {
  check(admin.runCommand({ ping: 1 }).ok === 1, 'ping answers ok: 1');
  check(String(db.version()).startsWith('7.0'), `db.version() is 7.0.x (${db.version()})`);
  check(admin.runCommand({ buildInfo: 1 }).maxBsonObjectSize === 16777216, 'buildInfo has maxBsonObjectSize');

  const hello = db.hello();
  check(hello.isWritablePrimary === true, 'db.hello() says isWritablePrimary: true');
  check(hello.maxWireVersion >= 8, `db.hello() maxWireVersion ${hello.maxWireVersion} >= 8`);

  const status = db.serverStatus();
  check(status.connections.current >= 1, 'db.serverStatus() counts this connection');
  check(Number(status.network.numRequests) >= 3, 'db.serverStatus() counts requests');

  let error;
  try {
    admin.runCommand({ noSuchCommandHere: 1 });
  } catch (e) {
    error = e;
  }
  check(error !== undefined, 'an unknown command throws');
  check(error.code === 59, `unknown command fails with code 59 (got ${error.code})`);
  check(error.codeName === 'CommandNotFound', `unknown command has codeName CommandNotFound (got ${error.codeName})`);
}

function checkCompressor(name) {
  const before = {};
  for (const c of COMPRESSORS) before[c] = compressionCounters(c);
  const conn = new Mongo(`mongodb://127.0.0.1:${port}/?directConnection=true&compressors=${name}`);
  try {
    const compressed = conn.getDB('admin');
    check(compressed.runCommand({ ping: 1 }).ok === 1, `${name}: ping over a compressed connection`);
    check('version' in compressed.runCommand({ buildInfo: 1 }), `${name}: buildInfo over a compressed connection`);
    check('network' in compressed.serverStatus(), `${name}: serverStatus over a compressed connection`);
  } finally {
    conn.close();
  }
  const after = {};
  for (const c of COMPRESSORS) after[c] = compressionCounters(c);

  const requestsIn = after[name].decompressor[0] - before[name].decompressor[0];
  const repliesOut = after[name].compressor[1] - before[name].compressor[1];
  check(requestsIn > 0, `${name}: server decompressed ${requestsIn} request bytes`);
  check(repliesOut > 0, `${name}: server compressed replies into ${repliesOut} bytes`);
}

print(`mongosh against ferrod on port ${port}`);
checkCore();
for (const name of COMPRESSORS) checkCompressor(name);
print('mongosh_core: all checks passed');
