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

    def start(self, port: int = 0, wait: bool = True, timeout: float = 180.0) -> Daemon:
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
