#!/usr/bin/env bash
# Lint at scale (issue 16): time linear and memory flat in the number of
# files. Scales the real corpus (../shared/corpus/real, 263 files) to
# SCALES compose files with bench/gencorpus -copy (whole copies, then
# single-file projects to make up the count), under a temporary directory
# that is removed afterwards, and measures whole processes, start to exit:
#
#   hyhome lint --keep-going --format FORMAT DIR > report
#
# printing per scale the wall time (median of RUNS), CPU time (user +
# system, median), peak RSS (max), the per-file cost and its ratio to the
# cost at RATIO_BASE files, which should stay within 1.2 (time linear).
# Peak RSS should stay within lint's soft memory limit (192 MiB,
# internal/cli tuneGC) at every scale.
#
# The same run measures a baseline binary built from BASE (a git ref;
# default main, empty to skip) at BASE_SCALES, and both binaries'
# start-up on one small file and their time on the real corpus, so that
# before and after are compared under the same load.
#
#   bash bench/lint-scale.sh
#   SCALES="263 2630" RUNS=5 bash bench/lint-scale.sh
#   BASE=8fe3005 BASE_SCALES="263 2630 13150 50000" bash bench/lint-scale.sh
#
# Run it on a quiet machine: other load on the 2 cores shows up directly
# in wall time (CPU time moves less). Needs ~1.2 GB of disk at 50,000.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
SCALES=${SCALES:-263 2630 13150 50000}
RATIO_BASE=${RATIO_BASE:-2630}
RUNS=${RUNS:-3}
FORMAT=${FORMAT:-json}
BASE=${BASE-main}
BASE_SCALES=${BASE_SCALES:-263 2630}
if [ -z "${CORPUS:-}" ]; then # beside the repository or a parent (a worktree sits deeper)
  CORPUS=../shared/corpus/real
  for d in ../shared ../../shared ../../../shared; do
    [ -d "$d/corpus/real" ] && { CORPUS=$d/corpus/real; break; }
  done
fi
CORPUS=$(cd "$CORPUS" 2>/dev/null && pwd || echo "$CORPUS")
LIMIT_MIB=192
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (apt-get install time)" >&2; exit 2; }
[ -d "$CORPUS" ] || { echo "no corpus at $CORPUS" >&2; exit 2; }

work=$(mktemp -d /tmp/hyhome-lint-scale.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "building..." >&2
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/hyhome" ./cmd/hyhome
go build -o "$work/gencorpus" ./bench/gencorpus
if [ -n "$BASE" ]; then
  mkdir -p "$work/base-src"
  git archive "$BASE" | tar -x -C "$work/base-src"
  (cd "$work/base-src" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/hyhome-base" ./cmd/hyhome)
fi

echo "load before: $(uptime)"
echo "format $FORMAT, $RUNS runs per scale (median wall and CPU, max RSS); base $BASE"
echo

# measure BIN DIR: prints "median_wall_s median_cpu_s max_rss_kb".
measure() {
  measure_runs "$RUNS" "$work" : "$1" lint --keep-going --host-memory 8GiB --format "$FORMAT" "$2"
}

# checkfiles N: the JSON report just written counts N files.
checkfiles() {
  [ "$FORMAT" = json ] || return 0
  local got
  got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["files"])' "$work/stdout")
  [ "$got" = "$1" ] || echo "warning: the report counts $got files, gencorpus made $1" >&2
}

declare -A W C R F BW BC BR
for n in $SCALES; do
  dir="$work/corpus-$n"
  made=$("$work/gencorpus" -copy "$CORPUS" -files "$n" -out "$dir")
  echo "$made" >&2
  F[$n]=$(echo "$made" | sed -n 's/.*= \([0-9]*\) files$/\1/p')
  read -r W[$n] C[$n] R[$n] < <(measure "$work/hyhome" "$dir")
  checkfiles "${F[$n]}"
  if [ -n "$BASE" ] && [[ " $BASE_SCALES " == *" $n "* ]]; then
    read -r BW[$n] BC[$n] BR[$n] < <(measure "$work/hyhome-base" "$dir")
  fi
  # Only the reference scale is kept: the others are large.
  [ "$n" = "$RATIO_BASE" ] || rm -rf "$dir"
  echo "  $n files measured ($(uptime | sed 's/.*load/load/'))" >&2
done
rm -rf "$work/corpus-"*

row() { # label n wall cpu rss
  local label=$1 n=$2 w=$3 c=$4 r=$5
  awk -v l="$label" -v f="${F[$n]}" -v w="$w" -v c="$c" -v r="$r" -v bw="${W[$RATIO_BASE]:-0}" -v bc="${C[$RATIO_BASE]:-0}" -v bf="${F[$RATIO_BASE]:-0}" 'BEGIN {
    pw = w / f * 1e6; pc = c / f * 1e6
    rw = (bw > 0 ? pw / (bw / bf * 1e6) : 0); rc = (bc > 0 ? pc / (bc / bf * 1e6) : 0)
    printf "%-9s %7d %9.2f %9.2f %9.1f %10.0f %10.0f %8.2f %8.2f\n", l, f, w, c, r / 1024, pw, pc, rw, rc }'
}
printf "%-9s %7s %9s %9s %9s %10s %10s %8s %8s\n" "binary" "files" "wall s" "cpu s" "RSS MiB" "wall µs/f" "cpu µs/f" "wall/ref" "cpu/ref"
for n in $SCALES; do row "hyhome" "$n" "${W[$n]}" "${C[$n]}" "${R[$n]}"; done
if [ -n "$BASE" ]; then
  for n in $SCALES; do
    [ -n "${BW[$n]:-}" ] && row "base" "$n" "${BW[$n]}" "${BC[$n]}" "${BR[$n]}"
  done
