# Strongroom build tooling. `make` (or `make help`) lists the targets.
#
# Every Go command runs with the pinned toolchain: go1.26.8's standard library
# has known vulnerabilities, the go command fetches go1.27.3 from the module
# proxy on first use. Modules keep `go 1.26` in their go.mod.
export GOTOOLCHAIN := go1.27.3
# GOFLAGS is deliberately left alone (whatever the environment sets is used).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --no-builtin-variables

# Modules: the `use` entries of go.work (block or single-line form, comments
# stripped, leading ./ dropped). Adding a module to go.work is all it takes.
# Override for a subset: `make lint MODULES=api`.
OPEN  := (
CLOSE := )
ifeq ($(origin MODULES),undefined)
MODULES := $(shell sed -e 's|//.*||' go.work | awk \
	'/^[[:space:]]*use[[:space:]]*\$(OPEN)/ {b=1; next} \
	 b && /^[[:space:]]*\$(CLOSE)/ {b=0; next} \
	 b && NF {print $$1; next} \
	 /^[[:space:]]*use[[:space:]]+[^$(OPEN)]/ {print $$2}' \
	| sed -e 's|^"||; s|"$$||; s|^\./||')
endif
ifeq ($(strip $(MODULES)),)
$(error no modules found in go.work)
endif
# Modules kept out of go.work and built with GOWORK=off: the charts' checks
# need Prometheus's own packages, and the image builder go-containerregistry,
# whose dependencies must not move the versions the services and the
# operator are built with. They join every loop below (`make test
# MODULES=charts` runs one alone).
STANDALONE_MODULES := charts images
ifeq ($(origin MODULES),file)
ALL_MODULES := $(MODULES) $(STANDALONE_MODULES)
else
ALL_MODULES := $(MODULES)
endif

# Tests and `run` talk to PostgreSQL; override from the environment.
# Tests create (and drop) a fresh database per package on this server.
# `make run` does not use it: dev mode keeps events in memory unless
# DATABASE_URL is set in your own environment.
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)

TEST_FLAGS  ?= -race -count=1 -timeout 15m
BENCH       ?= .
BENCH_FLAGS ?= -benchtime=1s -count=1 -timeout 30m
RUN_ARGS    ?= serve --dev

BIN       := bin
CACHE     := .cache
AUTHD_PKG := ./services/authd/cmd/authd

# Tool versions. Tools are built with $(GOTOOLCHAIN): analysers built by an
# older toolchain cannot type-check the newer standard library.
STATICCHECK_VERSION := v0.8.2
GOVULNCHECK_VERSION := v1.9.0
CONTROLLER_GEN_VERSION := v0.23.0
CYCLONEDX_GOMOD_VERSION := v1.10.0
VULNDB_VERSION      := v0.0.0-20261105234957-e22db6528018

STATICCHECK := $(BIN)/staticcheck
GOVULNCHECK := $(BIN)/govulncheck
CONTROLLER_GEN := $(BIN)/controller-gen
CYCLONEDX_GOMOD := $(BIN)/cyclonedx-gomod
INDEXDB     := $(BIN)/indexdb
# Offline vulnerability database, built from the golang.org/x/vulndb module.
VULNDB_DIR  := $(CACHE)/vulndb/$(VULNDB_VERSION)
VULNDB      := $(VULNDB_DIR)/index/db.json

# A tool is rebuilt when its version or the toolchain changes (stamp files).
STAMPS := $(CACHE)/stamps

# $(call each_module,label,command): run command in every module directory,
# stop at the first failure and say which module failed.
define each_module
	@for m in $(MODULES); do \
		echo "==> $(1): $$m"; \
		if ! ( cd "$$m" && $(2) ); then \
			echo "FAILED: $(1) in module '$$m'" >&2; \
			exit 1; \
		fi; \
	done
endef

# Same, but skips modules that contain no Go packages yet (go test, go vet,
# staticcheck and govulncheck fail on a pattern that matches nothing).
define each_module_with_pkgs
	@for m in $(ALL_MODULES); do \
		gowork=GOWORK=$${GOWORK:-}; \
		if [[ " $(STANDALONE_MODULES) " == *" $$m "* ]]; then gowork=GOWORK=off; fi; \
		if pkgs="$$(cd "$$m" && env $$gowork go list ./... 2>/dev/null)" && [[ -z "$$pkgs" ]]; then \
			echo "==> $(1): $$m (no packages, skipped)"; \
			continue; \
		fi; \
		echo "==> $(1): $$m"; \
		if ! ( cd "$$m" && export $$gowork && $(2) ); then \
			echo "FAILED: $(1) in module '$$m'" >&2; \
			exit 1; \
		fi; \
	done
