#!/bin/bash
# bench/engine-goals.sh — the engine's performance goals (the engine issue),
# each beside its raw baseline, as medians of alternating pairs.
#
#   bench/engine-goals.sh [PAIRS] [DIR...]     (make bench-engine)
#
# For every directory (default: /dev/shm and /var/tmp, a disk file system
# where one exists) it runs PAIRS (default 5) pairs of processes per
# benchmark: raw side then engine side, the next pair engine then raw, so
# that neither side always runs first. A pair's ratio is engine/raw; the
# table gives every pair's figures and the median ratio against the goal.
# One process per side per pair: on a small VM the raw baselines move
# between run modes (a halted vCPU's wake-up), so single runs mislead.
set -euo pipefail
PAIRS=${1:-5}
shift || true
DIRS=("$@")
if [ ${#DIRS[@]} -eq 0 ]; then
	DIRS=(/dev/shm)
	fs=$(stat -f -c %T /var/tmp 2>/dev/null || true)
	[ -n "$fs" ] && [ "$fs" != tmpfs ] && DIRS+=(/var/tmp)
fi
case $PAIRS in '' | *[!0-9]* | 0)
	echo "engine-goals: PAIRS must be a positive number, not \"$PAIRS\"" >&2
	exit 2
	;;
esac
for d in "${DIRS[@]}"; do
	[ -d "$d" ] && [ -w "$d" ] || { echo "engine-goals: $d: not a writable directory" >&2; exit 2; }
done

GO=${GO:-go}
bin=$(mktemp /tmp/engine-bench.XXXXXX)
trap 'rm -f "$bin"' EXIT
$GO test -c -o "$bin" ./engine/

# one BENCH SIDE DIR -> the benchmark's result line for that side
one() {
	SNAPRING_BENCH_DIR=$3 "$bin" -test.run '^$' -test.bench "^$1/$2\$" -test.count 1 -test.benchtime "${BENCHTIME:-1s}" |
		awk -v b="$1/$2" 'index($1, b) == 1 { sub(/^[^ \t]*[ \t]+/, ""); print; exit }'
}

# field LINE UNIT -> the number before UNIT in a benchmark line
field() { echo "$1" | awk -v u="$2" '{ for (i = 2; i <= NF; i++) if ($i == u) { print $(i - 1); exit } }'; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# pairs BENCH RAW ENGINE DIR: PAIRS alternating pairs of runs, their result
# lines in RL and EL.
RL=()
EL=()
pairs() {
	local bench=$1 raw=$2 eng=$3 dir=$4 i
	RL=()
	EL=()
	for i in $(seq "$PAIRS"); do
		if [ $((i % 2)) -eq 1 ]; then
			RL+=("$(one "$bench" "$raw" "$dir")")
			EL+=("$(one "$bench" "$eng" "$dir")")
		else
			EL+=("$(one "$bench" "$eng" "$dir")")
			RL+=("$(one "$bench" "$raw" "$dir")")
		fi
	done
}

# verdict DIR NAME UNIT CMP LIMIT: a table row from the last pairs, the ratio
# engine/raw of UNIT, met when its median CMP (ge or le) LIMIT.
verdict() {
	local dir=$1 name=$2 unit=$3 cmp=$4 limit=$5
	local ratios=() raws=() engs=() r e i m v
	for i in "${!RL[@]}"; do
		r=$(field "${RL[$i]}" "$unit")
		e=$(field "${EL[$i]}" "$unit")
		[ -n "$r" ] && [ -n "$e" ] || { echo "engine-goals: $name on $dir: no $unit figure" >&2; exit 1; }
		raws+=("$r")
		engs+=("$e")
		ratios+=("$(awk -v a="$e" -v b="$r" 'BEGIN { printf "%.2f", a / b }')")
	done
	m=$(median "${ratios[@]}")
	v=$(awk -v m="$m" -v l="$limit" -v c="$cmp" 'BEGIN { ok = (c == "ge") ? m >= l : m <= l; print ok ? "met" : "MISSED" }')
	printf '| %s | %s | %s | %s | %s | %s | %s (%s %s) | %s |\n' "$dir" "$name" "$unit" "${raws[*]}" "${engs[*]}" "${ratios[*]}" \
		"$m" "$([ "$cmp" = ge ] && echo "≥" || echo "≤")" "$limit" "$v"
}

echo "engine goals: $PAIRS alternating pairs per figure, $(nproc) CPUs, kernel $(uname -r)"
echo '| dir | goal | unit | raw | engine | engine/raw per pair | median (goal) | verdict |'
echo '|---|---|---|---|---|---|---|---|'
for d in "${DIRS[@]}"; do
	pairs BenchmarkOriginWriteCopied raw engine "$d"
	verdict "$d" "copied write, throughput" MB/s ge 0.90
	verdict "$d" "copied write, p99" p99-ns le 1.2
	pairs BenchmarkOriginWriteCOW raw-rotating engine "$d"
	verdict "$d" "first write (COW), p50" p50-ns le 1.3
	pairs BenchmarkImageSeqRead raw engine "$d"
	verdict "$d" "image sequential read" MB/s ge 0.90
done
