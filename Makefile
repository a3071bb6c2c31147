# fleetbox: an E2B-compatible sandbox platform. `make run` starts it, `make test` tests everything.
SHELL := /bin/bash
GO ?= go
MODULES := schema bus apiserver worker loadtest
PKGS := $(foreach m,$(MODULES),fleetbox.dev/$(m)/...)
STATICCHECK_VERSION := v0.8.2

.PHONY: build run test unit vet staticcheck freebsd e2e e2e-deps fuzz clean

build:
	$(GO) build -o bin/apiserver ./apiserver/cmd/apiserver
	$(GO) build -o bin/worker ./worker/cmd/worker

## run: apiserver with embedded NATS on 127.0.0.1:3000 plus one local worker (process runtime).
run: build
	deploy/local/run.sh

## test: vet, staticcheck, unit and integration tests with -race, the FreeBSD build, and the SDK end-to-end suites.
test: vet staticcheck freebsd unit e2e

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bin/staticcheck:
	GOBIN=$(CURDIR)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: bin/staticcheck
	bin/staticcheck $(PKGS)

freebsd:
	GOOS=freebsd GOARCH=amd64 $(GO) vet $(PKGS)
	GOOS=freebsd GOARCH=amd64 $(GO) build -o /dev/null ./apiserver/cmd/apiserver ./worker/cmd/worker

unit:
	$(GO) test -race -short -count=1 $(PKGS)

e2e-deps:
	loadtest/e2e/deps.sh

e2e: e2e-deps
	$(GO) test -count=1 -v -timeout 20m fleetbox.dev/loadtest/e2e 2>&1 | tee .e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|✔|✖|passed|failed' ; exit $${PIPESTATUS[0]}

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzUnmarshal -fuzztime 30s fleetbox.dev/apiserver/internal/httpjson

clean:
	rm -rf bin .data