endef

.PHONY: help
help: ## List the targets
	@echo "Strongroom (GOTOOLCHAIN=$(GOTOOLCHAIN); modules: $(MODULES))"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_\/.-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Variables: MODULES, TEST_DATABASE_URL (default: DATABASE_URL or the local PostgreSQL), TEST_FLAGS, BENCH, BENCH_FLAGS, RUN_ARGS"

.PHONY: run
run: ## Run authd locally: go run ./services/authd/cmd/authd serve --dev
	go run $(AUTHD_PKG) $(RUN_ARGS)

.PHONY: demo
demo: bin/authd ## authd in dev mode plus the reference mobile client, step by step
	@secret=$$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40); \
	state=$$(mktemp -d); log=$$state/authd.log; \
	STRONGROOM_DEV_ADMIN_SECRET=$$secret STRONGROOM_PASSCODE_BACKOFF=5s \
	  $(BIN)/authd serve --dev --dev-state-dir $$state >$$log 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; rm -rf '"$$state" EXIT; \
	for _ in $$(seq 1 100); do grep -q '"authd started"' $$log && break; \
	  kill -0 $$pid 2>/dev/null || { cat $$log; exit 1; }; sleep 0.2; done; \
	pin=$$(grep -m1 -o '"pin":"[^"]*"' $$log | cut -d'"' -f4); \
	jwk=$$(grep -m1 -o '"pinset_manifest_jwk":"[^}]*}' $$log | sed -e 's/^"pinset_manifest_jwk":"//' -e 's/\\"/"/g'); \
	STRONGROOM_DEV_ADMIN_SECRET=$$secret go run ./services/authd/cmd/demo --pin "$$pin" --manifest-jwk "$$jwk"

.PHONY: build
build: ## go build ./... in every module, then bin/authd
	$(call each_module_with_pkgs,build,go build ./...)
	@$(MAKE) --no-print-directory bin/authd

.PHONY: bin/authd
bin/authd: ## Build the authd binary (-trimpath) into bin/
	@mkdir -p $(BIN)
	go build -trimpath -o $@ $(AUTHD_PKG)

# ---- container images -------------------------------------------------------
# `make images` builds the container images of authd and the operator
# without a container daemon, for GOARCH (amd64 by default; arm64 works):
#   1. each binary, static and reproducible: CGO_ENABLED=0, -trimpath, no
#      build id, no VCS stamp (the revision is in the image's labels instead,
#      so the binary depends on the sources alone, not on the checkout's
#      state, and go build runs no git), GOFLAGS ignored (an image must not
#      depend on a developer's settings);
#   2. its CycloneDX SBOM, by cyclonedx-gomod from the binary;
#   3. the image, by images/cmd/build-image (go-containerregistry; a module of
#      its own, GOWORK=off): $(IMAGES_DIR)/NAME.oci.tar, an OCI image layout in
#      a tar archive (the binary, the SBOM, /etc/passwd with nonroot 65532,
#      /tmp; the SBOM also attached as an OCI 1.1 artifact), with the
#      normalised SBOM (NAME.cdx.json) and the image manifest's digest
#      (NAME.digest) beside it.
# Every timestamp is SOURCE_DATE_EPOCH (default: the last commit's time), so
# one commit gives one set of digests; `make images-check` proves it.
# Load an archive with `skopeo copy oci-archive:bin/images/authd.oci.tar
# docker://REGISTRY/strongroom/authd:TAG` (add --all to copy the SBOM
# artifact too), `podman load -i`, `docker load -i` (Docker >= 25), or untar
# it and `crane push DIR REF`.
GOARCH     ?= amd64
IMAGES_DIR ?= $(BIN)/images
IMAGES     := authd operator
IMAGE_PKG_authd     := $(AUTHD_PKG)
IMAGE_PKG_operator  := ./operator/cmd/operator
IMAGE_DESC_authd    := Strongroom authd, the OAuth2 authorization server
IMAGE_DESC_operator := Strongroom operator: pinned certificates and key sets
# authd reports its version (`authd version`); the operator has no such variable.
IMAGE_LDFLAGS_authd  = -X main.version=$(VERSION)
# Computed once, on first use: git runs only for the image targets.
VERSION  ?= $(eval VERSION := $(or $(shell git describe --always --dirty 2>/dev/null),dev))$(VERSION)
REVISION ?= $(eval REVISION := $(shell git rev-parse HEAD 2>/dev/null))$(REVISION)
SOURCE_DATE_EPOCH ?= $(eval SOURCE_DATE_EPOCH := $(or $(shell git log -1 --format=%ct 2>/dev/null),0))$(SOURCE_DATE_EPOCH)
# org.opencontainers.image.source (the repository's URL) and .licenses (an
# SPDX expression): labels left out while empty.
IMAGES_SOURCE   ?=
IMAGES_LICENSES ?=
BUILD_IMAGE := $(BIN)/build-image

