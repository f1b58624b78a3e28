// mongosh's default (streaming) server monitoring against a three-member ferrod set (issue
// 11, item 1): connected with replicaSet=rs0, the shell follows the set for FOLLOW_SECS
// (default 60) with no heartbeat failure, no pool clear, and a topology that keeps its
// primary all along (what the prompt shows as `rs0 [primary]`), then a stepdown.
//
// Usage: mongosh --quiet "mongodb://HOSTS/admin?replicaSet=rs0" --file monitor_mongosh.js
// Exits non-zero with a message on the first failed check.

function fail(message) {
  print(`monitor_mongosh: FAILED: ${message}`);
  quit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  print(`ok: ${message}`);
}

const followSecs = Number(process.env.FOLLOW_SECS || 60);
// The shell's own driver client: its SDAM and CMAP events.
const provider = db.getMongo()._serviceProvider;
const driver = provider.mongoClient;
const failures = [];
const cleared = [];
const primaryLost = [];
let awaited = 0;
driver.on('serverHeartbeatFailed', (e) => failures.push(`${e.connectionId}: ${e.failure}`));
driver.on('connectionPoolCleared', (e) => cleared.push(e.address));
driver.on('serverHeartbeatSucceeded', (e) => { if (e.awaited) awaited++; });
let stepdownAsked = false;
driver.on('topologyDescriptionChanged', (e) => {
  if (!stepdownAsked && e.newDescription.type !== 'ReplicaSetWithPrimary') {
    primaryLost.push(e.newDescription.type);
  }
});

const hello = db.hello();
check(hello.setName === 'rs0' && hello.isWritablePrimary, `connected to the primary ${hello.me}`);
const deadline = Date.now() + followSecs * 1000;
while (Date.now() < deadline) {
  const pong = db.runCommand({ ping: 1 });
  if (pong.ok !== 1) fail(`ping: ${JSON.stringify(pong)}`);
  // Paces the pings of the minute followed (the behaviour under test), not a wait.
  sleep(200);
}
check(awaited > 0, `the shell's monitors streamed (${awaited} awaited heartbeats)`);
check(failures.length === 0, `no heartbeat failure in ${followSecs} s: ${failures.slice(0, 3).join('; ')}`);
check(cleared.length === 0, `no pool cleared in ${followSecs} s: ${cleared.join(', ')}`);
check(primaryLost.length === 0, `the topology kept its primary: ${primaryLost.join(', ')}`);
check(provider._lastSeenTopology.type === 'ReplicaSetWithPrimary',
  `the prompt's topology is ${provider._lastSeenTopology.type}`);

// A stepdown, followed to the new primary without a failed heartbeat. The new primary
// is the one the shell's driver announces (its SDAM event), not found by polling hello.
let newPrimary = null;
driver.on('topologyDescriptionChanged', (e) => {
  if (!stepdownAsked || e.newDescription.type !== 'ReplicaSetWithPrimary') return;
  for (const [address, server] of e.newDescription.servers) {
    if (server.type === 'RSPrimary' && address !== hello.me) newPrimary = address;
  }
});
stepdownAsked = true;
try {
  db.adminCommand({ replSetStepDown: 10, secondaryCatchUpPeriodSecs: 5 });
} catch (e) {
  print(`replSetStepDown: ${e.message}`);
}
// A mongosh script cannot await a Promise; sleep() hands the event loop to the listener
// above until it has seen the announcement (bounded at 20 s).
const announcedBy = Date.now() + 20000;
while (newPrimary === null && Date.now() < announcedBy) sleep(20);
check(newPrimary !== null, `the shell's driver announces the new primary ${newPrimary}`);
const after = db.hello();
check(after.isWritablePrimary && after.me === newPrimary,
  `the shell follows the stepdown to ${after.me}`);
check(failures.length === 0, `no heartbeat failure through the stepdown: ${failures.slice(0, 3).join('; ')}`);
print('monitor_mongosh: all checks passed');
