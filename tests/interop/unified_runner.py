"""A runner for the drivers' unified-format specification tests, written for ferrod.

It runs the test files of one specification (for example the CRUD tests, as PyMongo's
source distribution ships them; tests/interop/install.sh puts them under .deps/spec)
against a running server with PyMongo, and writes one JSON line per test:
  {"file": ..., "test": ..., "status": "pass" | "fail" | "not-applicable", "reason": ...}
"not-applicable" is a test whose runOnRequirements exclude this server (its version or
topology), as the format prescribes; everything else runs. tests/unified_crud.rs
compares the results with the list of expected failures.

Usage: unified_runner.py --uri URI --out RESULTS.jsonl FILE.json...
       unified_runner.py --self-test   (checks the matching rules on a fixed table)
"""

import argparse
import json
import re
import sys
import traceback

import harness  # noqa: F401  (puts the pinned PyMongo on the path)

from bson import Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp, json_util
from bson.binary import Binary
from bson.dbref import DBRef
import datetime
from pymongo import MongoClient, ReturnDocument, monitoring
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
)
from pymongo.operations import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern


class Failure(Exception):
    """A test's assertion failed."""


# --- Matching (the format's "Evaluating Matches") --------------------------------------


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def type_names(v):
    """The $type names of a value as PyMongo decodes it."""
    if isinstance(v, bool):
        return {"bool"}
    if isinstance(v, Int64):
        return {"long"}
    if isinstance(v, int):
        return {"int"} if -(2**31) <= v < 2**31 else {"long"}
    if isinstance(v, float):
        return {"double"}
    if isinstance(v, Decimal128):
        return {"decimal"}
    if isinstance(v, str):
        return {"string"}
    if isinstance(v, dict):
        return {"object"}
    if isinstance(v, list):
        return {"array"}
    if isinstance(v, (bytes, Binary)):
        return {"binData"}
    if isinstance(v, ObjectId):
        return {"objectId"}
    if isinstance(v, datetime.datetime):
        return {"date"}
    if v is None:
        return {"null"}
    if isinstance(v, (Regex, re.Pattern)):
        return {"regex"}
    if isinstance(v, Code):
        return {"javascriptWithScope"} if v.scope is not None else {"javascript"}
    if isinstance(v, Timestamp):
        return {"timestamp"}
    if isinstance(v, MinKey):
        return {"minKey"}
    if isinstance(v, MaxKey):
        return {"maxKey"}
    if isinstance(v, DBRef):
        return {"object"}
    return {type(v).__name__}


MISSING = object()


