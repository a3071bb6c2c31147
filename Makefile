# fleetbox: an E2B-compatible sandbox platform. `make run` starts it, `make test` tests everything.
SHELL := /bin/bash
GO ?= go
MODULES := schema bus apiserver worker loadtest
PKGS := $(foreach m,$(MODULES),fleetbox.dev/$(m)/...)
STATICCHECK_VERSION := v0.8.2
# Code generators for envd's Connect services (apiserver/internal/envd/proto). Changing a version changes
# the generated files: run `make generate` and commit the result.
PROTOC_VERSION := 3.21.12
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1
ENVD_PROTO := apiserver/internal/envd/proto

.PHONY: build run test unit vet staticcheck freebsd freebsd-conformance e2e e2e-deps chaos fuzz clean generate

build:
	$(GO) build -o bin/apiserver ./apiserver/cmd/apiserver
	$(GO) build -o bin/worker ./worker/cmd/worker

## run: apiserver with embedded NATS on 127.0.0.1:3000 plus one local worker (process runtime).
run: build
	deploy/local/run.sh

## test: vet, staticcheck, unit and integration tests with -race, the FreeBSD build, and the SDK end-to-end suites.
test: vet staticcheck freebsd unit e2e chaos

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bin/staticcheck:
	GOBIN=$(CURDIR)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: bin/staticcheck
	bin/staticcheck $(PKGS)

freebsd: freebsd-conformance
	GOOS=freebsd GOARCH=amd64 $(GO) vet $(PKGS)
	GOOS=freebsd GOARCH=amd64 $(GO) build -o /dev/null ./apiserver/cmd/apiserver ./worker/cmd/worker
	mkdir -p bin/freebsd
	GOOS=freebsd GOARCH=amd64 CGO_ENABLED=0 $(GO) build -o bin/freebsd/sbx-agent ./worker/cmd/sbx-agent
	for f in deploy/freebsd/*.sh deploy/freebsd/rc.d/*; do sh -n "$$f" || exit 1; done
	bash -n deploy/local/run.sh

## freebsd-conformance: the jail runtime's conformance suite as a FreeBSD test binary,
## bin/freebsd/jail-conformance.test (copy it to a prepared host and run it there: deploy/freebsd/README.md).
freebsd-conformance:
	mkdir -p bin/freebsd
	cd worker && GOOS=freebsd GOARCH=amd64 $(GO) test -c -o $(CURDIR)/bin/freebsd/jail-conformance.test ./internal/runtime/jail

## generate: regenerate the Go code of envd's protos with Debian's protoc and pinned plugins in bin/.
generate:
	@command -v protoc >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q protobuf-compiler; }
	@v=$$(protoc --version); if [ "$$v" != "libprotoc $(PROTOC_VERSION)" ]; then \
		echo "protoc is '$$v', want libprotoc $(PROTOC_VERSION) (Debian bookworm's protobuf-compiler): the output would differ"; exit 1; fi
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(CURDIR)/bin $(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)
	cd $(ENVD_PROTO) && protoc -I . \
		--plugin=protoc-gen-go=$(CURDIR)/bin/protoc-gen-go --go_out=. --go_opt=paths=source_relative \
		--plugin=protoc-gen-connect-go=$(CURDIR)/bin/protoc-gen-connect-go --connect-go_out=. --connect-go_opt=paths=source_relative \
		process/process.proto filesystem/filesystem.proto

unit:
	$(GO) test -race -short -count=1 $(PKGS)

e2e-deps:
	loadtest/e2e/deps.sh

e2e: e2e-deps
	$(GO) test -count=1 -v -timeout 20m fleetbox.dev/loadtest/e2e 2>&1 | tee .e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|✔|✖|passed|failed' ; exit $${PIPESTATUS[0]}

## bench: start apiserver + worker on free loopback ports, run the fixed load shapes and the baselines,
## stop everything, rewrite the generated table in BENCHMARKS.md (reports in bin/bench/). About 3 minutes.
.PHONY: bench
bench: build
	$(GO) build -o bin/loadtest ./loadtest/cmd/loadtest
	bin/loadtest bench -apiserver bin/apiserver -worker bin/worker -capacity 1200 -out BENCHMARKS.md -reports bin/bench

## chaos: fault tests with real processes: kill -9 of a worker, apiserver restart, NATS outage, and churn
## across 2 apiservers and 2 workers on a 3-node NATS cluster that loses a node. They print what they saw.
## The load tester's smoke test (real binaries, every shape briefly) runs with them.
chaos:
	$(GO) test -count=1 -v -timeout 10m fleetbox.dev/loadtest/chaos fleetbox.dev/loadtest/cmd/loadtest 2>&1 | tee .chaos.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|chaos_test.go' ; exit $${PIPESTATUS[0]}

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzUnmarshal -fuzztime 30s fleetbox.dev/apiserver/internal/httpjson
	$(GO) test -run '^$$' -fuzz FuzzParseMetadataQuery -fuzztime 30s fleetbox.dev/apiserver/internal/lifecycle

clean:
	rm -rf bin .data
