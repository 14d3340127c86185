# obol — build, test and release tasks. `make help` lists the targets.
#
# Each target declares its own .PHONY line, so a new target is one
# self-contained block appended at the end of this file.

SHELL       := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Knobs: PKGS limits vet and test to some packages (make test PKGS=./internal/foo/...);
# FUZZTIME bounds each fuzz target; FUZZ_PKGS picks the packages to fuzz (see
# below); BENCH_PKGS defaults to every package that has Benchmark functions.
GO          ?= go
PKGS        ?= ./...
FUZZTIME    ?= 10s
# make test fuzzes by execution count: a duration-bound -fuzztime can fail with a
# bare "context deadline exceeded" at its end on a loaded machine (a race in Go
# 1.26's fuzz coordinator, golang/go#75804, fixed in 1.27) although no input failed.
TEST_FUZZTIME ?= 100000x
BENCH_COUNT ?= 5
K8S_VERSION ?= 1.37.2
OBOL_CACHE  ?= $(HOME)/.cache/obol

# envtest finds kube-apiserver and etcd here; `make test-deps` fills it.
export KUBEBUILDER_ASSETS ?= $(OBOL_CACHE)/testbin/k8s-$(K8S_VERSION)

# Version stamped into the binary (see internal/buildinfo).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
BUILDINFO := github.com/obolstack/obol/internal/buildinfo
LDFLAGS   := -s -w -X $(BUILDINFO).Version=$(VERSION) -X $(BUILDINFO).Commit=$(COMMIT) -X $(BUILDINFO).Date=$(DATE)

# Package directories whose tests define fuzz targets or benchmarks.
pkgs_with = $(sort $(dir $(shell grep -rl --include='*_test.go' '^func $(1)' . 2>/dev/null | grep -v -e '/node_modules/' -e '/testdata/')))
# Fuzzing in `make test` covers the wire protocol and the price parser (every
# header decoder, the amount parser), and FUZZ_TARGETS below. Other packages' fuzz seeds run as unit
# tests; fuzz every package that has targets with `make fuzz FUZZ_PKGS=all`.
FUZZ_PKGS  ?= ./internal/x402/ ./internal/evm/
# Single targets fuzzed besides FUZZ_PKGS, as PKG:TARGET: the verifier's
# check that no free path reaches what a priced route sells.
FUZZ_TARGETS ?= ./internal/verifier/:FuzzFreeNeverReachesPriced
ifeq ($(FUZZ_PKGS),all)
override FUZZ_PKGS := $(call pkgs_with,Fuzz)
override FUZZ_TARGETS :=
endif
BENCH_PKGS ?= $(call pkgs_with,Benchmark)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/obol, stamped with version, commit and date
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/obol ./cmd/obol

.PHONY: demo
demo: ## run the whole payment loop locally and print the earnings
	$(GO) run ./cmd/obol dev --pay 5 --exit-after

.PHONY: test
test: test-deps lint contracts-check ## install test services, lint, check the token build, run all tests with -race, fuzz, then the end-to-end test (make e2e)
	$(GO) test -race -count=1 $(PKGS)
	$(MAKE) --no-print-directory bench-smoke
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME)
	$(MAKE) --no-print-directory e2e

.PHONY: test-deps
test-deps: ## install prometheus, promtool, etcd; build kube-apiserver once (cached)
	K8S_VERSION=$(K8S_VERSION) OBOL_CACHE=$(OBOL_CACHE) ./hack/test-deps.sh

.PHONY: lint
lint: ## go vet, and fail if gofmt would change a file
	$(GO) vet $(PKGS)
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi

.PHONY: fuzz
fuzz: ## run every Fuzz* target for FUZZTIME (default 10s) each
	@pkgs="$(FUZZ_PKGS)"; \
	if [ -z "$$pkgs" ]; then echo "fuzz: no Fuzz targets"; exit 0; fi; \
	{ $(GO) test -list '^Fuzz' $$pkgs | awk '/^Fuzz/ {f[n++] = $$1; next} /^ok/ {for (i = 0; i < n; i++) print $$2, f[i]; n = 0}'; \
	  for t in $(FUZZ_TARGETS); do echo "$${t%%:*} $${t##*:}"; done; } | \
	while read -r pkg target; do \
		echo "fuzz: $$pkg $$target for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$pkg" || exit 1; \
	done