.PHONY: images
images: $(addprefix image-,$(IMAGES)) ## Container images of authd and the operator in bin/images (OCI archives, no daemon; GOARCH, VERSION, SOURCE_DATE_EPOCH)

# One image. Not .PHONY (make applies no pattern rule to a phony target),
# yet it always runs: $(BUILD_IMAGE) is phony. GOOS= GOARCH= build the tools
# for this machine whatever GOARCH the images are for. IMAGES_TOUCH (set by
# images-check) re-dates the inputs, which must change nothing.
image-%: $(BUILD_IMAGE) $(CYCLONEDX_GOMOD)
	@mkdir -p $(IMAGES_DIR)/$(GOARCH)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) GOFLAGS= go build -trimpath -buildvcs=false \
	  -ldflags "-s -w -buildid= $(IMAGE_LDFLAGS_$*)" -o $(IMAGES_DIR)/$(GOARCH)/$* $(IMAGE_PKG_$*)
	$(CYCLONEDX_GOMOD) bin -json -std -noserial -notimestamp -version '$(VERSION)' \
	  -output $(IMAGES_DIR)/$(GOARCH)/$*.cdx.json $(IMAGES_DIR)/$(GOARCH)/$*
	$(if $(IMAGES_TOUCH),touch -d @1 $(IMAGES_DIR)/$(GOARCH)/$* $(IMAGES_DIR)/$(GOARCH)/$*.cdx.json)
	@SOURCE_DATE_EPOCH='$(SOURCE_DATE_EPOCH)' $(BUILD_IMAGE) -name $* \
	  -binary $(IMAGES_DIR)/$(GOARCH)/$* -sbom $(IMAGES_DIR)/$(GOARCH)/$*.cdx.json \
	  -version '$(VERSION)' -revision '$(REVISION)' -description '$(IMAGE_DESC_$*)' \
	  -source '$(IMAGES_SOURCE)' -licenses '$(IMAGES_LICENSES)' \
	  -out $(IMAGES_DIR)/$*.oci.tar -sbom-out $(IMAGES_DIR)/$*.cdx.json -digest-file $(IMAGES_DIR)/$*.digest

# Twice, from scratch, into two fresh directories; the second build under
# umask 077 with its inputs re-dated. Any differing byte fails. The Go build
# cache is shared (the compiler's own reproducibility is Go's promise);
# IMAGES_CHECK_FRESH_CACHE=1 gives the second build an empty one (slow).
.PHONY: images-check
images-check: $(BUILD_IMAGE) $(CYCLONEDX_GOMOD) ## Build the images twice (fresh dirs, umask 077, re-dated inputs); fail unless identical
	@tmp=$$(mktemp -d); keep=; trap '[[ -n "$$keep" ]] || rm -rf "$$tmp"' EXIT; \
	set -- VERSION='$(VERSION)' REVISION='$(REVISION)' SOURCE_DATE_EPOCH='$(SOURCE_DATE_EPOCH)' GOARCH='$(GOARCH)'; \
	echo "==> images-check: first build"; \
	$(MAKE) --no-print-directory images IMAGES_DIR="$$tmp/1" "$$@"; \
	echo "==> images-check: second build (umask 077, inputs re-dated$(if $(IMAGES_CHECK_FRESH_CACHE),$(comma) empty Go build cache))"; \
	( umask 077; $(if $(IMAGES_CHECK_FRESH_CACHE),GOCACHE="$$tmp/gocache") \
	  $(MAKE) --no-print-directory images IMAGES_DIR="$$tmp/2" IMAGES_TOUCH=1 "$$@" ); \
	for n in $(IMAGES); do \
	  for f in $$n.oci.tar $$n.cdx.json $$n.digest; do \
	    if ! cmp "$$tmp/1/$$f" "$$tmp/2/$$f"; then \
	      echo "NOT REPRODUCIBLE: $$f differs between two builds (both kept in $$tmp)" >&2; keep=1; \
	      [[ $$f != *.tar ]] || diff <(tar -tvf "$$tmp/1/$$f") <(tar -tvf "$$tmp/2/$$f") >&2 || true; \
	      exit 1; \
	    fi; \
	  done; \
	  echo "==> $$n: reproducible, $$(cat "$$tmp/1/$$n.digest")"; \
	done
