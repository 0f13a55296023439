# Fennec build and test entry points. `make test` is the one command CI runs.
GO ?= go
SUDO := $(shell [ "$$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && echo sudo; })

.PHONY: test deps vet lint unit bench-smoke bench bench-brokers build fuzz soak

test: deps lint unit bench-smoke

# deps installs the real peers the interop tests run against, when they are missing and the
# machine allows it (root or sudo): mosquitto and its clients, Eclipse Paho Python
# (python3-paho-mqtt), the Paho C command-line clients (paho.mqtt.c-examples) and tshark
# (Wireshark's reader, for the --pcap read-back), and with npm aedes 0.51 (a broker without
# MQTT 5). Without mosquitto the interop tests fail with a clear message; without Paho, tshark or
# aedes they skip, saying why.
deps:
	@need=""; \
	{ command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } && command -v mosquitto_pub >/dev/null 2>&1 || need="$$need mosquitto mosquitto-clients"; \
	[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import paho.mqtt.client' 2>/dev/null || need="$$need python3-paho-mqtt"; \
	command -v paho_c_pub >/dev/null 2>&1 || need="$$need paho.mqtt.c-examples"; \
	command -v tshark >/dev/null 2>&1 || need="$$need tshark"; \
	if [ -n "$$need" ]; then \
		if [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; then \
			echo "installing$$need with apt-get"; \
			$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$need >/dev/null; \
		else \
			echo "missing$$need and this user cannot install them: the interop tests that need them fail or skip"; \
		fi; \
	fi
	@# aedes 0.51 (Node.js, MQTT 3.1.1 only) for the version fallback test and MQTT.js 5.16 for the
	@# broker's interop test, in the user's cache
	@peers="$${FENNEC_PEERS_DIR:-$${XDG_CACHE_HOME:-$$HOME/.cache}/fennec-peers}"; \
	if [ ! -d "$$peers/node_modules/aedes" ] && command -v npm >/dev/null 2>&1; then \
		echo "installing aedes@0.51.3 into $$peers with npm"; \
		npm install --silent --no-audit --no-fund --prefix "$$peers" aedes@0.51.3 >/dev/null 2>&1 || echo "npm could not install aedes: its test skips"; \
	fi; \
	if [ ! -d "$$peers/node_modules/mqtt" ] && command -v npm >/dev/null 2>&1; then \
		echo "installing mqtt@5.16.0 (MQTT.js) into $$peers with npm"; \
		npm install --silent --no-audit --no-fund --prefix "$$peers" mqtt@5.16.0 >/dev/null 2>&1 || echo "npm could not install MQTT.js: its test skips"; \
	fi

vet:
	$(GO) vet ./...
	cd benchmarks && $(GO) vet ./...

# lint is go vet, gofmt and staticcheck (its default checks) over both modules; staticcheck is a tool
# dependency of each go.mod (`go tool staticcheck`), so its version is pinned and nothing needs
# installing first.
lint: vet
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "not gofmt-formatted (run gofmt -w):"; echo "$$unformatted"; exit 1; fi
	$(GO) tool staticcheck ./...
	cd benchmarks && $(GO) tool staticcheck ./...

# unit builds every test binary in parallel, then runs the packages one at a time: on a 2-core
# machine, packages running side by side starved the broker and client timing tests of CPU.
unit:
	$(GO) test -race -count=1 -run '^$$' ./... > /dev/null
	$(GO) test -race -count=1 -p 1 ./...

# bench-smoke runs every benchmark once so that a broken benchmark fails CI; figures come from
# `make bench` (see docs/benchmarks.md), never from this target.
bench-smoke:
	cd benchmarks && $(GO) test -count=1 -run . -bench . -benchtime 1x ./...

# bench measures Fennec beside paho.mqtt.golang and paho.golang against a mosquitto it starts
# (medians of 3 runs; the client table of docs/benchmarks.md), then the codec benchmarks.
bench: deps
	cd benchmarks && $(GO) run ./cmd/compare -runs 3
	cd benchmarks && $(GO) test -run '^$$' -bench '^BenchmarkCodec$$' -count 6 .

# bench-brokers puts the same fennec bench pubsub loads (unpaced and paced, QoS 0 and 1, MQTT
# 3.1.1) on the embedded broker, mosquitto and aedes, interleaved, and prints their table
# (docs/benchmarks.md). RUNS, DURATION, LOAD and RATE change the loads.
bench-brokers: deps
	bash benchmarks/brokers.sh

# fuzz runs every fuzz target for FUZZTIME each (CI runs only their seed corpora, in unit).
FUZZTIME ?= 10m
fuzz:
	cd packet && $(GO) test -run '^$$' -fuzz '^FuzzDecodeV311$$' -fuzztime $(FUZZTIME) .
	cd packet && $(GO) test -run '^$$' -fuzz '^FuzzDecodeV5$$' -fuzztime $(FUZZTIME) .
	cd topic && $(GO) test -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime $(FUZZTIME) .
	cd session && $(GO) test -run '^$$' -fuzz '^FuzzSession$$' -fuzztime $(FUZZTIME) .
	cd pki && $(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) .
	cd capture && $(GO) test -run '^$$' -fuzz '^FuzzRecorder$$' -fuzztime $(FUZZTIME) .

# soak runs the long fault suites (make test runs short versions of the same tests): 20,000
# messages per QoS through a seeded fault proxy with 50 faults, a broker killed with SIGKILL
# mid-stream, a handler 100x slower than its publisher for a minute, a publisher killed and
# restarted on its durable store; then prints the accounting table (docs/client.md). Replay a
# run's faults with FENNEC_FAULT_SEED=<seed it logged>.
soak: deps
	$(GO) test -count=1 -timeout 30m -v -run '^(TestFaultAccounting|TestSlowHandler|TestCrashDurableStore|TestMosquittoSnapshotResendsQoS2)$$' . -args -soak > soak.log 2>&1; \
		rc=$$?; grep -E '^\s+[a-z_]+_test\.go:[0-9]+: (\||accounting|[0-9]+ published|[0-9]+ of [0-9]+|after SIGKILL)|^(--- |ok|FAIL)' soak.log; exit $$rc

build:
	$(GO) build -o bin/fennec ./cmd/fennec
