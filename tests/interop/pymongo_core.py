"""PyMongo against a running ferrod: core commands, the unknown-command error, and
each compressor, proven by the server's serverStatus.network.compression counters.

Usage: python3 pymongo_core.py PORT   (or FERROD_PORT=PORT python3 pymongo_core.py)
Exits non-zero with a message on the first failed check.
"""

import os
import sys

from harness import missing_pymongo, reporter

try:
    import pymongo
    from pymongo.errors import OperationFailure
    from pymongo import compression_support
except ImportError as e:
    missing_pymongo("pymongo_core", e)

COMPRESSORS = ["zlib", "snappy", "zstd"]

fail, check = reporter("pymongo_core")


def port_from_args():
    port = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FERROD_PORT")
    if not port:
        fail("no port: pass it as the first argument or in FERROD_PORT")
    return int(port)


def connect(port, compressor=None):
    options = {"directConnection": True, "serverSelectionTimeoutMS": 10000}
    if compressor:
        options["compressors"] = compressor
    return pymongo.MongoClient("127.0.0.1", port, **options)


def compression_counters(admin, name):
    status = admin.command("serverStatus")
    section = status.get("network", {}).get("compression")
    if section is None or name not in section:
        fail(f"serverStatus.network.compression has no '{name}': {section}")
    entry = section[name]
    return {
        "compressor": (entry["compressor"]["bytesIn"], entry["compressor"]["bytesOut"]),
        "decompressor": (entry["decompressor"]["bytesIn"], entry["decompressor"]["bytesOut"]),
    }


def check_core(admin):
    check(admin.command("ping")["ok"] == 1.0, "ping answers ok: 1.0")

    build = admin.command("buildInfo")
    check(build.get("version", "").startswith("7.0"), f"buildInfo version is 7.0.x ({build.get('version')})")

    hello = admin.command("hello")
    check(hello.get("isWritablePrimary") is True, "hello says isWritablePrimary: true")
    check(hello.get("maxWireVersion", 0) >= 8, f"hello maxWireVersion {hello.get('maxWireVersion')} >= 8")

    status = admin.command("serverStatus")
    check(status["connections"]["current"] >= 1, "serverStatus counts this connection")
    check(status["network"]["numRequests"] >= 3, "serverStatus counts requests")

    try:
        admin.command("noSuchCommandHere")
    except OperationFailure as e:
        check(e.code == 59, f"unknown command fails with code 59 (got {e.code})")
        name = (e.details or {}).get("codeName")
        check(name == "CommandNotFound", f"unknown command has codeName CommandNotFound (got {name})")
    else:
        fail("an unknown command succeeded")


def supported(name):
    have = {
        "zlib": compression_support._have_zlib,
        "snappy": compression_support._have_snappy,
        "zstd": compression_support._have_zstd,
    }[name]
    return have()


def check_compressor(port, plain_admin, name):
    if not supported(name):
        fail(f"PyMongo cannot use {name}: run tests/interop/install.sh (it installs its package)")
    before = {c: compression_counters(plain_admin, c) for c in COMPRESSORS}
    client = connect(port, name)
    try:
        admin = client.admin
        check(admin.command("ping")["ok"] == 1.0, f"{name}: ping over a compressed connection")
        check("version" in admin.command("buildInfo"), f"{name}: buildInfo over a compressed connection")
        check("network" in admin.command("serverStatus"), f"{name}: serverStatus over a compressed connection")
    finally:
        client.close()
    after = {c: compression_counters(plain_admin, c) for c in COMPRESSORS}

    requests_in = after[name]["decompressor"][0] - before[name]["decompressor"][0]
    replies_out = after[name]["compressor"][1] - before[name]["compressor"][1]
    check(requests_in > 0, f"{name}: server decompressed {requests_in} request bytes")
    check(replies_out > 0, f"{name}: server compressed replies into {replies_out} bytes")


def main():
    port = port_from_args()
    print(f"PyMongo {pymongo.version} against ferrod on port {port}")
    client = connect(port)
    try:
        admin = client.admin
        check_core(admin)
        for name in COMPRESSORS:
            check_compressor(port, admin, name)
    finally:
        client.close()
    print("pymongo_core: all checks passed")


if __name__ == "__main__":
    main()
