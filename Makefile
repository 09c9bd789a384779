# snapring — see README.md. Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
OUT ?= out

.PHONY: run test lint vet staticcheck unit bench bench-uring fuzz deps build

build:
	$(GO) build -o bin/snapring ./cmd/snapring

test: lint unit

lint: vet staticcheck

vet:
	$(GO) vet ./...

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@latest

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 ./...

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

-include vm/vm.mk
