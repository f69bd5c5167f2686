#!/usr/bin/env bash
# The GPU build of ragd: ONNX Runtime and FAISS in the virtualenv swapped for their CUDA
# builds, the pair pinned in constraints-gpu.txt (one CUDA major; CUDA and cuDNN come as
# NVIDIA's pip wheels, no system CUDA toolkit). Run by `scripts/setup.sh --gpu` after ragd
# is installed; VENV names the virtualenv (default .venv). `scripts/setup.sh --cpu` goes back.
# `ragd doctor` then says which execution provider runs and, if not CUDA, why.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
py="$venv/bin/python"
say() { printf '\033[1m[setup --gpu]\033[0m %s\n' "$*"; }
[ -x "$py" ] || { echo "no virtualenv at $venv: run scripts/setup.sh first" >&2; exit 1; }
# The CPU and GPU distributions install the same import packages (onnxruntime/, faiss/):
# remove every flavour first, or one's files overwrite the other's and a later uninstall
# leaves neither working.
say "replacing onnxruntime and faiss-cpu with their CUDA builds ($(grep -v '^#' constraints-gpu.txt | xargs))"
"$py" -m pip uninstall -q -y onnxruntime onnxruntime-gpu faiss-cpu faiss-gpu faiss-gpu-cu12 >/dev/null 2>&1 || true
if ! "$py" -m pip install -q -c constraints.txt -c constraints-gpu.txt "onnxruntime-gpu[cuda,cudnn]" faiss-gpu; then
  # Not half a build: without the GPU pair the virtualenv would have no ONNX Runtime or FAISS at all.
  say "the CUDA build did not install; putting the CPU build back"
  "$py" -m pip uninstall -q -y onnxruntime-gpu faiss-gpu >/dev/null 2>&1 || true
  "$py" -m pip install -q -c constraints.txt onnxruntime faiss-cpu
  exit 1
fi
touch "$venv/.ragd-gpu"  # scripts/setup.sh keeps the GPU build on later runs (until --cpu)
"$py" -m ragd.cli doctor || say "ragd doctor reports a problem (above); on a machine without a GPU that is expected"
