#!/usr/bin/env bash
# vm/deps.sh — install (only if missing) the host packages the VM harness needs and
# download + extract (not install) the guest kernel into $VM_CACHE. Idempotent: on a
# machine where everything is present it does no network I/O and takes well under 1 s.
#
# Env: VM_CACHE (default ~/.cache/snapring-vm)
#      VM_KERNEL_PATTERN (default '^linux-image-6\.18\.[0-9]+\+deb13-amd64$')
#      VM_KERNEL_SOURCE  (default 'http://deb.debian.org/debian trixie-backports main')
#
# The guest kernel comes from Debian trixie-backports (6.18, the host kernel's series: ublk zero copy with
# AUTO_BUF_REG, which bookworm's 6.12 lacks), looked up with a private apt state under
# $VM_CACHE/apt so that the host's apt sources stay as they are. The archive is checked
# against the host's debian-archive-keyring (which has trixie's keys). The older guest:
# VM_KERNEL_SOURCE='http://deb.debian.org/debian-security bookworm-security main'
# VM_KERNEL_PATTERN='^linux-image-6\.12\.[0-9]+\+deb12-amd64$'
set -euo pipefail

VM_CACHE=${VM_CACHE:-$HOME/.cache/snapring-vm}
VM_KERNEL_PATTERN=${VM_KERNEL_PATTERN:-'^linux-image-6\.18\.[0-9]+\+deb13-amd64$'}
VM_KERNEL_SOURCE=${VM_KERNEL_SOURCE:-'http://deb.debian.org/debian trixie-backports main'}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
PKGS=(qemu-system-x86 busybox-static cpio xz-utils fio dmsetup e2fsprogs)

log() { echo "vm-deps: $*" >&2; }
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { log "not root and no sudo: cannot apt-get install"; exit 1; }
	SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive

updated=0
apt_update() {
	[ "$updated" = 1 ] && return 0
	log "apt-get update"
	"${SUDO[@]}" apt-get update -qq
	updated=1
}

# 1. host packages
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	apt_update
	log "apt-get install ${missing[*]}"
	"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. guest kernel: newest package matching VM_KERNEL_PATTERN in VM_KERNEL_SOURCE,
#    downloaded and extracted (never installed)
mkdir -p "$VM_CACHE/kernel"
if [ -e "$VM_CACHE/kernel/current/.complete" ] && grep -qE "$VM_KERNEL_PATTERN" "$VM_CACHE/kernel/current/.complete"; then
	# a matching kernel is cached: use it, stay offline
	log "kernel: using cached $(readlink "$VM_CACHE/kernel/current")"; exit 0
fi
APT_DIR="$VM_CACHE/apt"
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
echo "deb [signed-by=$KEYRING] $VM_KERNEL_SOURCE" >"$APT_DIR/sources.list"
APT_OPTS=(-o "Dir::Etc::sourcelist=$APT_DIR/sources.list" -o Dir::Etc::sourceparts=-
	-o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache" -o APT::Sandbox::User=root)
kernel_update() {
	log "apt-get update ($VM_KERNEL_SOURCE)"
	"${SUDO[@]}" apt-get "${APT_OPTS[@]}" update -qq
}
newest() { apt-cache "${APT_OPTS[@]}" search --names-only "$VM_KERNEL_PATTERN" | awk '{print $1}' | sort -V | tail -n1; }
kernel_update
pkg=$(newest)
[ -n "$pkg" ] || { log "no package matches $VM_KERNEL_PATTERN in $VM_KERNEL_SOURCE"; exit 1; }
ver=${pkg#linux-image-}
dest="$VM_CACHE/kernel/$ver"
if [ ! -e "$dest/.complete" ]; then
	tmp=$(mktemp -d "$VM_CACHE/kernel/.dl.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	log "downloading $pkg (~110 MB)"
	# apt-get download runs as the invoking user; chmod so the _apt sandbox user can write
	chmod 0777 "$tmp"
	(cd "$tmp" && "${SUDO[@]}" apt-get "${APT_OPTS[@]}" download -qq "$pkg")
	log "extracting $pkg"
	rm -rf "$dest"
	mkdir -p "$tmp/x"
	dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"
	# keep only what the VM needs: the kernel, its config and the modules tree
	mkdir -p "$dest"
	mv "$tmp/x/boot/vmlinuz-$ver" "$dest/vmlinuz"
	mv "$tmp/x/boot/config-$ver" "$dest/config"
	mods="$tmp/x/lib/modules/$ver"
	[ -d "$mods" ] || mods="$tmp/x/usr/lib/modules/$ver" # trixie's packages: merged /usr
	mv "$mods" "$dest/modules"
	echo "$pkg" >"$dest/.complete"
	rm -rf "$tmp"
	trap - EXIT
	# drop older cached kernels
	for d in "$VM_CACHE"/kernel/*/; do
		d=${d%/}
		[ "$d" = "$dest" ] || [ -L "$d" ] || rm -rf "$d"
	done
fi
ln -sfn "$ver" "$VM_CACHE/kernel/current"
log "ok: kernel $ver in $dest"
