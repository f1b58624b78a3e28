// The Node.js driver against a running ferrod: core commands, the unknown-command error,
// and each compressor, proven by the server's serverStatus.network.compression counters.
//
// Usage: node node_core.mjs PORT   (or FERROD_PORT=PORT node node_core.mjs)
// Exits non-zero with a message on the first failed check.

import { loadDriver, reporter, requireDeps } from './harness.mjs';

const mongodb = loadDriver('node_core');
const { fail, check } = reporter('node_core');
const { MongoClient, MongoServerError } = mongodb;

const COMPRESSORS = ['zlib', 'snappy', 'zstd'];
// zlib is built into Node; the others are optional packages the driver loads on demand.
const COMPRESSOR_PACKAGES = { snappy: 'snappy', zstd: '@mongodb-js/zstd' };

function portFromArgs() {
  const port = process.argv[2] ?? process.env.FERROD_PORT;
  if (!port) fail('no port: pass it as the first argument or in FERROD_PORT');
  return Number(port);
}

function connect(port, compressor) {
  const params = new URLSearchParams({ directConnection: 'true', serverSelectionTimeoutMS: '10000' });
  if (compressor) params.set('compressors', compressor);
  return new MongoClient(`mongodb://127.0.0.1:${port}/?${params}`);
}

async function compressionCounters(admin, name) {
  const status = await admin.command({ serverStatus: 1 });
  const section = status.network?.compression;
  if (!section || !section[name]) {
    fail(`serverStatus.network.compression has no '${name}': ${JSON.stringify(section)}`);
  }
  const entry = section[name];
  // The counters are 64-bit integers; the driver may hand them over as Long.
  const n = (v) => Number(v);
  return {
    compressor: [n(entry.compressor.bytesIn), n(entry.compressor.bytesOut)],
    decompressor: [n(entry.decompressor.bytesIn), n(entry.decompressor.bytesOut)],
  };
}

async function checkCore(admin) {
  check((await admin.command({ ping: 1 })).ok === 1, 'ping answers ok: 1');

  const build = await admin.command({ buildInfo: 1 });
  check(String(build.version).startsWith('7.0'), `buildInfo version is 7.0.x (${build.version})`);

  const hello = await admin.command({ hello: 1 });
  check(hello.isWritablePrimary === true, 'hello says isWritablePrimary: true');
  check(hello.maxWireVersion >= 8, `hello maxWireVersion ${hello.maxWireVersion} >= 8`);

  const status = await admin.command({ serverStatus: 1 });
  check(status.connections.current >= 1, 'serverStatus counts this connection');
  check(Number(status.network.numRequests) >= 3, 'serverStatus counts requests');

  try {
    await admin.command({ noSuchCommandHere: 1 });
    fail('an unknown command succeeded');
  } catch (e) {
    if (!(e instanceof MongoServerError)) throw e;
    check(e.code === 59, `unknown command fails with code 59 (got ${e.code})`);
    check(e.codeName === 'CommandNotFound', `unknown command has codeName CommandNotFound (got ${e.codeName})`);
  }
}

function checkSupported(name) {
  const pkg = COMPRESSOR_PACKAGES[name];
  if (!pkg) return;
  try {
    requireDeps(pkg);
  } catch (e) {
    fail(`the Node driver cannot use ${name}: package ${pkg} does not load (${e.message}); run tests/interop/install.sh`);
  }
}

async function checkCompressor(port, plainAdmin, name) {
  checkSupported(name);
  const before = {};
  for (const c of COMPRESSORS) before[c] = await compressionCounters(plainAdmin, c);
  const client = connect(port, name);
  try {
    const admin = client.db('admin');
    check((await admin.command({ ping: 1 })).ok === 1, `${name}: ping over a compressed connection`);
    check('version' in (await admin.command({ buildInfo: 1 })), `${name}: buildInfo over a compressed connection`);
    check('network' in (await admin.command({ serverStatus: 1 })), `${name}: serverStatus over a compressed connection`);
  } finally {
    await client.close();
  }
  const after = {};
  for (const c of COMPRESSORS) after[c] = await compressionCounters(plainAdmin, c);

  const requestsIn = after[name].decompressor[0] - before[name].decompressor[0];
  const repliesOut = after[name].compressor[1] - before[name].compressor[1];
  check(requestsIn > 0, `${name}: server decompressed ${requestsIn} request bytes`);
  check(repliesOut > 0, `${name}: server compressed replies into ${repliesOut} bytes`);
}

async function main() {
  const port = portFromArgs();
  console.log(`Node.js driver ${requireDeps('mongodb/package.json').version} against ferrod on port ${port}`);
  const client = connect(port);
  try {
    const admin = client.db('admin');
    await checkCore(admin);
    for (const name of COMPRESSORS) await checkCompressor(port, admin, name);
  } finally {
    await client.close();
  }
  console.log('node_core: all checks passed');
}

main().catch((e) => fail(e.stack ?? String(e)));
