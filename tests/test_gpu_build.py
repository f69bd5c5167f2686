"""The GPU build's recipe (constraints-gpu.txt, scripts/setup_gpu.sh): the pinned
onnxruntime-gpu and faiss-gpu resolve, with their CUDA and cuDNN wheels, to one CUDA
major. Resolved by pip against PyPI (a dry run: nothing is downloaded but metadata);
the GPU itself is not needed to check that the pair fits together."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ragd.doctor import cuda_major_of

REPO = Path(__file__).resolve().parents[1]


def pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=10).close()
        return True
    except OSError:
        return False


def test_gpu_constraints_pin_one_pair():
    pins = dict(line.split("==") for line in (REPO / "constraints-gpu.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert set(pins) == {"onnxruntime-gpu", "faiss-gpu"}
    cpu = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
               if "==" in line and not line.startswith("#"))
    assert pins["faiss-gpu"] == cpu["faiss-cpu"]  # the same FAISS as the CPU build
    # onnxruntime-gpu 1.27+ targets CUDA 13, for which PyPI has no faiss GPU wheel.
    assert tuple(int(x) for x in pins["onnxruntime-gpu"].split(".")[:2]) <= (1, 26)


def test_setup_script_swaps_every_flavour():
    script = (REPO / "scripts" / "setup_gpu.sh").read_text()
    assert "uninstall -q -y onnxruntime onnxruntime-gpu faiss-cpu faiss-gpu" in script
    assert "-c constraints-gpu.txt" in script and '"onnxruntime-gpu[cuda,cudnn]" faiss-gpu' in script
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "scripts/setup_gpu.sh" in setup and "--gpu" in setup and "--cpu" in setup


@pytest.mark.skipif(not pypi_reachable(), reason="PyPI is not reachable from this machine")
def test_gpu_packages_resolve_to_one_cuda_major(tmp_path):
    report = tmp_path / "report.json"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
         str(report), "-c", "constraints.txt", "-c", "constraints-gpu.txt", "onnxruntime-gpu[cuda,cudnn]",
         "faiss-gpu"], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    installs = {i["metadata"]["name"].lower(): i["metadata"] for i in json.loads(report.read_text())["install"]}
    majors = {name: cuda_major_of(installs[name].get("requires_dist")) for name in ("onnxruntime-gpu", "faiss-gpu")}
    assert majors["onnxruntime-gpu"] == majors["faiss-gpu"] is not None, majors
    # Every NVIDIA runtime wheel in the resolution is for that major (-cuNN or a NN.x version).
    for name, meta in installs.items():
        if name.startswith("nvidia-"):
            m = re.search(r"-cu(\d+)$", name)
            major = int(m.group(1)) if m else int(meta["version"].split(".")[0])
            if name.startswith("nvidia-cuda") or name.startswith("nvidia-cublas"):
                assert major == majors["faiss-gpu"], (name, meta["version"])
    assert "nvidia-cudnn-cu12" in installs or "nvidia-cudnn-cu13" in installs
