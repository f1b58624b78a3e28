"""PyMongo against a three-member ferrod set whose members carry tags (issue 11, items 2
and 3): a tag-set read preference selects by the `tags` in hello, and a write sent to a
secondary over directConnection=true gets NotWritablePrimary with the member's
topologyVersion, which PyMongo takes as stale news: the member is not marked Unknown and
the next operation waits for no heartbeat.

Usage: python3 topology_pymongo.py HOST=DC,HOST=DC,HOST=DC [SET_NAME]
The members must run with --replSet SET_NAME (default rs0), and the set must be initiated
with each member's `tags: {dc: DC}`. Exits non-zero with a message on the first failed
check.
"""

import sys
import threading
import time

from harness import missing_pymongo, reporter

try:
    import pymongo
    from pymongo import monitoring
    from pymongo.errors import NotPrimaryError
    from pymongo.read_preferences import Nearest
except ImportError as e:
    missing_pymongo("topology_pymongo", e)

fail, check = reporter("topology_pymongo")

if len(sys.argv) < 2:
    fail("usage: topology_pymongo.py HOST=DC,HOST=DC,HOST=DC [SET_NAME]")
dcs = dict(item.split("=") for item in sys.argv[1].split(","))
set_name = sys.argv[2] if len(sys.argv) > 2 else "rs0"
seeds = ",".join(dcs)

client = pymongo.MongoClient(
    f"mongodb://{seeds}/?replicaSet={set_name}&serverSelectionTimeoutMS=10000"
)
primary = client.admin.command("hello")["me"]
check(primary in dcs, f"the set's primary is {primary}")

# Item 3: tag sets select on hello's `tags`.
for dc in sorted(set(dcs.values())):
    members = {h for h, d in dcs.items() if d == dc}
    for _ in range(10):
        me = client.admin.command("hello", read_preference=Nearest(tag_sets=[{"dc": dc}]))["me"]
        if me not in members:
            fail(f"Nearest(dc={dc}) reached {me}, not one of {sorted(members)}")
    check(True, f"Nearest(tag_sets=[{{'dc': '{dc}'}}]) reaches only {sorted(members)}")
hello = client.admin.command("hello", read_preference=Nearest(tag_sets=[{"dc": "west"}]))
check(hello.get("tags") == {"dc": "west"}, f"hello shows the member's tags: {hello.get('tags')}")
client.close()

# Item 2: directConnection to a secondary, a write, then the next operation.
secondary = next(h for h in dcs if h != primary)


class Events(monitoring.ServerListener, monitoring.ServerHeartbeatListener):
    def __init__(self):
        self.log = []
        self.saw_secondary = threading.Event()

    def opened(self, event):
        pass

    def closed(self, event):
        pass

    def description_changed(self, event):
        self.log.append(("changed", event.new_description.server_type_name))
        if event.new_description.server_type_name == "RSSecondary":
            self.saw_secondary.set()

    def started(self, event):
        self.log.append(("heartbeat", event.awaited))

    def succeeded(self, event):
        pass

    def failed(self, event):
        self.log.append(("heartbeat failed", str(event.reply)))


events = Events()
direct = pymongo.MongoClient(
    f"mongodb://{secondary}/?directConnection=true&serverSelectionTimeoutMS=20000",
    event_listeners=[events],
)
hello = direct.admin.command("hello")
check(hello.get("secondary") is True, f"directConnection=true to the secondary {secondary}")
tv = hello["topologyVersion"]
# PyMongo publishes SDAM events from a background thread: wait for the discovery's own.
events.saw_secondary.wait(timeout=10)
check(("changed", "RSSecondary") in events.log, f"the driver saw a secondary: {events.log}")
mark = len(events.log)
details = None
try:
    direct.admin.command("createUser", "u", pwd="p", roles=[])
    fail("a write on a secondary succeeded")
except NotPrimaryError as e:
    details = e.details or {}
started = time.monotonic()
direct.admin.command("ping")
stall = time.monotonic() - started
after = events.log[mark:]
print(f"the next operation took {stall * 1000:.0f} ms; SDAM events meanwhile: {after}")
check(details.get("code") == 10107, f"the write gets NotWritablePrimary: {details}")
check(
    details.get("topologyVersion") == tv,
    f"the error carries the member's topologyVersion {details.get('topologyVersion')}",
)
# Without the topologyVersion, PyMongo marks the member Unknown and the next operation
# waits for the monitor's next (streamed) check: about 10 s.
check(
    ("changed", "Unknown") not in after,
    "the secondary was not marked Unknown (the error's topologyVersion was not newer)",
)
check(
    not any(kind == "changed" for kind, _ in after),
    "the next operation found the member as it was: no rediscovery was waited for",
)
direct.close()
print("topology_pymongo: all checks passed")
