"""PyMongo with a strict Stable API client against ferrod (issue 11, item 8): commands of
API Version 1 run, the others fail with APIStrictError (323), as against mongod.

Usage: python3 stable_api_pymongo.py PORT
"""

import sys

from harness import missing_pymongo, reporter

try:
    import pymongo
    from pymongo.errors import OperationFailure
    from pymongo.server_api import ServerApi
except ImportError as e:
    missing_pymongo("stable_api_pymongo", e)

fail, check = reporter("stable_api_pymongo")


def main():
    port = int(sys.argv[1])
    client = pymongo.MongoClient("127.0.0.1", port, directConnection=True,
                                 serverSelectionTimeoutMS=10000,
                                 server_api=ServerApi("1", strict=True))
    check(client.admin.command("ping")["ok"] == 1, "ping runs under apiStrict")
    check(isinstance(client.list_database_names(), list), "listDatabases runs under apiStrict")
    for name in ["connPoolStats", "replSetGetStatus", "serverStatus"]:
        try:
            client.admin.command(name)
            fail(f"{name} ran under apiStrict")
        except OperationFailure as e:
            check(e.code == 323 and e.details.get("codeName") == "APIStrictError",
                  f"{name} fails with APIStrictError ({e.details.get('errmsg')})")
    lax = pymongo.MongoClient("127.0.0.1", port, directConnection=True,
                              serverSelectionTimeoutMS=10000, server_api=ServerApi("1"))
    check(lax.admin.command("connPoolStats")["ok"] == 1,
          "without strict, connPoolStats runs under API Version 1")
    print("stable_api_pymongo: all checks passed")


main()
