#!/usr/bin/env bash
# Proves the README's two commands on a genuinely fresh Debian 12 (bookworm):
# debootstrap makes a minimal root (no Python, no Go, no compiler, no Ruby); in
# it, as root, only `sudo make git` are installed and a user with sudo is made;
# that user clones this repository (the committed state of REF, default HEAD:
# nothing uncommitted, nothing git ignores) and runs
#   make run    until grpcurl (built by the set-up) lists ragd.v1.RagService,
#               then stops the daemon with SIGTERM (it must exit 0),
#   make test   to the end,
# and the time of each is printed and kept in $FRESH_LOGS/times.txt with both
# logs. Everything else (compilers, Python, Go, Ruby, redis, ...) must come from
# the project's own scripts.
#
# Usage:  sudo nice scripts/fresh_machine_check.sh [REF]
# Needs root (debootstrap, mounts, chroot), ~8 GB of disk and the network the
# set-up needs anyway (the Debian mirror, PyPI, the Go module proxy). Not run in
# CI: it takes about an hour on 2 cores.
#   DEBIAN_MIRROR   (default http://deb.debian.org/debian)
#   FRESH_DIR       where the root is made (default /var/tmp); removed at the end
#   FRESH_LOGS      where logs and times are kept (default ./var/fresh-machine)
#   KEEP_ROOT=1     keep the root for inspection (unmounted)
#
# Isolation: the chroot runs in its own mount and PID namespaces, so its
# mounts (/proc, /sys, /dev, /dev/pts, /dev/shm) and every process started in
# it (daemons, redis) end with it, even if this script is killed; the host's
# network is shared, so the daemon listens on a free port (RAGD_SERVER_LISTEN).
# The host's locally added CA certificates and proxy variables are carried in,
# so the root reaches the registries the way the host does.
set -euo pipefail

# ----------------------------------------------------------------- inside
# Runs as PID 1 of new PID and mount namespaces (see the end of this file).
mounts=()  # global: the EXIT trap reads it after inside() has returned
inside() {
  local root=$1 sha=$2 logs=$3 port=$4
  unmount() {
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
      umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
    done
    mounts=()
  }
  trap 'unmount' EXIT
  trap 'exit 130' INT TERM  # PID 1 ignores signals it does not handle
  mount_at() { mount "$@"; mounts+=("${*: -1}"); }
  mount_at -t proc proc "$root/proc"
  mount_at -t sysfs sysfs "$root/sys"
  mount_at --bind /dev "$root/dev"
  mount_at --bind /dev/pts "$root/dev/pts"
  mount_at -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"

  as_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
                DEBIAN_FRONTEND=noninteractive /bin/bash -euo pipefail -c "$1"; }
  local -a netenv=()
  local v
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_EXTRA_INDEX_URL \
           GOPROXY GOSUMDB; do
    [ -n "${!v:-}" ] && netenv+=("$v=${!v}")
  done
  [ -n "${PIP_CERT:-}" ] && netenv+=("PIP_CERT=/etc/ssl/certs/ca-certificates.crt")
  as_dev() { chroot --userspec=dev:dev "$root" /usr/bin/env -i HOME=/home/dev USER=dev LOGNAME=dev \
               PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "${netenv[@]}" \
               /bin/bash -euo pipefail -c "cd /home/dev; $1"; }

  echo "== the prerequisites: sudo make git, and a user with sudo"
  as_root 'apt-get -qq update && apt-get -qq install -y --no-install-recommends sudo make git >/dev/null
           useradd -m -s /bin/bash dev
           chown -R dev:dev /srv/ragd.git
           echo "dev ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/dev && chmod 0440 /etc/sudoers.d/dev'
  for tool in python3 go gcc ruby redis-server; do
    if as_root "command -v $tool >/dev/null"; then echo "not fresh: $tool is already installed" >&2; exit 1; fi
  done
  as_dev "git clone -q /srv/ragd.git ragd && git -C ragd checkout -q --detach $sha && git -C ragd log --oneline -1"

  echo "== make run (until grpcurl lists ragd.v1.RagService)"
  local t0 t1 listed=""
  t0=$(date +%s)
  # Once listed, SIGTERM goes to the daemon (make's child: scripts/run.sh execs
  # it), found by its parent pid; make then exits with the daemon's status.
  as_dev "cd ragd
    RAGD_SERVER_LISTEN=127.0.0.1:$port make run > ../run.log 2>&1 &
    job=\$!
    while kill -0 \$job 2>/dev/null; do
      if [ -x .tools/bin/grpcurl ] && .tools/bin/grpcurl -plaintext -max-time 5 127.0.0.1:$port list \
           2>/dev/null | grep -qx ragd.v1.RagService; then
        echo listed > ../listed
        .tools/bin/grpcurl -plaintext 127.0.0.1:$port list
        for stat in /proc/[0-9]*/stat; do
          read -r pid _ _ ppid _ < \$stat 2>/dev/null || continue
          [ \$ppid = \$job ] && kill -TERM \$pid
        done
        break
      fi
      sleep 5
    done
    wait \$job" && rc=0 || rc=$?
  t1=$(date +%s)
  cp "$root/home/dev/run.log" "$logs/run.log"
  [ -f "$root/home/dev/listed" ] && listed=yes
  if [ -z "$listed" ] || [ "$rc" != 0 ]; then
    echo "make run failed (listed: ${listed:-no}, exit $rc); last lines of $logs/run.log:" >&2
    tail -n 40 "$logs/run.log" >&2
    exit 1
  fi
  echo "make run: $((t1 - t0)) s to a listed service; the daemon stopped on SIGTERM with exit 0" \
    | tee -a "$logs/times.txt"

  echo "== make test"
  t0=$(date +%s)
  as_dev "cd ragd && make test > ../test.log 2>&1" && rc=0 || rc=$?
  t1=$(date +%s)
  cp "$root/home/dev/test.log" "$logs/test.log"
  tail -n 15 "$logs/test.log"
  echo "make test: $((t1 - t0)) s, exit $rc" | tee -a "$logs/times.txt"
  return "$rc"
}

