#!/bin/bash
# vm/bench/compare.sh — runs inside the VM (make vm-bench). fio 4 KiB randwrite
# QD32 and 1 MiB sequential read QD8 (io_uring, direct=1) on:
#   loop        the raw loop device over a tmpfs file
#   passthrough snapring's passthrough ublk target over that loop device
#               (stacked: ublk on top of loop), and over the tmpfs file itself
#               (ublk instead of loop, as ublksrv's loop target compares)
#   snapring    snapring's origin ublk device with an active snapshot, over
#               the loop devices (stacked) and over the files themselves
#   dm-snapshot dm-snapshot's origin with an active snapshot
# Same backing, same chunk size (CHUNK_KB, default 4 = LVM's default), the
# copy-on-write store on a second loop device over tmpfs for both snapshots.
# Every snapshot is fresh for its randwrite job, so the job pays first-write
# copies as it would after a take. TCG makes absolute numbers meaningless:
# compare within one run.
set -euo pipefail
SNAPRING=${SNAPRING_BIN:-/payload/bin/snapring}
SIZE_MB=${BENCH_SIZE_MB:-256}
RUNTIME=${BENCH_RUNTIME:-10}
CHUNK_KB=${CHUNK_KB:-4}
# 1 MiB requests reach our servers whole, as they reach the loop device
# (whose max_sectors_kb is at least that); 512 KiB (our default) splits
# each 1 MiB read in two.
MAX_IO=${MAX_IO:-1048576}
export DM_DISABLE_UDEV=1
CHUNK_SHIFT=10
while [ $((1 << CHUNK_SHIFT)) -lt $((CHUNK_KB * 1024)) ]; do CHUNK_SHIFT=$((CHUNK_SHIFT + 1)); done
# The same memory for chunk copies as the default (16 chunks of 256 KiB).
IN_MEMORY=${IN_MEMORY:-$((4096 / CHUNK_KB))}

backing=$(mktemp /tmp/bench-origin.XXXXXX)
cowfile=$(mktemp /tmp/bench-cow.XXXXXX)
cowfile2=$(mktemp /tmp/bench-cow2.XXXXXX)
truncate -s "${SIZE_MB}M" "$backing"
truncate -s "$((SIZE_MB * 2))M" "$cowfile"
dd if=/dev/urandom of="$backing" bs=1M count="$SIZE_MB" status=none
loop=$(losetup --find --show "$backing")
cowloop=$(losetup --find --show "$cowfile")
srv=
cleanup() {
	[ -z "$srv" ] || { kill -TERM "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; }
	dmsetup remove bench-snap 2>/dev/null || true
	dmsetup remove bench-origin 2>/dev/null || true
	losetup -d "$loop" "$cowloop" 2>/dev/null || true
	rm -f "$backing" "$cowfile" "$cowfile2"
}
trap cleanup EXIT

fio_iops() { # DEV RW BS QD -> IOPS
	local out
	out=$(fio --name=bench --filename="$1" --ioengine=io_uring --direct=1 --rw="$2" --bs="$3" \
		--iodepth="$4" --runtime="$RUNTIME" --time_based --size="${SIZE_MB}M" --numjobs=1 \
		--randrepeat=0 --norandommap --output-format=terse --terse-version=3)
	case $2 in
	*write) echo "$out" | awk -F';' '{printf "%d", $49}' ;;
	*) echo "$out" | awk -F';' '{printf "%d", $8}' ;;
	esac
}

# start_server ARGS... : runs snapring in the background, waits for its lines.
start_server() {
	local log
	log=$(mktemp /tmp/bench-srv.XXXXXX)
	"$SNAPRING" "$@" >"$log" 2>&1 &
	srv=$!
	for _ in $(seq 200); do
		if grep -q '^/dev/ublkb\|^image ' "$log"; then break; fi
		kill -0 "$srv" 2>/dev/null || { cat "$log" >&2; exit 1; }
		sleep 0.1
	done
	SRVLOG=$log
}
stop_server() {
	kill -TERM "$srv"
	wait "$srv" || { echo "compare: snapring exited $?" >&2; cat "$SRVLOG" >&2; exit 1; }
	srv=
}