.PHONY: bench
bench: ## run every benchmark; the verifier's print their ratio to a bare reverse proxy
	@pkgs="$$(echo $(BENCH_PKGS) | tr ' ' '\n' | grep -v '^\./internal/verifier/$$' || true)"; \
	if [ -n "$$pkgs" ]; then $(GO) test -run '^$$' -bench . -benchmem $$pkgs; fi
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) ./internal/verifier/ | $(GO) run ./internal/verifier/benchreport

.PHONY: bench-smoke
bench-smoke: ## run every benchmark once (-benchtime 1x): a benchmark that no longer runs fails make test, not the next make bench
	$(GO) test -run '^$$' -bench . -benchtime 1x $(BENCH_PKGS)

.PHONY: loadtest
loadtest: ## loopback load test with wrk (installed when missing): upstream, bare proxy, the verifier's free route and 402 path, with req/s, p50/p99 and the target ratios
	./hack/loadtest.sh

.PHONY: generate
generate: ## regenerate code (go generate: deepcopy, CRDs, contract bindings)
	$(GO) generate ./...

.PHONY: clean
clean: ## remove build output (the test-binary cache under ~/.cache/obol stays)
	rm -rf bin dist

# Targets other areas add go below (e.g. contracts, contracts-check).

# --- contracts: obol's Solidity token (embed/token), compiled with npm solc ---
CONTRACTS_DIR := hack/contracts
TOKEN_DIR     := embed/token
TOKEN_ARTIFACTS := ObolUSD.abi.json ObolUSD.bin

.PHONY: contracts-deps
contracts-deps: ## install the pinned solc under hack/contracts/node_modules (npm ci) unless present
	@cd $(CONTRACTS_DIR) && if ! node -e 'process.exit(require("./node_modules/solc/package.json").version === require("./package.json").devDependencies.solc ? 0 : 1)' 2>/dev/null; then \
		echo "contracts: npm ci in $(CONTRACTS_DIR)"; npm ci --no-audit --no-fund; fi

.PHONY: contracts
contracts: contracts-deps ## compile embed/token/*.sol and rewrite the committed ABI and bytecode
	node $(CONTRACTS_DIR)/compile.js

.PHONY: contracts-check
contracts-check: contracts-deps ## fail if the committed ABI/bytecode differ from a fresh compile
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	node $(CONTRACTS_DIR)/compile.js "$$tmp" >/dev/null; \
	status=0; \
	for f in $(TOKEN_ARTIFACTS); do \
		if ! cmp -s "$$tmp/$$f" "$(TOKEN_DIR)/$$f"; then \
			echo "contracts-check: $(TOKEN_DIR)/$$f differs from a fresh compile of $(TOKEN_DIR)/*.sol:"; \
			cmp "$(TOKEN_DIR)/$$f" "$$tmp/$$f" || true; \
			case "$$f" in *.json) diff -u "$(TOKEN_DIR)/$$f" "$$tmp/$$f" | head -40 || true;; esac; \
			status=1; \
		fi; \
	done; \
	if [ $$status -ne 0 ]; then echo "contracts-check: run 'make contracts' and commit $(TOKEN_DIR)/"; exit 1; fi; \
	echo "contracts-check: $(TOKEN_DIR) artifacts match the Solidity source"

# --- image: the obol container image, built without Docker (hack/mkimage) ---
# The tag is the binary's VERSION, which is also the chart's default image tag
# (internal/stack sets the chart's appVersion to the running binary's version).
IMAGE_REPO      ?= ghcr.io/obolstack/obol
IMAGE_PLATFORMS ?= linux/$(shell $(GO) env GOARCH)
IMAGE_FORMAT    ?= oci
IMAGE_TAR       ?= dist/obol-image.tar
IMAGE_EPOCH     ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
comma := ,

