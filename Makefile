# snapring — see README.md. On a fresh machine: `make run` and `make test`.
# The Makefile installs what those need (staticcheck via go install; fio,
# liburing-dev, qemu and the guest kernel via apt for the VM tests).
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
OUT ?= out
FUZZTIME ?= 10s

.PHONY: run test lint fmt vet staticcheck unit bench bench-engine bench-uring fuzz build deps-host perf-ci deps-ci

build:
	$(GO) build -o bin/snapring ./cmd/snapring

# The main job: the default scenario, in process, on temp files, with a report.
run: build
	@mkdir -p $(OUT)
	./bin/snapring run default --out $(OUT)

test: lint unit fuzz vm-test

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l .); [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }

vet:
	$(GO) vet ./...

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@latest

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

# cmd/snapring's tests measure real runs and compare them statistically: they
# run after the other packages, alone, so that those do not add noise.
# deps-host first: the fio package's tests run the real fio.
unit: deps-host
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v -e /cmd/ -e /ci$$)
	$(GO) test -race -count=1 -p 1 -timeout 15m ./ci/ ./cmd/...
	$(GO) test -count=1 -run 'AllocsPerOp|NoAllocOnHotPath' ./bench/ ./uring/

# Short native fuzzing of every decoder (longer with FUZZTIME=5m).
fuzz:
	@set -e; for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$spec/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$spec $$f"; out=$$($(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s $$spec 2>&1) || { echo "$$out"; exit 1; }; \
	  done; done

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

# The engine's performance goals, each the median engine/raw ratio of PAIRS
# alternating pairs of runs, on tmpfs and on a disk file system (/var/tmp).
PAIRS ?= 7
bench-engine:
	bench/engine-goals.sh $(PAIRS)

# io_uring micro figures beside their baselines in one run: Go NOPs vs C
# liburing NOPs and vs a C loop on the raw syscalls with NO_SQARRAY (as
# snapring and liburing 2.5+ set up), then fio vs snapring on 4 KiB random
# reads at QD32 on tmpfs.
bench-uring: build deps-host
	$(GO) test -c -o bin/uring.test ./uring/
	gcc -O2 -o bin/liburing_nop bench/cbench/liburing_nop.c -luring
	gcc -O2 -o bin/raw_nop bench/cbench/raw_nop.c
	@for i in 1 2 3 4 5; do \
	  c=$$(./bin/liburing_nop | awk '{print $$(NF-1)}'); \
	  r=$$(./bin/raw_nop | awk '{print $$(NF-3)}'); \
	  g=$$(./bin/uring.test -test.run='^$$' -test.bench='Nop$$' -test.benchtime=20000000x | awk '/^BenchmarkNop/{print $$3}'); \
	  awk -v c=$$c -v r=$$r -v g=$$g 'BEGIN { printf "NOP batch 32: liburing %.1f ns, C without liburing (NO_SQARRAY) %.1f ns, snapring %.1f ns; snapring/liburing %.3f, snapring/C %.3f\n", c, r, g, g / c, g / r }'; \
	done
	./bin/uring.test -test.run='^$$' -test.bench='4K$$' -test.benchmem -test.count=3
	./bin/snapring uring-bench --fio --rw randread --bs 4096 --qd 32 --runtime 10s

# The pull-request performance check of .github/workflows/perf.yml, locally
# (docs/ci.md): PERF_SUITE (ci/suites/pr.yaml) run by snapring built at
# PERF_BASE (main) and by the working tree, then judged; or against a stored
# baseline with PERF_BASELINE=DIR|FILE.tar.gz|git:REV:PATH. Output in
# PERF_OUT (out/perf-ci/<time>); exit 0 pass, 1 regression, 2 no verdict.
perf-ci: deps-ci
	GO="$(GO)" ci/perf-ci.sh

# xmllint, which ci's tests use (beside their own Go check) to validate the
# JUnit output against ci/testdata/junit.xsd.
deps-ci:
	@command -v xmllint >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libxml2-utils; }

deps-host:
	@command -v fio >/dev/null && [ -f /usr/include/liburing.h ] || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fio liburing-dev gcc; }

-include vm/vm.mk

# The daemon's soak: create/take/info/destroy loops through the API under
# origin writes, RSS/goroutines/fds at start and end (SOAK=60s in CI).
SOAK ?= 10m
.PHONY: soak
soak:
	SNAPRING_SOAK=$(SOAK) $(GO) test -count=1 -run '^TestSoak$$' -v -timeout $$(( $$(echo $(SOAK) | sed 's/m$$/*60/;s/s$$//') + 300 ))s ./daemon/