class Matcher:
    def __init__(self, entities):
        self.entities = entities

    def match(self, expected, actual, root=True, path="$"):
        if isinstance(expected, dict) and len(expected) == 1 and next(iter(expected)).startswith("$$"):
            return self.special(expected, actual, root, path)
        if isinstance(expected, dict):
            if not isinstance(actual, dict):
                raise Failure(f"{path}: expected a document, got {actual!r}")
            for key, value in expected.items():
                if isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith("$$"):
                    op = next(iter(value))
                    if op == "$$exists":
                        if (key in actual) != bool(value[op]):
                            raise Failure(f"{path}.{key}: $$exists {value[op]} but {actual!r}")
                        continue
                    if op == "$$unsetOrMatches" and key not in actual:
                        continue
                if key not in actual:
                    raise Failure(f"{path}.{key}: missing in {actual!r}")
                self.match(value, actual[key], False, f"{path}.{key}")
            if not root:
                extra = [k for k in actual if k not in expected]
                if extra:
                    raise Failure(f"{path}: unexpected fields {extra} in {actual!r}")
            return
        if isinstance(expected, list):
            if not isinstance(actual, list):
                raise Failure(f"{path}: expected an array, got {actual!r}")
            if len(expected) != len(actual):
                raise Failure(f"{path}: expected {len(expected)} elements, got {len(actual)}: {actual!r}")
            for i, (e, a) in enumerate(zip(expected, actual)):
                self.match(e, a, False, f"{path}[{i}]")
            return
        if is_number(expected) and is_number(actual):
            if expected != actual:
                raise Failure(f"{path}: expected {expected!r}, got {actual!r}")
            return
        if type(expected) is not type(actual) and not (
            isinstance(expected, (bytes, Binary)) and isinstance(actual, (bytes, Binary))
        ):
            raise Failure(f"{path}: expected {expected!r} ({type(expected).__name__}), got {actual!r} ({type(actual).__name__})")
        if expected != actual:
            raise Failure(f"{path}: expected {expected!r}, got {actual!r}")

    def special(self, expected, actual, root, path):
        op, arg = next(iter(expected.items()))
        if op == "$$type":
            wanted = set(arg) if isinstance(arg, list) else {arg}
            if actual is MISSING or not (type_names(actual) & wanted):
                raise Failure(f"{path}: expected type {arg}, got {actual!r}")
        elif op == "$$unsetOrMatches":
            if actual is not MISSING:
                self.match(arg, actual, root, path)
        elif op == "$$exists":
            raise Failure(f"{path}: $$exists used outside a document")
        elif op == "$$matchesEntity":
            self.match(self.entities[arg], actual, root, path)
        elif op == "$$matchesHexBytes":
            if bytes(actual) != bytes.fromhex(arg):
                raise Failure(f"{path}: expected bytes {arg}, got {actual!r}")
        elif op == "$$sessionLsid":
            if actual != self.entities[arg].session_id:
                raise Failure(f"{path}: expected the lsid of {arg}, got {actual!r}")
        elif op == "$$lte":
            if not (is_number(actual) and actual <= arg):
                raise Failure(f"{path}: expected <= {arg}, got {actual!r}")
        elif op == "$$matchAsDocument":
            self.match(arg, json_util.loads(actual), False, path)
        elif op == "$$matchAsRoot":
            self.match(arg, actual, True, path)
        else:
            raise Failure(f"{path}: unknown special operator {op}")


