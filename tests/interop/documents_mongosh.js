// mongosh on documents: the first thing a new user types (use test; insertOne; find),
// show collections, db.stats(), db.coll.stats(), capped collections, renameCollection,
// collMod, validate, countDocuments-free helpers, updates and deletes.
//
// Usage: mongosh --quiet "mongodb://127.0.0.1:PORT/test?directConnection=true" --file documents_mongosh.js
// Exits non-zero with a message on the first failed check.

function fail(message) {
  print(`documents_mongosh: FAILED: ${message}`);
  quit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
  print(`ok: ${message}`);
}

const t = db.getSiblingDB('test');
const inserted = t.foo.insertOne({ a: 1 });
check(inserted.acknowledged && inserted.insertedId, 'db.foo.insertOne({a: 1})');
t.foo.insertMany([{ a: 2 }, { a: 3 }, { a: 4 }]);
const found = t.foo.find({ a: { $gte: 2 } }, { _id: 0 }).sort({ a: -1 }).toArray();
check(JSON.stringify(found) === JSON.stringify([{ a: 4 }, { a: 3 }, { a: 2 }]), `find with sort and projection: ${JSON.stringify(found)}`);
check(t.foo.findOne({ a: 3 }).a === 3, 'findOne');
const names = t.getCollectionNames();
check(names.length === 1 && names[0] === 'foo', `show collections: ${names}`);
const stats = t.stats();
check(stats.ok === 1 && stats.collections === 1 && stats.objects === 4, `db.stats(): ${JSON.stringify(stats)}`);
const collStats = t.foo.stats();
check(collStats.ok === 1 && collStats.count === 4 && collStats.capped === false && collStats.nindexes === 1, `db.foo.stats(): ${JSON.stringify(collStats)}`);
t.createCollection('events', { capped: true, size: 4096, max: 2 });
t.events.insertMany([{ _id: 1 }, { _id: 2 }, { _id: 3 }]);
const eventStats = t.events.stats();
check(eventStats.capped === true && eventStats.max === 2 && eventStats.count === 2, `capped db.events.stats(): ${JSON.stringify(eventStats)}`);
check(t.events.isCapped() === true, 'isCapped');
t.events.renameCollection('journal');
check(JSON.stringify(t.journal.find().toArray()) === JSON.stringify([{ _id: 2 }, { _id: 3 }]), 'renameCollection keeps insertion order');
check(t.runCommand({ collMod: 'journal', validator: { _id: { $gt: 2 } } }).ok === 1, 'collMod');
check(t.journal.validate().valid === true, 'validate');
t.journal.drop();
const updated = t.foo.updateMany({ a: { $lt: 3 } }, { $set: { small: true } });
check(updated.matchedCount === 2 && updated.modifiedCount === 2, 'updateMany');
const deleted = t.foo.deleteOne({ a: 4 });
check(deleted.deletedCount === 1, 'deleteOne');
check(t.foo.estimatedDocumentCount() === 3, 'estimatedDocumentCount');
check(t.foo.distinct('a').length === 3, 'distinct');
check(t.foo.drop() === true, 'drop');
print('documents_mongosh: all checks passed');
