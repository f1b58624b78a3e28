"""PyMongo against the docker-compose cluster of docker-compose.yml, from the host.

    python3 cluster.py scenario     the checks of tests/docker_cluster.rs
    python3 cluster.py bench        the figures of docs/performance.md

Environment:
    FERROD_COMPOSE        JSON list: the compose command and its options, e.g.
                          ["docker", "compose", "-p", "ferrodtest", "-f", "docker-compose.yml"]
                          (scenario: the cluster is up and healthy; bench: this script
                          brings it up and down itself)
    FERROD_ROOT_USER      the root user of MONGO_INITDB_ROOT_USERNAME (default root)
    FERROD_ROOT_PASSWORD  its password (default example)
    FERROD_BENCH_REPS     bench: repetitions (default 3)

How the host reaches the members. The members know each other as ferrod1:27017,
ferrod2:27017 and ferrod3:27017 (compose service names, resolved by Docker's DNS inside
the network), and a replica-set client connects to the names the set reports. The host
cannot resolve those names, and all three listen on port 27017, so the published ports
(127.0.0.1:27017-27019) serve only one-member, directConnection=true clients. For
discovery this script maps each service name to its container's address on the compose
network (from `docker inspect`; on Linux the host routes to a bridge network's
containers), inside this process only: socket.getaddrinfo is wrapped, /etc/hosts is not
touched. The map is read again whenever a container may have a new address (after a
network reconnect or a restart). All traffic goes to this project's own containers.

Exits non-zero with a message on the first failed check; prints a line per check.
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from harness import missing_pymongo, reporter  # noqa: E402

try:
    import pymongo
    from pymongo.errors import OperationFailure, PyMongoError
except ImportError as e:
    missing_pymongo("docker/cluster.py", e)

fail, check = reporter("docker/cluster.py")

SET = "rs0"
SERVICES = ["ferrod1", "ferrod2", "ferrod3"]
PORT = 27017
REPL_POOL = "NetworkInterfaceTL-ReplNetwork"
COMPOSE = json.loads(os.environ.get("FERROD_COMPOSE", '["docker", "compose"]'))
USER = os.environ.get("FERROD_ROOT_USER", "root")
PASSWORD = os.environ.get("FERROD_ROOT_PASSWORD", "example")


def log(message):
    print(message, flush=True)


# ---- docker ---------------------------------------------------------------------------


def run(cmd, timeout=120, check_rc=True):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail(f"{' '.join(cmd)} did not finish within {timeout} s")
    if check_rc and out.returncode != 0:
        fail(f"{' '.join(cmd)} exited {out.returncode}: {out.stderr.strip()}")
    return out.stdout.strip()


def container(service):
    """The service's container, also when stopped (`ps` without -a omits those in v2)."""
    cid = run(COMPOSE + ["ps", "-a", "-q", service])
    if not cid:
        fail(f"no container for service {service}")
    return cid.splitlines()[0]


def inspect(service):
    return json.loads(run(["docker", "inspect", container(service)]))[0]


def network_name():
    """The compose project's network (the default one; each container is on it only)."""
    networks = list(inspect(SERVICES[0])["NetworkSettings"]["Networks"])
    if len(networks) != 1:
        fail(f"expected one network, found {networks}")
    return networks[0]


def health(service):
    state = inspect(service)["State"]
    return state.get("Health", {}).get("Status", state["Status"])


# ---- name resolution for the host ------------------------------------------------------

ADDRESSES = {}  # service name -> container IP on the compose network, or None
_real_getaddrinfo = socket.getaddrinfo


def refresh_addresses():
    net = network_name()
    for service in SERVICES:
        networks = inspect(service)["NetworkSettings"]["Networks"]
        ip = networks.get(net, {}).get("IPAddress") or None
        ADDRESSES[service] = ip


def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    if isinstance(host, bytes):
        host = host.decode()
    if host in ADDRESSES:
        ip = ADDRESSES[host]
        if ip is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address now")
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, int(port)))]
    return _real_getaddrinfo(host, port, family, type, proto, flags)


socket.getaddrinfo = _getaddrinfo


# ---- clients ---------------------------------------------------------------------------

