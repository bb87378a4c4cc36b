# Gregor: `make run` starts a single-node broker on localhost:9092;
# `make test` installs what the tests need and runs every test.

GO        ?= go
BIN       := bin/gregor
PKGS      := ./...
STATICCHECK_VERSION := v0.8.2
FUZZTIME  ?= 3s

# FUZZ runs one fuzz target (scripts/fuzz.sh: retries Go 1.26's deadline race once).
FUZZ      := GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

.PHONY: all build run test test-deps lint unit integration fuzz bench image clean conformance

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/gregor

# A single-node cluster: Kafka on :9092, embedded etcd, data in ./data.
run: build
	./$(BIN) serve

# Everything CI runs: lint, unit tests with -race, short fuzzing of every
# decoder fed from the network or disk, integration tests with real clients,
# and franz-go's own kgo test suite against a real broker.
test: test-deps lint unit fuzz integration conformance

# Installs kcat (librdkafka's CLI), curl (scripts/conformance.sh polls
# /readyz with it), chromium (the console's headless-browser test; about
# 115 Debian packages, 480 MB, under a minute to install) and
# docker-compose (the compose stack test; not needed where docker's
# compose plugin is) when they are missing.
test-deps:
	@missing=""; \
		command -v kcat >/dev/null 2>&1 || missing="$$missing kcat"; \
		command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="$$missing chromium"; \
		command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
		command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing="$$missing docker-compose"; \
		if [ -n "$$missing" ]; then \
			echo "installing$$missing"; \
			SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
			$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; \
		fi
	@command -v kcat >/dev/null 2>&1 || { echo "kcat is required for the integration tests"; exit 1; }
	@command -v curl >/dev/null 2>&1 || { echo "curl is required for make conformance"; exit 1; }
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { echo "chromium is required for the integration tests"; exit 1; }

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

# Allocation-count tests skip themselves under -race (sync.Pool drops items
# there on purpose), so they run a second time without it; the storage
# tests run again with segment files behind a 3-descriptor cache.
unit:
	$(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v /integration)
	$(GO) test -count=1 -run 'Allocs' $$($(GO) list ./... | grep -v /integration)
	GREGOR_TEST_FILE_CACHE=3 $(GO) test -count=1 ./storage/

fuzz:
	$(FUZZ) FuzzParseRequest ./protocol/
	$(FUZZ) FuzzReadFrame ./protocol/
	$(FUZZ) FuzzValidateProduceBatch ./protocol/
	$(FUZZ) FuzzRecords ./protocol/
	$(FUZZ) FuzzParseControlBatch ./protocol/
	$(FUZZ) FuzzFilterBatch ./protocol/
	$(FUZZ) FuzzRecover ./storage/
	$(FUZZ) FuzzParseEpochs ./storage/
	$(FUZZ) FuzzDecodeProducerSnapshot ./storage/
	$(FUZZ) FuzzDecodeOffsetCheckpoint ./storage/
	$(FUZZ) FuzzParseSwapMarker ./storage/
	$(FUZZ) FuzzDecodeValue ./metadata/
	$(FUZZ) FuzzDecodeRecord ./coordinator/
	$(FUZZ) FuzzDecodeTxnRecord ./coordinator/
	$(FUZZ) FuzzDecodeResponse ./peer/

integration: test-deps
	GREGOR_REQUIRE_KCAT=1 GREGOR_REQUIRE_CHROMIUM=1 GREGOR_REQUIRE_DOCKER=1 $(GO) test -count=1 -timeout 16m ./integration/

# franz-go's own kgo test suite against Gregor started on free loopback
# ports (scripts/conformance.sh): one broker with KGO_TEST_RF=1, then three
# brokers (embedded etcd quorum) with KGO_TEST_RF=3. CONFORMANCE_RUN=regexp
# selects tests, CONFORMANCE_SKIP=regexp skips (nothing by default).
conformance: test-deps
	GO=$(GO) CONFORMANCE_BROKERS=1 CONFORMANCE_OUT=bin/conformance scripts/conformance.sh
	GO=$(GO) CONFORMANCE_BROKERS=3 CONFORMANCE_OUT=bin/conformance-rf3 scripts/conformance.sh

bench:
	$(GO) run ./cmd/gregor-bench
	$(GO) test -run '^$$' -bench 'BenchmarkRetentionPass' -benchtime 1x ./storage/
	$(GO) test -run '^$$' -bench 'BenchmarkClean' -benchtime=3x ./storage/

# The FROM-scratch image (Dockerfile): IMAGE names it. The root filesystem
# (busybox and bash from Debian's busybox-static and bash-static, fetched
# with apt-get download) is laid out by scripts/image-root.sh.
IMAGE ?= gregor:dev
image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/gregor-linux ./cmd/gregor
	scripts/image-root.sh bin/image-root bin/gregor-linux
	docker build -t $(IMAGE) .

clean:
	rm -rf bin
