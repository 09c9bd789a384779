#!/usr/bin/env bash
# vm/payload.sh OUT_DIR [PKG_PATTERN...] — build the `make vm-test` payload into OUT_DIR
# (recreated):
#   OUT_DIR/run-tests.sh          guest driver (vm/guest/run-tests.sh)
#   OUT_DIR/pkgs/<name>/<name>.test  static test binary of every matched package that
#                                 has tests (+ a copy of its testdata/); <name> is the
#                                 package path relative to the module, '/' -> '_'
#   OUT_DIR/bin/snapring          the CLI ($VM_CLI_PKG, default ./cmd/snapring; skipped
#                                 if that package has no Go files yet or VM_CLI_PKG=)
#   OUT_DIR/tests/*.sh            vm/tests/*.sh
# Binaries are CGO_ENABLED=0 GOAMD64=v1 (static, x86-64-v1 to match `-cpu qemu64`).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GO=${GO:-go}
VM_CLI_PKG=${VM_CLI_PKG-./cmd/snapring}
out=${1:?usage: vm/payload.sh OUT_DIR [PKG_PATTERN...]}
shift
export CGO_ENABLED=0 GOAMD64=v1 GOOS=linux GOARCH=amd64

rm -rf "$out"
mkdir -p "$out/pkgs" "$out/bin" "$out/tests"
install -m 0755 "$HERE/guest/run-tests.sh" "$out/run-tests.sh"

if [ $# -gt 0 ]; then
	mod=$($GO list -m)
	# -e: packages that fail to load still show up (and then fail in `go test -c`)
	$GO list -e -f '{{.ImportPath}}|{{.Dir}}|{{len .TestGoFiles}}|{{len .XTestGoFiles}}' "$@" |
		while IFS='|' read -r ip dir nt nx; do
			if [ "$nt" = 0 ] && [ "$nx" = 0 ]; then
				echo "vm-payload: $ip: no test files, skipped" >&2
				continue
			fi
			rel=${ip#"$mod"}; rel=${rel#/}
			name=${rel//\//_}; name=${name:-root}
			mkdir -p "$out/pkgs/$name"
			echo "vm-payload: go test -c $ip" >&2
			$GO test -c -o "$out/pkgs/$name/$name.test" "$ip"
			if [ ! -e "$out/pkgs/$name/$name.test" ]; then
				rmdir "$out/pkgs/$name"; continue
			fi
			if [ -d "$dir/testdata" ]; then cp -a "$dir/testdata" "$out/pkgs/$name/"; fi
		done
fi

if [ -n "$VM_CLI_PKG" ]; then
	if compgen -G "${VM_CLI_PKG%/...}/*.go" >/dev/null; then
		echo "vm-payload: go build $VM_CLI_PKG" >&2
		$GO build -o "$out/bin/snapring" "$VM_CLI_PKG"
	else
		echo "vm-payload: $VM_CLI_PKG has no Go files yet, CLI not included" >&2
	fi
fi

for s in "$HERE"/tests/*.sh; do
	if [ -f "$s" ]; then install -m 0755 "$s" "$out/tests/"; fi
done
echo "vm-payload: $(find "$out" -type f | wc -l) files, $(du -sh "$out" | cut -f1) in $out" >&2
