"""PyMongo through a kill -9 of the primary (issue 5): with replicaSet=, the client keeps
creating users on whichever member is primary; the primary is killed; a new one is
elected and the client carries on with no acknowledged user lost.

Usage: python3 repl_failover_pymongo.py HOST:PORT=PID,HOST:PORT=PID,HOST:PORT=PID [SET]
Prints `killed HOST` after the kill (the test restarts that member and checks it catches
up). Exits non-zero with a message on the first failed check.
"""

import os
import signal
import sys
import time

from harness import missing_pymongo, reporter

try:
    import pymongo
    from pymongo.errors import AutoReconnect, OperationFailure, ServerSelectionTimeoutError
except ImportError as e:
    missing_pymongo("repl_failover_pymongo", e)

fail, check = reporter("repl_failover_pymongo")

if len(sys.argv) < 2:
    fail("usage: repl_failover_pymongo.py HOST:PORT=PID,... [SET]")
pids = dict(item.split("=") for item in sys.argv[1].split(","))
set_name = sys.argv[2] if len(sys.argv) > 2 else "rs0"
seeds = ",".join(pids)

client = pymongo.MongoClient(
    f"mongodb://{seeds}/?replicaSet={set_name}&serverSelectionTimeoutMS=30000"
)
acknowledged = []


def create(name, deadline_s):
    """createUser with w: majority, retried through errors until acknowledged."""
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        try:
            client.admin.command("createUser", name, pwd="x", roles=[],
                                 writeConcern={"w": "majority", "wtimeout": 5000})
            acknowledged.append(name)
            return
        except OperationFailure as e:
            if e.code == 51003:  # an earlier attempt did commit
                acknowledged.append(name)
                return
            last = e
        except (AutoReconnect, ServerSelectionTimeoutError) as e:
            last = e
        time.sleep(0.05)
    fail(f"createUser {name} not acknowledged within {deadline_s} s: {last}")


for i in range(5):
    create(f"pre{i}", 10)
old = "%s:%d" % client.primary
check(old in pids, f"the driver found the primary {old}")

os.kill(int(pids[old]), signal.SIGKILL)
killed_at = time.monotonic()
print(f"killed {old}", flush=True)

create("post0", 30)
took = time.monotonic() - killed_at
new = "%s:%d" % client.primary
check(new != old, f"a new primary {new} took over; the client wrote again {took:.2f} s after the kill")
for i in range(1, 5):
    create(f"post{i}", 10)

names = {u["user"] for u in client.admin.command("usersInfo")["users"]}
missing = [n for n in acknowledged if n not in names]
check(not missing, f"all {len(acknowledged)} acknowledged users are on the new primary")
print("acknowledged " + ",".join(acknowledged))
