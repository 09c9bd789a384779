#!/bin/bash
# The daemon's whole lifecycle through the CLI client, on real ublk (runs in
# the guest): add a device, ext4 with files and checksums, create + take
# with freeze, mount the image and check every checksum, autoextend under
# writes, overflow -> corrupted and image EIO with the origin intact,
# destroy, remove, nothing left in /sys/block; SIGTERM under writes loses
# no acknowledged write; kill -9 then restart cleans the stale devices.
set -euo pipefail
S=${SNAPRING_BIN:-/payload/bin/snapring}
export SNAPRING_SOCKET=/tmp/snapring-test/s.sock
W=/tmp/daemon-test
rm -rf "$W" && mkdir -p "$W/cow" /mnt/o /mnt/i
step() { echo "daemon.sh: $*"; }
fail() { echo "daemon.sh: FAIL: $*"; tail -50 "$W/daemon.log" || true; exit 1; }
cat >"$W/cfg.yaml" <<YAML
socket: $SNAPRING_SOCKET
state_dir: /tmp/snapring-test/state
log: {level: debug}
YAML
startd() {
	"$S" daemon --config "$W/cfg.yaml" >>"$W/daemon.log" 2>&1 &
	DPID=$!
	for _ in $(seq 100); do "$S" device list >/dev/null 2>&1 && return 0; sleep 0.1; done
	fail "daemon not serving"
}
json() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\}.*/\1/p" | head -1; }
noublk() { ! ls /sys/block | grep -q ublkb || fail "left in /sys/block: $(ls /sys/block | grep ublkb)"; }

startd
truncate -s 256M "$W/disk.img"
dev=$("$S" device add "$W/disk.img" -o json | json name)
[ -b "$dev" ] || fail "no origin device ($dev)"
step "origin $dev"
mkfs.ext4 -q -F "$dev"
mount "$dev" /mnt/o
for i in $(seq 20); do head -c $((i * 37 * 1024)) /dev/urandom >/mnt/o/f$i; done
(cd /mnt/o && sha256sum f* >"$W/sums")
"$S" snapshot create --device 1 --storage "$W/cow" --limit 32MiB --portion 8MiB --chunk-shift 16 \
	--autoextend-threshold 60 --autoextend-percent 50 --autoextend-limit 96MiB -o json >"$W/create.json"
"$S" snapshot take 1 --freeze -o json >"$W/take.json"
grep -q '"frozen"' "$W/take.json" || fail "take did not freeze /mnt/o: $(cat "$W/take.json")"
img=$(json image <"$W/take.json")
[ -b "$img" ] || fail "no image device ($img)"
step "taken with freeze, image $img"
# Change every file on the origin; the image keeps the old ones.
for i in $(seq 20); do head -c 4096 /dev/urandom >>/mnt/o/f$i; done
sync
mount -o ro,noload "$img" /mnt/i || fail "mounting the image"
(cd /mnt/i && sha256sum -c -s "$W/sums") || fail "image checksums"
umount /mnt/i
step "image checksums ok"
# Autoextend: 24 MiB of new data into a 32 MiB storage at 60 %, slowly
# enough for the once-a-second policy to extend before it fills.
for i in $(seq 24); do
	dd if=/dev/urandom of=/mnt/o/big bs=1M count=1 seek=$((i - 1)) conv=notrunc,fsync status=none
	sleep 0.3
done
"$S" snapshot watch 1 --wait --since 0 --kind autoextend --timeout 60s || fail "no autoextend event"
"$S" snapshot info 1 -o json | grep -q '"state": "taken"' || fail "snapshot not healthy after autoextend: $("$S" snapshot info 1)"
mount -o ro,noload "$img" /mnt/i || fail "mounting the image after autoextend"
(cd /mnt/i && sha256sum -c -s "$W/sums") || fail "image checksums after autoextend"
umount /mnt/i
step "autoextend event, image still intact"
"$S" snapshot info 1
# Per-device chunk counters: devices[0].chunks comes first in the JSON.
copied=$("$S" snapshot info 1 -o json | json copied)
[ "${copied:-0}" -gt 0 ] || fail "snapshot info: device 1 copied '${copied}' chunks after 24 MiB of writes"
"$S" snapshot destroy 1
noimg=$(ls /sys/block | grep -c ublkb || true)
[ "$noimg" = 1 ] || fail "after destroy: $(ls /sys/block | grep ublkb)"

