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
# $work/c (the copy is not timed); prints "median_wall_s max_rss_kb".
measure() {
  local walls=() rss=0
  for _ in $(seq "$RUNS"); do
    rm -rf "$work/c"; cp -r "$CORPUS" "$work/c"; chmod -R u+w "$work/c"
    /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$@" >/dev/null 2>"$OUT/stderr.txt" || true
    read -r w m < <(tail -1 "$OUT/time.txt")
    walls+=("$w"); [ "$m" -gt "$rss" ] && rss=$m
  done
  printf '%s\n' "${walls[@]}" | sort -n | awk -v r="$rss" '{a[NR]=$1} END {print a[int((NR+1)/2)], r}'
}

read -r wl rl < <(measure "$OUT/hyhome" lint --keep-going -o /dev/null "$work/c")
read -r wd rd < <(measure "$OUT/hyhome" fix --diff "${FLAGS[@]}" "$work/c")
read -r wf rf < <(measure "$OUT/hyhome" fix "${FLAGS[@]}" "$work/c")

# What one fix does on the corpus (from the last run's copy, fixed again
# from scratch for the figures).
rm -rf "$work/c"; cp -r "$CORPUS" "$work/c"; chmod -R u+w "$work/c"
summary=$("$OUT/hyhome" fix "${FLAGS[@]}" "$work/c" 2>/dev/null | tail -1 || true)

echo "real corpus, $RUNS runs each, median wall (fresh copy per run)"
echo "  $summary"
printf '%-28s %8.3f s %7.1f MiB\n' "hyhome lint" "$wl" "$(awk -v r="$rl" 'BEGIN{print r/1024}')"
printf '%-28s %8.3f s %7.1f MiB   %.2fx lint\n' "hyhome fix --diff" "$wd" "$(awk -v r="$rd" 'BEGIN{print r/1024}')" "$(awk -v a="$wd" -v b="$wl" 'BEGIN{print a/b}')"
printf '%-28s %8.3f s %7.1f MiB   %.2fx lint\n' "hyhome fix (write + reload)" "$wf" "$(awk -v r="$rf" 'BEGIN{print r/1024}')" "$(awk -v a="$wf" -v b="$wl" 'BEGIN{print a/b}')"
check() { if awk "BEGIN{exit !($2)}"; then echo "PASS  $1"; else echo "MISS  $1"; fi; }
check "fix on the whole corpus under 1 s wall (${wf} s)" "$wf < 1.0"
