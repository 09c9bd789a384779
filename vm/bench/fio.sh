#!/bin/bash
# vm/bench/fio.sh [ROUNDS [RUNTIME_S [SIZE_MB]]] — runs inside the VM (make vm-bench): `snapring fio` with the
# randwrite-4k and read-1m presets on the raw loop device, our passthrough, our
# ublk null device (no backing: the floor of the ublk crossing), our
# origin with an active snapshot, its image and dm-snapshot's origin with an active
# snapshot: same backing (a loop device over a tmpfs file), same sizes, same chunk
# size (4 KiB) for both snapshots, ROUNDS interleaved rounds (the order rotates). The
# results (our schema, JSON) and one HTML report per preset and target are printed as
# a base64 tar.gz between @@FIO-RESULTS-BEGIN@@ and @@FIO-RESULTS-END@@, which
# vm/bench/extract.sh unpacks on the host. TCG makes absolute figures meaningless:
# read the ratios against raw of the same round (and the medians over rounds).
set -euo pipefail
SNAPRING=${SNAPRING_BIN:-/payload/bin/snapring}
ROUNDS=${1:-${ROUNDS:-3}}
RUNTIME=${2:-${BENCH_RUNTIME:-10}}
SIZE_MB=${3:-${BENCH_SIZE_MB:-256}}
PRESETS=${PRESETS:-randwrite-4k read-1m}
TARGETS=${TARGETS:-raw,passthrough,null,origin,image,dm-snapshot}
out=$(mktemp -d /tmp/fio-bench.XXXXXX)
echo "fio-bench: kernel $(uname -r), $(nproc) cpus, $(fio --version), ${SIZE_MB} MiB tmpfs backing via loop, ${RUNTIME}s per job, ${ROUNDS} rounds"
for preset in $PRESETS; do
	echo "fio-bench: preset $preset"
	"$SNAPRING" fio run --preset "$preset" --target "$TARGETS" --rounds "$ROUNDS" \
		--runtime "${RUNTIME}s" --size "${SIZE_MB}MiB" --loop on --out "$out" --html -q |
		grep -v '^result: \|^report: '
done
echo @@FIO-RESULTS-BEGIN@@
tar -C "$out" -czf - . | base64
echo @@FIO-RESULTS-END@@
rm -rf "$out"
