#!/bin/bash
# vm/bench/profile.sh [PRESET [TARGET [RUNTIME_S]]] — runs inside the VM (make vm-profile):
# one `snapring fio run` of PRESET (randwrite-4k) on TARGET (origin) with a CPU profile of
# the snapring process (--cpuprofile: its Go code and the syscalls of its threads, not
# fio's or the kernel's work elsewhere), printed as base64 between @@PROFILE-BEGIN@@ and
# @@PROFILE-END@@ for vm/bench/extract.sh --profile. Read it on the host against the same
# binary: go tool pprof -top out/vm-payload-bench/bin/snapring out/vm-bench/cpu.prof
set -euo pipefail
SNAPRING=${SNAPRING_BIN:-/payload/bin/snapring}
PRESET=${1:-randwrite-4k}
TARGET=${2:-origin}
RUNTIME=${3:-10}
out=$(mktemp -d /tmp/fio-profile.XXXXXX)
echo "fio-profile: kernel $(uname -r), $(nproc) cpus, preset $PRESET, target $TARGET, ${RUNTIME}s"
"$SNAPRING" --cpuprofile "$out/cpu.prof" fio run --preset "$PRESET" --target "raw,$TARGET" --rounds 1 \
	--runtime "${RUNTIME}s" --size 256MiB --loop on --out "$out" -q | grep -v '^result: '
echo @@PROFILE-BEGIN@@
base64 "$out/cpu.prof"
echo @@PROFILE-END@@
rm -rf "$out"
