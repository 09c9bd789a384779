#!/bin/bash
# vm/bench/kprofile.sh PRESET TARGET... — runs inside the VM (make vm-kprofile): for each
# TARGET, one `snapring fio run` of PRESET (raw always runs first, as snapring fio does),
# and `perf record -a -g` of the whole guest for PROFILE_SECONDS (8) from 3 s into the
# target's own fio job; then perf's reports by thread, by symbol and by thread and symbol.
# Kernel and user time of every process: what `make vm-profile` (Go's profiler, snapring's
# own threads only) cannot show, e.g. how much of a copy-on-write write is io-wq hops,
# context switches, the loop device's worker or idle time. Under TCG, time with interrupts
# off lands on the instruction that turns them back on (finish_task_switch,
# _raw_spin_unlock_irqrestore): read those as context switches and locks. Then snapring's
# threads alone with inclusive times (where its syscalls spend their time). FIO_FLAGS adds
# flags to `snapring fio run` (e.g. --direct-original).
set -euo pipefail
SNAPRING=${SNAPRING_BIN:-/payload/bin/snapring}
PRESET=${1:?preset}
shift
SECONDS_PROFILED=${PROFILE_SECONDS:-8}
# fio_up: a fio job runs (snapring also runs fio --version and --parse-only).
fio_up() { cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' ' | grep -q -- '--output-format=[j]son+'; }  # [j]: not grep's own cmdline
# wait_fio STATE: up to 90 s until a fio job runs (up) or none does (down).
wait_fio() {
	local i
	for i in $(seq 900); do
		if [ "$1" = up ]; then fio_up && return 0; else fio_up || return 0; fi
		sleep 0.1
	done
	echo "kprofile: fio never went $1" >&2
	return 1
}
echo "kprofile: kernel $(uname -r), $(nproc) cpus, preset $PRESET, targets $*, ${SECONDS_PROFILED}s each"
for target in "$@"; do
	out=$(mktemp -d /tmp/kprofile.XXXXXX)
	echo "=== kprofile $PRESET on $target ${FIO_FLAGS:-}"
	# shellcheck disable=SC2086
	"$SNAPRING" fio run --preset "$PRESET" --target "$target" --rounds 1 --runtime "$((SECONDS_PROFILED + 8))s" \
		--size 256MiB --loop on --out "$out" -q ${FIO_FLAGS:-} | grep -v '^result: ' &
	pid=$!
	if [ "$target" != raw ]; then # raw's job first, then the target's
		wait_fio up && wait_fio down
	fi
	wait_fio up
	sleep 3
	perf record -a -g -o "$out/perf.data" -- sleep "$SECONDS_PROFILED" >/dev/null 2>&1
	wait "$pid"
	for sort in comm sym comm,sym; do
		echo "--- by $sort"
		# awk reads to the end: perf never sees a closed pipe
		perf report -i "$out/perf.data" --no-children --sort "$sort" --stdio -g none 2>/dev/null | awk '/%/ && n++ < 40'
	done
	echo "--- snapring's threads, inclusive (kernel and Go frames under each symbol)"
	perf report -i "$out/perf.data" --children --comm snapring --sort sym --stdio -g none 2>/dev/null | awk '/%/ && n++ < 50'
	rm -rf "$out"
done
