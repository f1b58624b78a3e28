"""PyMongo against a ferrod started with enableTestCommands: the failCommand fail point
as the drivers' own test suites use it (issue 11).

Usage: python3 failpoints_pymongo.py PORT
Exits non-zero with a message on the first failed check.
"""

import sys
import threading

from harness import missing_pymongo, reporter

try:
    import pymongo
    from pymongo import monitoring
    from pymongo.errors import OperationFailure
except ImportError as e:
    missing_pymongo("failpoints_pymongo", e)

fail, check = reporter("failpoints_pymongo")


class Started(monitoring.CommandListener):
    def __init__(self):
        self.events = []

    def started(self, event):
        self.events.append(("started", event.command_name))

    def succeeded(self, event):
        self.events.append(("succeeded", event.command_name))

    def failed(self, event):
        self.events.append(("failed", event.command_name))


def connect(port, **options):
    return pymongo.MongoClient(
        "127.0.0.1", port, directConnection=True, serverSelectionTimeoutMS=10000, **options
    )


def configure(admin, mode, data):
    return admin.command({"configureFailPoint": "failCommand", "mode": mode, "data": data})


def main():
    port = int(sys.argv[1])
    client = connect(port)
    admin = client.admin

    # closeConnection: the driver sees a network error and retries the retryable read.
    listener = Started()
    watched = connect(port, event_listeners=[listener])
    watched.admin.command("ping")
    configure(admin, {"times": 1}, {"failCommands": ["listDatabases"], "closeConnection": True})
    names = watched.list_database_names()
    check(isinstance(names, list), "list_database_names succeeds through a closed connection")
    tried = [e for e in listener.events if e[1] == "listDatabases"]
    check(
        tried == [("started", "listDatabases"), ("failed", "listDatabases"),
                  ("started", "listDatabases"), ("succeeded", "listDatabases")],
        f"the driver retried listDatabases once after the close ({tried})",
    )
    off = configure(admin, "off", {})
    check(off["count"] == 1, f"configureFailPoint reports the fail point entered once ({off})")

    # times: 2 fires exactly twice (ping is not retried).
    configure(admin, {"times": 2}, {"failCommands": ["ping"], "errorCode": 2})
    codes = []
    for _ in range(3):
        try:
            watched.admin.command("ping")
            codes.append(None)
        except OperationFailure as e:
            codes.append(e.code)
    check(codes == [2, 2, None], f"times: 2 failed two pings, then none ({codes})")

    # errorLabels reach the driver's exception.
    configure(admin, {"times": 1},
              {"failCommands": ["ping"], "errorCode": 2, "errorLabels": ["MyLabel"]})
    try:
        watched.admin.command("ping")
        fail("the ping should have failed")
    except OperationFailure as e:
        check(e.code == 2 and e.has_error_label("MyLabel"),
              f"the error carries code 2 and the label ({e.details})")

    # blockConnection delays exactly the named command of the named application.
    slow = connect(port, appName="slowApp")
    fast = connect(port, appName="fastApp")
    for c in (slow, fast):
        c.admin.command("ping")
    # Blocked for far longer than the test runs: the block ends by killOp, not by time.
    configure(admin, {"times": 1}, {"failCommands": ["ping"], "appName": "slowApp",
                                    "blockConnection": True, "blockTimeMS": 600000})
    order = []

    def slow_ping():
        try:
            slow.admin.command("ping")
            order.append("slowApp ping ok")
        except OperationFailure as e:
            order.append(f"slowApp ping {e.code}")

    blocked = threading.Thread(target=slow_ping)
    blocked.start()
    admin.command({"waitForFailPoint": "failCommand", "timesEntered": off["count"] + 4,
                   "maxTimeMS": 30000})
    fast.admin.command("ping")
    order.append("fastApp ping")
    slow.admin.command("buildInfo")  # another command of the slow app is not delayed
    order.append("slowApp buildInfo")
    check(blocked.is_alive() and order == ["fastApp ping", "slowApp buildInfo"],
          f"only slowApp's ping is held ({order})")
    ops = admin.aggregate([{"$currentOp": {"allUsers": True}},
                           {"$match": {"appName": "slowApp", "command.ping": 1}}])
    opids = [op["opid"] for op in ops]
    check(len(opids) == 1, f"the held ping is an operation in $currentOp ({opids})")
    admin.command({"killOp": 1, "op": opids[0]})
    blocked.join()
    check(order[-1] == "slowApp ping 11601", f"killOp ended the held ping ({order})")
    configure(admin, "off", {})
    print("failpoints_pymongo: all checks passed")


main()
