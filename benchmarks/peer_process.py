"""The harness's handle on the peers' process (benchmarks/peers/server.py).

One process in the peers' virtualenv, started once, asked one command at a time
(JSON lines), so that its measurements can alternate with ragd's in the same run.
Its stderr goes to a log file shown on failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


class PeerError(RuntimeError):
    pass


class PeerProcess:
    def __init__(self, python: str, env: dict[str, str] | None = None) -> None:
        if not Path(python).exists():
            raise PeerError(f"{python}: the peers' virtualenv is missing; run benchmarks/setup_peers.sh "
                            "(or pass --skip-peers)")
        self.log_path = Path(tempfile.mkstemp(prefix="ragd-bench-peers-", suffix=".log")[1])
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [python, str(HERE / "peers" / "server.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, text=True, bufsize=1,
            env={**os.environ, "RUST_LOG": "error", "LANCE_LOG": "error", "TOKENIZERS_PARALLELISM": "true",
                 **(env or {})})

    def call(self, op: str, **args):
        if self.proc.poll() is not None:
            raise PeerError(f"the peers' process exited ({self.proc.returncode}): {self.log_tail()}")
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise PeerError(f"the peers' process died during {op}: {self.log_tail()}")
        msg = json.loads(line)
        if not msg["ok"]:
            raise PeerError(f"{msg['error']}\n{self.log_tail()}")
        return msg["result"]

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(120)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
