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
if [ ! -x .tools/bin/kubeconform ]; then
  say "building kubeconform $KUBECONFORM_VERSION"
  GOBIN="$PWD/.tools/bin" go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
fi
if [ ! -x .tools/bin/composecheck ] || [ deploy/tools/composecheck/main.go -nt .tools/bin/composecheck ]; then
  say "building composecheck (compose-go)"
  (cd deploy/tools/composecheck && go build -o "$OLDPWD/.tools/bin/composecheck" .)
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
swagger=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')/api/openapi-spec/swagger.json
"$py" deploy/k8s_schemas.py "$swagger" "$schemas" "$manifests"
say "kubeconform -strict (Kubernetes $K8S_VERSION schemas)"
.tools/bin/kubeconform -strict -summary -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$manifests"
say "compose file"
.tools/bin/composecheck deploy/compose.yaml > /dev/null
