"""PyMongo against a three-member ferrod replica set (issue 4): discovery with
replicaSet=rs0, following a replSetStepDown to the new primary, and SPEC.md section 4's
dropConnections argument table, every row, with exact code, codeName and message.

Usage: python3 repl_pymongo.py HOST:PORT,HOST:PORT,HOST:PORT [SET_NAME]
The members must run with --replSet SET_NAME (default rs0) and the set must be initiated.
Exits non-zero with a message on the first failed check.
"""

import os
import sys
import time

from harness import missing_pymongo, reporter

try:
    import pymongo
    from bson.int64 import Int64
    from pymongo.errors import AutoReconnect, OperationFailure
except ImportError as e:
    missing_pymongo("repl_pymongo", e)

fail, check = reporter("repl_pymongo")


if len(sys.argv) < 2:
    fail("usage: repl_pymongo.py HOST:PORT,HOST:PORT,HOST:PORT [SET_NAME]")
seeds = sys.argv[1]
set_name = sys.argv[2] if len(sys.argv) > 2 else "rs0"
hosts = seeds.split(",")

client = pymongo.MongoClient(
    f"mongodb://{seeds}/?replicaSet={set_name}&serverSelectionTimeoutMS=20000"
)


def primary_hello():
    """hello through the driver's primary selection: the member that answers is the
    one the driver believes is primary."""
    return client.admin.command("hello")


# --- discovery -------------------------------------------------------------------------
hello = primary_hello()
old_primary = hello["me"]
check(hello["setName"] == set_name, f"replicaSet={set_name} finds the set")
check(hello["isWritablePrimary"] is True, f"the driver's primary {old_primary} says it is writable")
check(sorted(hello["hosts"]) == sorted(hosts), f"hosts as configured: {hello['hosts']}")
check(client.primary is not None and "%s:%d" % client.primary == old_primary,
      f"client.primary is {old_primary}")
deadline = time.monotonic() + 20
while len(client.secondaries) < 2 and time.monotonic() < deadline:
    time.sleep(0.1)
check(len(client.secondaries) == 2, f"both other members are secondaries: {sorted(client.secondaries)}")
topology = client.topology_description.topology_type_name
check(topology == "ReplicaSetWithPrimary", f"topology type {topology}")

# --- stepdown ----------------------------------------------------------------------------
try:
    reply = client.admin.command("replSetStepDown", 10, secondaryCatchUpPeriodSecs=2)
    check(reply["ok"] == 1.0, "replSetStepDown on the primary")
except AutoReconnect as e:
    # mongod closes client connections when it steps down; the driver reports that.
    check(True, f"replSetStepDown on the primary (connection closed: {e})")

new_primary = None
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        hello = primary_hello()
    except (AutoReconnect, OperationFailure):
        time.sleep(0.1)
        continue
    if hello["me"] != old_primary and hello.get("isWritablePrimary"):
        new_primary = hello["me"]
        break
    time.sleep(0.1)
check(new_primary is not None, f"a command after the stepdown reaches a new primary ({new_primary})")
check(new_primary in hosts, "the new primary is a member")
check(hello["primary"] == new_primary, "the new primary names itself in hello.primary")
ping = client.admin.command("ping")
check(ping["ok"] == 1.0, "ping on the new primary")
# The old primary is now a secondary and says who the primary is.
old = pymongo.MongoClient(f"mongodb://{old_primary}/?directConnection=true&serverSelectionTimeoutMS=10000")
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    old_hello = old.admin.command("hello")
    if old_hello.get("primary") == new_primary:
        break
    time.sleep(0.1)
check(old_hello["isWritablePrimary"] is False and old_hello["secondary"] is True,
      "the old primary is a secondary")
check(old_hello.get("primary") == new_primary, "the old primary points at the new one")
old.close()

# --- dropConnections: SPEC.md section 4, every row -------------------------------------
admin = client.admin


def expect_error(code, code_name, message, cmd, db="admin"):
    try:
        client[db].command(cmd)
    except OperationFailure as e:
        got = (e.code, e.details.get("codeName"), e.details.get("errmsg"))
        want = (code, code_name, message)
        check(got == want, f"{cmd!r} on {db}: {got}")
        check("$clusterTime" in e.details and "operationTime" in e.details,
              f"{cmd!r}: the error carries $clusterTime and operationTime")
        return
    fail(f"{cmd!r}: no error, want {code} {code_name}")


