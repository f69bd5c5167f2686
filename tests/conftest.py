"""Shared fixtures: one provisioned model per test session, real daemons as subprocesses."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/cisi.py and friends

# Provisioned once and reused by every daemon of the session (and by later local
# runs: the cache lives under the git-ignored var/). CI starts from a clean clone.
MODEL_CACHE = Path(os.environ.get("RAGD_TEST_MODEL_CACHE", REPO / "var" / "test-cache" / "models"))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    from ragd.embed.provision import provision_model
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    provision_model(MODEL_CACHE)
    return MODEL_CACHE


@pytest.fixture(scope="session")
def family_models(models_dir) -> Path:
    """models_dir with the optional model families (bge-small-en-v1.5, e5-small-v2) too,
    provisioned from the packages scripts/fetch_models.sh fetched (scripts/test.sh runs it).
    Provisioning a family takes ~30 s of CPU, so the result is kept per machine, keyed by
    the provisioning code, and linked into models_dir."""
    import hashlib
    from ragd.embed.catalog import FAMILIES, packages_dir
    from ragd.embed.errors import ModelError
    from ragd.embed.provision import provision_model
    code = hashlib.sha256()
    for name in ("catalog.py", "provision.py", "export.py", "manifest.py"):
        code.update((REPO / "ragd" / "embed" / name).read_bytes())
    keep = packages_dir().parent / "provisioned" / code.hexdigest()[:16]
    for name in FAMILIES:
        try:
            provision_model(keep, name)
        except ModelError as exc:
            pytest.fail(f"{exc}\n(scripts/test.sh fetches the model packages; run scripts/fetch_models.sh)")
        link = models_dir / name
        if link.is_symlink() and link.resolve() != (keep / name).resolve():
            link.unlink()
        if not link.exists():
            link.symlink_to(keep / name, target_is_directory=True)
    return models_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """A real `ragd serve` subprocess on a loopback port."""

    def __init__(self, data_dir: Path, models_dir: Path, env: dict[str, str] | None = None):
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        link = data_dir / "models"
        if not link.exists():
            link.symlink_to(models_dir, target_is_directory=True)
        self.env = {**os.environ, "RAGD_MODEL_THREADS": "2", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path = data_dir / "daemon.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, port: int = 0, wait: bool = True, timeout: float = 180.0) -> "Daemon":
        port_file = self.data_dir / "port"
        port_file.unlink(missing_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ragd.cli", "serve", "--data-dir", str(self.data_dir),
             "--listen", f"127.0.0.1:{port}", "--port-file", str(port_file)],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO)
        log.close()
        self.port = port
        if wait:
            deadline = time.monotonic() + timeout
            while not port_file.exists():
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
                if time.monotonic() > deadline:
                    self.kill()
                    raise TimeoutError(f"daemon not SERVING after {timeout} s:\n{self.log()}")
                time.sleep(0.05)
            self.port = int(port_file.read_text())
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def daemon_factory(tmp_path, models_dir):
    started: list[Daemon] = []

    def make(name: str = "data", env: dict[str, str] | None = None) -> Daemon:
        d = Daemon(tmp_path / name, models_dir, env)
        started.append(d)
        return d

    yield make
    for d in started:
        d.kill()
