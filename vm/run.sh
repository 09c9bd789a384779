#!/usr/bin/env bash
# vm/run.sh — run COMMAND inside a throwaway qemu VM (TCG) with the Debian 6.12 kernel
# (ublk, loop, device-mapper incl. dm-snapshot), with PAYLOAD_DIR mounted at /payload.
#
#   vm/run.sh [--mem 2G] [--smp 2] [--timeout 900] [--] PAYLOAD_DIR COMMAND [ARGS...]
#
# COMMAND runs under /bin/bash in the guest with cwd /payload; its stdout+stderr are
# streamed to our stdout, and we exit with its exit code. If the guest never reports an
# exit code (timeout, kernel panic, hang) we print the console tail and exit non-zero
# (124 on timeout, 125 otherwise).
#
# Needs `make vm-deps` (vm/deps.sh) to have run. The base initramfs (busybox, modules,
# fio, dmsetup, e2fsprogs, bash) is built once and cached in $VM_CACHE; each run only
# appends a small second cpio archive holding the payload.
#
# Env: VM_CACHE    cache dir (default ~/.cache/snapring-vm)
#      VM_MODULES  kernel modules to load (deps are added automatically); a name ending
#                  in ? is optional: skipped where the kernel has no such module (6.12's ext4
#                  needs crc32c_generic for metadata checksums; 6.15+ calls the crc32c library)
#      VM_BINS     host binaries copied into the guest with their library closure
#      VM_ACCEL    qemu accelerator (default tcg; KVM does not work on our build hosts)
#      VM_CPU      qemu cpu model (default qemu64 = x86-64-v1: fast under TCG)
#      VM_BIOS     qemu firmware (default qboot.rom if present; empty = SeaBIOS)
#      VM_APPEND   extra kernel command line arguments
#      VM_CONSOLE_LOG  if set, the guest's serial console log is copied there
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_CACHE=${VM_CACHE:-$HOME/.cache/snapring-vm}
VM_MODULES=${VM_MODULES:-ublk_drv loop dm-mod dm-bufio dm-snapshot null_blk ext4 crc32c_generic?}
VM_BINS=${VM_BINS:-bash fio dmsetup mke2fs mkfs.ext4 e2fsck debugfs losetup blockdev}
VM_ACCEL=${VM_ACCEL:-tcg}
VM_CPU=${VM_CPU:-qemu64}
MEM=2G SMP=2 TIMEOUT=900

die() { echo "vm/run.sh: $*" >&2; exit 125; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

while [ $# -gt 0 ]; do
	case $1 in
	--mem) MEM=$2; shift 2 ;;
	--smp) SMP=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	-h | --help) usage ;;
	--) shift; break ;;
	-*) echo "vm/run.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -ge 2 ] || usage
PAYLOAD=$1; shift
[ -d "$PAYLOAD" ] || die "payload dir $PAYLOAD does not exist"

KDIR=$VM_CACHE/kernel/current
[ -e "$KDIR/vmlinuz" ] || die "no guest kernel in $KDIR: run 'make vm-deps' first"
KVER=$(readlink "$KDIR")
PATH=$PATH:/usr/sbin:/sbin
for t in qemu-system-x86_64 busybox cpio xz ldd timeout; do
	command -v "$t" >/dev/null || die "$t not found: run 'make vm-deps' first"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/snapring-vm.XXXXXX")
