#!/usr/bin/env bash
# Direct engine socket vs hyhome guard, in one run: latency, throughput,
# event delay and idle RSS. Needs a Docker Engine; builds what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./bench/guardbench "$@"