def normalize(value):
    """A value with documents' keys sorted, for exact comparisons regardless of key order."""
    if isinstance(value, dict):
        return {k: normalize(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, float) and value == int(value) and abs(value) < 2**53:
        return ("num", int(value))
    if is_number(value):
        return ("num", value)
    return value


SELF_TEST = [
    # (expected, actual, root, matches)
    ({"x": 1}, {"x": 1, "y": 1}, True, True),
    ({"x": 1, "y": 1}, {"x": 1}, True, False),
    ({"x": {"y": 1}}, {"x": {"y": 1, "z": 1}}, True, False),
    ({"x": 1}, {"x": 1.0}, True, True),
    ({"x": 1}, {"x": 1.5}, True, False),
    ({"x": 1}, {"x": True}, True, False),
    ({"x": "1"}, {"x": 1}, True, False),
    ([1, 2, 3], [1, 2, 3, 4], False, False),
    ([{"a": 1}], [{"a": 1, "b": 2}], False, False),
    ({"a": {"$$exists": False}}, {"a": None}, True, False),
    ({"a": {"$$exists": True}}, {"a": None}, True, True),
    ({"a": {"$$unsetOrMatches": 2}}, {}, True, True),
    ({"a": {"$$unsetOrMatches": 2}}, {"a": 3}, True, False),
    ({"a": {"$$type": ["int", "long"]}}, {"a": Int64(5)}, True, True),
    ({"a": {"$$type": "string"}}, {"a": 5}, True, False),
    ({"a": {"$$lte": 5}}, {"a": 6}, True, False),
    ({"a": [{"b": 1}]}, {"a": [{"b": 1}]}, True, True),
    ({"a": ObjectId("0" * 24)}, {"a": ObjectId("1" * 24)}, True, False),
]


def self_test():
    matcher = Matcher({})
    bad = []
    for expected, actual, root, matches in SELF_TEST:
        try:
            matcher.match(expected, actual, root)
            got = True
        except Failure:
            got = False
        if got != matches:
            bad.append((expected, actual, root, matches))
    if bad:
        print("matching rules wrong for:", bad)
        sys.exit(1)
    print(f"self-test: {len(SELF_TEST)} matching cases pass")


# --- Entities and events ---------------------------------------------------------------

SENSITIVE = {
    "authenticate",
    "saslstart",
    "saslcontinue",
    "getnonce",
    "createuser",
    "updateuser",
    "copydbgetnonce",
    "copydbsaslstart",
    "copydb",
}


class Events(monitoring.CommandListener):
    def __init__(self, observe, ignore, sensitive):
        self.observe = set(observe)
        self.ignore = set(ignore) | {"configureFailPoint"}
        self.sensitive = sensitive
        self.events = []
        self.recording = True

    def keep(self, event):
        name = event.command_name
        if not self.recording or name in self.ignore:
            return False
        if not self.sensitive and (
            name.lower() in SENSITIVE
            or (name.lower() in ("hello", "ismaster") and getattr(event, "command", {}).get("speculativeAuthenticate"))
        ):
            return False
        return True

    def started(self, event):
        if "commandStartedEvent" in self.observe and self.keep(event):
            self.events.append(
                ("commandStartedEvent", {"command": event.command, "commandName": event.command_name, "databaseName": event.database_name})
            )

    def succeeded(self, event):
        if "commandSucceededEvent" in self.observe and self.keep(event):
            self.events.append(("commandSucceededEvent", {"reply": event.reply, "commandName": event.command_name}))

    def failed(self, event):
        if "commandFailedEvent" in self.observe and self.keep(event):
            self.events.append(("commandFailedEvent", {"commandName": event.command_name}))


def read_preference(spec):
    from pymongo import read_preferences as rp

    modes = {
        "primary": rp.Primary,
        "primaryPreferred": rp.PrimaryPreferred,
        "secondary": rp.Secondary,
        "secondaryPreferred": rp.SecondaryPreferred,
        "nearest": rp.Nearest,
    }
    extra = {k: v for k, v in spec.items() if k not in ("mode", "tagSets", "maxStalenessSeconds", "hedge")}
    if extra:
        raise Failure(f"readPreference options {sorted(extra)} are not supported by this runner")
    if spec["mode"] == "primary":
        return rp.Primary()
    kwargs = {}
    if "tagSets" in spec:
        kwargs["tag_sets"] = spec["tagSets"]
    if "maxStalenessSeconds" in spec:
        kwargs["max_staleness"] = spec["maxStalenessSeconds"]
    if "hedge" in spec:
        kwargs["hedge"] = spec["hedge"]
    return modes[spec["mode"]](**kwargs)


def write_concern(spec):
    spec = dict(spec)
    if "wtimeoutMS" in spec:
        spec["wtimeout"] = spec.pop("wtimeoutMS")
    if "journal" in spec:
        spec["j"] = spec.pop("journal")
    return WriteConcern(**spec)


def collection_options(spec):
    out = {}
    for key, value in (spec or {}).items():
        if key == "readConcern":
            out["read_concern"] = ReadConcern(value.get("level"))
        elif key == "writeConcern":
            out["write_concern"] = write_concern(value)
        elif key == "readPreference":
            out["read_preference"] = read_preference(value)
        else:
            raise Failure(f"collection/database option {key} is not supported by this runner")
    return out


# --- Operations --------------------------------------------------------------------------

CAMEL_TO_SNAKE = {
    "batchSize": "batch_size",
    "allowDiskUse": "allow_disk_use",
    "maxTimeMS": "max_time_ms",
    "noCursorTimeout": "no_cursor_timeout",
    "returnKey": "return_key",
    "showRecordId": "show_record_id",
    "arrayFilters": "array_filters",
    "bypassDocumentValidation": "bypass_document_validation",
    "verboseResults": "verbose_results",
}


def sort_spec(sort):
    return list(sort.items()) if isinstance(sort, dict) else sort


def snake(args, allowed, passthrough=()):
    """Keyword arguments for a PyMongo method: `allowed` are its named parameters (renamed
    to snake_case), `passthrough` the options it sends to the command under their own names."""
    out = {}
    for key, value in args.items():
        if key in passthrough:
            out[key] = value
        elif key in allowed:
            out[CAMEL_TO_SNAKE.get(key, key)] = value
        else:
            raise Failure(f"argument {key} is not supported by this runner")
    return out


def command_options(args, allowed):
    """Options PyMongo passes to the command under their own (camelCase) names."""
    for key in args:
        if key not in allowed:
            raise Failure(f"argument {key} is not supported by this runner")
    return dict(args)


def update_result(r):
    if not r.acknowledged:
        return {}
    return {
        "matchedCount": r.matched_count,
        "modifiedCount": r.modified_count,
        "upsertedCount": 0 if r.upserted_id is None else 1,
        **({"upsertedId": r.upserted_id} if r.upserted_id is not None else {}),
    }


def bulk_result(r):
    if not r.acknowledged:
        return {}
    return {
        "deletedCount": r.deleted_count,
        "insertedCount": r.inserted_count,
        "matchedCount": r.matched_count,
        "modifiedCount": r.modified_count,
        "upsertedCount": r.upserted_count,
        "upsertedIds": {str(k): v for k, v in r.upserted_ids.items()},
    }


def bulk_result_from_details(details):
    return {
        "deletedCount": details.get("nRemoved", 0),
        "insertedCount": details.get("nInserted", 0),
        "matchedCount": details.get("nMatched", 0),
        "modifiedCount": details.get("nModified", 0),
        "upsertedCount": details.get("nUpserted", 0),
        "upsertedIds": {str(u["index"]): u["_id"] for u in details.get("upserted", [])},
    }


def write_model(request):
    (kind, a), = request.items()
    common = {k: a[k] for k in ("collation", "hint", "namespace") if k in a}
    if kind == "insertOne":
        return InsertOne(a["document"], **({"namespace": a["namespace"]} if "namespace" in a else {}))
    if kind in ("updateOne", "updateMany"):
        cls = UpdateOne if kind == "updateOne" else UpdateMany
        extra = {"sort": a["sort"]} if "sort" in a else {}
        return cls(a["filter"], a["update"], upsert=a.get("upsert", False), array_filters=a.get("arrayFilters"), **common, **extra)
    if kind == "replaceOne":
        extra = {"sort": a["sort"]} if "sort" in a else {}
        return ReplaceOne(a["filter"], a["replacement"], upsert=a.get("upsert", False), **common, **extra)
    if kind == "deleteOne":
        return DeleteOne(a["filter"], **common)
    if kind == "deleteMany":
        return DeleteMany(a["filter"], **common)
    raise Failure(f"bulkWrite request {kind} is not supported by this runner")


def collection_op(coll, name, a):
    a = dict(a)
    if name == "insertOne":
        r = coll.insert_one(a.pop("document"), **snake(a, {"comment", "bypassDocumentValidation"}))
        return {"insertedId": r.inserted_id} if r.acknowledged else {}
    if name == "insertMany":
        r = coll.insert_many(a.pop("documents"), **snake(a, {"ordered", "comment", "bypassDocumentValidation"}))
        return {"insertedIds": {str(i): v for i, v in enumerate(r.inserted_ids)}} if r.acknowledged else {}
    if name in ("updateOne", "updateMany", "replaceOne"):
        filt = a.pop("filter")
        second = a.pop("replacement" if name == "replaceOne" else "update")
        kw = snake(a, {"upsert", "arrayFilters", "hint", "let", "comment", "collation", "sort", "bypassDocumentValidation"})
        method = {"updateOne": coll.update_one, "updateMany": coll.update_many, "replaceOne": coll.replace_one}[name]
        return update_result(method(filt, second, **kw))
    if name in ("deleteOne", "deleteMany"):
        method = coll.delete_one if name == "deleteOne" else coll.delete_many
        r = method(a.pop("filter"), **snake(a, {"hint", "let", "comment", "collation"}))
        return {"deletedCount": r.deleted_count} if r.acknowledged else {}
    if name in ("find", "findOne"):
        filt = a.pop("filter", {})
        if "sort" in a:
            a["sort"] = sort_spec(a["sort"])
        kw = snake(
            a,
            {"sort", "skip", "limit", "batchSize", "projection", "hint", "comment", "let", "allowDiskUse", "min", "max",
             "returnKey", "showRecordId", "maxTimeMS", "noCursorTimeout", "collation"},
        )
        if name == "findOne":
            return coll.find_one(filt, **kw)
        return list(coll.find(filt, **kw))
    if name == "aggregate":
        pipeline = a.pop("pipeline")
        return list(coll.aggregate(pipeline, **command_options(a, {"batchSize", "allowDiskUse", "let", "comment", "hint", "maxTimeMS", "collation", "bypassDocumentValidation"})))
    if name == "bulkWrite":
        requests = [write_model(r) for r in a.pop("requests")]
        return bulk_result(coll.bulk_write(requests, **snake(a, {"ordered", "bypassDocumentValidation", "comment", "let"})))
    if name == "countDocuments":
        return coll.count_documents(a.pop("filter"), **snake(a, {"comment"}, {"skip", "limit", "hint", "collation", "maxTimeMS"}))
    if name == "estimatedDocumentCount":
        return coll.estimated_document_count(**snake(a, {"comment"}, {"maxTimeMS"}))
    if name == "count":
        # PyMongo 4 has no Collection.count; the test wants the count command itself.
        cmd = {"count": coll.name, "query": a.pop("filter", {})}
        cmd.update(a)
        return coll.database.command(cmd)["n"]
    if name == "distinct":
        return coll.distinct(a.pop("fieldName"), a.pop("filter", None), **snake(a, {"comment", "hint"}, {"collation", "maxTimeMS"}))
    if name in ("findOneAndDelete", "findOneAndReplace", "findOneAndUpdate"):
        filt = a.pop("filter")
        if "sort" in a:
            a["sort"] = sort_spec(a["sort"])
        if "returnDocument" in a:
            a["return_document"] = {"before": ReturnDocument.BEFORE, "after": ReturnDocument.AFTER}[a.pop("returnDocument").lower()]
        allowed = {"projection", "sort", "hint", "let", "comment", "return_document", "upsert", "arrayFilters"}
        passthrough = {"collation", "bypassDocumentValidation", "maxTimeMS"}
        if name == "findOneAndDelete":
            return coll.find_one_and_delete(filt, **snake(a, allowed, passthrough))
        second = a.pop("replacement" if name == "findOneAndReplace" else "update")
        method = coll.find_one_and_replace if name == "findOneAndReplace" else coll.find_one_and_update
        return method(filt, second, **snake(a, allowed, passthrough))
    if name == "createIndex":
        keys = list(a.pop("keys").items())
        return coll.create_index(keys, **a)
    if name == "drop":
        coll.drop()
        return None
    raise Failure(f"collection operation {name} is not supported by this runner")


def database_op(db, name, a):
    a = dict(a)
    if name == "aggregate":
        pipeline = a.pop("pipeline")
        return list(db.aggregate(pipeline, **command_options(a, {"batchSize", "allowDiskUse", "let", "comment", "hint", "maxTimeMS"})))
    if name == "createCollection":
        db.create_collection(a.pop("collection"), **a)
        return None
    if name == "dropCollection":
        db.drop_collection(a.pop("collection"))
        return None
    if name == "modifyCollection":
        cmd = {"collMod": a.pop("collection")}
        cmd.update(a)
        return db.command(cmd)
    if name == "runCommand":
        return db.command(a["command"])
    if name == "listCollectionNames":
        return db.list_collection_names(**a)
    if name == "listCollections":
        return list(db.list_collections(**a))
    raise Failure(f"database operation {name} is not supported by this runner")


def client_op(client, name, a):
    if name == "clientBulkWrite":
        a = dict(a)
        models = [write_model(m) for m in a.pop("models")]
        if "writeConcern" in a:
            a["write_concern"] = write_concern(a.pop("writeConcern"))
        r = client.bulk_write(models, **snake(a, {"ordered", "verboseResults", "bypassDocumentValidation", "comment", "let", "write_concern"}))
        if not r.acknowledged:
            return {}
        return {
            "insertedCount": r.inserted_count,
            "upsertedCount": r.upserted_count,
            "matchedCount": r.matched_count,
            "modifiedCount": r.modified_count,
            "deletedCount": r.deleted_count,
        }
    if name == "listDatabases":
        return list(client.list_databases(**a))
    if name == "listDatabaseNames":
        return client.list_database_names(**a)
    raise Failure(f"client operation {name} is not supported by this runner")


ITERABLE_RESULTS = {"find", "aggregate", "listCollections", "listDatabases", "listIndexes", "runCursorCommand"}


# --- Running a file ----------------------------------------------------------------------


def version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3]) + (0,) * (3 - len(re.findall(r"\d+", v)[:3]))