comma := ,

.PHONY: $(BUILD_IMAGE)
$(BUILD_IMAGE):
	@mkdir -p $(BIN)
	cd images && GOWORK=off GOOS= GOARCH= CGO_ENABLED=0 go build -trimpath -buildvcs=false -o $(CURDIR)/$@ ./cmd/build-image
# ---- end of container images ------------------------------------------------

# The operator's tests run a real kube-apiserver and etcd (envtest): the
# installer builds them once (10-20 minutes on a fresh machine, then a stamp
# check) and its answer, the folder, becomes KUBEBUILDER_ASSETS. It runs here,
# never inside go test, whose timeout would cover the build.
ASSETS_FILE := $(CACHE)/kubebuilder-assets
.PHONY: $(ASSETS_FILE)
$(ASSETS_FILE):
	@mkdir -p $(@D)
	@hack/k8s-test-bins.sh >$@.tmp && mv $@.tmp $@
TEST_ENV = KUBEBUILDER_ASSETS="$$(cat $(CURDIR)/$(ASSETS_FILE))" DATABASE_URL='$(TEST_DATABASE_URL)'

.PHONY: test
test: $(ASSETS_FILE) ## go test -race in every module (needs PostgreSQL at TEST_DATABASE_URL; builds the k8s test binaries once)
	$(call each_module_with_pkgs,test,$(TEST_ENV) go test $(TEST_FLAGS) ./...)

.PHONY: e2e
e2e: $(ASSETS_FILE) ## The whole system end to end (e2e/: PostgreSQL, kube-apiserver, operator, two authd behind a balancer, the app); also part of make test
	cd e2e && $(TEST_ENV) go test $(TEST_FLAGS) ./...

.PHONY: bench
bench: $(ASSETS_FILE) ## Benchmarks of services, operator and e2e (BENCH=regexp, BENCH_FLAGS=...)
	cd services && $(TEST_ENV) go test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCH_FLAGS) ./...
	cd operator && $(TEST_ENV) go test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCH_FLAGS) ./...
	cd e2e && $(TEST_ENV) go test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCH_FLAGS) ./...

.PHONY: lint
lint: fmt-check generate-check vet staticcheck vulncheck ## gofmt check, generated files, go vet, staticcheck, govulncheck

# gofmt from the pinned toolchain, not whatever gofmt is on PATH.
GOFMT = "$$(go env GOROOT)/bin/gofmt"
GO_FILES_CMD = find $(ALL_MODULES) -type f -name '*.go' -not -path '*/testdata/*' -not -path '*/vendor/*' -print0

.PHONY: fmt-check
fmt-check: ## Fail if any Go file is not gofmt-formatted
	@echo "==> gofmt -l: $(MODULES)"
	@out="$$($(GO_FILES_CMD) | xargs -0 -r $(GOFMT) -l)"; \
	if [[ -n "$$out" ]]; then \
		echo "These files need gofmt (run 'make fmt'):" >&2; \
		echo "$$out" >&2; \
		exit 1; \
	fi

.PHONY: fmt
fmt: ## gofmt -w every Go file in every module
	@$(GO_FILES_CMD) | xargs -0 -r $(GOFMT) -l -w

.PHONY: vet
vet: ## go vet ./... in every module
	$(call each_module_with_pkgs,go vet,go vet ./...)

.PHONY: staticcheck
staticcheck: $(STATICCHECK) ## staticcheck ./... in every module
	$(call each_module_with_pkgs,staticcheck,$(CURDIR)/$(STATICCHECK) ./...)

