"""What the PyMongo interop scripts share: the pinned packages from the install folder
(not beside the scripts), and one way to report each check. Import it before PyMongo."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".deps", "python"))


def reporter(script):
    """`fail` and `check` that name the script in their messages."""

    def fail(message):
        sys.exit(f"{script}: FAILED: {message}")

    def check(condition, message):
        if not condition:
            fail(message)
        print(f"ok: {message}")

    return fail, check


def missing_pymongo(script, error):
    sys.exit(f"{script}: cannot import PyMongo ({error}): run tests/interop/install.sh")
