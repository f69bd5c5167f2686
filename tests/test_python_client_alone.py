"""ragd-client installs alone: `pip install clients/python` in a fresh
virtualenv brings grpcio and protobuf, not faiss, onnxruntime, numpy or the
daemon, and the client's own tests (clients/python/tests) pass there against a
real daemon started from this virtualenv."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

from conftest import REPO

NOT_WANTED = {"faiss-cpu", "faiss", "onnxruntime", "onnx", "numpy", "ragd", "tokenizers", "lmdb"}


def run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_client_installs_alone_and_passes_its_tests_against_a_daemon(tmp_path, daemon):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], timeout=300)
    py = venv / "bin" / "python"
    # Not editable: the built wheel is what a user gets (its files, its metadata).
    run([py, "-m", "pip", "install", "-q", "-c", REPO / "constraints.txt", REPO / "clients" / "python", "pytest"],
        timeout=900, cwd=tmp_path)
    installed = {p["name"].lower() for p in json.loads(run([py, "-m", "pip", "list", "--format=json"],
                                                           timeout=120).stdout)}
    assert {"ragd-client", "grpcio", "protobuf"} <= installed
    assert not installed & NOT_WANTED, installed & NOT_WANTED

    d = daemon()
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the repository's settings (pytest-timeout)
    report = tmp_path / "report.xml"
    proc = subprocess.run([str(py), "-m", "pytest", "-q", "-c", str(tmp_path / "pytest.ini"), "-p",
                           "no:cacheprovider", f"--junitxml={report}", str(REPO / "clients" / "python" / "tests")],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "RAGD_ADDRESS": d.address,
                               "HOME": str(tmp_path)})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    suite = ET.parse(report).getroot().find("testsuite")
    tests, skipped = int(suite.get("tests")), int(suite.get("skipped"))
    assert tests >= 9 and skipped == 0, output  # a skip would mean the daemon or the isolation was missing