if [ "${1:-}" = "--inside" ]; then
  shift
  inside "$@"
  exit $?
fi

# ----------------------------------------------------------------- outside
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
  exec sudo -E "$0" "$@"
fi
ref=${1:-HEAD}
sha=$(git -C "$here" rev-parse --verify "$ref^{commit}")
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
logs=${FRESH_LOGS:-$here/var/fresh-machine}
base=${FRESH_DIR:-/var/tmp}
mkdir -p "$logs"
: > "$logs/times.txt"
root=$(mktemp -d "$base/ragd-fresh.XXXXXX")
chmod 755 "$root"  # mktemp's 0700 would lock every user but root (apt's _apt, the developer) out of /

mounted_under_root() { findmnt -rn -o TARGET | awk -v r="$root/" 'index($0, r) == 1'; }
cleanup() {
  local rc=$? m
  set +e +o pipefail  # clean up whatever happens
  # Anything still mounted under the root (a debootstrap that failed half-way)
  # is unmounted before a single file is removed.
  for m in $(mounted_under_root | sort -r); do umount -l "$m"; done
  if [ -n "$(mounted_under_root)" ]; then
    echo "fresh_machine_check: $root still has mounts; left in place" >&2
  elif [ "${KEEP_ROOT:-0}" = 1 ]; then
    echo "fresh_machine_check: root kept at $root" >&2
  else
    case "$root" in "$base"/ragd-fresh.*) rm -rf --one-file-system "$root" ;; esac
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! command -v debootstrap >/dev/null; then
  echo "== installing debootstrap"
  apt-get -o DPkg::Lock::Timeout=900 -qq update
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 -qq install -y debootstrap >/dev/null
fi

echo "== debootstrap bookworm (minbase) into $root"
t0=$(date +%s)
debootstrap --variant=minbase bookworm "$root" "$mirror" > "$logs/debootstrap.log" 2>&1 || {
  tail -n 20 "$logs/debootstrap.log" >&2; exit 1; }
echo "debootstrap: $(( $(date +%s) - t0 )) s" | tee -a "$logs/times.txt"

# A freshly installed Debian's apt sources, names and resolver; no service may
# start inside the chroot (policy-rc.d, as in container images); the host's
# locally added CAs (ca-certificates, once the set-up installs it, trusts them).
security=${mirror%/debian}/debian-security
[ "$security" = "$mirror/debian-security" ] && security=http://deb.debian.org/debian-security
cat > "$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
echo ragd-fresh > "$root/etc/hostname"
# The chroot shares the host's UTS namespace, so its hostname is the host's.
printf '127.0.0.1 localhost ragd-fresh %s\n::1 localhost ip6-localhost\n' "$(hostname)" > "$root/etc/hosts"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
# The committed history only, as a clone would see it.
git clone -q --bare --no-local "$here" "$root/srv/ragd.git"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
unshare --mount --pid --fork --propagation private "$here/scripts/fresh_machine_check.sh" --inside "$root" "$sha" "$logs" "$port"
echo "== times (also in $logs/times.txt)"
cat "$logs/times.txt"
