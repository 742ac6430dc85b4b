#!/usr/bin/env bash
# Builds the real Kubernetes binaries the operator's tests run against
# (envtest: kube-apiserver and etcd), plus kubectl, helm and kubeconform
# with offline schemas, from the Go module proxy alone, into a cache folder,
# and prints that folder (use it as KUBEBUILDER_ASSETS).
#
#   hack/k8s-test-bins.sh            build what is missing, print the folder
#   hack/k8s-test-bins.sh --check    print the folder if complete, else fail
#
# The first build takes 10-20 minutes on 2 cores (linking kube-apiserver
# needs about 2.5 GB of memory); later runs only check a stamp. Called from
# make and .ci/run, never from inside go test. The folder is outside the
# repository (STRONGROOM_K8S_BINS, default ~/.cache/strongroom/k8s-<version>)
# so clean clones share it.
#
# Why built, not downloaded: the machines this project builds on reach only
# the Go module proxy. kube-apiserver and kubectl need a main module that
# replaces every k8s.io staging module (k8s.io/kubernetes requires them as
# v0.0.0), so they are built in a throwaway module generated here.
set -euo pipefail

K8S_VERSION=1.37.2          # kube-apiserver, kubectl; staging modules v0.37.2
ETCD_VERSION=3.7.0          # what Kubernetes 1.37 pins
HELM_VERSION=4.3.1          # client-go 0.37, default KubeVersion 1.37
KUBECONFORM_VERSION=0.8.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${STRONGROOM_K8S_BINS:-${XDG_CACHE_HOME:-$HOME/.cache}/strongroom/k8s-${K8S_VERSION}}"
stamp="$dir/.complete-k8s${K8S_VERSION}-etcd${ETCD_VERSION}-helm${HELM_VERSION}-kubeconform${KUBECONFORM_VERSION}"

if [[ -f "$stamp" ]]; then
	echo "$dir"
	exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
	echo "k8s test binaries are not built: run $0" >&2
	exit 1
fi

log() { echo "k8s-test-bins: $*" >&2; }
export CGO_ENABLED=0 GOWORK=off
mkdir -p "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "building Kubernetes v${K8S_VERSION}, etcd v${ETCD_VERSION} into $dir (10-20 minutes the first time)"
cd "$work"
go mod init strongroom.dev/k8s-test-bins >/dev/null 2>&1
go mod edit -go=1.26.0
# Every staging module k8s.io/kubernetes replaces with ./staging/src/...
gomod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$gomod")"
if [[ -z "$staging" ]]; then
	log "no staging modules found in $gomod"
	exit 1
fi
for m in $staging; do
	go mod edit -replace "$m=$m@v0.${K8S_VERSION#1.}"
done
go mod edit -require "k8s.io/kubernetes@v${K8S_VERSION}" -require "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}"
cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
# What hack/lib/version.sh stamps, so the binaries report their version.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X ${pkg}.gitVersion=v${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${K8S_VERSION#1.}"
	ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done
GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$dir/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$dir/kubectl" k8s.io/kubernetes/cmd/kubectl
GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$dir/etcd" go.etcd.io/etcd/server/v3

log "building helm v${HELM_VERSION} and kubeconform v${KUBECONFORM_VERSION}"
GOBIN="$dir" go install -trimpath "helm.sh/helm/v4/cmd/helm@v${HELM_VERSION}"
GOBIN="$dir" go install -trimpath "github.com/yannh/kubeconform/cmd/kubeconform@v${KUBECONFORM_VERSION}"

log "writing kubeconform schemas for the built-in kinds"
(cd "$here/hack/openapi2jsonschema" && go build -trimpath -o "$dir/openapi2jsonschema" .)
"$dir/openapi2jsonschema" "$(go env GOMODCACHE)/k8s.io/kubernetes@v${K8S_VERSION}/api/openapi-spec/swagger.json" "$dir/kubeconform-schemas"

"$dir/kube-apiserver" --version >&2
touch "$stamp"
echo "$dir"