TIMEOUTS = dict(serverSelectionTimeoutMS=3000, connectTimeoutMS=2000, socketTimeoutMS=10000)


def set_client(**extra):
    seeds = ",".join(f"{s}:{PORT}" for s in SERVICES)
    options = dict(TIMEOUTS, heartbeatFrequencyMS=500)
    options.update(extra)
    return pymongo.MongoClient(
        f"mongodb://{seeds}/?replicaSet={SET}", username=USER, password=PASSWORD,
        authSource="admin", **options)


def direct(service, user=USER, password=PASSWORD):
    creds = {} if user is None else dict(username=user, password=password, authSource="admin")
    return pymongo.MongoClient(f"mongodb://{service}:{PORT}/?directConnection=true",
                               **TIMEOUTS, **creds)


def eventually(seconds, what, probe, interval=0.1):
    """Calls probe until it returns something truthy; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    last = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except PyMongoError as e:
            last = e
        if time.monotonic() > deadline:
            fail(f"timed out after {seconds} s waiting for {what} (last error: {last})")
        time.sleep(interval)


def name(address):
    return "%s:%d" % address


def service_of(host):
    return host.split(":")[0]


def status_members(client):
    return {m["name"]: m for m in client.admin.command("replSetGetStatus")["members"]}


def heartbeats(client, host, n):
    """Waits for `n` more heartbeats from `client`'s member to `host` (its lastHeartbeat
    in replSetGetStatus moving): quiet windows counted in heartbeats, not on a clock."""
    for _ in range(n):
        seen = status_members(client)[host]["lastHeartbeat"]
        eventually(30, f"a heartbeat to {host}",
                   lambda: status_members(client)[host]["lastHeartbeat"] > seen)


def pool_counts(client, host):
    """(inUse + available + refreshing, created) of `host` in the replication pool of
    connPoolStats (the members' heartbeats and Raft traffic), None if it has no pool."""
    stats = client.admin.command("connPoolStats")
    h = stats.get("pools", {}).get(REPL_POOL, {}).get(host)
    if h is None:
        return None
    return h["inUse"] + h["available"] + h["refreshing"], h["created"]


def pooled(client, host):
    """The open connections of pool_counts, 0 if `host` has no pool."""
    return (pool_counts(client, host) or (0, 0))[0]


def wait_ready(client, seconds):
    """A primary and two secondaries as the driver sees them; returns the primary."""
    def ready():
        client.admin.command("ping")  # server selection for the primary
        if client.primary is None or len(client.secondaries) != 2:
            return None
        return name(client.primary)
    return eventually(seconds, "a primary and two secondaries", ready)


# ---- the scenario ----------------------------------------------------------------------


MEMBERS = [f"{s}:{PORT}" for s in SERVICES]


def scenario():
    """Runs the phases in order on one replica-set client."""
    refresh_addresses()
    log(f"compose network {network_name()}: {ADDRESSES}")
    client = set_client()
    for phase in PHASES:
        log(f"--- {phase.__name__}")
        phase(client)


def discovery(client):
    """Discovery through replicaSet=rs0; every member agrees on the set and its primary."""
    primary = wait_ready(client, 90)
    hello = client.admin.command("hello")
    check(hello["setName"] == SET, f"replicaSet={SET} finds the set from the host")
    check(sorted(hello["hosts"]) == MEMBERS, f"the set's hosts are the service names: {hello['hosts']}")
    check(hello["isWritablePrimary"] and hello["me"] == primary, f"{primary} is the writable primary")
    topology = client.topology_description.topology_type_name
    check(topology == "ReplicaSetWithPrimary", f"topology type {topology}")
    for service in SERVICES:
        h = direct(service).admin.command("hello")
        check(h["setName"] == SET and h["primary"] == primary,
              f"{service} reports set {h['setName']} with primary {h['primary']}")


def authentication(client):
    """The root user of MONGO_INITDB_ROOT_* logs in on every member; a user created on
    the primary does too (the catalog is replicated)."""
    for service in SERVICES:
        status = direct(service).admin.command("connectionStatus")
        users = status["authInfo"]["authenticatedUsers"]
        check({"user": USER, "db": "admin"} in users, f"{USER} logs in on {service}")
        try:
            direct(service, USER, PASSWORD + "-wrong").admin.command("ping")
            fail(f"a wrong password was accepted by {service}")
        except OperationFailure as e:
            check(e.code == 18, f"a wrong password gets code 18 on {service}")
        try:
            direct(service, None).admin.command("replSetGetStatus")
            fail(f"{service} ran replSetGetStatus without a login")
        except OperationFailure as e:
            check(e.code == 13, f"no login gets code 13 (Unauthorized) on {service}")
    client.admin.command("createUser", "ops", pwd="opspw", roles=["clusterMonitor", "hostManager"],
                         writeConcern={"w": "majority", "wtimeout": 10000})
    for service in SERVICES:
        eventually(20, f"the user created on the primary to log in on {service}",
                   lambda: direct(service, "ops", "opspw").admin.command("connectionStatus")
                   ["authInfo"]["authenticatedUsers"])
        check(True, f"a user created on the primary logs in on {service}")


def drop_connections_after_reconfig(client):
    """The walkthrough (docs/walkthrough.md): rs.reconfig removes a member, the primary's pool to it stays
    until dropConnections empties it; then the member is added back."""
    primary = wait_ready(client, 60)
    p = direct(service_of(primary))
    secondaries = sorted(m for m in MEMBERS if m != primary)
    keep, removed = secondaries
    eventually(30, f"the primary's pool to {removed}",
               lambda: pooled(p, removed) > 0)
    cfg = client.admin.command("replSetGetConfig")["config"]
    full_members = cfg["members"]
    cfg["members"] = [m for m in full_members if m["host"] != removed]
    cfg["version"] += 1
    client.admin.command("replSetReconfig", cfg)
    eventually(20, "the reconfig in replSetGetStatus",
               lambda: sorted(status_members(p)) == sorted([primary, keep]))
    check(True, f"rs.reconfig removed {removed}: members {sorted([primary, keep])}")
    heartbeats(p, keep, 2)
    open_now = pooled(p, removed)
    check(open_now > 0, f"the primary still pools {open_now} connection(s) to the removed {removed}")
    k = direct(service_of(keep))
    reply = p.admin.command("dropConnections", hostAndPort=[removed])
    check(reply["ok"] == 1, "dropConnections on the primary answers ok: 1")
    check(pooled(p, removed) == 0, f"the primary's pool to {removed} is empty")
    check(pooled(p, keep) > 0, f"the primary's pool to {keep} is untouched")
    k.admin.command("dropConnections", hostAndPort=[removed])
    check(pooled(k, removed) == 0, f"{keep}'s pool to {removed} is empty too")
    # Put it back, for what follows.
    cfg["members"] = full_members
    cfg["version"] += 1
    client.admin.command("replSetReconfig", cfg)
    eventually(60, f"{removed} to be a healthy secondary again",
               lambda: status_members(p).get(removed, {}).get("stateStr") == "SECONDARY"
               and status_members(p)[removed]["health"] == 1)
    check(True, f"{removed} re-added and SECONDARY again")
    wait_ready(client, 60)


def network_partition(client):
    """docker network disconnect of a secondary: the others report it down and its pooled
    connections fail and leave the pools; reconnected, it recovers."""
    primary = wait_ready(client, 60)
    net = network_name()
    cut = sorted(m for m in MEMBERS if m != primary)[0]
    cut_service = service_of(cut)
    others = [m for m in MEMBERS if m != cut]
    p = direct(service_of(primary))
    eventually(30, f"the primary's pool to {cut}", lambda: pooled(p, cut) > 0)
    _, created_before = pool_counts(p, cut) or (0, 0)
    run(["docker", "network", "disconnect", net, container(cut_service)])
    cut_at = time.monotonic()
    refresh_addresses()
    check(ADDRESSES[cut_service] is None, f"docker network disconnect cut {cut} off {net}")
    for other in others:
        o = direct(service_of(other))
        eventually(60, f"{other} to report {cut} down",
                   lambda: status_members(o)[cut]["health"] == 0)
        check(True, f"{other} reports {cut} down (health 0) "
              f"{time.monotonic() - cut_at:.1f} s after the cut")
    # The heartbeats to it fail on their pooled connections, which leave the pool.
    eventually(60, f"the primary's pooled connections to {cut} to fail and be dropped",
               lambda: pooled(p, cut) == 0)
    check(True, f"the primary's pooled connections to {cut} failed and were dropped "
          f"({time.monotonic() - cut_at:.1f} s after the cut)")
    check(p.admin.command("dropConnections", hostAndPort=[cut])["ok"] == 1,
          f"dropConnections for the unreachable {cut} answers ok: 1")
    eventually(30, f"the driver to see {cut} gone",
               lambda: cut not in {name(s) for s in client.secondaries})
    check(True, f"the driver no longer lists {cut} as a secondary")
    # Reconnect, under its service name (compose's alias) so the others resolve it again.
    run(["docker", "network", "connect", "--alias", cut_service, net, container(cut_service)])
    back_at = time.monotonic()
    refresh_addresses()
    check(ADDRESSES[cut_service] is not None, f"{cut} reconnected at {ADDRESSES[cut_service]}")
    for other in others:
        o = direct(service_of(other))
        eventually(60, f"{other} to report {cut} healthy again",
                   lambda: status_members(o)[cut]["health"] == 1
                   and status_members(o)[cut]["stateStr"] in ("PRIMARY", "SECONDARY"))
        check(True, f"{other} reports {cut} healthy again "
              f"{time.monotonic() - back_at:.1f} s after the reconnect")
    new_primary = wait_ready(client, 60)
    check(True, f"the driver sees a primary ({new_primary}) and two secondaries again")
    if new_primary == primary:
        eventually(30, f"fresh pooled connections from the primary to {cut}",
                   lambda: (pool_counts(p, cut) or (0, 0))[1] > created_before
                   and pooled(p, cut) > 0)
        check(True, f"the primary pools fresh connections to {cut} again")
    else:
        # Its elections while cut off raised the term: a new election after the reconnect.
        log(f"note: the primary moved from {primary} to {new_primary} after the reconnect")


def failover_on_docker_stop(client):
    """docker stop of the primary: the time until PyMongo sees another primary; started
    again, the old primary rejoins as a secondary."""
    primary = wait_ready(client, 60)
    took, stop_took, new_primary = failover(client, primary, "stop")
    log(f"FAILOVER docker stop {service_of(primary)}: new primary {new_primary} visible to "
        f"PyMongo after {took:.2f} s (docker stop itself returned after {stop_took:.2f} s)")
    check(new_primary != primary, f"after docker stop, {new_primary} took over from {primary}")
    run(["docker", "start", container(service_of(primary))])
    refresh_addresses()
    eventually(90, f"{primary} to rejoin as a secondary",
               lambda: status_members(direct(service_of(new_primary)))[primary]["stateStr"]
               == "SECONDARY")
    check(True, f"{primary}, started again, rejoined as a secondary")
    users = client.admin.command("usersInfo", {"user": USER, "db": "admin"})["users"]
    check(len(users) == 1, f"the new primary has the root user {USER}")


PHASES = [discovery, authentication, drop_connections_after_reconfig, network_partition,
          failover_on_docker_stop]


def failover(client, primary, how):
    """docker stop|kill of `primary`'s container; returns (seconds until the driver sees
    another primary, seconds docker stop/kill took, the new primary)."""
    cid = container(service_of(primary))
    started = time.monotonic()
    done = {}

    def stop():
        run(["docker", how, cid], timeout=60)
        done["at"] = time.monotonic()

    stopper = threading.Thread(target=stop)
    stopper.start()
    probe = set_client(serverSelectionTimeoutMS=500)

    def new_primary():
        probe.admin.command("ping")
        current = probe.primary and name(probe.primary)
        return current if current and current != primary else None

    found = eventually(60, f"a new primary after docker {how} {primary}", new_primary, 0.02)
    took = time.monotonic() - started
    stopper.join(90)
    probe.close()
    return took, done.get("at", float("nan")) - started, found


# ---- the benchmark ---------------------------------------------------------------------


def all_healthy():
    return all(health(s) == "healthy" for s in SERVICES)


def _instant(text):
    """Seconds since the epoch of an RFC 3339 time (Docker's nanoseconds cut to micro)."""
    import datetime
    text = text.strip().replace("Z", "+00:00")
    head, _, zone = text.partition("+")
    if "." in head:
        head, frac = head.split(".", 1)
        head = f"{head}.{frac[:6]}"
    return datetime.datetime.fromisoformat(f"{head}+{zone}").timestamp()


def server_ready_at(service):
    """When the member logged that it created the root user (None if it did not)."""
    out = run(["docker", "logs", container(service)])
    for line in out.splitlines():
        if "Created the first user from the environment" in line:
            return _instant(line.split()[0])
    return None


def bench():
    reps = int(os.environ.get("FERROD_BENCH_REPS", "3"))
    ups, stops, kills = [], [], []
    ready_logs, ready_up = [], []
    for rep in range(reps):
        run(COMPOSE + ["down", "-v", "--remove-orphans", "-t", "2"], timeout=180)
        started = time.monotonic()
        started_wall = time.time()
        run(COMPOSE + ["up", "-d", "--no-build"], timeout=180)
        eventually(120, "the containers to exist", lambda: all(
            run(COMPOSE + ["ps", "-q", s]) for s in SERVICES))
        refresh_addresses()
        client = set_client()

        def writable():
            client.admin.command("ping")
            return client.primary and name(client.primary)
        primary = eventually(120, "a ready primary", writable, 0.02)
        up = time.monotonic() - started
        ups.append(up)
        log(f"rep {rep + 1}: compose up -> ready primary {primary} (root login works): {up:.2f} s")
        # The same from the members' own logs, without the host's compose and discovery
        # overhead: the first container's start, and compose up, to the root user created.
        first_start = min(_instant(inspect(s)["State"]["StartedAt"]) for s in SERVICES)
        created = [t for t in (server_ready_at(s) for s in SERVICES) if t is not None]
        if created:
            ready_logs.append(min(created) - first_start)
            ready_up.append(min(created) - started_wall)
            log(f"rep {rep + 1}: containers started -> primary with the root user (member logs): "
                f"{ready_logs[-1]:.2f} s; compose up -> the same: {ready_up[-1]:.2f} s")
        election_ms = client.admin.command("replSetGetConfig")["config"].get(
            "settings", {}).get("electionTimeoutMillis")
        for how, into in (("stop", stops), ("kill", kills)):
            primary = wait_ready(client, 90)
            eventually(120, "all members healthy", all_healthy, 0.5)
            if how == "stop":
                # A stopped primary hands over at once once openraft's leader lease
                # (0.575 x electionTimeoutMillis) has passed since its election; a
                # cluster that has just come up is younger than that. Measure a
                # running one. The lease is a span of time, not an event: waited out.
                time.sleep(0.6 * (election_ms or 10000) / 1000)
            took, docker_took, new = failover(client, primary, how)
            into.append(took)
            log(f"rep {rep + 1}: docker {how} {primary} -> {new} visible to PyMongo: {took:.2f} s "
                f"(docker {how} returned after {docker_took:.2f} s; "
                f"electionTimeoutMillis {election_ms})")
            run(["docker", "start", container(service_of(primary))])
            refresh_addresses()
        client.close()
    run(COMPOSE + ["down", "-v", "--remove-orphans", "-t", "2"], timeout=180)

    def summary(label, values):
        log(f"{label}: median {statistics.median(values):.2f} s, "
            f"min {min(values):.2f} s, max {max(values):.2f} s ({len(values)} runs)")
    summary("compose up -> ready primary", ups)
    if ready_logs:
        summary("containers started -> root user created (member logs)", ready_logs)
        summary("compose up -> root user created (member logs)", ready_up)
    summary("docker stop primary -> new primary", stops)
    summary("docker kill primary -> new primary", kills)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("scenario", "bench"):
        fail("usage: cluster.py scenario|bench")
    try:
        scenario() if sys.argv[1] == "scenario" else bench()
    except PyMongoError as e:
        fail(f"unexpected driver error: {e!r}")
    log("docker/cluster.py: all checks passed")
