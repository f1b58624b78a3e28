#!/usr/bin/env bash
# Benchmark (not a test) of the docker-compose cluster: image size, time from
# `compose up` to a ready primary, and failover time until PyMongo sees a new primary
# after `docker stop` and after `docker kill` of the primary. Prints its command and the
# figures; docs/performance.md quotes them.
#
#   bash tests/docker/bench.sh [REPS]      (default 3; also FERROD_BENCH_REPS)
#
# Needs what tests/docker_cluster.rs needs: a running Docker engine, Compose, and the
# PyMongo of tests/interop/install.sh. The cluster runs under its own project name with
# random loopback ports, and is removed at the end (also on failure).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

reps=${1:-${FERROD_BENCH_REPS:-3}}
project=ferrodbench$$
image=ferrod-bench:$$
echo "# bash tests/docker/bench.sh $reps    ($(date -u +%FT%TZ), load average: $(cut -d' ' -f1-3 /proc/loadavg))"

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    compose=(docker-compose)
fi
compose+=(-p "$project" -f docker-compose.yml)

bash tests/interop/install.sh >/dev/null
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --profile image \
    --target x86_64-unknown-linux-gnu --bin ferrod --target-dir target/static
chmod 400 docker/keyfile
docker build --quiet --target prebuilt -t "$image" . >/dev/null 2>&1
size=$(docker image inspect -f '{{.Size}}' "$image")
echo "image size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB)"

export FERROD_IMAGE=$image FERROD1_PUBLISH=127.0.0.1: FERROD2_PUBLISH=127.0.0.1: FERROD3_PUBLISH=127.0.0.1:
cleanup() {
    "${compose[@]}" down -v --remove-orphans -t 2 >/dev/null 2>&1 || true
    docker rmi -f "$image" >/dev/null 2>&1 || true
}
trap cleanup EXIT

FERROD_COMPOSE=$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${compose[@]}") \
    FERROD_BENCH_REPS=$reps python3 tests/docker/cluster.py bench
