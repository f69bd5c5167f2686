"""mypy passes on the engine, the store and the index (configured in pyproject.toml,
[tool.mypy]): run as part of the suite, so `make test` fails on a type error there."""
from __future__ import annotations

import subprocess
import sys

from conftest import REPO

PACKAGES = ["ragd/engine", "ragd/store", "ragd/index"]


def test_mypy_passes_on_engine_store_and_index():
    proc = subprocess.run([sys.executable, "-m", "mypy", *PACKAGES], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
