#!/bin/bash
# vm/bench/extract.sh LOG OUT_DIR — unpacks the results vm/bench/fio.sh printed (a
# base64 tar.gz between @@FIO-RESULTS-BEGIN@@ and @@FIO-RESULTS-END@@) into OUT_DIR.
set -euo pipefail
log=${1:?usage: vm/bench/extract.sh LOG OUT_DIR}
out=${2:?usage: vm/bench/extract.sh LOG OUT_DIR}
grep -qx '@@FIO-RESULTS-END@@' "$log" || { echo "extract: no complete results in $log" >&2; exit 1; }
mkdir -p "$out"
sed -n '/^@@FIO-RESULTS-BEGIN@@$/,/^@@FIO-RESULTS-END@@$/p' "$log" | sed '1d;$d' | base64 -d | tar -C "$out" -xzf -
echo "extract: $(ls "$out" | grep -c '\.json$') results and $(ls "$out" | grep -c '\.html$') reports in $out"
