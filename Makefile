# hyhome: one binary, one reference stack. `make test` is what CI runs.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/hyhome
PKGS  := ./...
FUZZTIME ?= 20000x

.PHONY: all build test unit vet fuzz-smoke docs docs-check image clean bench

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN) ./cmd/hyhome

# The one test command (README, .ci/run): vet, every test against the real
# engine and the Debian Prometheus/Alertmanager, generated-docs drift and a
# short fuzz pass over every fuzz target.
test: vet unit docs-check fuzz-smoke

vet:
	$(GO) vet $(PKGS)

# The tests share the engine with whatever else runs on the machine.
# testsweep removes what finished test processes left (never a running
# one's), before and after; afterwards it fails the run when this run's tests
# (its HYHOME_TEST_SESSION) left anything. See internal/dockertest.
unit:
	@export HYHOME_TEST_SESSION=$$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n'); \
	sweep=$$(mktemp -d)/testsweep; \
	$(GO) build -o $$sweep ./internal/dockertest/cmd/testsweep && $$sweep before || exit 1; \
	$(GO) test -count=1 -timeout 12m $(PKGS); rc=$$?; \
	$$sweep after || rc=1; rm -rf $$(dirname $$sweep); exit $$rc

# Run each fuzz target briefly; crashers found land in testdata/fuzz and stay
# as regression cases. The budget is a count of executions, not a duration:
# Go 1.26's fuzz coordinator can fail a run that found nothing with "context
# deadline exceeded" when a -fuzztime deadline races a busy worker
# (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
fuzz-smoke:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -hoE '^func Fuzz[A-Za-z0-9_]+' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s $$pkg; \
	  done; \
	done

# Generated docs: the rule catalogue, the guard's field table and the CLI
# reference (one page per command, from the cobra commands; a separate
# program, so that cobra/doc stays out of the binary). docs-check, part of
# `make test`, fails when a committed page differs from what these write.
docs:
	$(GO) run ./cmd/hyhome rules --format markdown > docs/rules.md
	$(GO) run ./cmd/hyhome guard fields > docs/guard-fields.md
	$(GO) run ./internal/cli/clidoc docs/cli

docs-check:
	@tmp=$$(mktemp); $(GO) run ./cmd/hyhome rules --format markdown > $$tmp; \
	if ! diff -u docs/rules.md $$tmp; then echo "docs/rules.md is stale: run 'make docs'"; rm -f $$tmp; exit 1; fi; rm -f $$tmp
	@tmp=$$(mktemp); $(GO) run ./cmd/hyhome guard fields > $$tmp; \
	if ! diff -u docs/guard-fields.md $$tmp; then echo "docs/guard-fields.md is stale: run 'make docs'"; rm -f $$tmp; exit 1; fi; rm -f $$tmp
	@tmp=$$(mktemp -d); $(GO) run ./internal/cli/clidoc $$tmp || { rm -rf $$tmp; exit 1; }; \
	if ! diff -ru docs/cli $$tmp; then echo "docs/cli is stale: run 'make docs'"; rm -rf $$tmp; exit 1; fi; rm -rf $$tmp

# Benchmarks print figures and ratios against baselines measured in the same
# run; they are not part of `make test`. Run them on a quiet machine.
bench:
	bash bench/lint.sh
	bash bench/lint-scale.sh
	bash bench/audit.sh
	bash bench/guard.sh
	bash bench/ship.sh
	bash bench/fix.sh

# The release (internal/version) names the project image: the stack pins it.
HYHOME_VERSION := $(shell sed -n 's/^const Release = "\(.*\)"$$/\1/p' internal/version/version.go)
IMAGE ?= hyhome:$(HYHOME_VERSION)

# A rebuild removes the image the tag named before when that is left with
# no tag and no container uses it: each `make image` or `make e2e` would
# otherwise leave one dangling image behind. An image that still has another
# tag is never touched.
image: build
	mkdir -p bin/rootfs/var/lib/hyhome/ship
	@old=$$(docker image inspect -f '{{.Id}}' $(IMAGE) 2>/dev/null || true); \
	docker build -t $(IMAGE) -f Dockerfile . || exit 1; \
	new=$$(docker image inspect -f '{{.Id}}' $(IMAGE)); \
	if [ -n "$$old" ] && [ "$$old" != "$$new" ] && \
	   [ "$$(docker image inspect -f '{{len .RepoTags}}' "$$old" 2>/dev/null)" = 0 ]; then \
	  docker image rm "$$old" >/dev/null 2>&1 && echo "removed the previous $(IMAGE) ($${old:7:12})" || true; \
	fi

clean:
	rm -rf bin
include deploy/deploy.mk
