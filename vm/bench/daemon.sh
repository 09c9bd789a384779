#!/bin/bash
# vm/bench/daemon.sh — runs inside the VM (make vm-bench-daemon): the
# daemon's performance figures on real ublk.
#  1. take -> taken (the take request's take_seconds, freeze included) with
#     and without --freeze of an ext4 mounted on the origin: p50/p99 of N.
#  2. origin 4 KiB randwrite QD32 throughput with the daemon's metrics on
#     against off (goal: on >= 0.98 x off), alternating rounds, medians.
# TCG makes absolute numbers meaningless: compare within one run.
set -euo pipefail
S=${SNAPRING_BIN:-/payload/bin/snapring}
N=${TAKES:-30}
ROUNDS=${ROUNDS:-5}
RUNTIME=${BENCH_RUNTIME:-10}
export SNAPRING_SOCKET=/tmp/snapring-bench/s.sock
W=/tmp/daemon-bench
rm -rf "$W" && mkdir -p "$W/cow" /mnt/b
truncate -s 512M "$W/disk.img"
dpid=
startd() { # [--metrics-addr ADDR]
	printf 'socket: %s\nstate_dir: /tmp/snapring-bench/state\nlog: {level: warn}\n' "$SNAPRING_SOCKET" >"$W/cfg.yaml"
	"$S" daemon --config "$W/cfg.yaml" "$@" >>"$W/daemon.log" 2>&1 &
	dpid=$!
	for _ in $(seq 100); do "$S" device list >/dev/null 2>&1 && return 0; sleep 0.1; done
	cat "$W/daemon.log"; exit 1
}
stopd() { kill -TERM "$dpid"; wait "$dpid"; }
json() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\}.*/\1/p" | head -1; }
quantiles() { sort -g | awk '{a[NR]=$1} END {printf "p50 %.6f s  p99 %.6f s  (n=%d)\n", a[int((NR+1)/2)], a[int(NR*0.99+0.5) ? int(NR*0.99+0.5) : 1], NR}'; }

startd
dev=$("$S" device add "$W/disk.img" -o json | json name)
mkfs.ext4 -q -F "$dev"
mount "$dev" /mnt/b
for freeze in "" --freeze; do
	: >"$W/takes"
	for i in $(seq "$N"); do
		id=$("$S" snapshot create --device 1 --storage "$W/cow" --limit 64MiB -o json | json id)
		dd if=/dev/urandom of=/mnt/b/f bs=64k count=16 conv=fsync status=none
		"$S" snapshot take "$id" $freeze -o json | json take_seconds >>"$W/takes"
		"$S" snapshot destroy "$id" >/dev/null
	done
	echo "take -> taken ${freeze:-(no freeze)}: $(quantiles <"$W/takes")"
done
umount /mnt/b
"$S" device remove 1 >/dev/null
stopd

fio_iops() {
	fio --name=bench --filename="$1" --ioengine=io_uring --direct=1 --rw=randwrite --bs=4k --iodepth=32 \
		--runtime="$RUNTIME" --time_based --size=256M --randrepeat=0 --norandommap \
		--output-format=terse --terse-version=3 | awk -F';' '{printf "%d", $49}'
}
declare -a on off
for r in $(seq "$ROUNDS"); do
	order="off on"
	[ $((r % 2)) -eq 0 ] && order="on off" # alternate which goes first
	for m in $order; do
		if [ $m = on ]; then startd --metrics-addr 127.0.0.1:9477; else startd; fi
		dev=$("$S" device add "$W/disk.img" -o json | json name)
		iops=$(fio_iops "$dev")
		"$S" device remove 1 >/dev/null
		stopd
		if [ $m = on ]; then on+=("$iops"); else off+=("$iops"); fi
		echo "round $r metrics $m: $iops IOPS"
	done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mon=$(median "${on[@]}"); moff=$(median "${off[@]}")
awk -v a="$mon" -v b="$moff" 'BEGIN { r = a / b; printf "origin randwrite 4k QD32: metrics on %d, off %d IOPS (medians): on/off %.3f (goal >= 0.98: %s)\n", a, b, r, (r >= 0.98 ? "met" : "MISSED") }'
