// mongosh driving issue 4's documented flow on three ferrod members started with
// --replSet rs0: rs.initiate(cfg), wait for a primary, connPoolStats shows the members,
// rs.reconfig removing one member, dropConnections for it on the remaining members, and
// connPoolStats before and after. Then the member is added back and its pool returns.
//
// Usage: HOSTS=HOST:PORT,HOST:PORT,HOST:PORT mongosh --quiet \
//   "mongodb://FIRST_HOST:PORT/admin?directConnection=true" --file repl_mongosh.js
// Exits non-zero with a message on the first failed check.

function fail(message) {
  print(`repl_mongosh: FAILED: ${message}`);
  quit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  print(`ok: ${message}`);
}

// Polls `fn` every 100 ms until it returns a truthy value; fails after `seconds`.
function eventually(seconds, what, fn) {
  const deadline = Date.now() + seconds * 1000;
  let last;
  while (Date.now() < deadline) {
    try {
      last = fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    sleep(100);
  }
  fail(`timed out after ${seconds} s waiting for ${what} (last: ${JSON.stringify(last)})`);
}

const setName = process.env.SET_NAME || 'rs0';
const hosts = (process.env.HOSTS || '').split(',').filter((h) => h);
if (hosts.length !== 3) fail('HOSTS must list three members, e.g. HOSTS=127.0.0.1:27017,...');

// With AUTH_USER/AUTH_PWD (members started with --keyFile, so authorization is on), the
// documented mongod flow: rs.initiate through the localhost exception, then the first
// user on the primary (also through the localhost exception); the user catalog is
// replicated, so every connection below logs in as that user on every member.
const authUser = process.env.AUTH_USER;
const authPwd = process.env.AUTH_PWD;
const cfg = {
  _id: setName,
  members: hosts.map((host, i) => ({ _id: i, host })),
  settings: { heartbeatIntervalMillis: 200, electionTimeoutMillis: 1000 },
};
function anonymous(host) {
  return new Mongo(`mongodb://${host}/?directConnection=true`).getDB('admin');
}
if (authUser) {
  const initiated = anonymous(hosts[0]).runCommand({ replSetInitiate: cfg });
  check(initiated.ok === 1, `replSetInitiate through the localhost exception: ${JSON.stringify(initiated)}`);
  const firstPrimary = eventually(30, 'a primary', () => {
    const seen = hosts.map((h) => anonymous(h).runCommand({ hello: 1 }).primary);
    return seen[0] && seen.every((p) => p === seen[0]) ? seen[0] : null;
  });
  const secondaryHost = hosts.find((h) => h !== firstPrimary);
  let onSecondary;
  try {
    anonymous(secondaryHost).runCommand({ createUser: 'early', pwd: 'x', roles: [] });
  } catch (e) {
    onSecondary = e;
  }
  check(onSecondary && onSecondary.code === 10107, `createUser on a secondary is refused with 10107: ${onSecondary}`);
  const created = anonymous(firstPrimary).runCommand({ createUser: authUser, pwd: authPwd, roles: ['root'] });
  check(created.ok === 1, `first user on the primary through the localhost exception: ${JSON.stringify(created)}`);
  for (const host of hosts) {
    let refused;
    try {
      anonymous(host).runCommand({ connPoolStats: 1 });
    } catch (e) {
      refused = e;
    }
    check(refused && refused.code === 13, `${host}: connPoolStats without a login is refused with 13`);
  }
}

// One direct connection per member, opened once.
const members = {};
function admin(host) {
  if (!members[host]) {
    const login = authUser
      ? `${encodeURIComponent(authUser)}:${encodeURIComponent(authPwd)}@`
      : '';
    const options = authUser ? '&authSource=admin' : '';
    const uri = `mongodb://${login}${host}/?directConnection=true${options}`;
    // A secondary knows the user once the replicated catalog has reached it.
    members[host] = eventually(30, `a login on ${host}`, () => {
      try {
        const conn = new Mongo(uri).getDB('admin');
        return conn.runCommand({ ping: 1 }).ok === 1 ? conn : null;
      } catch (e) {
        return null;
      }
    });
  }
  return members[host];
}
// The rs.* helpers use the shell's `db`.
db = admin(hosts[0]);

// Every outgoing connection this member holds to `host`, over all its pools.
function poolFor(stats, host) {
  return stats.hosts[host] || null;
}

function live(counts) {
  return counts ? counts.inUse + counts.available + counts.refreshing : 0;
}

// 1. Initiate, with fast heartbeats and elections (done above when auth is on).
if (!authUser) {
  check(rs.initiate(cfg).ok === 1, `rs.initiate with ${hosts.join(', ')}`);
}

// 2. Wait for a primary that every member agrees on.
const primaryHost = eventually(30, 'a primary', () => {
  const seen = hosts.map((h) => admin(h).runCommand({ hello: 1 }).primary);
  return seen[0] && seen.every((p) => p === seen[0]) ? seen[0] : null;
});
check(hosts.includes(primaryHost), `primary elected: ${primaryHost}`);
const others = hosts.filter((h) => h !== primaryHost);
const [removed, kept] = others;
const primary = admin(primaryHost);
const secondary = admin(kept);

// 3. connPoolStats on the primary shows a pool to each other member.
const before = eventually(30, "the primary's pools to both members", () => {
  const stats = primary.adminCommand({ connPoolStats: 1 });
  return others.every((h) => poolFor(stats, h) && poolFor(stats, h).available >= 1) ? stats : null;
});
print(`connPoolStats on ${primaryHost} before: ${JSON.stringify(before.hosts)}`);
check(true, `the primary holds available connections to ${others.join(' and ')}`);
check(before.totalInUse + before.totalAvailable <= before.totalCreated, 'totals are consistent');
eventually(30, `the remaining member's pool to ${removed}`, () => {
  const stats = secondary.adminCommand({ connPoolStats: 1 });
  return poolFor(stats, removed) && poolFor(stats, removed).available >= 1;
});
check(true, `${kept} holds connections to ${removed} too`);

// 4. rs.reconfig (on the primary) removing one member.
db = primary;
const conf = rs.conf();
const version = conf.version;
conf.members = conf.members.filter((m) => m.host !== removed);
check(rs.reconfig(conf).ok === 1, `rs.reconfig removes ${removed}`);
eventually(20, `${kept} to apply the new config`, () =>
  secondary.adminCommand({ replSetGetConfig: 1 }).config.version > version);
check(rs.status().members.every((m) => m.name !== removed), 'rs.status no longer lists it');

// 5. The removed member is no longer heartbeated, but the pooled connections stay.
for (const [name, node] of [[primaryHost, primary], [kept, secondary]]) {
  const stats = node.adminCommand({ connPoolStats: 1 });
  print(`connPoolStats on ${name} after the reconfig: ${JSON.stringify(stats.hosts)}`);
  check(live(poolFor(stats, removed)) >= 1, `${name} still has its pool to ${removed}`);
}

// 6. dropConnections for it on each remaining member, then connPoolStats again.
for (const [name, node, other] of [[primaryHost, primary, kept], [kept, secondary, primaryHost]]) {
  const reply = node.adminCommand({ dropConnections: 1, hostAndPort: [removed] });
  check(reply.ok === 1, `dropConnections for ${removed} on ${name}`);
  const stats = node.adminCommand({ connPoolStats: 1 });
  print(`connPoolStats on ${name} after dropConnections: ${JSON.stringify(stats.hosts)}`);
  check(live(poolFor(stats, removed)) === 0, `${name}: inUse + available + refreshing for ${removed} is 0`);
  check(live(poolFor(stats, other)) >= 1, `${name}: the pool to ${other} is intact`);
  check(stats.totalInUse + stats.totalAvailable <= stats.totalCreated, `${name}: totals are consistent`);
}
// Nothing heartbeats the removed member any more, so its pool stays empty: checked
// after three more heartbeats of the kept member (its lastHeartbeat moving), not a clock.
const lastHeartbeatOf = (host) =>
  primary.adminCommand({ replSetGetStatus: 1 }).members.find((m) => m.name === host).lastHeartbeat;
for (let i = 0; i < 3; i++) {
  const seen = lastHeartbeatOf(kept);
  eventually(10, `a heartbeat of ${kept}`, () => lastHeartbeatOf(kept) > seen);
}
check(live(poolFor(primary.adminCommand({ connPoolStats: 1 }), removed)) === 0,
  `three heartbeats later the primary still holds no connection to ${removed}`);

// 7. Add it back: heartbeats resume and the pool comes back.
const back = rs.conf();
back.members.push({ _id: 10, host: removed });
check(rs.reconfig(back).ok === 1, `rs.reconfig adds ${removed} back`);
eventually(30, `the primary's pool to ${removed} to come back`, () => {
  const counts = poolFor(primary.adminCommand({ connPoolStats: 1 }), removed);
  return counts && counts.available >= 1;
});
check(true, `the primary holds connections to ${removed} again`);
print('repl_mongosh: all checks passed');