.PHONY: image
image: ## build the obol image (static binary, nonroot 65532, CA certs) as $(IMAGE_TAR); IMAGE_PLATFORMS=linux/amd64,linux/arm64 for several
	@for p in $(subst $(comma), ,$(IMAGE_PLATFORMS)); do \
		os="$${p%%/*}"; arch="$${p#*/}"; arch="$${arch%%/*}"; \
		echo "image: go build obol for $$os/$$arch"; \
		CGO_ENABLED=0 GOOS="$$os" GOARCH="$$arch" $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o "bin/image/obol-$$os-$$arch" ./cmd/obol; \
	done
	SOURCE_DATE_EPOCH=$(IMAGE_EPOCH) $(GO) run ./hack/mkimage -o $(IMAGE_TAR) --format $(IMAGE_FORMAT) \
		$(foreach p,$(subst $(comma), ,$(IMAGE_PLATFORMS)),--platform $(p)) \
		--base static --file 'bin/image/obol-{os}-{arch}:/usr/local/bin/obol:0755' \
		--entrypoint /usr/local/bin/obol --user 65532:65532 --workdir /home/nonroot \
		--env HOME=/home/nonroot \
		--label org.opencontainers.image.title=obol \
		--label org.opencontainers.image.version=$(VERSION) \
		--label org.opencontainers.image.revision=$(COMMIT) \
		--label org.opencontainers.image.source=https://github.com/obolstack/obol \
		--tag $(IMAGE_REPO):$(VERSION)
	@echo "image: import into a cluster node with: ctr -n k8s.io images import $(IMAGE_TAR)"

# --- cluster: a real single-node Kubernetes (containerd, kubelet, CoreDNS,
# prometheus-operator) for the end-to-end test; see hack/cluster.sh ---
CLUSTER_ENV := K8S_VERSION=$(K8S_VERSION) OBOL_CACHE=$(OBOL_CACHE)
# The harness runs containerd and the kubelet, so it needs root.
CLUSTER_SUDO := $(if $(filter 0,$(shell id -u)),,sudo --preserve-env=CI,OBOL_CACHE,OBOL_CLUSTER_DIR,OBOL_IMAGE_TAR,PATH,HOME)

.PHONY: cluster-deps
cluster-deps: ## install containerd/runc/CNI from apt; build kubelet & co, CoreDNS, prometheus-operator and their images once (cached)
	$(CLUSTER_SUDO) $(CLUSTER_ENV) ./hack/cluster.sh deps

.PHONY: cluster-up
cluster-up: ## start the single-node cluster with monitoring; prints the kubeconfig path
	$(CLUSTER_SUDO) $(CLUSTER_ENV) ./hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## stop the cluster (by PID) and remove its mounts, bridge, iptables chains and cgroups
	$(CLUSTER_SUDO) $(CLUSTER_ENV) ./hack/cluster.sh down

.PHONY: cluster-status
cluster-status: ## show the cluster's processes and node
	@$(CLUSTER_SUDO) $(CLUSTER_ENV) ./hack/cluster.sh status

# The end-to-end test: the obol image and binary from this tree, a fresh
# cluster, internal/e2e against it, and the cluster torn down whatever
# happens. E2E_KEEP=1 leaves the cluster running afterwards (make cluster-down
# stops it). Needs root; without it the target skips, or fails under CI=true.
E2E_TIMEOUT ?= 25m
.PHONY: e2e
e2e: ## run the marketplace end to end in a real single-node cluster (image, cluster, obol commands, Prometheus)
	@if [ "$$(id -u)" -ne 0 ]; then \
		if [ "$${CI:-}" = true ]; then echo "e2e: CI=true and not root: the cluster needs root (containerd, kubelet)"; exit 1; fi; \
		echo "e2e: skipped: the cluster needs root (sudo make e2e)"; exit 0; fi
	$(MAKE) --no-print-directory build image
	@start=$$(date +%s); \
	if [ "$(E2E_KEEP)" != 1 ]; then trap '$(CLUSTER_ENV) ./hack/cluster.sh down' EXIT; fi; \
	$(CLUSTER_ENV) OBOL_IMAGE_TAR=$(CURDIR)/$(IMAGE_TAR) ./hack/cluster.sh up; \
	OBOL_E2E=1 OBOL_E2E_BIN=$(CURDIR)/bin/obol $(GO) test -count=1 -v -timeout $(E2E_TIMEOUT) ./internal/e2e/; \
	echo "e2e: passed in $$(( $$(date +%s) - start ))s (cluster up and test)"