.PHONY: vulncheck
vulncheck: $(GOVULNCHECK) $(VULNDB) ## govulncheck ./... in every module, offline database
	$(call each_module_with_pkgs,govulncheck,$(CURDIR)/$(GOVULNCHECK) -db file://$(CURDIR)/$(VULNDB_DIR) ./...)

# Generated from the api/ types and the operator's RBAC markers: the
# deepcopy functions, the CRD manifests (api/crds, embedded by api/crds.go)
# and the operator's ClusterRole. `make lint` fails when they are stale.
GENERATED := api/crds operator/config/rbac
controller_gen = (cd api && $(CURDIR)/$(CONTROLLER_GEN) object paths=./v1alpha1/... \
	  crd:crdVersions=v1 output:crd:artifacts:config=$(1)/api/crds paths=./v1alpha1/...) && \
	(cd operator && $(CURDIR)/$(CONTROLLER_GEN) rbac:roleName=strongroom-operator \
	  output:rbac:artifacts:config=$(1)/operator/config/rbac paths=./...)

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate deepcopy code, CRD manifests and RBAC with controller-gen (and the chart's copy of the CRDs)
	$(call controller_gen,$(CURDIR))
	cp api/crds/*.yaml charts/strongroom/crds/

.PHONY: generate-check
generate-check: $(CONTROLLER_GEN) ## Fail if generated files differ from what controller-gen makes
	@echo "==> controller-gen: generated files up to date"
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp api/v1alpha1/zz_generated.deepcopy.go $$tmp/deepcopy.go; \
	$(call controller_gen,$$tmp) >/dev/null; \
	if ! cmp -s api/v1alpha1/zz_generated.deepcopy.go $$tmp/deepcopy.go; then \
	  cp $$tmp/deepcopy.go api/v1alpha1/zz_generated.deepcopy.go; \
	  echo "api/v1alpha1/zz_generated.deepcopy.go was stale (run 'make generate')" >&2; exit 1; fi; \
	for d in $(GENERATED); do \
	  if ! diff -r $$d $$tmp/$$d >&2; then echo "$$d is stale: run 'make generate'" >&2; exit 1; fi; \
	done

.PHONY: tidy
tidy: ## go mod tidy in every module (the standalone ones with GOWORK=off)
	$(call each_module_with_pkgs,go mod tidy,go mod tidy)

.PHONY: tools
tools: $(STATICCHECK) $(GOVULNCHECK) $(CONTROLLER_GEN) $(CYCLONEDX_GOMOD) $(VULNDB) ## Build the lint tools, the SBOM generator and the vulnerability database

# Real kube-apiserver, etcd, kubectl, helm and kubeconform (with offline
# schemas), built from the Go module proxy into a cache folder outside the
# repository (10-20 minutes the first time, then a stamp check). The folder
# is what envtest wants as KUBEBUILDER_ASSETS.
.PHONY: testbins
testbins: ## Build (once) the Kubernetes binaries for operator tests; prints their folder
	@hack/k8s-test-bins.sh

.PHONY: clean
clean: ## Remove bin/ and .cache/ (tools, vulnerability database)
	rm -rf $(BIN) $(CACHE)

# ---- tools ---------------------------------------------------------------

$(STAMPS)/%:
	@mkdir -p $(@D)
	@touch $@

$(STATICCHECK): $(STAMPS)/staticcheck-$(STATICCHECK_VERSION)-$(GOTOOLCHAIN)
	GOBIN=$(CURDIR)/$(BIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@touch $@

$(CONTROLLER_GEN): $(STAMPS)/controller-gen-$(CONTROLLER_GEN_VERSION)-$(GOTOOLCHAIN)
	GOBIN=$(CURDIR)/$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	@touch $@

# The SBOM generator of `make images`. GOOS= GOARCH=: always for this
# machine, even under `make images GOARCH=arm64`.
$(CYCLONEDX_GOMOD): $(STAMPS)/cyclonedx-gomod-$(CYCLONEDX_GOMOD_VERSION)-$(GOTOOLCHAIN)
	GOBIN=$(CURDIR)/$(BIN) GOOS= GOARCH= go install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_GOMOD_VERSION)
	@touch $@

$(GOVULNCHECK): $(STAMPS)/govulncheck-$(GOVULNCHECK_VERSION)-$(GOTOOLCHAIN)
	GOBIN=$(CURDIR)/$(BIN) go install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)
	@touch $@

# indexdb comes from the same golang.org/x/vulndb version as the data.
$(INDEXDB): $(STAMPS)/indexdb-$(VULNDB_VERSION)-$(GOTOOLCHAIN)
	GOBIN=$(CURDIR)/$(BIN) go install golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION)
	@touch $@

# Built once per vulndb version, then reused (only rebuilt when missing).
$(VULNDB): | $(INDEXDB)
	@echo "==> building offline vulnerability database $(VULNDB_VERSION)"
	@src="$$(GOWORK=off go mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) \
		| sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$$/\1/p')"; \
	if [[ -z "$$src" || ! -d "$$src/data/osv" ]]; then \
		echo "cannot find data/osv in golang.org/x/vulndb@$(VULNDB_VERSION) (dir: '$$src')" >&2; \
		exit 1; \
	fi; \
	rm -rf "$(VULNDB_DIR).tmp"; \
	$(INDEXDB) -vulns "$$src/data/osv" -out "$(VULNDB_DIR).tmp"; \
	rm -rf "$(VULNDB_DIR)"; \
	mv "$(VULNDB_DIR).tmp" "$(VULNDB_DIR)"; \
	echo "==> vulnerability database in $(VULNDB_DIR)"