# Overflow: a tiny storage, no autoextend.
"$S" snapshot create --device 1 --storage "$W/cow" --limit 1MiB --portion 1MiB --chunk-shift 16 -o json >/dev/null
"$S" snapshot take 2 -o json >"$W/take2.json"
img=$(json image <"$W/take2.json")
dd if=/dev/urandom of="$W/src2" bs=1M count=16 status=none
sum2=$(sha256sum <"$W/src2")
dd if="$W/src2" of=/mnt/o/big2 bs=1M conv=fsync status=none
sync
"$S" snapshot watch 2 --wait --since 0 --kind corrupted --timeout 60s || fail "no corrupted event"
"$S" snapshot watch 2 --wait --since 0 --kind overflow --timeout 10s || fail "no overflow event"
"$S" snapshot info 2 -o json | grep -q '"state": "corrupted"' || fail "state not corrupted: $("$S" snapshot info 2)"
"$S" snapshot info 2 -o json | grep -q '"corrupted": true' || fail "device 1 not marked corrupted: $("$S" snapshot info 2)"
if dd if="$img" of=/dev/null bs=1M count=64 iflag=direct 2>/dev/null; then fail "corrupted image read succeeded"; fi
echo 3 >/proc/sys/vm/drop_caches
[ "$(sha256sum </mnt/o/big2)" = "$sum2" ] || fail "origin damaged by the overflow"
step "overflow: corrupted event, image EIO, origin intact"
"$S" snapshot destroy 2
umount /mnt/o
"$S" device remove 1
noublk
step "destroy + remove: nothing left"

# SIGTERM under writes: every acknowledged write is on the backing file.
dev=$("$S" device add "$W/disk.img" -o json | json name)
: >"$W/acked"
( # The device is opened once, as fd 3: dd of=NAME would, once the device
  # is gone, create a regular file of that name on devtmpfs and report
  # success. Each write is fsynced before it counts as acknowledged.
  [ -b "$dev" ] || exit 0
  exec 3<>"$dev"
  for n in $(seq 0 4000); do
	# No seek=: busybox dd seeks stdout from its current offset; fd 3's
	# offset is n*4096 already, each write being one padded block.
	printf 'block %08d\n' "$n" | dd bs=4096 conv=sync,notrunc,fsync status=none >&3 2>/dev/null || exit 0
	echo "$n" >>"$W/acked"
  done ) &
WPID=$!
sleep 2
kill -TERM "$DPID"
wait "$DPID" || fail "daemon exit status $? after SIGTERM"
wait "$WPID" || true
[ ! -e "$dev" ] || fail "$dev still exists after SIGTERM ($(ls -l "$dev"))"
[ ! -e "$SNAPRING_SOCKET" ] || fail "socket left after SIGTERM"
noublk
n=0
while read -r b; do
	got=$(dd if="$W/disk.img" bs=4096 skip="$b" count=1 status=none | head -c 15)
	[ "$got" = "$(printf 'block %08d' "$b")" ] || fail "acknowledged block $b lost (got '$got')"
	n=$((n + 1))
done <"$W/acked"
[ "$n" -gt 0 ] || fail "no write was acknowledged"
step "SIGTERM: exit 0, $n acknowledged writes all on disk, socket removed"

# kill -9, then a restart removes what the dead daemon left.
startd
"$S" device add "$W/disk.img" >/dev/null
kill -9 "$DPID"
wait "$DPID" 2>/dev/null || true
ls /sys/block | grep -q ublkb || step "(the driver already removed the block device; its ublkc control device stays until deleted)"
startd
"$S" snapshot watch --wait --since 0 --kind stale-device --timeout 30s >"$W/stale" || fail "no stale-device event"
cat "$W/stale"
grep -q ' removed$' "$W/stale" || fail "stale device not removed: $(cat "$W/stale")"
noublk
kill -TERM "$DPID"
wait "$DPID" || fail "daemon exit status $?"
step "kill -9 + restart: stale device removed"
echo "daemon.sh: PASS"