class Server:
    def __init__(self, uri):
        self.uri = uri
        self.internal = MongoClient(uri)
        info = self.internal.admin.command("buildInfo")
        self.version = version_tuple(info["version"])
        hello = self.internal.admin.command("hello")
        self.topology = "replicaset" if "setName" in hello else "single"
        self.auth = False

    def satisfies(self, reqs):
        if not reqs:
            return True
        for r in reqs:
            if "minServerVersion" in r and self.version < version_tuple(r["minServerVersion"]):
                continue
            if "maxServerVersion" in r and self.version > version_tuple(r["maxServerVersion"]):
                continue
            if "topologies" in r and self.topology not in r["topologies"]:
                continue
            if r.get("serverless") == "require":
                continue
            if "auth" in r and r["auth"] != self.auth:
                continue
            if r.get("csfle"):
                continue
            unknown = set(r) - {"minServerVersion", "maxServerVersion", "topologies", "serverless", "auth", "csfle"}
            if unknown:
                continue
            return True
        return False


class TestRun:
    def __init__(self, server):
        self.server = server
        self.entities = {}
        self.listeners = {}
        self.clients = []
        self.fail_points = []

    def create_entities(self, specs):
        for spec in specs:
            (kind, e), = spec.items()
            if kind == "client":
                listener = Events(e.get("observeEvents", []), e.get("ignoreCommandMonitoringEvents", []), e.get("observeSensitiveCommands", False))
                opts = dict(e.get("uriOptions", {}))
                if "serverApi" in e:
                    from pymongo.server_api import ServerApi

                    api = e["serverApi"]
                    opts["server_api"] = ServerApi(api["version"], strict=api.get("strict"), deprecation_errors=api.get("deprecationErrors"))
                client = MongoClient(self.server.uri, event_listeners=[listener], **opts)
                self.clients.append(client)
                self.entities[e["id"]] = client
                self.listeners[e["id"]] = listener
            elif kind == "database":
                client = self.entities[e["client"]]
                self.entities[e["id"]] = client.get_database(e["databaseName"], **collection_options(e.get("databaseOptions")))
            elif kind == "collection":
                db = self.entities[e["database"]]
                self.entities[e["id"]] = db.get_collection(e["collectionName"], **collection_options(e.get("collectionOptions")))
            elif kind == "session":
                self.entities[e["id"]] = self.entities[e["client"]].start_session()
            else:
                raise Failure(f"entity type {kind} is not supported by this runner")

    def initial_data(self, data):
        majority = WriteConcern(w="majority")
        for c in data:
            db = self.server.internal.get_database(c["databaseName"], write_concern=majority)
            db.drop_collection(c["collectionName"])
            db.create_collection(c["collectionName"], **c.get("createOptions", {}))
            if c["documents"]:
                db[c["collectionName"]].insert_many(c["documents"])

    def run_operation(self, op):
        name, target, args = op["name"], op["object"], op.get("arguments", {})
        if "session" in args:
            raise Failure("operations with a session are not supported by this runner")
        if target == "testRunner":
            return self.test_runner_op(name, args)
        obj = self.entities[target]
        if isinstance(obj, Collection):
            return collection_op(obj, name, args)
        if isinstance(obj, Database):
            return database_op(obj, name, args)
        if isinstance(obj, MongoClient):
            return client_op(obj, name, args)
        raise Failure(f"object {target} does not take operations")

    def test_runner_op(self, name, args):
        if name == "failPoint":
            client = self.entities[args["client"]]
            client.admin.command(args["failPoint"])
            self.fail_points.append((client, args["failPoint"]["configureFailPoint"]))
            return None
        if name in ("assertCollectionExists", "assertCollectionNotExists"):
            names = self.server.internal[args["databaseName"]].list_collection_names()
            if (args["collectionName"] in names) != (name == "assertCollectionExists"):
                raise Failure(f"{name} {args['collectionName']}: collections are {names}")
            return None
        raise Failure(f"testRunner operation {name} is not supported by this runner")

    def check_error(self, expected, exc, matcher):
        server_error = isinstance(exc, OperationFailure)
        # Network errors count as client errors, as the format says.
        if expected.get("isClientError") is True and server_error:
            raise Failure(f"expected a client error, got {exc!r}")
        if expected.get("isClientError") is False and not server_error:
            raise Failure(f"expected a server error, got {exc!r}")
        if "errorContains" in expected:
            message = str(exc)
            if isinstance(exc, BulkWriteError):
                message += " " + " ".join(e.get("errmsg", "") for e in exc.details.get("writeErrors", []))
            if expected["errorContains"].lower() not in message.lower():
                raise Failure(f"error {message!r} does not contain {expected['errorContains']!r}")
        code = code_name = None
        if isinstance(exc, BulkWriteError):
            errors = exc.details.get("writeErrors", []) or exc.details.get("writeConcernErrors", [])
            if errors:
                code, code_name = errors[0].get("code"), errors[0].get("codeName")
        elif server_error:
            code, code_name = exc.code, (exc.details or {}).get("codeName")
        if "errorCode" in expected and code != expected["errorCode"]:
            raise Failure(f"expected code {expected['errorCode']}, got {code}: {exc!r}")
        if "errorCodeName" in expected and (code_name or "").lower() != expected["errorCodeName"].lower():
            raise Failure(f"expected codeName {expected['errorCodeName']}, got {code_name}: {exc!r}")
        for label in expected.get("errorLabelsContain", []):
            if not (isinstance(exc, PyMongoError) and exc.has_error_label(label)):
                raise Failure(f"error lacks label {label}: {exc!r}")
        for label in expected.get("errorLabelsOmit", []):
            if isinstance(exc, PyMongoError) and exc.has_error_label(label):
                raise Failure(f"error has label {label}: {exc!r}")
        if "errorResponse" in expected:
            if not server_error:
                raise Failure(f"expected a server response, got {exc!r}")
            matcher.match(expected["errorResponse"], exc.details or {}, True, "errorResponse")
        if "expectResult" in expected:
            actual = bulk_result_from_details(exc.details) if isinstance(exc, BulkWriteError) else MISSING
            matcher.match(expected["expectResult"], actual, True, "expectError.expectResult")
        for key in ("writeErrors", "writeConcernErrors", "isTimeoutError"):
            if key in expected:
                raise Failure(f"expectError.{key} is not supported by this runner")

    def check_events(self, expected_list, matcher):
        for expected in expected_list:
            if expected.get("eventType", "command") != "command":
                raise Failure(f"eventType {expected['eventType']} is not supported by this runner")
            actual = self.listeners[expected["client"]].events
            wanted = expected["events"]
            if expected.get("ignoreExtraEvents"):
                actual = actual[: len(wanted)]
            if len(actual) != len(wanted):
                raise Failure(
                    f"expected {len(wanted)} events on {expected['client']}, got {len(actual)}: "
                    + ", ".join(f"{k}:{v['commandName']}" for k, v in actual)
                )
            for i, (want, (kind, got)) in enumerate(zip(wanted, actual)):
                (want_kind, want_fields), = want.items()
                if want_kind != kind:
                    raise Failure(f"event {i}: expected {want_kind}, got {kind} ({got['commandName']})")
                for field, value in want_fields.items():
                    if field not in got:
                        raise Failure(f"event {i}: field {field} is not supported by this runner")
                    matcher.match(value, got[field], field in ("command", "reply"), f"event[{i}].{field}")

    def check_outcome(self, outcome):
        for c in outcome:
            coll = self.server.internal.get_database(c["databaseName"], read_concern=ReadConcern("local"))[c["collectionName"]]
            actual = list(coll.find({}, sort=[("_id", 1)]))
            if normalize(actual) != normalize(c["documents"]):
                raise Failure(f"outcome of {c['collectionName']}: expected {c['documents']!r}, got {actual!r}")

    def run(self, test, file_spec):
        matcher = Matcher(self.entities)
        self.create_entities(file_spec.get("createEntities", []))
        self.initial_data(file_spec.get("initialData", []))
        for listener in self.listeners.values():
            listener.events.clear()
        for i, op in enumerate(test["operations"]):
            try:
                result = self.run_operation(op)
            except Failure:
                raise
            except Exception as exc:  # the operation's own error, checked below
                if op.get("ignoreResultAndError"):
                    continue
                if "expectError" not in op:
                    raise Failure(f"operation {i} ({op['name']}) failed: {exc!r}")
                self.check_error(op["expectError"], exc, matcher)
                continue
            if "expectError" in op:
                raise Failure(f"operation {i} ({op['name']}) succeeded with {result!r}; expected an error")
            if "expectResult" in op and not op.get("ignoreResultAndError"):
                where = f"operation {i} ({op['name']})"
                if op["name"] in ITERABLE_RESULTS and isinstance(op["expectResult"], list) and isinstance(result, list):
                    # Each document of an iterated result is a root-level document.
                    if len(result) != len(op["expectResult"]):
                        raise Failure(f"{where}: expected {len(op['expectResult'])} documents, got {len(result)}: {result!r}")
                    for j, (e, got) in enumerate(zip(op["expectResult"], result)):
                        matcher.match(e, got, True, f"{where}[{j}]")
                else:
                    matcher.match(op["expectResult"], result, True, where)
            if "saveResultAsEntity" in op:
                self.entities[op["saveResultAsEntity"]] = result
        for listener in self.listeners.values():
            listener.recording = False
        self.check_events(test.get("expectEvents", []), matcher)
        self.check_outcome(test.get("outcome", []))

    def close(self):
        for client, name in self.fail_points:
            try:
                client.admin.command({"configureFailPoint": name, "mode": "off"})
            except PyMongoError:
                pass
        for value in self.entities.values():
            if isinstance(value, ClientSession):
                value.end_session()
        for client in self.clients:
            client.close()


def run_file(server, path, out):
    with open(path) as f:
        spec = json_util.loads(f.read())
    name = path.rsplit("/", 1)[-1]
    file_ok = server.satisfies(spec.get("runOnRequirements"))
    for test in spec["tests"]:
        record = {"file": name, "test": test["description"]}
        if not file_ok or not server.satisfies(test.get("runOnRequirements")):
            record.update(status="not-applicable", reason="runOnRequirements exclude this server")
        elif "skipReason" in test:
            record.update(status="not-applicable", reason="skipReason: " + test["skipReason"])
        else:
            run = TestRun(server)
            try:
                run.run(test, spec)
                record.update(status="pass")
            except Failure as exc:
                record.update(status="fail", reason=str(exc)[:2000])
            except Exception as exc:
                record.update(status="fail", reason="runner error: " + "".join(traceback.format_exception_only(exc)).strip()[:2000])
            finally:
                run.close()
        out.write(json.dumps(record) + "\n")
        out.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri")
    parser.add_argument("--out")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return
    server = Server(args.uri)
    with open(args.out, "w") as out:
        for path in args.files:
            run_file(server, path, out)


if __name__ == "__main__":
    main()
