"""`ragd doctor`: what this installation will run on, and why not on a GPU.

Facts are gathered from the real installation (which distributions provide
`onnxruntime` and `faiss`, their execution providers and GPUs, the CPU's
instruction sets, the provisioned model's variants); the decisions are pure
functions of those facts (`embed_decision`, `index_decision`), so every branch is
testable on a machine without a GPU. A GPU build is installed by
`scripts/setup.sh --gpu` (onnxruntime-gpu and faiss-gpu for the same CUDA major).
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import io
import os
import platform
import re
import sys
import tempfile
from pathlib import Path

from ragd import __version__

CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
# The CPU features that decide how fast the int8 and fp32 graphs run (x86 /proc/cpuinfo names).
CPU_FLAGS = ("avx2", "avx512f", "avx_vnni", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8",
             "amx_bf16")
GPU_SETUP_HINT = "install the GPU build with `scripts/setup.sh --gpu` (onnxruntime-gpu + faiss-gpu, CUDA 12)"


# ---------------------------------------------------------------- facts


def distribution_of(module: str) -> tuple[str, str] | None:
    """(distribution, version) that installed the import package `module`, e.g.
    ('onnxruntime-gpu', '1.26.0') for onnxruntime; None when it is not installed."""
    for dist in importlib.metadata.packages_distributions().get(module, []):
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cuda_major_of(requirements: list[str] | None) -> int | None:
    """The CUDA major a wheel targets, from its declared dependencies on NVIDIA's runtime
    wheels: 'nvidia-cuda-runtime-cu12...' is 12, 'nvidia-cuda-runtime~=13.0' is 13."""
    for req in requirements or []:
        m = re.match(r"\s*nvidia-cuda-runtime(?:-cu(\d+))?\s*(?:\[[^\]]*\])?\s*([<>=~!]=?\s*(\d+))?", req)
        if m and (m.group(1) or m.group(3)):
            return int(m.group(1) or m.group(3))
    return None


def cpu_facts() -> dict:
    flags: set[str] = set()
    model = ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"model": model or platform.processor(), "cores": os.cpu_count(), "machine": platform.machine(),
            "flags": {f: f in flags for f in CPU_FLAGS}, "amx_state_requested": amx_state_requested()}


def amx_state_requested() -> bool | None:
    """Whether this process asked Linux for the AMX tile state (arch_prctl XCOMP_PERM,
    XTILEDATA): ONNX Runtime's MLAS does so when importing onnxruntime on a CPU with
    AMX-INT8, and then runs its int8 matrix products on AMX. None where not Linux x86-64."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return None
    try:
        import onnxruntime  # noqa: F401  (the import is what requests the state)
        libc = ctypes.CDLL(None, use_errno=True)
        perm = ctypes.c_uint64(0)
        arch_prctl, arch_get_xcomp_perm, xtiledata = 158, 0x1022, 18
        if libc.syscall(arch_prctl, arch_get_xcomp_perm, ctypes.byref(perm)) != 0:
            return None
        return bool(perm.value >> xtiledata & 1)
    except (OSError, AttributeError):
        return None


def nvidia_facts() -> dict:
    """What the kernel says about NVIDIA GPUs (no CUDA library is loaded for this)."""
    out: dict = {"device_files": sorted(p.name for p in Path("/dev").glob("nvidia[0-9]*"))}
    try:
        out["driver"] = Path("/proc/driver/nvidia/version").read_text().splitlines()[0].strip()
    except OSError:
        out["driver"] = None
    return out


def onnxruntime_facts(try_cuda: bool = True) -> dict:
    import onnxruntime as ort
    dist = distribution_of("onnxruntime")
    out = {"version": ort.__version__, "distribution": dist[0] if dist else None,
           "available_providers": ort.get_available_providers(),
           "cuda_major": cuda_major_of(importlib.metadata.requires(dist[0]) if dist else None)}
    if try_cuda and CUDA_EP in out["available_providers"]:
        out["cuda_start"] = _try_cuda_session()
    return out


