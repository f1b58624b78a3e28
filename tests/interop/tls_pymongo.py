"""PyMongo with tls=True against a ferrod without TLS (issue 11, item 9): the server ends
the connection at its ClientHello, so the driver reports a failed TLS handshake instead
of waiting for its timeout (the caller asserts the server's log line).

Usage: python3 tls_pymongo.py PORT
"""

import sys

from harness import missing_pymongo, reporter

try:
    import pymongo
    from pymongo.errors import ServerSelectionTimeoutError
except ImportError as e:
    missing_pymongo("tls_pymongo", e)

fail, check = reporter("tls_pymongo")


def main():
    port = int(sys.argv[1])
    # connectTimeoutMS is far longer than server selection: a server that waits would
    # leave the handshake pending, and the error would be a timeout.
    client = pymongo.MongoClient("127.0.0.1", port, directConnection=True, tls=True,
                                 tlsAllowInvalidCertificates=True,
                                 serverSelectionTimeoutMS=3000, connectTimeoutMS=60000)
    try:
        client.admin.command("ping")
        fail("ping over TLS succeeded against a server without TLS")
    except ServerSelectionTimeoutError as e:
        message = str(e)
        check("timed out" not in message and "SSL handshake failed" in message,
              f"the handshake failed because the server closed the connection: {message}")
    print("tls_pymongo: all checks passed")


main()
