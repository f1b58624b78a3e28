// The Node.js driver against a three-member ferrod replica set (issue 4): discovery with
// replicaSet=rs0 and following a replSetStepDown to the new primary.
//
// Usage: node repl_node.mjs HOST:PORT,HOST:PORT,HOST:PORT [SET_NAME]
// The members must run with --replSet SET_NAME (default rs0) and the set must be initiated.
// Exits non-zero with a message on the first failed check.

import { loadDriver, reporter } from './harness.mjs';
import { setTimeout as sleep } from 'node:timers/promises';

const mongodb = loadDriver('repl_node');
const { fail, check } = reporter('repl_node');
const { MongoClient } = mongodb;

const seeds = process.argv[2];
if (!seeds) fail('usage: repl_node.mjs HOST:PORT,HOST:PORT,HOST:PORT [SET_NAME]');
const setName = process.argv[3] || 'rs0';
const hosts = seeds.split(',');

const client = new MongoClient(`mongodb://${seeds}/?replicaSet=${setName}&serverSelectionTimeoutMS=20000`);
let topologyType = null;
client.on('topologyDescriptionChanged', (event) => {
  topologyType = event.newDescription.type;
});
await client.connect();
const admin = client.db('admin');

let hello = await admin.command({ hello: 1 });
const oldPrimary = hello.me;
check(hello.setName === setName, `replicaSet=${setName} finds the set`);
check(hello.isWritablePrimary === true, `the driver's primary ${oldPrimary} says it is writable`);
check(JSON.stringify([...hello.hosts].sort()) === JSON.stringify([...hosts].sort()),
  `hosts as configured: ${hello.hosts}`);
for (let i = 0; i < 200 && topologyType !== 'ReplicaSetWithPrimary'; i++) await sleep(100);
check(topologyType === 'ReplicaSetWithPrimary', `topology type ${topologyType}`);

try {
  const reply = await admin.command({ replSetStepDown: 10, secondaryCatchUpPeriodSecs: 2 });
  check(reply.ok === 1, 'replSetStepDown on the primary');
} catch (e) {
  // mongod closes client connections when it steps down; the driver reports that.
  check(e.name === 'MongoNetworkError' || /closed|ECONNRESET/.test(e.message),
    `replSetStepDown on the primary (${e.name}: ${e.message})`);
}

let newPrimary = null;
for (let i = 0; i < 300 && !newPrimary; i++) {
  try {
    hello = await admin.command({ hello: 1 });
    if (hello.me !== oldPrimary && hello.isWritablePrimary) newPrimary = hello.me;
  } catch (e) {
    // NotWritablePrimary or a closed connection while the driver rediscovers.
  }
  if (!newPrimary) await sleep(100);
}
check(newPrimary !== null, `a command after the stepdown reaches a new primary (${newPrimary})`);
check(hosts.includes(newPrimary), 'the new primary is a member');
check(hello.primary === newPrimary, 'the new primary names itself in hello.primary');
const ping = await admin.command({ ping: 1 });
check(ping.ok === 1, 'ping on the new primary');
const status = await admin.command({ replSetGetStatus: 1 });
const me = status.members.find((m) => m.self);
check(me && me.name === newPrimary && me.stateStr === 'PRIMARY', 'replSetGetStatus on the new primary says PRIMARY');

await client.close();
console.log('repl_node: all checks passed');