def _try_cuda_session() -> dict:
    """Start the CUDA provider on a one-node graph; ORT falls back to the CPU (and says
    why on stderr) when the CUDA libraries or a device are missing."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from ragd.embed.onnx_embedder import preload_cuda_libraries
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    def start():
        preload_cuda_libraries()  # as the embedder does
        return ort.InferenceSession(model.SerializeToString(), providers=[CUDA_EP, CPU_EP])
    captured, error = _capture_stderr(start)
    if isinstance(error, Exception):
        return {"started": False, "error": f"{error}"[:2000], "log": captured[-2000:]}
    return {"started": error.get_providers()[0] == CUDA_EP, "log": captured[-2000:]}


def _capture_stderr(fn):
    """(what fn printed and the C++ side wrote to fd 2 while fn ran, fn's result or
    exception): kept out of the report's stdout (--json) and shown as the reason."""
    sys.stderr.flush()
    saved = os.dup(2)
    printed = io.StringIO()
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            with contextlib.redirect_stdout(printed):
                result = fn()
        except Exception as exc:  # noqa: BLE001 - returned to the caller as the reason
            result = exc
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return printed.getvalue() + tmp.read().decode(errors="replace"), result


def faiss_facts() -> dict:
    import faiss
    dist = distribution_of("faiss")
    return {"version": faiss.__version__, "distribution": dist[0] if dist else None,
            "gpus": int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0,
            "gpu_build": hasattr(faiss, "StandardGpuResources"),
            "cuda_major": cuda_major_of(importlib.metadata.requires(dist[0]) if dist else None)}


def model_facts(model_dir: Path) -> dict:
    from ragd.embed.errors import ModelError
    from ragd.embed.manifest import read_manifest
    try:
        m = read_manifest(model_dir)
    except ModelError as exc:
        return {"path": str(model_dir), "provisioned": False, "problem": str(exc)}
    return {"path": str(model_dir), "provisioned": True, "variants": m["variants"],
            "int8_min_cosine": m.get("int8_min_cosine")}


# ---------------------------------------------------------------- decisions


def embed_decision(device: str, precision: str, ort: dict, model: dict, nvidia: dict | None = None) -> dict:
    """Which provider and graph the embedder will run, and why not a GPU."""
    from ragd.embed.errors import ModelError
    from ragd.embed.onnx_embedder import choose_variant
    cuda_available = CUDA_EP in ort["available_providers"]
    start = ort.get("cuda_start") or {}
    nvidia = nvidia if nvidia is not None else {"driver": "unknown"}
    if device == "cpu":
        provider, why = CPU_EP, "model.device is cpu"
    elif not cuda_available:
        provider = CPU_EP
        why = (f"this ONNX Runtime ({ort['distribution']} {ort['version']}) has no CUDA provider; {GPU_SETUP_HINT}")
    elif start and not start.get("started"):
        provider = CPU_EP
        reason = _first_error_line((start.get("error") or "") + "\n" + (start.get("log") or ""))
        why = f"the CUDA provider is installed but did not start ({reason or 'no reason given'})"
        if not nvidia.get("driver"):
            why += "; this machine has no NVIDIA driver (/proc/driver/nvidia/version is missing)"
    else:
        provider, why = CUDA_EP, "the CUDA provider is installed and started"
    files = set(model.get("variants", {}))
    try:
        variant = choose_variant(files, provider == CUDA_EP, precision) if model.get("provisioned") else None
        problem = None
    except ModelError as exc:
        variant, problem = None, str(exc)
    out = {"provider": provider, "why": why, "variant": variant, "precision": precision, "device": device}
    if problem:
        out["problem"] = problem
    if device == "cuda" and provider != CUDA_EP:
        out["problem"] = f"model.device is cuda but the GPU is not used: {why}"
    return out


def index_decision(index_gpu: bool, faiss_info: dict) -> dict:
    if not index_gpu:
        return {"gpu": False, "why": "index.gpu is false"}
    if not faiss_info["gpu_build"]:
        return {"gpu": False, "why": f"this FAISS ({faiss_info['distribution']} {faiss_info['version']}) is a CPU "
                                     f"build; {GPU_SETUP_HINT}"}
    if faiss_info["gpus"] <= 0:
        return {"gpu": False, "why": "FAISS is a GPU build but sees no GPU"}
    return {"gpu": True, "why": f"FAISS sees {faiss_info['gpus']} GPU(s): IVF-PQ indexes get a GPU clone for "
                                "unfiltered searches (filtered ones run on the CPU index, which holds the IDSelector)"}


