#!/bin/bash
# ublk/testdata/vmbench.sh — passthrough ublk device vs the raw loop device, inside the VM.
#
# Runs fio (io_uring, direct=1) on a loop device over a tmpfs file, then on
# `snapring device passthrough` exposing that same loop device as /dev/ublkbN
# (so the only difference is the ublk hop), and prints IOPS and the ratio
# ublk/loop for: 4 KiB randwrite QD32, 1 MiB sequential read QD8, each ublk
# job paired with a loop job just before it. Each ublk configuration
# (queues, user copy) gets its own lines. TCG makes
# absolute numbers meaningless; only ratios within one run count.
#
# Run from the host (it needs the CLI in the payload):
#   make vm-payload VM_PAYLOAD=out/vm-payload
#   vm/run.sh -- out/vm-payload bash pkgs/ublk/testdata/vmbench.sh
# Env: BENCH_SIZE_MB (256), BENCH_RUNTIME s (10), BENCH_CONFIGS (see below),
#      SNAPRING_BIN (/payload/bin/snapring).
set -euo pipefail
SNAPRING=${SNAPRING_BIN:-/payload/bin/snapring}
SIZE_MB=${BENCH_SIZE_MB:-256}
RUNTIME=${BENCH_RUNTIME:-10}
[ -x "$SNAPRING" ] || { echo "vmbench: no snapring CLI at $SNAPRING" >&2; exit 1; }
command -v fio >/dev/null || { echo "vmbench: fio not found" >&2; exit 1; }

backing=$(mktemp /tmp/vmbench.XXXXXX)
dd if=/dev/zero of="$backing" bs=1M count="$SIZE_MB" status=none
loop=$(losetup --find --show "$backing")
srv=
cleanup() {
	[ -z "$srv" ] || { kill -TERM "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; }
	losetup -d "$loop" 2>/dev/null || true
	rm -f "$backing"
}
trap cleanup EXIT

# fio_iops DEV RW BS QD -> IOPS (terse v3: field 8 read IOPS, 49 write IOPS)
fio_iops() {
	local dev=$1 rw=$2 bs=$3 qd=$4 out
	out=$(fio --name=bench --filename="$dev" --ioengine=io_uring --direct=1 --rw="$rw" --bs="$bs" \
		--iodepth="$qd" --runtime="$RUNTIME" --time_based --size="${SIZE_MB}M" --numjobs=1 \
		--randrepeat=0 --norandommap --output-format=terse --terse-version=3)
	case $rw in
	*write) echo "$out" | awk -F';' '{print $49}' ;;
	*) echo "$out" | awk -F';' '{print $8}' ;;
	esac
}

jobs=("randwrite 4k 32" "read 1M 8")
# CONFIG = queues:user-copy (auto = UBLK_F_USER_COPY where offered, off =
# buffer address in the command)
CONFIGS=${BENCH_CONFIGS:-1:auto 2:auto 2:off}
# BACKEND = what the ublk passthrough serves: loop (the loop device itself,
# so ublk is an extra hop on top of loop) or file (the loop device's backing
# file: both devices are then file-backed block devices side by side).
BACKENDS=${BENCH_BACKENDS:-file loop}
echo "vmbench: kernel $(uname -r), $(nproc) cpus, backing tmpfs file ${SIZE_MB} MiB via $loop, ${RUNTIME}s per job"
echo "vmbench: each ublk job runs right after the same job on the loop device (paired, the host is noisy)"
for backend in $BACKENDS; do
for cfg in $CONFIGS; do
	IFS=: read -r queues uc <<<"$cfg"
	target=$loop
	[ "$backend" = file ] && target=$backing
	out=$(mktemp /tmp/vmbench-srv.XXXXXX)
	"$SNAPRING" device passthrough --file "$target" --queues "$queues" --depth 64 --user-copy "$uc" >"$out" 2>&1 &
	srv=$!
	dev=
	for _ in $(seq 100); do
		dev=$(grep -m1 '^/dev/ublkb' "$out" || true)
		[ -n "$dev" ] && [ -b "$dev" ] && break
		kill -0 "$srv" 2>/dev/null || { cat "$out" >&2; exit 1; }
		sleep 0.1
	done
	[ -n "$dev" ] && [ -b "$dev" ] || { echo "vmbench: no device from snapring" >&2; cat "$out" >&2; exit 1; }
	label="ublk/$backend q$queues uc=$uc"
	for j in "${jobs[@]}"; do
		set -- $j
		base=$(fio_iops "$loop" "$1" "$2" "$3")
		iops=$(fio_iops "$dev" "$1" "$2" "$3")
		ratio=$(awk -v a="$iops" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
		printf 'vmbench: %-24s %-9s %-2s qd%-3s loop %8s IOPS  ublk %8s IOPS  ratio %s\n' "$label" "$1" "$2" "$3" "$base" "$iops" "$ratio"
	done
	kill -TERM "$srv"
	wait "$srv" || { echo "vmbench: snapring exited $?" >&2; cat "$out" >&2; exit 1; }
	srv=
	rm -f "$out"
done
done
left=$(ls -d /sys/block/ublkb* 2>/dev/null || true)
[ -z "$left" ] || { echo "vmbench: devices left behind: $left" >&2; exit 1; }
echo "vmbench: done"
