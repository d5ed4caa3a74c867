# kafka-sidecar — developer entry points. `make demo` and `make test` work on a fresh machine.
GO        ?= go
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
LINT      := $(GOBIN)/golangci-lint
HELM      := $(GOBIN)/helm
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The same flags as the Dockerfile: static, trimmed, version stamped.
LDFLAGS   := -s -w -X main.version=$(VERSION)
KAFKA     := test/kafka/cluster.sh
FUZZTIME  ?= 10s
# The soak's length (make soak DURATION=30m).
DURATION  ?= 30m
# The suites that run against a real cluster when TEST_KAFKA_BROKERS names one (kfake otherwise); the chaos
# suite runs after them with -v so its summary line shows in the output.
KAFKA_SUITES := ./test/kafkatest ./test/e2e ./test/parallel

export PATH := $(GOBIN):$(PATH)

.PHONY: demo test deps check unit test-kafka fuzz build chaos chaos-kafka bench soak soak-smoke clean

## demo: the whole pipeline on an in-process Kafka, an in-process Redis and a sample app.
demo:
	$(GO) run ./cmd/kafka-sidecar demo

## test: everything CI runs — formatting, vet, lint, race-enabled tests (kfake + a real redis-server), the
## chart tests, bounded fuzzing, a 2-minute soak, and the integration suite again against a real 3-node Apache
## Kafka cluster.
test: deps check unit fuzz soak-smoke test-kafka

## deps: install what the tests need when it is missing (redis-server, golangci-lint, helm); cached after once.
deps:
	@test/deps.sh

check:
	@echo "== gofmt"; out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@echo "== go mod tidy"; $(GO) mod tidy -diff
	@echo "== go vet"; $(GO) vet ./...
	@echo "== golangci-lint"; $(LINT) run ./...

unit:
	@echo "== go test -race (kfake, real redis-server, helm chart)"
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

## fuzz: every fuzz target for FUZZTIME each.
fuzz:
	@test/fuzz.sh $(FUZZTIME)

## test-kafka: the integration suite against a real 3-node Apache Kafka cluster (fetched with Maven).
test-kafka:
	@echo "== real Kafka cluster"
	$(KAFKA) fetch
	$(KAFKA) start
	seeds=$$($(KAFKA) seeds); \
	TEST_KAFKA_BROKERS=$$seeds $(GO) test -p 1 -race -count=1 -timeout 30m $(KAFKA_SUITES) && \
	TEST_KAFKA_BROKERS=$$seeds $(GO) test -race -count=1 -timeout 20m -v ./test/chaos; \
	rc=$$?; $(KAFKA) stop; exit $$rc

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/kafka-sidecar ./cmd/kafka-sidecar

## chaos: the no-loss proof on kfake (quick); chaos-kafka: on the real cluster.
chaos: build
	$(GO) run ./test/chaos/cmd -binary bin/kafka-sidecar

chaos-kafka: build deps
	$(KAFKA) fetch
	$(KAFKA) start
	$(GO) run ./test/chaos/cmd -binary bin/kafka-sidecar -brokers $$($(KAFKA) seeds) -kafka-script $(KAFKA); rc=$$?; $(KAFKA) stop; exit $$rc

## bench: throughput, CPU and memory of each mode against the machine's own limits.
bench: build
	$(GO) run ./bench -binary bin/kafka-sidecar

## soak: the real binary for DURATION at a steady rate with a member restarted every 3 minutes; fails on a lost
## record or on growth of memory, goroutines, file descriptors or Redis memory beyond the bounds in test/chaos.
soak: build deps
	$(GO) run ./test/soak -binary bin/kafka-sidecar -duration $(DURATION)

## soak-smoke: the same for 2 minutes, a restart every 40 s (part of make test).
soak-smoke: build deps
	$(GO) run ./test/soak -binary bin/kafka-sidecar -duration 2m -warmup 30s -window 20s -restart-every 40s -sample-every 5s -dedup-ttl 20s

clean:
	rm -rf bin
