// The Node.js driver's default (streaming) server monitoring against a three-member ferrod
// set (issue 11, item 1): followed for FOLLOW_SECS (default 60) under a little load with no
// heartbeat failure and no pool clear, then through a replSetStepDown, whose new primary
// must come to the driver in a streamed (awaited) hello reply rather than a later poll.
//
// Usage: node monitor_node.mjs HOST:PORT,HOST:PORT,HOST:PORT [SET_NAME]
// Exits non-zero with a message on the first failed check.

import { loadDriver, reporter } from './harness.mjs';
import { setTimeout as sleep } from 'node:timers/promises';

const mongodb = loadDriver('monitor_node');
const { fail, check } = reporter('monitor_node');
const { MongoClient } = mongodb;

const seeds = process.argv[2];
if (!seeds) fail('usage: monitor_node.mjs HOST:PORT,HOST:PORT,HOST:PORT [SET_NAME]');
const setName = process.argv[3] || 'rs0';
const followSecs = Number(process.env.FOLLOW_SECS || 60);
const poolSize = 20;

// Default monitoring options: serverMonitoringMode 'auto' streams outside FaaS.
const client = new MongoClient(
  `mongodb://${seeds}/?replicaSet=${setName}&maxPoolSize=${poolSize}&serverSelectionTimeoutMS=20000`);
const failures = [];
const cleared = [];
let created = 0;
let awaited = 0;
// The last heartbeat reply per server, and the moment each new primary was first seen.
const lastHeartbeat = new Map();
const primariesSeen = [];
// Resolves with the first primary seen that is not `waitingFor.old` (set at the stepdown).
const waitingFor = { old: null, resolve: null };
client.on('serverHeartbeatFailed', (e) => failures.push(`${e.connectionId}: ${e.failure}`));
client.on('connectionPoolCleared', (e) => cleared.push(e.address));
client.on('connectionCreated', () => created++);
client.on('serverHeartbeatSucceeded', (e) => {
  if (e.awaited) awaited++;
  lastHeartbeat.set(e.connectionId, e.awaited);
});
client.on('serverDescriptionChanged', (e) => {
  if (e.newDescription.type === 'RSPrimary' && e.previousDescription.type !== 'RSPrimary') {
    const seen = { address: e.address, at: Date.now(), awaited: lastHeartbeat.get(e.address) };
    primariesSeen.push(seen);
    if (waitingFor.resolve && seen.address !== waitingFor.old) waitingFor.resolve(seen);
  }
});
await client.connect();
const admin = client.db('admin');
const first = await admin.command({ hello: 1 });
check(first.setName === setName && first.isWritablePrimary, `connected to the primary ${first.me}`);
check(first.topologyVersion && first.topologyVersion.processId, 'hello carries a topologyVersion');

// Follow the set: a round of commands from the whole pool every 100 ms.
const deadline = Date.now() + followSecs * 1000;
let rounds = 0;
while (Date.now() < deadline) {
  await Promise.all(Array.from({ length: poolSize }, () => admin.command({ ping: 1 })));
  rounds++;
  await sleep(100);
}
check(awaited > 0, `the monitors streamed (${awaited} awaited heartbeats in ${followSecs} s)`);
check(failures.length === 0, `no heartbeat failure in ${followSecs} s: ${failures.slice(0, 3).join('; ')}`);
check(cleared.length === 0, `no pool cleared in ${followSecs} s: ${cleared.join(', ')}`);
check(created <= poolSize, `${created} pool connections opened for a pool of ${poolSize} over ${rounds} rounds`);

// A stepdown: the new primary is announced by a streamed hello reply.
const oldPrimary = first.me;
const newPrimarySeen = new Promise((resolve) => {
  waitingFor.old = oldPrimary;
  waitingFor.resolve = resolve;
});
const asked = Date.now();
try {
  await admin.command({ replSetStepDown: 10, secondaryCatchUpPeriodSecs: 5 });
} catch (e) {
  // mongod closes client connections when it steps down; the driver reports that.
  check(e.name === 'MongoNetworkError' || /closed|ECONNRESET/.test(e.message),
    `replSetStepDown (${e.name}: ${e.message})`);
}
// Bounded: a set without a new primary for 6 s fails the check below.
const seen = await Promise.race([newPrimarySeen, sleep(6000, null, { ref: false })]);
check(seen !== null, `the driver found a new primary after the stepdown`);
check(seen.awaited === true, `the new primary ${seen.address} came in a streamed hello reply`);
console.log(`new primary seen ${seen.at - asked} ms after replSetStepDown was sent`);
const ping = await admin.command({ ping: 1 });
check(ping.ok === 1, 'ping on the new primary');
check(failures.length === 0, `no heartbeat failure through the stepdown: ${failures.slice(0, 3).join('; ')}`);

await client.close();
console.log('monitor_node: all checks passed');
