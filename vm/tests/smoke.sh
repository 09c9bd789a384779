#!/bin/bash
# Smoke test of the VM harness itself (runs inside the guest): ublk, device-mapper,
# fio, loop devices and e2fsprogs are all usable.
set -euo pipefail
step() { echo "smoke: $*"; }

step "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
[ -c /dev/ublk-control ] || { echo "smoke: /dev/ublk-control missing"; exit 1; }
step "/dev/ublk-control ok"
[ -b /dev/nullb0 ] || { echo "smoke: /dev/nullb0 (null_blk) missing"; exit 1; }
dmsetup version
[ -c /dev/mapper/control ] || { echo "smoke: /dev/mapper/control missing"; exit 1; }
dmsetup targets | grep -q '^snapshot ' || { echo "smoke: no dm snapshot target"; exit 1; }
step "dm snapshot target ok"
fio --version

img=/tmp/smoke.img
truncate -s 64M "$img"
loop=$(losetup -f --show "$img")
step "losetup $loop ok"
mkfs.ext4 -q -F "$loop"
e2fsck -fn "$loop" >/dev/null 2>&1
mkdir -p /mnt/smoke
mount -t ext4 "$loop" /mnt/smoke
echo hello >/mnt/smoke/f
umount /mnt/smoke
[ "$(debugfs -R 'cat /f' "$loop" 2>/dev/null)" = hello ] || { echo "smoke: debugfs readback failed"; exit 1; }
step "mkfs.ext4 + mount + e2fsck + debugfs on $loop ok"

# dm-snapshot on loop devices: write through the origin, the snapshot keeps the old data
truncate -s 16M /tmp/cow.img
cow=$(losetup -f --show /tmp/cow.img)
sz=$(blockdev --getsz "$loop")
dmsetup create smoke-origin --table "0 $sz snapshot-origin $loop"
dmsetup create smoke-snap --table "0 $sz snapshot $loop $cow P 8"
# the origin computes its bio split size (the snapshots' chunk size) on resume: without
# this suspend/resume a multi-chunk write to the origin would COW only its first chunk
dmsetup suspend smoke-origin
dmsetup resume smoke-origin
before=$(dd if=/dev/mapper/smoke-snap bs=1M count=1 2>/dev/null | sha256sum)
dd if=/dev/zero of=/dev/mapper/smoke-origin bs=1M count=1 oflag=direct 2>/dev/null
after=$(dd if=/dev/mapper/smoke-snap bs=1M count=1 iflag=direct 2>/dev/null | sha256sum)
[ "$before" = "$after" ] || { echo "smoke: snapshot changed after origin write"; exit 1; }
dmsetup remove smoke-snap
dmsetup remove smoke-origin
step "dm-snapshot origin/snapshot ok"

fio --name=smoke --filename=/tmp/fio.dat --size=16M --rw=randwrite --bs=4k \
	--ioengine=io_uring --iodepth=8 --runtime=2 --time_based --output-format=terse >/tmp/fio.out
step "fio io_uring ok"
losetup -d "$cow" "$loop"
[ -z "${SNAPRING_BIN:-}" ] || { "$SNAPRING_BIN" --help >/dev/null 2>&1 || true; step "snapring CLI present at $SNAPRING_BIN"; }
echo "smoke: PASS"
