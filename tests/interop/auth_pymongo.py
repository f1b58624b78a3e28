"""PyMongo against a running ferrod started with --auth and no users yet: the localhost
exception, createRole/createUser/grantRolesToUser/usersInfo/rolesInfo, logins with
SCRAM-SHA-256 and SCRAM-SHA-1 (including a password that SASLprep changes), and the
errors for a wrong password (18), no login (13) and a missing privilege (13).

Usage: python3 auth_pymongo.py PORT   (or FERROD_PORT=PORT python3 auth_pymongo.py)
The server must be fresh: `ferrod --auth --port PORT --dbpath <empty dir>`.
Exits non-zero with a message on the first failed check.
"""

import os
import sys

from harness import missing_pymongo, reporter

try:
    import pymongo
    from pymongo.errors import OperationFailure
except ImportError as e:
    missing_pymongo("auth_pymongo", e)

fail, check = reporter("auth_pymongo")


def expect_code(code, fn, message):
    try:
        fn()
    except OperationFailure as e:
        check(e.code == code, f"{message} (code {e.code}, want {code}: {e.details})")
        return e
    fail(f"{message}: no error raised, want code {code}")


port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FERROD_PORT") or fail("no port"))
base = f"mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=5000"


def connect(**kwargs):
    return pymongo.MongoClient(base, **kwargs)


# Localhost exception: only the first user may be created before anyone logs in.
anonymous = connect()
expect_code(13, lambda: anonymous.admin.command("serverStatus"), "serverStatus before login")
e = expect_code(13, lambda: anonymous.admin.command("dropConnections", 1, hostAndPort=[]),
                "dropConnections before login")
check(e.details["errmsg"] == "command dropConnections requires authentication",
      f"not logged in: {e.details['errmsg']!r}")
# SPEC.md section 4's order: the admin-database check comes before authentication.
e = expect_code(13, lambda: anonymous.test.command("dropConnections", 1, hostAndPort=[]),
                "dropConnections on test before login")
check(e.details["errmsg"] == "dropConnections may only be run against the admin database.",
      f"the admin-only check comes first: {e.details['errmsg']!r}")
anonymous.admin.command("createUser", "root", pwd="rootpw", roles=["root"])
check(True, "first user created through the localhost exception")
expect_code(13, lambda: anonymous.admin.command("createUser", "second", pwd="x", roles=[]),
            "the localhost exception closes after the first user")

root = connect(username="root", password="rootpw", authSource="admin")
admin = root.admin
admin.command("createRole", "dropConnectionsRole",
              privileges=[{"resource": {"cluster": True}, "actions": ["dropConnections"]}], roles=[])
admin.command("createUser", "ops", pwd="opspw", roles=["dropConnectionsRole"])
admin.command("grantRolesToUser", "ops", roles=[{"role": "clusterMonitor", "db": "admin"}])
users = admin.command("usersInfo", "ops")["users"]
check(len(users) == 1 and {"role": "clusterMonitor", "db": "admin"} in users[0]["roles"],
      "usersInfo shows the granted role")
roles = admin.command("rolesInfo", "dropConnectionsRole", showPrivileges=True)["roles"]
check(roles[0]["privileges"] == [{"resource": {"cluster": True}, "actions": ["dropConnections"]}],
      "rolesInfo shows the dropConnections privilege")
expect_code(51003, lambda: admin.command("createUser", "ops", pwd="x", roles=[]), "duplicate user")
expect_code(31, lambda: admin.command("createUser", "x", pwd="x", roles=["nope"]), "unknown role")
expect_code(2, lambda: admin.command("createRole", "bad", roles=[],
                                     privileges=[{"resource": {"cluster": True}, "actions": ["fly"]}]),
            "unknown action")

# A user without the privilege: clusterMonitor does not hold dropConnections.
admin.command("createUser", "monitor", pwd="monitorpw", roles=["clusterMonitor"])
monitor = connect(username="monitor", password="monitorpw", authSource="admin")
monitor.admin.command("connPoolStats")
check(True, "clusterMonitor runs connPoolStats")
e = expect_code(13, lambda: monitor.admin.command("dropConnections", 1, hostAndPort=[]),
                "clusterMonitor lacks dropConnections")
check(e.details["codeName"] == "Unauthorized"
      and e.details["errmsg"].startswith("not authorized on admin to execute command { dropConnections: "),
      f"missing privilege: {e.details['errmsg']!r}")
# ... and argument parsing comes before the privilege check.
e = expect_code(14, lambda: monitor.admin.command("dropConnections", 1, hostAndPort="a:1"),
                "a bad argument from a user without the privilege")
check(e.details["codeName"] == "TypeMismatch", "parsing comes before the privilege check")
e = expect_code(40414, lambda: monitor.admin.command("dropConnections", 1),
                "a missing argument from a user without the privilege")

for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-1"]:
    c = connect(username="ops", password="opspw", authSource="admin", authMechanism=mechanism)
    status = c.admin.command("connectionStatus", showPrivileges=True)["authInfo"]
    check(status["authenticatedUsers"] == [{"user": "ops", "db": "admin"}], f"{mechanism} login")
    c.admin.command("serverStatus")
    check(True, f"{mechanism}: clusterMonitor allows serverStatus")
    reply = c.admin.command("dropConnections", 1, hostAndPort=[])
    check(reply["ok"] == 1.0, f"{mechanism}: the custom role allows dropConnections")
    expect_code(13, lambda: c.admin.command("shutdown"), f"{mechanism}: no shutdown privilege")
    bad = connect(username="ops", password="wrong", authSource="admin", authMechanism=mechanism)
    try:
        bad.admin.command("ping")
        fail(f"{mechanism}: a wrong password logged in")
    except OperationFailure as e:
        check(e.code == 18 and e.details.get("codeName") == "AuthenticationFailed"
              and e.details.get("errmsg") == "Authentication failed.",
              f"{mechanism}: wrong password is 18 AuthenticationFailed ({e.details})")

# SASLprep: U+00AD maps to nothing and U+2168 to "IX", so all three log in with SHA-256.
admin.command("createUser", "prep", pwd="I\u00adX", roles=[], mechanisms=["SCRAM-SHA-256"])
for pwd in ["IX", "I\u00adX", "\u2168"]:
    c = connect(username="prep", password=pwd, authSource="admin", authMechanism="SCRAM-SHA-256")
    c.admin.command("ping")
    check(True, f"SASLprep: password {pwd!r} logs in")
bad = connect(username="prep", password="I X", authSource="admin", authMechanism="SCRAM-SHA-256")
try:
    bad.admin.command("ping")
    fail("SASLprep: a different password logged in")
except OperationFailure as e:
    check(e.code == 18, "SASLprep: a password that prepares differently is refused")

print("auth_pymongo: all checks passed")
