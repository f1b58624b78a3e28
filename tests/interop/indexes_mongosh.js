// mongosh on indexes: db.c.createIndex, getIndexes, find().explain(), dropIndex.
//
// Usage: mongosh --quiet "mongodb://127.0.0.1:PORT/test?directConnection=true" --file indexes_mongosh.js
// Exits non-zero with a message on the first failed check.

function fail(message) {
  print(`indexes_mongosh: FAILED: ${message}`);
  quit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  print(`ok: ${message}`);
}

const t = db.getSiblingDB('test');
t.ix.insertMany([{ a: 1 }, { a: 2 }, { a: 2 }]);
const name = t.ix.createIndex({ a: 1, b: -1 });
check(name === 'a_1_b_-1', `createIndex answers the generated name: ${name}`);
const indexes = t.ix.getIndexes();
check(indexes.length === 2 && indexes[1].name === 'a_1_b_-1' && indexes[1].v === 2,
  `getIndexes: ${JSON.stringify(indexes)}`);
const plan = t.ix.find({ a: 2 }).explain();
const winning = plan.queryPlanner.winningPlan;
check(winning.stage === 'FETCH' && winning.inputStage.stage === 'IXSCAN' &&
  winning.inputStage.indexName === 'a_1_b_-1', `find().explain(): ${JSON.stringify(winning)}`);
const stats = t.ix.find({ a: 2 }).explain('executionStats').executionStats;
check(stats.nReturned === 2 && stats.totalKeysExamined === 2, `explain('executionStats'): ${JSON.stringify(stats)}`);
let refused = null;
try {
  t.ix.createIndex({ a: 1 }, { unique: true });
} catch (e) {
  refused = e;
}
check(refused && refused.code === 11000, `a unique build over duplicates: ${refused}`);
t.ix.dropIndex('a_1_b_-1');
check(t.ix.getIndexes().length === 1, 'dropIndex');
print('indexes_mongosh: all checks passed');
