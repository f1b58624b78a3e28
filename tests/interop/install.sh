#!/usr/bin/env bash
# Installs the pinned interop clients into tests/interop/.deps (git-ignored):
#   .deps/node    mongosh, the Node.js driver and its snappy and zstd packages
#   .deps/python  PyMongo with python-snappy and zstandard
#   .deps/spec    the drivers' unified-format specification tests (CRUD)
# A stamp file keyed on the pinned versions makes a second run do nothing.
set -euo pipefail

MONGOSH_VERSION=2.6.0         # its driver is 6.x, so it shares the Node packages below
NODE_DRIVER_VERSION=6.22.0
NODE_SNAPPY_VERSION=7.3.3
# 1.x ships prebuilt binaries as npm packages; 2.x and later fetch them from
# elsewhere at install time, which a machine limited to the registries cannot.
NODE_ZSTD_VERSION=1.2.2
PYMONGO_VERSION=4.15.5
PYTHON_SNAPPY_VERSION=0.7.3
ZSTANDARD_VERSION=0.25.0

MIN_NODE_MAJOR=18

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
deps="$here/.deps"
stamp="$deps/.installed"
key="mongosh@$MONGOSH_VERSION mongodb@$NODE_DRIVER_VERSION snappy@$NODE_SNAPPY_VERSION @mongodb-js/zstd@$NODE_ZSTD_VERSION pymongo==$PYMONGO_VERSION python-snappy==$PYTHON_SNAPPY_VERSION zstandard==$ZSTANDARD_VERSION"

fail() {
    echo "tests/interop/install.sh: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || fail "'$1' was not found on PATH: install $2"
}

mkdir -p "$deps"
# Parallel callers wait for one another instead of installing over each other.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$deps/.lock"
    flock 9
fi

# The drivers' specification tests in the unified format, as PyMongo's source distribution
# ships them (test/<spec>/unified/*.json), for tests/interop/unified_runner.py.
spec_key="pymongo-$PYMONGO_VERSION sdist: crud"
spec_stamp="$deps/spec/.installed"
if [[ ! -f $spec_stamp || "$(cat "$spec_stamp")" != "$spec_key" ]]; then
    need python3 "Python 3.9 or later"
    echo "installing the specification tests into $deps/spec: $spec_key"
    rm -rf "$deps/spec"
    mkdir -p "$deps/spec/download"
    python3 -m pip download --quiet --no-input --disable-pip-version-check --no-deps --no-binary :all: \
        -d "$deps/spec/download" "pymongo==$PYMONGO_VERSION" ||
        fail "pip download of PyMongo's source distribution failed (see above)"
    tar -xzf "$deps/spec/download/pymongo-$PYMONGO_VERSION.tar.gz" -C "$deps/spec" --strip-components=2 \
        "pymongo-$PYMONGO_VERSION/test/crud/unified" ||
        fail "the source distribution of PyMongo $PYMONGO_VERSION has no test/crud/unified"
    rm -rf "$deps/spec/download"
    echo "$spec_key" >"$spec_stamp"
fi

if [[ -f $stamp && "$(cat "$stamp")" == "$key" ]]; then
    echo "interop clients already installed: $key"
    exit 0
fi

need node "Node.js $MIN_NODE_MAJOR or later (it comes with npm)"
need npm "npm (it comes with Node.js)"
need python3 "Python 3.9 or later"
python3 -m pip --version >/dev/null 2>&1 ||
    fail "pip for python3 is missing: install it (python3 -m ensurepip, or the python3-pip package)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= MIN_NODE_MAJOR)) ||
    fail "Node.js $(node --version) is too old: install Node.js $MIN_NODE_MAJOR or later"

echo "installing interop clients into $deps: $key"
rm -rf "$deps/node" "$deps/python" "$stamp"

mkdir -p "$deps/node"
npm install --prefix "$deps/node" --no-audit --no-fund --save-exact --loglevel=error \
    "mongosh@$MONGOSH_VERSION" \
    "mongodb@$NODE_DRIVER_VERSION" \
    "snappy@$NODE_SNAPPY_VERSION" \
    "@mongodb-js/zstd@$NODE_ZSTD_VERSION" ||
    fail "npm install failed (see above)"

python3 -m pip install --quiet --no-input --disable-pip-version-check --root-user-action=ignore --target "$deps/python" \
    "pymongo==$PYMONGO_VERSION" \
    "python-snappy==$PYTHON_SNAPPY_VERSION" \
    "zstandard==$ZSTANDARD_VERSION" ||
    fail "pip install failed (see above)"

# Prove the compression libraries load, so a broken native package fails here, by name.
(cd "$deps/node" && node -e '
    for (const m of ["mongodb", "snappy", "@mongodb-js/zstd"]) require(m);
') || fail "a Node package does not load (see above)"
PYTHONPATH="$deps/python" python3 -c 'import pymongo, snappy, zstandard' ||
    fail "a Python package does not load (see above)"
"$deps/node/node_modules/.bin/mongosh" --version >/dev/null ||
    fail "mongosh does not run (see above)"

echo "$key" >"$stamp"
echo "interop clients installed: $key"