fi
echo "(ref: the per-file cost of the same binary at $RATIO_BASE files; base ratios are to hyhome's)"
echo

# Start-up on one small file (examples/hardened) and the real corpus (text
# to a file), both binaries, SMALL_RUNS rounds, alternating which goes
# first so that a change in the machine's load falls on both alike.
# Start-up is a loop of 20 runs timed whole (GNU time's clock is 10 ms),
# reported per run.
SMALL_RUNS=${SMALL_RUNS:-11}
startup_once() { # BIN: "wall_ms cpu_ms" per run, of a loop of 20
  /usr/bin/time -f "%e %U %S" -o "$work/time.txt" bash -c 'for _ in $(seq 20); do "$1" lint examples/hardened >/dev/null 2>&1; done' _ "$1" || true
  tail -1 "$work/time.txt" | awk '{printf "%.2f %.2f\n", $1 * 50, ($2 + $3) * 50}'
}
small_once() { # BIN: "wall_s cpu_s" of one run on the real corpus
  /usr/bin/time -f "%e %U %S" -o "$work/time.txt" "$1" lint --keep-going --host-memory 8GiB -o "$work/report.txt" "$CORPUS" >/dev/null 2>&1 || true
  tail -1 "$work/time.txt" | awk '{print $1, $2+$3}'
}
bins=("$work/hyhome"); [ -n "$BASE" ] && bins+=("$work/hyhome-base")
: >"$work/small.txt"
for i in $(seq "$SMALL_RUNS"); do
  order=("${bins[@]}"); [ $((i % 2)) = 0 ] && [ ${#bins[@]} = 2 ] && order=("${bins[1]}" "${bins[0]}")
  for b in "${order[@]}"; do
    echo "$(basename "$b") start $(startup_once "$b")" >>"$work/small.txt"
    echo "$(basename "$b") small $(small_once "$b")" >>"$work/small.txt"
  done
done
pick() { awk -v b="$1" -v k="$2" -v c="$3" '$1==b && $2==k {print $c}' "$work/small.txt" | median; }
for b in "${bins[@]}"; do
  n=$(basename "$b")
  printf "%-12s start-up, one small file: %5.1f ms wall, %5.1f ms CPU; real corpus, text to a file: %.2f s wall, %.2f s CPU (medians of %d rounds)\n" \
    "${n/hyhome-base/base}" "$(pick "$n" start 3)" "$(pick "$n" start 4)" "$(pick "$n" small 3)" "$(pick "$n" small 4)" "$SMALL_RUNS"
done
if [ -n "$BASE" ]; then
  ST=$(awk -v a="$(pick hyhome start 3)" -v b="$(pick hyhome-base start 3)" 'BEGIN{printf "%.2f", a/b}')
  STC=$(awk -v a="$(pick hyhome start 4)" -v b="$(pick hyhome-base start 4)" 'BEGIN{printf "%.2f", a/b}')
  SW=$(awk -v a="$(pick hyhome small 3)" -v b="$(pick hyhome-base small 3)" 'BEGIN{printf "%.2f", a/b}')
  SC=$(awk -v a="$(pick hyhome small 4)" -v b="$(pick hyhome-base small 4)" 'BEGIN{printf "%.2f", a/b}')
  echo "hyhome / base: start-up ${ST}x wall, ${STC}x CPU; real corpus ${SW}x wall, ${SC}x CPU"
fi
echo
echo "load after: $(uptime)"
echo
check() { if awk "BEGIN{exit !($2)}"; then echo "PASS  $1"; else echo "MISS  $1"; fi; }
for n in $SCALES; do
  check "peak RSS at ${F[$n]} files within ${LIMIT_MIB} MiB ($(awk -v r="${R[$n]}" 'BEGIN{printf "%.1f", r/1024}') MiB)" "${R[$n]} <= $LIMIT_MIB * 1024"
done
last=${SCALES##* }
if [ -n "${W[$RATIO_BASE]:-}" ] && [ "$last" != "$RATIO_BASE" ]; then
  ratio() { awk -v a="$1" -v fa="${F[$last]}" -v b="$2" -v fb="${F[$RATIO_BASE]}" 'BEGIN{printf "%.2f", (a/fa)/(b/fb)}'; }
  check "per-file wall time at ${F[$last]} within 1.2x of ${F[$RATIO_BASE]} ($(ratio "${W[$last]}" "${W[$RATIO_BASE]}")x)" "$(ratio "${W[$last]}" "${W[$RATIO_BASE]}") <= 1.2"
  check "per-file CPU time at ${F[$last]} within 1.2x of ${F[$RATIO_BASE]} ($(ratio "${C[$last]}" "${C[$RATIO_BASE]}")x)" "$(ratio "${C[$last]}" "${C[$RATIO_BASE]}") <= 1.2"
fi
if [ -n "$BASE" ]; then # as fast as base or faster, within the noise of a shared machine (5%)
  check "start-up on one small file as base's or better (${ST}x wall, ${STC}x CPU)" "$ST <= 1.05 && $STC <= 1.05"
  check "real corpus as fast as base or faster (${SW}x wall, ${SC}x CPU)" "$SW <= 1.05 && $SC <= 1.05"
fi
