#!/bin/bash
# The daemon's soak on real ublk (runs in the guest; `make soak` is the
# in-process one): for SOAK_SECONDS (60) fio writes a ublk origin device
# (4 KiB randwrite, io_uring, direct, QD16, each pass verified with crc32c)
# while a loop creates, takes, reads the image of, and destroys snapshots
# through the CLI. Checked:
#   - fio: every pass exits 0 with err=0 (verify_fatal: a bad block fails it);
#   - the daemon's resources at the start of the loop (after two warm-up
#     cycles) and at its end are flat: goroutines (snapring daemon health)
#     and open fds (/proc/PID/fd) within +$SLACK, RSS (VmRSS) within
#     +max(50 %, 32 MiB);
#   - every cycle's take, image read and destroy succeed, no snapshot is
#     corrupted, and nothing but the origin is left in /sys/block;
#   - the metrics counted the origin writes (and their latency) and the
#     image reads;
#   - SIGTERM then exits 0.
set -euo pipefail
S=${SNAPRING_BIN:-/payload/bin/snapring}
SECS=${SOAK_SECONDS:-60}
SLACK=5
M=127.0.0.1:9478
export SNAPRING_SOCKET=/tmp/snapring-soak/s.sock
W=/tmp/soak-test
rm -rf "$W" && mkdir -p "$W/cow"
step() { echo "soak.sh: $*"; }
fail() {
	echo "soak.sh: FAIL: $*"
	tail -40 "$W/daemon.log" || true
	tail -20 "$W/fio.log" 2>/dev/null || true
	exit 1
}
json() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\}.*/\1/p" | head -1; }
ip link set lo up 2>/dev/null || true # the guest has no network setup: metrics on loopback
cat >"$W/cfg.yaml" <<YAML
socket: $SNAPRING_SOCKET
state_dir: /tmp/snapring-soak/state
log: {level: info}
YAML
"$S" daemon --config "$W/cfg.yaml" --metrics-addr "$M" >>"$W/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do "$S" daemon health >/dev/null 2>&1 && break; sleep 0.1; done
"$S" daemon health >/dev/null || fail "daemon not serving"
truncate -s 64M "$W/disk.img"
dev=$("$S" device add "$W/disk.img" -o json | json name)
[ -b "$dev" ] || fail "no origin device ($dev)"
step "origin $dev, $SECS s"

# measure: "RSS_KIB GOROUTINES FDS" of the daemon.
measure() {
	local g fds rss
	g=$("$S" daemon health -o json | json goroutines)
	fds=$(ls /proc/$DPID/fd | wc -l)
	rss=$(awk '/^VmRSS:/ {print $2}' /proc/$DPID/status)
	echo "$rss $g $fds"
}

# fio: passes over the first 32 MiB until the deadline, each verified.
end=$(($(date +%s) + SECS))
(
	set +e
	pass=0
	while [ "$(date +%s)" -lt "$end" ]; do
		pass=$((pass + 1))
		fio --name=soak --filename="$dev" --ioengine=io_uring --direct=1 --rw=randwrite --bs=4k --iodepth=16 \
			--size=32M --verify=crc32c --do_verify=1 --verify_fatal=1 >"$W/fio.out" 2>&1
		rc=$?
		cat "$W/fio.out" >>"$W/fio.log"
		if [ $rc -ne 0 ] || ! grep -q 'err= 0' "$W/fio.out"; then
			echo "pass $pass: exit $rc" >"$W/fio.failed"
			exit 1
		fi
		echo "$pass" >"$W/fio.passes"
	done
) &
FPID=$!

cycle() { # one snapshot's life: create, take, read the image, info, destroy
	local id img
	id=$("$S" snapshot create --device 1 --storage "$W/cow" --limit 64MiB --chunk-shift 16 -o json | json id) ||
		fail "create"
	img=$("$S" snapshot take "$id" -o json | json image) || fail "take $id"
	[ -b "$img" ] || fail "snapshot $id: no image ($img)"
	dd if="$img" of=/dev/null bs=64k count=64 iflag=direct status=none || fail "snapshot $id: image read"
	"$S" snapshot info "$id" -o json >"$W/info.json" || fail "info $id"
	grep -q '"state": "taken"' "$W/info.json" || fail "snapshot $id not healthy: $(cat "$W/info.json")"
	"$S" snapshot destroy "$id" >/dev/null || fail "destroy $id"
}
cycle
cycle
read -r rss0 g0 f0 <<<"$(measure)"
n=0
while [ "$(date +%s)" -lt $((end - 2)) ]; do
	[ ! -e "$W/fio.failed" ] || break
	cycle
	n=$((n + 1))
done
read -r rss1 g1 f1 <<<"$(measure)"
wait "$FPID" || fail "fio $(cat "$W/fio.failed" 2>/dev/null)"
passes=$(cat "$W/fio.passes" 2>/dev/null || echo 0)
msg="$n cycles, $passes fio passes: RSS $rss0 -> $rss1 KiB, goroutines $g0 -> $g1, fds $f0 -> $f1"
step "$msg"
[ "$n" -ge 3 ] || fail "only $n cycles in $SECS s"
[ "$passes" -ge 1 ] || fail "no fio pass completed"
[ "$g1" -le $((g0 + SLACK)) ] || fail "goroutines grew: $msg"
[ "$f1" -le $((f0 + SLACK)) ] || fail "fds grew: $msg"
grow=$((rss0 / 2))
[ "$grow" -ge 32768 ] || grow=32768
[ "$rss1" -le $((rss0 + grow)) ] || fail "RSS grew more than $grow KiB: $msg"
[ "$(ls /sys/block | grep -c ublkb)" = 1 ] || fail "left in /sys/block: $(ls /sys/block | grep ublkb)"

wget -q -O "$W/metrics" "http://$M/metrics" || fail "GET /metrics"
metric() { awk -v k="$1" '$1 == k {print $2}' "$W/metrics"; }
writes=$(metric 'snapring_origin_writes_total{device="1"}')
wlat=$(metric 'snapring_origin_write_duration_seconds_count{device="1"}')
ireads=$(awk '/^snapring_image_reads_total\{device="1"/ {s += $2} END {print s + 0}' "$W/metrics")
copied=$(awk '/^snapring_snapshot_chunks_copied_total/ {s += $2} END {print s + 0}' "$W/metrics")
step "metrics: origin writes $writes (latency count $wlat), image reads $ireads"
awk -v w="$writes" -v l="$wlat" -v r="$ireads" 'BEGIN { exit !(w > 0 && l == w && r > 0) }' ||
	fail "metrics did not count the I/O: writes '$writes' latency count '$wlat' image reads '$ireads'"
[ "$(metric snapring_snapshots)" = 0 ] || fail "snapshots left: $(metric snapring_snapshots)"
[ "$copied" = 0 ] || fail "chunk metrics of destroyed snapshots still exported"

"$S" device remove 1 >/dev/null
kill -TERM "$DPID"
wait "$DPID" || fail "daemon exit status $? after SIGTERM"
! ls /sys/block | grep -q ublkb || fail "left in /sys/block: $(ls /sys/block | grep ublkb)"
step "PASS"
