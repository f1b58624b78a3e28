"""PyMongo over TLS against a ferrod with requireTLS and a CA file (issue 14): tls=True
with tlsCAFile, a client certificate, a CA that did not sign the server's certificate,
and a host name the certificate does not name (refused unless tlsAllowInvalidHostnames).

Usage: python3 tls_ca_pymongo.py PORT CA_FILE CLIENT_PEM OTHER_CA_FILE
"""

import sys

from harness import missing_pymongo, reporter

try:
    import pymongo
    from pymongo.errors import ServerSelectionTimeoutError
except ImportError as e:
    missing_pymongo("tls_ca_pymongo", e)

fail, check = reporter("tls_ca_pymongo")


def client(host, port, **tls):
    return pymongo.MongoClient(host, port, directConnection=True, tls=True,
                               serverSelectionTimeoutMS=3000, **tls)


def refused(c, what, needle):
    try:
        c.admin.command("ping")
        fail(f"{what}: ping succeeded")
    except ServerSelectionTimeoutError as e:
        check(needle in str(e), f"{what}: {e}")


def main():
    port, ca, client_pem, other_ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    c = client("127.0.0.1", port, tlsCAFile=ca)
    check(c.admin.command("ping")["ok"] == 1.0, "ping over TLS with tlsCAFile")
    c = client("127.0.0.1", port, tlsCAFile=ca, tlsCertificateKeyFile=client_pem)
    check(c.admin.command("ping")["ok"] == 1.0, "ping with a client certificate")
    refused(client("127.0.0.1", port, tlsCAFile=other_ca), "another CA",
            "CERTIFICATE_VERIFY_FAILED")
    # The server also listens on 127.0.0.2, which its certificate does not name.
    refused(client("127.0.0.2", port, tlsCAFile=ca), "a host name the certificate lacks",
            "127.0.0.2")
    c = client("127.0.0.2", port, tlsCAFile=ca, tlsAllowInvalidHostnames=True)
    check(c.admin.command("ping")["ok"] == 1.0, "tlsAllowInvalidHostnames lets it pass")
    print("tls_ca_pymongo: all checks passed")


main()
