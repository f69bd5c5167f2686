"""Shared by the benchmark scripts: a real daemon subprocess, machine facts, result files."""
from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO / "tests"))  # the CISI loader lives with the tests
import cisi  # noqa: E402,F401  (re-exported for the scripts)

MODEL_CACHE = REPO / "var" / "test-cache" / "models"


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import faiss
    import grpc
    import onnxruntime
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "faiss": faiss.__version__, "grpcio": grpc.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


@contextmanager
def daemon(env: dict[str, str] | None = None):
    """A `ragd serve` subprocess on a free port with the cached model; yields its address."""
    from ragd.embed.provision import provision_model
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    provision_model(MODEL_CACHE)
    with tempfile.TemporaryDirectory(prefix="ragd-bench-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        (data / "models").symlink_to(MODEL_CACHE, target_is_directory=True)
        port_file = Path(tmp) / "port"
        log = open(Path(tmp) / "log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "ragd.cli", "serve", "--data-dir", str(data),
                                 "--listen", "127.0.0.1:0", "--port-file", str(port_file)],
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=REPO)
        try:
            while not port_file.exists():
                if proc.poll() is not None:
                    raise RuntimeError((Path(tmp) / "log").read_text())
                time.sleep(0.05)
            yield f"127.0.0.1:{int(port_file.read_text())}", proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def write(name: str, data: dict, fig) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    fig.savefig(RESULTS / f"{name}.png", dpi=120, bbox_inches="tight")
    print(f"wrote {RESULTS / name}.json and .png")
