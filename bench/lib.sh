# bench/lib.sh: what the bench scripts share (sourced, not run).

# median: the median of the numbers on stdin, one a line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# measure_runs N DIR PREP CMD...: N runs of CMD, each whole process timed by
# GNU time after PREP (a command run untimed before each run; `:` for none).
# CMD's stdout goes to DIR/stdout and its stderr to DIR/stderr (the last
# run's stay for the caller to read). Prints "median_wall_s median_cpu_s
# max_rss_kb"; CPU is user + system, which moves less than wall time on a
# loaded machine.
measure_runs() {
  local n=$1 dir=$2 prep=$3
  shift 3
  local walls=() cpus=() rss=0 w u s m
  for _ in $(seq "$n"); do
    $prep
    /usr/bin/time -f "%e %U %S %M" -o "$dir/time" "$@" >"$dir/stdout" 2>"$dir/stderr" || true
    read -r w u s m < <(tail -1 "$dir/time")
    walls+=("$w")
    cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')")
    [ "$m" -gt "$rss" ] && rss=$m
  done
  echo "$(printf '%s\n' "${walls[@]}" | median) $(printf '%s\n' "${cpus[@]}" | median) $rss"
}
