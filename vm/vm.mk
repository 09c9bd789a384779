# vm/vm.mk — VM test harness (included by the top Makefile). See vm/README.md.
#
#   make vm-deps   install qemu/busybox/fio/dmsetup/e2fsprogs (apt, only if missing) and
#                  download + extract the guest kernel into $(VM_CACHE)
#   make vm-test   build the VM payload (static test binaries of $(VM_TEST_PKGS), the
#                  snapring CLI, vm/tests/*.sh) and run it all inside a qemu VM
#
# Overridable: VM_TEST_PKGS, VM_CACHE, VM_MEM, VM_SMP, VM_TIMEOUT, VM_GO_TEST_FLAGS,
#              VM_PAYLOAD, VM_CLI_PKG.

VM_CACHE ?= $(HOME)/.cache/snapring-vm
VM_TEST_PKGS ?= ./ublk/... ./fio/...
VM_MEM ?= 2G
VM_SMP ?= 2
VM_TIMEOUT ?= 900
# extra flags for every test binary in the guest (after -test.v -test.count=1)
VM_GO_TEST_FLAGS ?= -test.timeout=10m
VM_PAYLOAD ?= $(or $(OUT),out)/vm-payload
VM_CLI_PKG ?= ./cmd/snapring

export VM_CACHE

.PHONY: vm-deps vm-test vm-payload

vm-deps:
	@vm/deps.sh

vm-payload:
	@GO="$(or $(GO),go)" VM_CLI_PKG="$(VM_CLI_PKG)" vm/payload.sh "$(VM_PAYLOAD)" $(VM_TEST_PKGS)

vm-test: vm-deps vm-payload
	vm/run.sh --mem $(VM_MEM) --smp $(VM_SMP) --timeout $(VM_TIMEOUT) -- "$(VM_PAYLOAD)" ./run-tests.sh $(VM_GO_TEST_FLAGS)

# The fio issue's measurements: `snapring fio` with the randwrite-4k and read-1m
# presets on raw (a loop device), passthrough, origin (with an active snapshot), image
# and dm-snapshot, ROUNDS (3) interleaved rounds, in one VM run; the results (JSON, our
# schema) and HTML reports land in $(VM_BENCH_OUT). vm-bench-shell is the older shell
# table (vm/bench/compare.sh: user copy on/off, stacked on loop vs over the files).
VM_BENCH_OUT ?= $(or $(OUT),out)/vm-bench
ROUNDS ?= 3
BENCH_RUNTIME ?= 10
BENCH_SIZE_MB ?= 256
.PHONY: vm-bench vm-bench-shell vm-bench-payload
# The benchmark payload: the snapring CLI and vm/bench/*.sh.
vm-bench-payload: vm-deps
	@GO="$(or $(GO),go)" VM_CLI_PKG="$(VM_CLI_PKG)" vm/payload.sh "$(VM_PAYLOAD)-bench"
	@mkdir -p "$(VM_PAYLOAD)-bench/bench" && install -m 0755 vm/bench/*.sh "$(VM_PAYLOAD)-bench/bench/"

vm-bench: vm-bench-payload
	vm/run.sh --mem 2G --smp 2 --timeout 3000 -- "$(VM_PAYLOAD)-bench" bash bench/fio.sh $(ROUNDS) $(BENCH_RUNTIME) $(BENCH_SIZE_MB) \
	  | tee "$(VM_PAYLOAD)-bench.log" | sed -u '/^@@FIO-RESULTS-BEGIN@@$$/,/^@@FIO-RESULTS-END@@$$/d'; \
	  test $${PIPESTATUS[0]} -eq 0
	vm/bench/extract.sh "$(VM_PAYLOAD)-bench.log" "$(VM_BENCH_OUT)"

vm-bench-shell: vm-bench-payload
	vm/run.sh --mem 2G --smp 2 --timeout 1200 -- "$(VM_PAYLOAD)-bench" bash bench/compare.sh

# A CPU profile of snapring serving one fio preset on one target in the VM
# (vm/bench/profile.sh): PRESET (randwrite-4k), TARGET (origin); the profile
# lands in $(VM_BENCH_OUT)/cpu.prof, read with
# go tool pprof -top $(VM_PAYLOAD)-bench/bin/snapring $(VM_BENCH_OUT)/cpu.prof
PRESET ?= randwrite-4k
TARGET ?= origin
.PHONY: vm-profile
vm-profile: vm-bench-payload
	vm/run.sh --mem 2G --smp 2 --timeout 1200 -- "$(VM_PAYLOAD)-bench" bash bench/profile.sh $(PRESET) $(TARGET) $(BENCH_RUNTIME) \
	  | tee "$(VM_PAYLOAD)-profile.log" | sed -u '/^@@PROFILE-BEGIN@@$$/,/^@@PROFILE-END@@$$/d'; \
	  test $${PIPESTATUS[0]} -eq 0
	@mkdir -p "$(VM_BENCH_OUT)"
	sed -n '/^@@PROFILE-BEGIN@@$$/,/^@@PROFILE-END@@$$/p' "$(VM_PAYLOAD)-profile.log" | sed '1d;$$d' | base64 -d >"$(VM_BENCH_OUT)/cpu.prof"
	@echo "vm-profile: $(VM_BENCH_OUT)/cpu.prof (go tool pprof -top $(VM_PAYLOAD)-bench/bin/snapring $(VM_BENCH_OUT)/cpu.prof)"

# A kernel and user profile of the whole guest (perf record -a -g) while one fio
# preset (PRESET) runs on each of KTARGETS (origin dm-snapshot passthrough):
# vm/bench/kprofile.sh, reports on stdout; FIO_FLAGS for snapring fio run. Needs
# the perf binary on the host (PERF: the linux-perf package's perf for a kernel
# of the guest's series; a wrapper script cannot be copied into the guest).
KTARGETS ?= origin dm-snapshot passthrough
PERF ?= $(shell command -v perf)
.PHONY: vm-kprofile
vm-kprofile: vm-bench-payload
	@[ -n "$(PERF)" ] && [ "$$(head -c 4 "$(PERF)" | tail -c 3)" = ELF ] || { echo "vm-kprofile: no perf binary (set PERF=/path/to/perf; apt-get install linux-perf)" >&2; exit 2; }
	VM_BINS="bash fio dmsetup losetup blockdev $(PERF)" \
	  vm/run.sh --mem 2G --smp 2 --timeout 2400 -- "$(VM_PAYLOAD)-bench" env FIO_FLAGS="$(FIO_FLAGS)" bash bench/kprofile.sh $(PRESET) $(KTARGETS)

# The daemon's figures: take -> taken with and without freeze, and the
# origin write throughput with metrics on against off (vm/bench/daemon.sh).
.PHONY: vm-bench-daemon
vm-bench-daemon: vm-bench-payload
	vm/run.sh --mem 2G --smp 2 --timeout 1800 -- "$(VM_PAYLOAD)-bench" bash bench/daemon.sh
