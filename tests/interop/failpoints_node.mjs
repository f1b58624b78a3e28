// The Node.js driver against a ferrod started with enableTestCommands: the failCommand
// fail point as the drivers' own test suites use it (issue 11).
//
// Usage: node failpoints_node.mjs PORT
// Exits non-zero with a message on the first failed check.

import { loadDriver, reporter } from './harness.mjs';

const { MongoClient, MongoServerError } = loadDriver('failpoints_node');
const { fail, check } = reporter('failpoints_node');

const port = Number(process.argv[2] ?? process.env.FERROD_PORT);
const connect = (extra = {}) =>
  new MongoClient(`mongodb://127.0.0.1:${port}/?directConnection=true&serverSelectionTimeoutMS=10000`, extra);

const configure = (admin, mode, data) =>
  admin.command({ configureFailPoint: 'failCommand', mode, data });

async function main() {
  const client = connect();
  const admin = client.db('admin');

  // closeConnection: the driver retries the retryable read on a new connection.
  const watched = connect({ monitorCommands: true });
  const events = [];
  for (const kind of ['commandStarted', 'commandSucceeded', 'commandFailed']) {
    watched.on(kind, (e) => {
      if (e.commandName === 'listDatabases') events.push(kind);
    });
  }
  await watched.db('admin').command({ ping: 1 });
  await configure(admin, { times: 1 }, { failCommands: ['listDatabases'], closeConnection: true });
  const dbs = await watched.db('admin').admin().listDatabases();
  check(Array.isArray(dbs.databases), 'listDatabases succeeds through a closed connection');
  check(
    JSON.stringify(events) ===
      JSON.stringify(['commandStarted', 'commandFailed', 'commandStarted', 'commandSucceeded']),
    `the driver retried listDatabases once (${events})`,
  );
  const off = await configure(admin, 'off', {});
  check(off.count === 1, `configureFailPoint reports one entry (${JSON.stringify(off)})`);

  // times: 2 fires exactly twice.
  await configure(admin, { times: 2 }, { failCommands: ['ping'], errorCode: 2 });
  const codes = [];
  for (let i = 0; i < 3; i++) {
    try {
      await watched.db('admin').command({ ping: 1 });
      codes.push(null);
    } catch (e) {
      if (!(e instanceof MongoServerError)) fail(`unexpected error ${e}`);
      codes.push(e.code);
    }
  }
  check(JSON.stringify(codes) === '[2,2,null]', `times: 2 failed two pings, then none (${codes})`);

  // blockConnection delays exactly the named command of the named application.
  const slow = connect({ appName: 'slowApp' });
  const fast = connect({ appName: 'fastApp' });
  await slow.db('admin').command({ ping: 1 });
  await fast.db('admin').command({ ping: 1 });
  // Blocked for far longer than the test runs: the block ends by killOp, not by time.
  await configure(admin, { times: 1 }, {
    failCommands: ['ping'], appName: 'slowApp', blockConnection: true, blockTimeMS: 600000,
  });
  const order = [];
  const blocked = slow.db('admin').command({ ping: 1 }).then(
    () => order.push('slowApp ping ok'),
    (e) => order.push(`slowApp ping ${e.code}`),
  );
  await admin.command({ waitForFailPoint: 'failCommand', timesEntered: off.count + 3, maxTimeMS: 30000 });
  await fast.db('admin').command({ ping: 1 });
  order.push('fastApp ping');
  check(JSON.stringify(order) === '["fastApp ping"]', `only slowApp's ping is held (${order})`);
  const ops = await admin.aggregate([
    { $currentOp: { allUsers: true } },
    { $match: { appName: 'slowApp', 'command.ping': 1 } },
  ]).toArray();
  check(ops.length === 1, `the held ping is an operation in $currentOp (${ops.length})`);
  await admin.command({ killOp: 1, op: ops[0].opid });
  await blocked;
  check(order[1] === 'slowApp ping 11601', `killOp ended the held ping (${order})`);

  // hello fails too, for the named application only (the drivers' SDAM tests do this).
  const probe = connect({ appName: 'helloApp' });
  await probe.db('admin').command({ ping: 1 });
  await configure(admin, { times: 1 }, { failCommands: ['hello', 'isMaster'], appName: 'helloApp', errorCode: 2 });
  let helloCode = null;
  try {
    await probe.db('admin').command({ hello: 1 });
  } catch (e) {
    helloCode = e.code;
  }
  check(helloCode === 2, `hello failed for the named appName (${helloCode})`);
  await configure(admin, 'off', {});

  for (const c of [client, watched, slow, fast, probe]) await c.close();
  console.log('failpoints_node: all checks passed');
}

main().catch((e) => fail(e.stack ?? String(e)));
