#!/usr/bin/env bash
# Validate deploy/ offline, with the tools the Go module proxy provides:
#   - the Kubernetes manifests (kustomize-built when kubectl is present, else file by file)
#     with kubeconform -strict against JSON schemas generated from Kubernetes' own
#     swagger.json (module k8s.io/kubernetes) by deploy/k8s_schemas.py;
#   - the compose file with compose-go (the loader `docker compose config` uses), by
#     deploy/tools/composecheck.
# Tools land in .tools/bin (like grpcurl); schemas in .tools/k8s-schemas/K8S_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[deploy]\033[0m %s\n' "$*"; }
K8S_VERSION=${K8S_VERSION:-v1.32.4}
KUBECONFORM_VERSION=v0.6.7
py=${PYTHON:-.venv/bin/python}
export GOFLAGS=-mod=mod
mkdir -p .tools/bin
# compose-go needs the Go that deploy/tools/composecheck/go.mod names (1.23); Debian 12's
# golang-go is 1.19 (a fresh-root run found it: "package cmp is not in GOROOT"). An older
# go fetches that toolchain from the Go module proxy (golang.org/toolchain, what Go >= 1.21
# does by itself) into .tools/go; module zips keep no exec bits, hence the chmod.
GO_TOOLCHAIN=1.23.12
go=go
if [ "$(printf '%s\n' 1.23 "$(go env GOVERSION | sed 's/^go//')" | sort -V | head -n 1)" != 1.23 ]; then
  if [ ! -x .tools/go/bin/go ]; then
    say "fetching Go $GO_TOOLCHAIN from the Go module proxy (this go is $(go env GOVERSION))"
    dir=$(go mod download -json "golang.org/toolchain@v0.0.1-go$GO_TOOLCHAIN.linux-$(go env GOARCH)" |
          sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
    rm -rf .tools/go.partial
    cp -r "$dir" .tools/go.partial
    chmod -R u+w .tools/go.partial
    chmod +x .tools/go.partial/bin/* .tools/go.partial/pkg/tool/*/*
    mv .tools/go.partial .tools/go
  fi
  go=$PWD/.tools/go/bin/go
fi
if [ ! -x .tools/bin/kubeconform ]; then
  say "building kubeconform $KUBECONFORM_VERSION"
  GOBIN="$PWD/.tools/bin" "$go" install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
fi
if [ ! -x .tools/bin/composecheck ] || [ deploy/tools/composecheck/main.go -nt .tools/bin/composecheck ]; then
  say "building composecheck (compose-go)"
  (cd deploy/tools/composecheck && "$go" build -o "$OLDPWD/.tools/bin/composecheck" .)
fi
schemas=.tools/k8s-schemas/$K8S_VERSION
manifests=$(mktemp --suffix=.yaml)
trap 'rm -f "$manifests"' EXIT
if command -v kubectl >/dev/null; then
  kubectl kustomize deploy/k8s > "$manifests"
else  # the same resources, without kustomize's namespace and image substitutions
  for f in $(sed -n 's/^  - \(.*\.yaml\)$/\1/p' deploy/k8s/kustomization.yaml); do
    printf -- '---\n'; cat "deploy/k8s/$f"
  done > "$manifests"
fi
swagger=$("$go" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')/api/openapi-spec/swagger.json
"$py" deploy/k8s_schemas.py "$swagger" "$schemas" "$manifests"
say "kubeconform -strict (Kubernetes $K8S_VERSION schemas)"
.tools/bin/kubeconform -strict -summary -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$manifests"
say "compose file"
.tools/bin/composecheck deploy/compose.yaml > /dev/null