declare -A W R
ROWS="loop passthrough-on passthrough-off passthrough-file snapring-on snapring-off snapring-file dm-snapshot"
declare -A WS RS
one_round() {
W[loop]=$(fio_iops "$loop" randwrite 4k 32)
R[loop]=$(fio_iops "$loop" read 1M 8)

for uc in on off; do
	start_server device passthrough --file "$loop" --queues 1 --depth 64 --max-io "$MAX_IO" --user-copy $uc
	dev=$(grep -m1 '^/dev/ublkb' "$SRVLOG")
	W[passthrough-$uc]=$(fio_iops "$dev" randwrite 4k 32)
	R[passthrough-$uc]=$(fio_iops "$dev" read 1M 8)
	stop_server
done
start_server device passthrough --file "$backing" --queues 1 --depth 64 --max-io "$MAX_IO"
dev=$(grep -m1 '^/dev/ublkb' "$SRVLOG")
W[passthrough-file]=$(fio_iops "$dev" randwrite 4k 32)
R[passthrough-file]=$(fio_iops "$dev" read 1M 8)
stop_server

# snapring_origin sets dev (not in a subshell: start_server keeps srv).
snapring_origin() { # ORIGIN STORAGE USER_COPY
	rm -f "$cowfile2"
	start_server snapshot run --origin "$1" --storage "$2" --limit "$((SIZE_MB * 2))MiB" \
		--chunk-shift "$CHUNK_SHIFT" --chunks-in-memory "$IN_MEMORY" --queues 1 --depth 64 --max-io "$MAX_IO" --user-copy "$3"
	dev=$(awk '/^origin /{print $3; exit}' "$SRVLOG")
}
for uc in on off; do
	snapring_origin "$loop" "$cowloop" $uc
	W[snapring-$uc]=$(fio_iops "$dev" randwrite 4k 32)
	stop_server
	snapring_origin "$loop" "$cowloop" $uc
	R[snapring-$uc]=$(fio_iops "$dev" read 1M 8)
	stop_server
done
snapring_origin "$backing" "$cowfile2" auto
W[snapring-file]=$(fio_iops "$dev" randwrite 4k 32)
stop_server
snapring_origin "$backing" "$cowfile2" auto
R[snapring-file]=$(fio_iops "$dev" read 1M 8)
stop_server

sectors=$(blockdev --getsz "$loop")
# dm_origin sets dev.
dm_origin() {
	dmsetup remove bench-snap 2>/dev/null || true
	dmsetup remove bench-origin 2>/dev/null || true
	dd if=/dev/zero of="$cowloop" bs=1M count=1 status=none conv=notrunc
	dmsetup create bench-origin --table "0 $sectors snapshot-origin $loop"
	dmsetup create bench-snap --table "0 $sectors snapshot $loop $cowloop P $((CHUNK_KB * 2))"
	# The origin computes its split size on resume (as LVM does it).
	dmsetup suspend bench-origin
	dmsetup resume bench-origin
	dev=/dev/mapper/bench-origin
}
dm_origin
W[dm-snapshot]=$(fio_iops "$dev" randwrite 4k 32)
dm_origin
R[dm-snapshot]=$(fio_iops "$dev" read 1M 8)
dmsetup remove bench-snap
dmsetup remove bench-origin
	for k in $ROWS; do
		WS[$k]="${WS[$k]:-} ${W[$k]}"
		RS[$k]="${RS[$k]:-} ${R[$k]}"
	done
}
# Rows alternate within a round, rounds repeat (ROUNDS, default 3): TCG's
# run-to-run spread (the loop row moved 13k-18k IOPS between runs) is larger
# than most differences, so every figure is the median of its rounds.
for round in $(seq "${ROUNDS:-3}"); do
	one_round
	echo "compare: round $round: randwrite$(for k in $ROWS; do printf ' %s=%s' "$k" "${W[$k]}"; done)"
	echo "compare: round $round: read$(for k in $ROWS; do printf ' %s=%s' "$k" "${R[$k]}"; done)"
done
median() { echo "$@" | tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : int((v[NR/2] + v[NR/2+1]) / 2)}'; }
for k in $ROWS; do
	W[$k]=$(median ${WS[$k]})
	R[$k]=$(median ${RS[$k]})
done

echo "compare: kernel $(uname -r), $(nproc) cpus, ${SIZE_MB} MiB tmpfs backing via loop, chunk ${CHUNK_KB} KiB, snapring chunks in memory ${IN_MEMORY}, snapring max-io ${MAX_IO}, loop max_sectors_kb $(cat /sys/block/$(basename "$loop")/queue/max_sectors_kb), ${RUNTIME}s per job, median of ${ROUNDS:-3} rounds"
printf '| %-28s | %14s | %10s | %14s | %10s |\n' "device" "4k randwrite IOPS" "vs loop" "1M read IOPS" "vs loop"
printf '|%s|%s|%s|%s|%s|\n' "------------------------------" "-------------------:" "-----------:" "---------------:" "-----------:"
for k in $ROWS; do
	label=$k
	case $k in
	loop) label="loop device (raw)" ;;
	passthrough-on) label="passthrough on loop, USER_COPY" ;;
	passthrough-off) label="passthrough on loop, address" ;;
	passthrough-file) label="passthrough over the file" ;;
	snapring-file) label="origin+snapshot over files" ;;
	snapring-on) label="origin+snap on loop, USER_COPY" ;;
	snapring-off) label="origin+snap on loop, address" ;;
	dm-snapshot) label="dm-snapshot origin+snapshot" ;;
	esac
	printf '| %-28s | %17s | %10s | %14s | %10s |\n' "$label" "${W[$k]}" \
		"$(awk -v a="${W[$k]}" -v b="${W[loop]}" 'BEGIN { printf "%.2f", a / b }')" "${R[$k]}" \
		"$(awk -v a="${R[$k]}" -v b="${R[loop]}" 'BEGIN { printf "%.2f", a / b }')"
done
for uc in on off file; do
	echo "compare: snapring ($uc)/dm-snapshot randwrite $(awk -v a="${W[snapring-$uc]}" -v b="${W[dm-snapshot]}" 'BEGIN { printf "%.2f", a / b }'), read $(awk -v a="${R[snapring-$uc]}" -v b="${R[dm-snapshot]}" 'BEGIN { printf "%.2f", a / b }')"
done