def cuda_match(ort: dict, faiss_info: dict) -> dict | None:
    """Both GPU builds must target the same CUDA major (one CUDA runtime per process)."""
    a, b = ort.get("cuda_major"), faiss_info.get("cuda_major")
    if a is None or b is None:
        return None
    return {"onnxruntime": a, "faiss": b, "match": a == b}


def _first_error_line(text: str) -> str:
    """The informative part of ONNX Runtime's fallback message: the CUDA error, or the
    library that failed to load, else the first line naming an error."""
    m = re.search(r"CUDA failure \d+: [^;\n]+", text)
    if m:
        return m.group(0).strip()
    m = re.search(r"Failed to load library \S+ with error: [^\n]+", text)
    if m:
        return m.group(0).strip()[:300]
    for line in text.splitlines():
        line = line.strip()
        if line.strip("* ") and "EP Error ***" not in line and \
                re.search(r"error|fail|cannot|not found|no such", line, re.IGNORECASE):
            return line[:300]
    return ""


# ---------------------------------------------------------------- report


def diagnose(cfg) -> dict:
    """Everything `ragd doctor` prints, for a loaded Config."""
    ort = onnxruntime_facts(try_cuda=cfg.model.device != "cpu")
    fa = faiss_facts()
    model = model_facts(cfg.data_path / "models" / cfg.model.name)
    nvidia = nvidia_facts()
    report = {"ragd": __version__, "python": platform.python_version(), "cpu": cpu_facts(), "nvidia": nvidia,
              "onnxruntime": ort, "faiss": fa, "model": model,
              "embed": embed_decision(cfg.model.device, cfg.model.precision, ort, model, nvidia),
              "index": index_decision(cfg.index.gpu, fa), "cuda_match": cuda_match(ort, fa)}
    problems = [p for p in (report["embed"].get("problem"),) if p]
    if report["cuda_match"] and not report["cuda_match"]["match"]:
        problems.append(f"onnxruntime targets CUDA {report['cuda_match']['onnxruntime']} but faiss CUDA "
                        f"{report['cuda_match']['faiss']}: reinstall with `scripts/setup.sh --gpu`")
    report["problems"] = problems
    return report


def render(r: dict) -> str:
    cpu, ort, fa, e, ix, m = r["cpu"], r["onnxruntime"], r["faiss"], r["embed"], r["index"], r["model"]
    flags = ", ".join(f for f, on in cpu["flags"].items() if on) or "none of " + ", ".join(CPU_FLAGS)
    amx = {True: "yes (ONNX Runtime runs int8 matrix products on AMX)", False: "no", None: "unknown"}[
        cpu["amx_state_requested"]]
    gpu = r["nvidia"]["driver"] or ("device files " + ", ".join(r["nvidia"]["device_files"])
                                    if r["nvidia"]["device_files"] else "no NVIDIA driver or device")
    lines = [
        f"ragd {r['ragd']} (Python {r['python']})",
        f"CPU          {cpu['model']}, {cpu['cores']} cores; {flags}",
        f"             AMX tile state requested by ONNX Runtime: {amx}",
        f"GPU          {gpu}",
        f"ONNX Runtime {ort['distribution']} {ort['version']}; providers {', '.join(ort['available_providers'])}"
        + (f"; built for CUDA {ort['cuda_major']}" if ort.get("cuda_major") else ""),
        f"FAISS        {fa['distribution']} {fa['version']}; {'GPU build' if fa['gpu_build'] else 'CPU build'}, "
        f"{fa['gpus']} GPU(s) visible" + (f"; built for CUDA {fa['cuda_major']}" if fa.get("cuda_major") else ""),
        f"model        {m['path']}: " + (", ".join(f"{k} ({v})" for k, v in m["variants"].items())
                                        if m["provisioned"] else "not provisioned (made on first start)"),
        f"embedding    runs on {e['provider']}" + (f" with {e['variant']}" if e["variant"] else "")
        + f" (model.device {e['device']}, model.precision {e['precision']}): {e['why']}",
        f"vector index {'GPU clone + CPU' if ix['gpu'] else 'CPU'}: {ix['why']}",
    ]
    if r["cuda_match"]:
        c = r["cuda_match"]
        lines.append(f"CUDA majors  onnxruntime {c['onnxruntime']}, faiss {c['faiss']}: "
                     + ("match" if c["match"] else "MISMATCH"))
    for p in r["problems"]:
        lines.append(f"PROBLEM      {p}")
    return "\n".join(lines)
