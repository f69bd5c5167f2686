"""`ragd doctor`: the real report on this machine, and every branch of the GPU/CPU
decision from facts (a GPU is not needed to test which way the switch goes)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from ragd.doctor import CPU_EP, CUDA_EP, _first_error_line, cuda_major_of, cuda_match, embed_decision, index_decision
from ragd.embed.manifest import FP16_FILE, INT8_FILE, MODEL_FILE

REPO = Path(__file__).resolve().parents[1]

# Requires-Dist lines as the wheels on PyPI declare them.
ORT_GPU_1_26 = ['flatbuffers', 'numpy>=1.21.6', 'sympy; extra == "symbolic"',
                'nvidia-cuda-nvrtc-cu12~=12.0; extra == "cuda"', 'nvidia-cuda-runtime-cu12~=12.0; extra == "cuda"',
                'nvidia-cudnn-cu12~=9.0; extra == "cudnn"']
ORT_GPU_1_31 = ['flatbuffers', 'nvidia-cuda-nvrtc~=13.0; extra == "cuda"', 'nvidia-cuda-runtime~=13.0; extra == "cuda"',
                'nvidia-cudnn-cu13~=9.0; extra == "cudnn"']
FAISS_GPU_1_15 = ['numpy>=1.25', 'packaging', 'nvidia-cuda-runtime-cu12<13,>=12.6', 'nvidia-cublas-cu12<13,>=12.6']
FAISS_GPU_CU12 = ['numpy<3,>=2', 'nvidia-cuda-runtime-cu12>=12.1.105',
                  'nvidia-cuda-runtime-cu12==12.1.105; extra == "fix-cuda"']
CPU_ORT = {"distribution": "onnxruntime", "version": "1.32.0", "available_providers": [CPU_EP], "cuda_major": None}
GPU_ORT = {"distribution": "onnxruntime-gpu", "version": "1.26.0", "available_providers": [CUDA_EP, CPU_EP],
           "cuda_major": 12}
MODEL = {"provisioned": True, "variants": {MODEL_FILE: "fp32-fused", FP16_FILE: "fp16", INT8_FILE: "int8"}}
NO_DRIVER_LOG = ("*************** EP Error ***************\nEP Error /onnxruntime_src/onnxruntime/core/providers/cuda/"
                 "cuda_call.cc:122 ... CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version ;"
                 " GPU=-1 ; hostname=vm ; file=cuda_execution_provider.cc ; line=336\n\n when using "
                 "['CUDAExecutionProvider', 'CPUExecutionProvider']\nFalling back to ['CPUExecutionProvider'] and "
                 "retrying.\n****************************************\n")


@pytest.mark.parametrize(("requires", "major"), [(ORT_GPU_1_26, 12), (ORT_GPU_1_31, 13), (FAISS_GPU_1_15, 12),
                                                 (FAISS_GPU_CU12, 12), (["numpy", "protobuf"], None), (None, None)])
def test_cuda_major_from_wheel_requirements(requires, major):
    assert cuda_major_of(requires) == major


def test_cpu_build_explains_how_to_get_the_gpu_build():
    d = embed_decision("auto", "auto", CPU_ORT, MODEL)
    assert d["provider"] == CPU_EP and d["variant"] in (MODEL_FILE, INT8_FILE)
    assert "has no CUDA provider" in d["why"] and "scripts/setup.sh --gpu" in d["why"]
    assert "problem" not in d


def test_cuda_asked_on_a_cpu_build_is_a_problem():
    d = embed_decision("cuda", "auto", CPU_ORT, MODEL)
    assert d["provider"] == CPU_EP and "model.device is cuda but the GPU is not used" in d["problem"]


def test_gpu_build_that_cannot_start_says_why():
    ort_facts = {**GPU_ORT, "cuda_start": {"started": False, "log": NO_DRIVER_LOG}}
    d = embed_decision("auto", "auto", ort_facts, MODEL, nvidia={"driver": None})
    assert d["provider"] == CPU_EP
    assert "CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version" in d["why"]
    assert "no NVIDIA driver" in d["why"]
    assert d["variant"] != FP16_FILE  # the CPU runs the CPU's graph, not the fp16 one


def test_gpu_build_that_starts_runs_fp16():
    d = embed_decision("auto", "auto", {**GPU_ORT, "cuda_start": {"started": True}}, MODEL)
    assert (d["provider"], d["variant"]) == (CUDA_EP, FP16_FILE)
    d = embed_decision("auto", "fp32", {**GPU_ORT, "cuda_start": {"started": True}}, MODEL)
    assert (d["provider"], d["variant"]) == (CUDA_EP, MODEL_FILE)


def test_device_cpu_wins_over_a_gpu_build():
    d = embed_decision("cpu", "auto", {**GPU_ORT, "cuda_start": {"started": True}}, MODEL)
    assert d["provider"] == CPU_EP and d["why"] == "model.device is cpu"


def test_int8_asked_for_a_model_without_it_is_a_problem():
    d = embed_decision("cpu", "int8", CPU_ORT, {"provisioned": True, "variants": {MODEL_FILE: "fp32"}})
    assert "ragd model export --quantize int8" in d["problem"]


def test_failed_library_load_is_the_reason():
    log = ("EP Error: Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.12: "
           "cannot open shared object file: No such file or directory")
    assert _first_error_line(log).startswith("Failed to load library libonnxruntime_providers_cuda.so with error: "
                                             "libcublasLt.so.12")


@pytest.mark.parametrize(("gpu", "facts", "expect"), [
    (False, {"gpu_build": True, "gpus": 1}, "index.gpu is false"),
    (True, {"gpu_build": False, "gpus": 0, "distribution": "faiss-cpu", "version": "1.15.1"}, "CPU build"),
    (True, {"gpu_build": True, "gpus": 0}, "sees no GPU"),
    (True, {"gpu_build": True, "gpus": 2}, "GPU clone"),
])
def test_index_decision(gpu, facts, expect):
    d = index_decision(gpu, facts)
    assert expect in d["why"] and d["gpu"] == (expect == "GPU clone")


def test_cuda_majors_must_match():
    assert cuda_match({"cuda_major": 12}, {"cuda_major": 12})["match"]
    assert not cuda_match({"cuda_major": 13}, {"cuda_major": 12})["match"]
    assert cuda_match({"cuda_major": None}, {"cuda_major": 12}) is None


def doctor(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ragd.cli", "doctor", "--data-dir", str(data), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


@pytest.fixture
def data_dir(tmp_path, models_dir) -> Path:
    (tmp_path / "models").symlink_to(models_dir, target_is_directory=True)
    return tmp_path


def test_doctor_reports_this_machine(data_dir):
    out = doctor(data_dir, "--json")
    report = json.loads(out.stdout)  # nothing else on stdout
    assert report["onnxruntime"]["available_providers"] == ort.get_available_providers()
    assert report["onnxruntime"]["version"] == ort.__version__
    assert report["model"]["provisioned"] and MODEL_FILE in report["model"]["variants"]
    flags = set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split(":", 1)[1].split())
    assert report["cpu"]["flags"] == {f: f in flags for f in report["cpu"]["flags"]}
    e = report["embed"]
    if CUDA_EP not in ort.get_available_providers():
        assert e["provider"] == CPU_EP and "scripts/setup.sh --gpu" in e["why"]
        assert out.returncode == 0 and report["problems"] == []
    assert e["variant"] in report["model"]["variants"]


def test_doctor_text_and_exit_code_when_cuda_is_asked(data_dir):
    out = doctor(data_dir, "--device", "cuda")
    assert "embedding    runs on" in out.stdout and "vector index" in out.stdout
    if CUDA_EP not in ort.get_available_providers():
        assert out.returncode == 1
        assert "PROBLEM      model.device is cuda but the GPU is not used" in out.stdout
