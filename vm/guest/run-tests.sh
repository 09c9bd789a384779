#!/bin/bash
# Runs inside the VM (copied to /payload/run-tests.sh by vm/payload.sh): every Go test
# binary /payload/pkgs/<name>/<name>.test (cwd = its dir, which holds a copy of the
# package's testdata/), then every /payload/tests/*.sh. Extra arguments go to each
# test binary (after -test.v -test.count=1). Exits 1 if anything failed.
set -u
export SNAPRING_VM=1
[ -x /payload/bin/snapring ] && export SNAPRING_BIN=/payload/bin/snapring

results=() failed=0
run() { # label cmd...
	local label=$1 start rc
	shift
	echo "=== VM RUN $label"
	start=$(date +%s)
	"$@"
	rc=$?
	local st=PASS
	[ $rc -eq 0 ] || { st="FAIL (exit $rc)"; failed=1; }
	results+=("$st  $label  $(($(date +%s) - start))s")
	echo "=== VM $st $label"
}

for t in /payload/pkgs/*/*.test; do
	[ -x "$t" ] || continue
	run "go test $(basename "$t" .test)" bash -c 'cd "$(dirname "$1")" && exec "$1" -test.v -test.count=1 "${@:2}"' _ "$t" "$@"
done
for s in /payload/tests/*.sh; do
	[ -f "$s" ] || continue
	run "script $(basename "$s")" bash -c 'cd /payload/tests && exec "$1"' _ "$s"
done

echo "=== VM SUMMARY"
[ ${#results[@]} -gt 0 ] || { echo "no tests found in /payload"; exit 1; }
printf '  %s\n' "${results[@]}"
exit $failed
