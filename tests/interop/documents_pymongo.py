"""PyMongo's CRUD helpers against a running ferrod: insert_one/insert_many, find with
filter, sort, skip, limit, projection and several batches, update_one/update_many with
upsert, replace_one, delete_one/delete_many, find_one_and_*, distinct, estimated counts,
bulk_write, and collection/database management with their errors.

Usage: python3 documents_pymongo.py PORT   (or FERROD_PORT=PORT python3 documents_pymongo.py)
Exits non-zero with a message on the first failed check.
"""

import os
import sys

from harness import missing_pymongo, reporter

try:
    import pymongo
    from pymongo import InsertOne, UpdateOne, DeleteOne, ReturnDocument
    from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure
except ImportError as e:
    missing_pymongo("documents_pymongo", e)

fail, check = reporter("documents_pymongo")

port = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FERROD_PORT")
if not port:
    fail("no port: pass it as the first argument or in FERROD_PORT")
client = pymongo.MongoClient("127.0.0.1", int(port), directConnection=True, serverSelectionTimeoutMS=10000)
db = client["interop"]
coll = db["items"]

result = coll.insert_one({"a": 1})
check(result.acknowledged and result.inserted_id is not None, "insert_one generates an ObjectId _id")
result = coll.insert_many([{"_id": i, "n": i % 3, "s": "x" * 10} for i in range(300)])
check(len(result.inserted_ids) == 300, "insert_many of 300 documents")
check(coll.estimated_document_count() == 301, "estimated_document_count counts them")

docs = list(coll.find({"n": 1}, batch_size=7))
check(len(docs) == 100, f"find over many batches returns every match ({len(docs)})")
page = list(coll.find({"n": 2}, {"_id": 1}).sort("_id", pymongo.DESCENDING).skip(1).limit(3))
check(page == [{"_id": 296}, {"_id": 293}, {"_id": 290}], f"sort, skip, limit, projection: {page}")
check(coll.find_one({"_id": 5})["n"] == 2, "find_one by _id")

try:
    coll.insert_one({"_id": 5})
    fail("a duplicate _id was accepted")
except DuplicateKeyError as e:
    check(e.code == 11000 and e.details["keyValue"] == {"_id": 5}, "duplicate _id: E11000 with keyValue")

r = coll.update_one({"_id": 5}, {"$set": {"t": True}, "$inc": {"n": 10}})
check((r.matched_count, r.modified_count) == (1, 1), "update_one")
check(coll.find_one({"_id": 5}) == {"_id": 5, "n": 12, "s": "x" * 10, "t": True}, "update_one applied $set and $inc")
r = coll.update_many({"n": 0}, {"$set": {"zero": True}})
check(r.matched_count == 100 and r.modified_count == 100, f"update_many ({r.raw_result})")
r = coll.update_one({"_id": "new"}, {"$set": {"v": 1}}, upsert=True)
check(r.upserted_id == "new", "update_one upsert returns upserted_id")
r = coll.replace_one({"_id": "new"}, {"v": 2})
check(r.modified_count == 1 and coll.find_one({"_id": "new"}) == {"_id": "new", "v": 2}, "replace_one keeps _id")

doc = coll.find_one_and_update({"_id": 7}, {"$set": {"f": 1}}, return_document=ReturnDocument.AFTER)
check(doc["f"] == 1, "find_one_and_update returns the document after")
doc = coll.find_one_and_delete({"_id": 7})
check(doc["_id"] == 7 and coll.find_one({"_id": 7}) is None, "find_one_and_delete")
check(sorted(coll.distinct("n")) == [0, 1, 2, 12], f"distinct: {sorted(coll.distinct('n'))}")

try:
    coll.bulk_write([InsertOne({"_id": 1000}), InsertOne({"_id": 1000}), InsertOne({"_id": 1001})], ordered=False)
    fail("a bulk write with a duplicate succeeded")
except BulkWriteError as e:
    details = e.details
    check(details["nInserted"] == 2 and details["writeErrors"][0]["index"] == 1,
          f"unordered bulk_write reports the failed index: {details}")
r = coll.bulk_write([UpdateOne({"_id": 1000}, {"$set": {"b": 1}}), DeleteOne({"_id": 1001})])
check(r.modified_count == 1 and r.deleted_count == 1, "mixed bulk_write")

r = coll.delete_many({"zero": True})
check(r.deleted_count == 100, "delete_many")
r = coll.delete_one({})
check(r.deleted_count == 1, "delete_one")

db.create_collection("other")
check(sorted(db.list_collection_names()) == ["items", "other"], "list_collection_names")
check("interop" in client.list_database_names(), "list_database_names shows the database")
stats = db.command("dbStats")
check(stats["collections"] == 2 and stats["objects"] > 0, f"dbStats: {stats}")
try:
    coll.find({"a": {"$nosuch": 1}}).next()
    fail("an unknown operator was accepted")
except OperationFailure as e:
    check(e.code == 2, f"unknown query operator: BadValue ({e})")
db.drop_collection("other")
check(db.list_collection_names() == ["items"], "drop_collection")
client.drop_database("interop")
check("interop" not in client.list_database_names(), "drop_database")
print("documents_pymongo: all checks passed")
