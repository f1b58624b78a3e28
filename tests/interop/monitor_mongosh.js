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
  sleep(200);
}
check(awaited > 0, `the shell's monitors streamed (${awaited} awaited heartbeats)`);
check(failures.length === 0, `no heartbeat failure in ${followSecs} s: ${failures.slice(0, 3).join('; ')}`);
check(cleared.length === 0, `no pool cleared in ${followSecs} s: ${cleared.join(', ')}`);
check(primaryLost.length === 0, `the topology kept its primary: ${primaryLost.join(', ')}`);
check(provider._lastSeenTopology.type === 'ReplicaSetWithPrimary',
  `the prompt's topology is ${provider._lastSeenTopology.type}`);

// A stepdown, followed to the new primary without a failed heartbeat.
stepdownAsked = true;
try {
  db.adminCommand({ replSetStepDown: 10, secondaryCatchUpPeriodSecs: 5 });
} catch (e) {
  print(`replSetStepDown: ${e.message}`);
}
let newPrimary = null;
for (let i = 0; i < 200 && !newPrimary; i++) {
  try {
    const h = db.hello();
    if (h.isWritablePrimary && h.me !== hello.me) newPrimary = h.me;
  } catch (e) {
    // NotWritablePrimary while the shell's driver learns of the new primary.
  }
  if (!newPrimary) sleep(50);
}
check(newPrimary !== null, `the shell follows the stepdown to ${newPrimary}`);
check(failures.length === 0, `no heartbeat failure through the stepdown: ${failures.slice(0, 3).join('; ')}`);
print('monitor_mongosh: all checks passed');
