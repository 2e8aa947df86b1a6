# rolesync — see README.md. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Machine-wide cache for slow artefacts (control plane, golangci-lint), outside the repo.
ROLESYNC_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rolesync
export ROLESYNC_CACHE
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(ROLESYNC_CACHE)/tools/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint
CONTROLLER_GEN ?= go tool controller-gen
GO_TEST_FLAGS ?= -count=1
TEST_TIMEOUT ?= 30m
BENCH_TIME ?= 1s
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

.PHONY: all
all: build

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Generate CRDs, RBAC and webhook manifests into config/, and copy them into the Helm chart.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	hack/gen-chart.sh

.PHONY: generate
generate: ## Generate deepcopy code for api/.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify-generated
verify-generated: ## Fail when generated files differ from their sources.
	hack/verify-generated.sh

.PHONY: verify-tracked-files
verify-tracked-files: ## Fail when git tracks a compiled binary or a file over 1 MiB.
	hack/verify-tracked-files.sh

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (installed once per machine into the cache).
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	@echo ">> installing golangci-lint $(GOLANGCI_LINT_VERSION) into $(dir $@) (about 5 minutes cold)"
	GOBIN=$(dir $@) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: envtest
envtest: ## Build (once per machine) kube-apiserver, etcd and kubectl; print their directory.
	@hack/build-control-plane.sh

.PHONY: test
test: verify-tracked-files verify-generated vet ## No tracked binaries; regenerate and check drift, vet, run every test on a real apiserver and PostgreSQL.
	@gofmt_out=$$(gofmt -l .); \
	  if [ -n "$$gofmt_out" ]; then echo "!! gofmt needed:"; echo "$$gofmt_out"; exit 1; fi
	KUBEBUILDER_ASSETS="$$(hack/build-control-plane.sh)" go test $(GO_TEST_FLAGS) -timeout $(TEST_TIMEOUT) ./...

.PHONY: bench
bench: ## Run the benchmarks (scale runs) on a real apiserver and PostgreSQL.
	KUBEBUILDER_ASSETS="$$(hack/build-control-plane.sh)" go test -run '^$$' -bench . -benchmem -benchtime $(BENCH_TIME) -timeout 90m ./internal/...
	KUBEBUILDER_ASSETS="$$(hack/build-control-plane.sh)" go test -run '^$$' -bench . -skip '^BenchmarkScale$$' -benchtime 1x -timeout 90m ./controllers/ ./cmd/...

.PHONY: bench-scale
bench-scale: ## The 100,000-user run (ROLESYNC_SCALE_USERS, _NAMESPACES, _RESYNC; about an hour on 2 cores); figures in docs/benchmarks.md.
	KUBEBUILDER_ASSETS="$$(hack/build-control-plane.sh)" go test -run '^$$' -bench '^BenchmarkScale$$' -benchtime 1x -timeout 240m -v ./cmd/manager

.PHONY: krew
krew: ## Build the kubectl plugin for every platform and its krew manifest into dist/krew (KREW_VERSION=v0.1.0).
	hack/krew-release.sh $(or $(KREW_VERSION),v0.1.0)

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZ_TIME (default 30s).
	hack/fuzz.sh $(or $(FUZZ_TIME),30s)

##@ Build and run

.PHONY: build
build: ## Build the manager and the rolesync CLI (also as the kubectl plugin bin/kubectl-rolesync) into bin/.
	go build -o bin/manager ./cmd/manager
	go build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o bin/rolesync ./cmd/rolesync
	cp bin/rolesync bin/kubectl-rolesync # the same binary as a kubectl plugin: kubectl rolesync explain|diff

.PHONY: demo
demo: build ## Run rolesync end to end locally: control plane, PostgreSQL, manager, samples, signed logins (Ctrl-C stops it).
	@echo ">> building the control plane if this machine has none yet (the first time takes about 10 minutes)"
	go run ./hack/demo --assets "$$(hack/build-control-plane.sh)" --manager bin/manager

.PHONY: docker-build
docker-build: ## Build the manager image (needs a Docker engine; this machine has only the client).
	@docker info >/dev/null 2>&1 || { echo "!! docker-build needs a running Docker engine; none is reachable here (the docker CLI alone cannot build)"; exit 1; }
	docker build -t $(or $(IMG),ghcr.io/rolesync/rolesync:dev) .

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig (webhooks off: no local certificates).
	ENABLE_WEBHOOKS=$${ENABLE_WEBHOOKS:-false} go run ./cmd/manager $(ARGS)

.PHONY: install
install: manifests ## Install the CRDs into the cluster of the current kubeconfig.
	"$$(hack/build-control-plane.sh)/kubectl" apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs (and every RoleMapping and ProxyUser) from the cluster.
	"$$(hack/build-control-plane.sh)/kubectl" delete --ignore-not-found -k config/crd