qpid=
cleanup() {
	# background jobs of a script ignore SIGINT: stop qemu ourselves on ^C/cancel
	[ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- base initramfs ----
# Library closure (from ldd) of the host binaries, plus the binaries themselves.
bins=() files=()
for b in $VM_BINS; do
	p=$(command -v "$b") || die "host binary $b not found (apt package missing? run make vm-deps)"
	bins+=("$p")
	while read -r f; do files+=("$f"); done < <(ldd "$p" 2>/dev/null |
		awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
done
mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u)

# Kernel modules in load order (dependencies first), from each module's depends=.
declare -A modfile=() seen=()
order=()
modpath() { # name -> path of its .ko[.xz] ('' if built in)
	local n=$1 alt
	alt=$(tr '_-' '-_' <<<"$n")
	local f
	f=$(find "$KDIR/modules/kernel" \( -name "$n.ko" -o -name "$n.ko.*" -o -name "$alt.ko" \
		-o -name "$alt.ko.*" \) -print -quit)
	if [ -z "$f" ] && [ "${2:-}" != optional ]; then
		grep -qE "/($n|$alt)\.ko\$" "$KDIR/modules/modules.builtin" ||
			die "kernel module $n is neither in $KDIR/modules nor built in"
	fi
	echo "$f"
}
modcat() { case $1 in *.xz) xz -dc "$1" ;; *.zst) zstd -dc "$1" ;; *) cat "$1" ;; esac; }
addmod() {
	local n=$1 f d opt=
	case $n in *\?) n=${n%\?} opt=optional ;; esac
	n=${n//-/_}
	[ -n "${seen[$n]:-}" ] && return 0
	seen[$n]=1
	f=$(modpath "$n" $opt)
	[ -n "$f" ] || return 0
	for d in $(modcat "$f" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '); do
		addmod "$d"
	done
	modfile[$n]=$f
	order+=("$n")
}
for m in $VM_MODULES; do addmod "$m"; done

key=$( {
	echo "$KVER" "${order[*]}" "$VM_BINS"
	cat "$HERE/run.sh" "$HERE/guest/init" /bin/busybox | sha256sum
	stat -L -c '%n %s %Y' "${bins[@]}" "${files[@]}"
} | sha256sum | cut -c1-16)
BASE=$VM_CACHE/initramfs-$key.cpio

if [ ! -s "$BASE" ]; then
	echo "vm/run.sh: building base initramfs $BASE" >&2
	R=$TMP/base
	mkdir -p "$R"/{usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,tmp,run,etc,root,mnt,payload,lib/modules}
	mv "$R/lib/modules" "$R/usr/lib/modules" && rmdir "$R/lib"
	# merged-/usr layout like the host, so ldd's paths and shebangs resolve
	ln -s usr/bin "$R/bin"; ln -s usr/sbin "$R/sbin"; ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"
	cp /bin/busybox "$R/usr/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -s busybox "$R/usr/bin/$a"
	done
	for f in "${files[@]}"; do
		mkdir -p "$R$(dirname "$f")"
		cp -L "$f" "$R$f"
	done
	for p in "${bins[@]}"; do
		n=$(basename "$p")
		case $(dirname "$(realpath "$p")") in */sbin) d=usr/sbin ;; *) d=usr/bin ;; esac
		rm -f "$R/usr/bin/$n" "$R/usr/sbin/$n" # busybox applet of the same name
		cp -L "$p" "$R/$d/$n"
	done
	[ -e /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$R/etc/"
	echo 'root:x:0:0:root:/root:/bin/bash' >"$R/etc/passwd"
	echo 'root:x:0:' >"$R/etc/group"
	for n in "${order[@]}"; do modcat "${modfile[$n]}" >"$R/lib/modules/$n.ko"; done
	printf '%s\n' "${order[@]}" >"$R/lib/modules/load-order"
	install -m 0755 "$HERE/guest/init" "$R/init"
	(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$TMP/base.cpio"
	mv "$TMP/base.cpio" "$BASE.tmp$$" && mv "$BASE.tmp$$" "$BASE"
	rm -rf "$R"
	# drop base archives of other keys
	for f in "$VM_CACHE"/initramfs-*.cpio; do [ "$f" = "$BASE" ] || rm -f "$f"; done
fi

# ---------------------------------------------------------------- per-run archive ----
P=$TMP/run
mkdir -p "$P/payload"
cp -a "$PAYLOAD/." "$P/payload/"
{
	printf '%q ' "$@"
	echo
} >"$P/.snapring-cmd"
(cd "$P" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$TMP/run.cpio"
cat "$BASE" "$TMP/run.cpio" >"$TMP/initrd.cpio"
rm -rf "$P" "$TMP/run.cpio"

# ---------------------------------------------------------------------- run qemu ----
: >"$TMP/out.log"
: >"$TMP/console.log"
cpuopt=(-cpu "$VM_CPU")
# qboot (shipped with qemu) boots a -kernel ~2 s faster than SeaBIOS under TCG
biosopt=()
VM_BIOS=${VM_BIOS-qboot.rom}
if [ -n "$VM_BIOS" ] && { [ -e "/usr/share/qemu/$VM_BIOS" ] || [ -e "$VM_BIOS" ]; }; then
	biosopt=(-bios "$VM_BIOS")
fi
[ "$VM_ACCEL" = kvm ] && [ "$VM_CPU" = qemu64 ] && cpuopt=(-cpu host)
start=$(date +%s)
set +e
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -accel "$VM_ACCEL" "${cpuopt[@]}" \
	"${biosopt[@]}" -m "$MEM" -smp "$SMP" -display none -monitor none -no-reboot -nodefaults \
	-serial "file:$TMP/console.log" \
	-device virtio-serial-pci -chardev "file,id=out,path=$TMP/out.log" \
	-device virtserialport,chardev=out,name=out \
	-kernel "$KDIR/vmlinuz" -initrd "$TMP/initrd.cpio" \
	-append "console=ttyS0 quiet panic=-1 ${VM_APPEND:-}" </dev/null &
qpid=$!
# stream the guest's output while it runs (tail reads to EOF once qemu has exited)
tail -n +1 -f -s 0.2 --pid="$qpid" "$TMP/out.log" | sed -u '/^@@SNAPRING-OUTPUT-END@@$/d' &
tpid=$!
wait "$qpid"
qrc=$?
qpid=
wait "$tpid"
set -e
elapsed=$(($(date +%s) - start))
[ -z "${VM_CONSOLE_LOG:-}" ] || cp "$TMP/console.log" "$VM_CONSOLE_LOG"

console_tail() {
	echo "---- guest console (last 40 lines) ----" >&2
	tr -d '\r' <"$TMP/console.log" | tail -n 40 >&2
	echo "---------------------------------------" >&2
}
grc=$(tr -d '\r' <"$TMP/console.log" | sed -n 's/^SNAPRING_VM_EXIT=\([0-9][0-9]*\)$/\1/p' | tail -n1)
if [ -z "$grc" ]; then
	console_tail
	if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
		echo "vm/run.sh: TIMEOUT: the VM did not finish within ${TIMEOUT}s (killed)" >&2
		exit 124
	fi
	echo "vm/run.sh: FAIL: the VM stopped (qemu exit $qrc after ${elapsed}s) without reporting" \
		"an exit code: kernel panic, crash or the guest init died" >&2
	exit 125
fi
if ! grep -qx '@@SNAPRING-OUTPUT-END@@' "$TMP/out.log"; then
	echo "vm/run.sh: warning: guest output may be truncated (no end marker)" >&2
fi
echo "vm/run.sh: guest command exited $grc (VM ran ${elapsed}s, kernel $KVER)" >&2
exit "$grc"
