#!/usr/bin/env bash
# Fix benchmark (issue 13). Measures whole processes, start to exit, on a
# fresh copy of the real corpus (../shared/corpus/real) for every run:
#   lint            hyhome lint (the baseline, same run)
#   fix --diff      plan every edit, verify it node by node, print the diff
#   fix             the same, then write atomically and load every project
#                   again (the rollback check)
# and prints the median wall time of RUNS runs and fix's ratio to lint's.
# Target: fixing the whole corpus under 1 s.
#
#   bash bench/fix.sh             # RUNS=5 by default
#
# Run it on a quiet machine: other load on the 2 cores shows up directly.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS=${RUNS:-5}
CORPUS=${CORPUS:-../shared/corpus/real}
OUT=bench/out
mkdir -p "$OUT"
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (apt-get install time)" >&2; exit 2; }
[ -d "$CORPUS" ] || { echo "no corpus at $CORPUS" >&2; exit 2; }

echo "building..." >&2
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$OUT/hyhome" ./cmd/hyhome
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
FLAGS=(--keep-going --tier app --memory 256m)

# measure CMD...: RUNS runs, each on a fresh copy of the corpus at
# $work/c (the copy is not timed); prints "median_wall_s median_cpu_s
# max_rss_kb" (CPU is user + system: on a loaded machine it moves less than
# wall time).
freshcopy() { rm -rf "$work/c"; cp -r "$CORPUS" "$work/c"; chmod -R u+w "$work/c"; }
measure() { measure_runs "$RUNS" "$OUT" freshcopy "$@"; }

read -r wl cl rl < <(measure "$OUT/hyhome" lint --keep-going -o /dev/null "$work/c")
read -r wd cd rd < <(measure "$OUT/hyhome" fix --diff "${FLAGS[@]}" "$work/c")
read -r wf cf rf < <(measure "$OUT/hyhome" fix "${FLAGS[@]}" "$work/c")

# What one fix does on the corpus (from the last run's copy, fixed again
# from scratch for the figures).
rm -rf "$work/c"; cp -r "$CORPUS" "$work/c"; chmod -R u+w "$work/c"
summary=$("$OUT/hyhome" fix "${FLAGS[@]}" "$work/c" 2>/dev/null | tail -1 || true)

echo "real corpus, $RUNS runs each, medians (fresh copy per run); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  $summary"
row() { # name wall cpu rss lint_wall lint_cpu
  awk -v n="$1" -v w="$2" -v c="$3" -v r="$4" -v lw="$5" -v lc="$6" 'BEGIN {
    printf "%-28s %7.3f s wall %7.3f s cpu %7.1f MiB", n, w, c, r/1024
    if (lw > 0) printf "   %.2fx lint wall, %.2fx lint cpu", w/lw, c/lc
    printf "\n" }'
}
row "hyhome lint" "$wl" "$cl" "$rl" 0 0
row "hyhome fix --diff" "$wd" "$cd" "$rd" "$wl" "$cl"
row "hyhome fix (write + reload)" "$wf" "$cf" "$rf" "$wl" "$cl"
check() { if awk "BEGIN{exit !($2)}"; then echo "PASS  $1"; else echo "MISS  $1"; fi; }
check "fix on the whole corpus under 1 s wall (${wf} s)" "$wf < 1.0"
check "fix on the whole corpus under 1 s of CPU (${cf} s)" "$cf < 1.0"
