#!/usr/bin/env bash
# Lint benchmark (issue 2). Measures whole processes, start to exit, on the
# real corpus (../shared/corpus/real) and on a generated corpus of 10,000
# services, against compose-go's default pipeline measured in the same run:
# wall time (median of RUNS), files/s, services/s, peak RSS, and the start-up
# time of `hyhome lint` on one small file.
#
#   bash bench/lint.sh            # RUNS=5 by default
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

echo "building..." >&2
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$OUT/hyhome" ./cmd/hyhome
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$OUT/composego" ./bench/composego
if [ ! -d "$OUT/generated" ]; then
  go run ./bench/gencorpus -out "$OUT/generated" -files 100 -services 100
fi

# measure CMD...: RUNS runs; prints "median_wall_s max_rss_kb".
measure() {
  local w c r
  read -r w c r < <(measure_runs "$RUNS" "$OUT" : "$@")
  echo "$w $r"
}

# counts FILE-OR-DIR: files and services hyhome lints there.
counts() {
  "$OUT/hyhome" lint --keep-going --format json "$1" 2>/dev/null |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["files"], s["services"])'
}

row() { # name wall rss files services
  awk -v n="$1" -v w="$2" -v r="$3" -v f="$4" -v s="$5" 'BEGIN {
    printf "%-34s %8.3f s %9.0f files/s %9.0f services/s %7.1f MiB\n", n, w, f/w, s/w, r/1024 }'
}

read -r rf rs < <(counts "$CORPUS")
read -r gf gs < <(counts "$OUT/generated")
echo "real corpus: $rf files, $rs services; generated: $gf files, $gs services; $RUNS runs each, median wall"
echo

# hyhome runs with its default output (the text report) written to a file.
read -r w1 r1 < <(measure "$OUT/hyhome" lint --keep-going -o "$OUT/report.txt" "$CORPUS")
read -r b1 q1 < <(measure "$OUT/composego" "$CORPUS")
read -r v1 p1 < <(measure "$OUT/hyhome" lint --validate --keep-going -o "$OUT/report.txt" "$CORPUS")
read -r w2 r2 < <(measure "$OUT/hyhome" lint --keep-going --host-memory 64GiB -o "$OUT/report.txt" "$OUT/generated")
read -r j2 s2 < <(measure "$OUT/hyhome" lint --keep-going --host-memory 64GiB --format json -o "$OUT/report.json" "$OUT/generated")
read -r b2 q2 < <(measure "$OUT/composego" "$OUT/generated")
read -r v2 p2 < <(measure "$OUT/hyhome" lint --validate --keep-going --host-memory 64GiB -o "$OUT/report.txt" "$OUT/generated")

row "hyhome lint, real corpus" "$w1" "$r1" "$rf" "$rs"
row "hyhome lint --validate, real" "$v1" "$p1" "$rf" "$rs"
row "compose-go baseline, real" "$b1" "$q1" "$rf" "$rs"
row "hyhome lint, generated" "$w2" "$r2" "$gf" "$gs"
row "hyhome lint --format json, generated" "$j2" "$s2" "$gf" "$gs"
row "hyhome lint --validate, generated" "$v2" "$p2" "$gf" "$gs"
row "compose-go baseline, generated" "$b2" "$q2" "$gf" "$gs"
echo
awk -v a="$w1" -v b="$b1" -v c="$w2" -v d="$b2" 'BEGIN {
  printf "speed-up over compose-go (load only, no rules): real %.1fx, generated %.1fx\n", b/a, d/c }'

# Start-up: one small file, 20 runs.
starts=()
for _ in $(seq 20); do
  /usr/bin/time -f "%e" -o "$OUT/time.txt" "$OUT/hyhome" lint examples/hardened >/dev/null 2>&1 || true
  starts+=("$(tail -1 "$OUT/time.txt")")
done
start=$(printf '%s\n' "${starts[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "start-up, one small file: ${start} s (median of 20)"
echo
check() { if awk "BEGIN{exit !($2)}"; then echo "PASS  $1"; else echo "MISS  $1"; fi; }
check "real corpus under 0.5 s wall (${w1} s)" "$w1 < 0.5"
check "generated: 20,000 services/s or more ($(awk -v s="$gs" -v w="$w2" 'BEGIN{printf "%.0f", s/w}')/s)" "$gs / $w2 >= 20000"
check "peak RSS under 200 MiB ($(awk -v a="$r1" -v b="$r2" -v c="$s2" 'BEGIN{m=a>b?a:b; m=m>c?m:c; printf "%.1f", m/1024}') MiB)" "$r1 < 204800 && $r2 < 204800 && $s2 < 204800"
check "start-up under 30 ms (${start} s)" "$start < 0.030"