def expect_ok(cmd):
    reply = admin.command(cmd)
    check(reply["ok"] == 1.0 and isinstance(reply["ok"], float), f"{cmd!r}: ok 1.0")
    check(set(reply) >= {"$clusterTime", "operationTime"}, f"{cmd!r}: $clusterTime and operationTime")
    return reply


def drop(**fields):
    cmd = {"dropConnections": 1}
    cmd.update(fields)
    return cmd


# Before parsing: not against admin.
expect_error(13, "Unauthorized", "dropConnections may only be run against the admin database.",
             drop(hostAndPort=[]), db="test")
expect_error(13, "Unauthorized", "dropConnections may only be run against the admin database.",
             drop(), db="test")

# hostAndPort missing or null.
missing = "BSON field 'dropConnections.hostAndPort' is missing but a required field"
expect_error(40414, "IDLFailedToParse", missing, drop())
expect_error(40414, "IDLFailedToParse", missing, drop(hostAndPort=None))

# hostAndPort not an array.
for value, type_name in [("a:1", "string"), ({"0": "a:1"}, "object"), (1, "int"),
                         (Int64(1), "long"), (1.5, "double"), (True, "bool")]:
    expect_error(14, "TypeMismatch",
                 f"BSON field 'dropConnections.hostAndPort' is the wrong type '{type_name}', "
                 "expected type 'array'",
                 drop(hostAndPort=value))

# An element that is not a string (null excepted) names the element.
for value, index, type_name in [([5], 0, "int"), (["a:1", {"host": "a"}], 1, "object"),
                                ([None, "a:1", 1.5], 2, "double"), ([["a:1"]], 0, "array"),
                                ([True], 0, "bool")]:
    expect_error(14, "TypeMismatch",
                 f"BSON field 'dropConnections.hostAndPort.{index}' is the wrong type "
                 f"'{type_name}', expected type 'string'",
                 drop(hostAndPort=value))

# A null element is skipped.
expect_ok(drop(hostAndPort=[None]))
expect_ok(drop(hostAndPort=[None, "nosuchhost:1", None]))

# An unknown top-level field; generic arguments are not unknown.
expect_error(40415, "IDLUnknownField", "BSON field 'dropConnections.force' is an unknown field.",
             drop(hostAndPort=[], force=True))
expect_ok(drop(hostAndPort=[], comment={"why": ["walkthrough"]}, maxTimeMS=1000))
expect_ok(drop(hostAndPort=[], comment="plain"))

# Malformed host strings: 9 FailedToParse, with mongod's HostAndPort messages.
for text, message in [
    (":27017", 'Empty host component parsing HostAndPort from ":27017"'),
    ("[]:27017", 'Empty host component parsing HostAndPort from "[]:27017"'),
    ("host:0", 'Port number 0 out of range parsing HostAndPort from "host:0"'),
    ("host:65536", 'Port number 65536 out of range parsing HostAndPort from "host:65536"'),
    ("host:port", 'Port must be a number parsing HostAndPort from "host:port"'),
    ("host:", 'Port must be a number parsing HostAndPort from "host:"'),
    ("a:b:c", "More than one ':' detected. If this is an ipv6 address, it needs to be "
              "surrounded by '[' and ']'; a:b:c"),
    ("::1:5", "More than one ':' detected. If this is an ipv6 address, it needs to be "
              "surrounded by '[' and ']'; ::1:5"),
    ("[::1", "ipv6 address is missing closing ']' in hostname in [::1"),
    ("x[::1]:5", "'[' present, but not first character in x[::1]:5"),
]:
    expect_error(9, "FailedToParse", message, drop(hostAndPort=[text]))

# A string without both a host and an explicit port is silently ignored.
expect_ok(drop(hostAndPort=["127.0.0.1", "[::1]", "localhost"]))
expect_ok(drop(hostAndPort=[h.split(":")[0] for h in hosts]))

# [], or a host with no pool: nothing to do.
expect_ok(drop(hostAndPort=[]))
expect_ok(drop(hostAndPort=["nosuchhost:1", "[::1]:1", "NoSuchHost:2"]))

# Checks come in mongod's order: the database first, then parsing (first bad field wins).
expect_error(14, "TypeMismatch",
             "BSON field 'dropConnections.hostAndPort' is the wrong type 'int', expected type 'array'",
             drop(hostAndPort=1, force=True))

client.close()
print("repl_pymongo: all checks passed")
