#!/usr/bin/env bash
# Benchmark `hyhome audit` against the real engine: start N containers of the
# project's FROM-scratch test program (setup, not measured), audit them in
# process at several inspect concurrencies (wall time, engine round trips)
# and time the hyhome binary end to end. Targets (issue 3): under 1.5 s wall
# for the audit, at most 2 round trips per container + 1 per distinct image.
#
#   bash bench/audit.sh            # 200 containers
#   N=50 REPS=3 bash bench/audit.sh
#
# Everything created is labelled hy-home.bench.audit=<run> and removed at the
# end, also on failure or Ctrl-C (the program cleans up; the trap below is
# the safety net for a killed program).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200}
REPS=${REPS:-7}
CONCURRENCY=${CONCURRENCY:-4,8,16,32}

tmp=$(mktemp -d)
cleanup() {
  local left
  left=$(docker ps -aq --filter label=hy-home.bench.audit 2>/dev/null || true)
  if [ -n "$left" ]; then
    echo "removing $(echo "$left" | wc -l) leftover bench containers" >&2
    echo "$left" | xargs -r -n 50 docker rm -f >/dev/null 2>&1 || true
  fi
  docker images -q --filter reference='hyhome-bench/testprog' 2>/dev/null | xargs -r docker rmi -f >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); $(go version | cut -d' ' -f3)"
docker version --format 'engine: Docker {{.Server.Version}} (API {{.Server.APIVersion}})'
docker info --format 'storage driver: {{.Driver}}, cgroup v{{.CgroupVersion}}'

CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$tmp/hyhome" ./cmd/hyhome
go build -o "$tmp/auditbench" ./bench/auditbench
"$tmp/auditbench" -n "$N" -reps "$REPS" -concurrency "$CONCURRENCY" -hyhome "$tmp/hyhome"
