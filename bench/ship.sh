#!/usr/bin/env bash
# Ship benchmark (issue 5): `hyhome ship` against the in-repo Loki test
# server on loopback and the real Docker engine. Prints event-to-acceptance
# latency (p50/p99) for single events, sustained lines/s from one container
# and from 50, the agent's catch-up rate, and RSS idle and under load, each
# next to a baseline measured in the same run (see bench/shipbench).
#
#   bash bench/ship.sh                 # defaults
#   RATE=40000 LINES=200000 CONTAINERS=50 bash bench/ship.sh
#
# Run it on a quiet machine: the engine, the containers, the agent and the
# test server share the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out
mkdir -p "$OUT"
echo "building..." >&2
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$OUT/hyhome" ./cmd/hyhome
go build -o "$OUT/shipbench" ./bench/shipbench
exec "$OUT/shipbench" -hyhome "$OUT/hyhome" -out "$OUT" \
  -events "${EVENTS:-60}" -lines "${LINES:-150000}" -rate "${RATE:-25000}" \
  -catch-up-lines "${CATCH_UP_LINES:-120000}" -unthrottled-lines "${UNTHROTTLED_LINES:-100000}" \
  -containers "${CONTAINERS:-50}" -per-container-lines "${PER_CONTAINER_LINES:-3000}" \
  -per-container-rate "${PER_CONTAINER_RATE:-500}" \
  -idle "${IDLE:-10s}"
