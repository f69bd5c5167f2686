#!/usr/bin/env bash
# Build deploy/Dockerfile into localhost/ragd:latest with buildah/podman, run it, and check it
# answers grpc.health.v1 (grpcurl) and `ragd health`. When no registry base image can be
# pulled (an offline machine), the Debian base is made with debootstrap from the Debian mirror
# apt already uses, and imported as localhost/debian:bookworm-slim.
#   deploy/build-image.sh            (root, or rootless podman with subuids)
# Installs podman, buildah and debootstrap (Debian packages) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[image]\033[0m %s\n' "$*"; }
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
need=()
for p in podman buildah debootstrap; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
    "${need[@]}" uidmap fuse-overlayfs >/dev/null
fi
# Inside an unprivileged container (CI runners, this project's machines) overlay mounts and
# nested namespaces are unavailable: vfs storage and chroot isolation work everywhere.
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs} BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
base=${BASE:-docker.io/library/debian:bookworm-slim}
if ! podman image exists "$base" && ! podman pull -q "$base" 2>/dev/null; then
  base=localhost/debian:bookworm-slim
  if ! podman image exists "$base"; then
    say "no registry: debootstrapping Debian bookworm (minbase) as $base"
    root=$(mktemp -d)
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
    $SUDO debootstrap --variant=minbase bookworm "$root" "${mirror:-http://deb.debian.org/debian}" >/dev/null
    $SUDO tar -C "$root" -c . | podman import - "$base" >/dev/null
    $SUDO rm -rf "$root"
  fi
fi
say "building localhost/ragd:latest on $base"
# The host's CA bundle, for a machine whose HTTPS goes through an intercepting proxy.
ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
podman build --isolation "$BUILDAH_ISOLATION" --network host --build-arg BASE="$base" \
  --secret id=pip_ca,src="$ca" -f deploy/Dockerfile -t localhost/ragd:latest .
say "running it"
name=ragd-image-check-$$
port=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
podman run -d --name "$name" --network host -e RAGD_SERVER_LISTEN=127.0.0.1:$port \
  -e RAGD_SERVER_METRICS_LISTEN= localhost/ragd:latest serve >/dev/null
trap 'podman logs "$name" | tail -20; podman rm -f "$name" >/dev/null' EXIT
for _ in $(seq 600); do
  podman exec "$name" ragd health --address 127.0.0.1:$port >/dev/null 2>&1 && break
  sleep 1
done
podman exec "$name" id
podman exec "$name" ragd health --address 127.0.0.1:$port
.tools/bin/grpcurl -plaintext 127.0.0.1:$port grpc.health.v1.Health/Check
.tools/bin/grpcurl -plaintext -d '{"texts": ["hello from the image"]}' 127.0.0.1:$port ragd.v1.RagService/Embed \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print("Embed:", r["dimension"], "dims,", r["model"])'
say "ok"
