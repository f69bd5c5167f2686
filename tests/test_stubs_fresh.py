"""The committed Python and Ruby stubs match a fresh run of scripts/gen_stubs.sh."""
import filecmp
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATED = ["ragd/v1/ragd_pb2.py", "ragd/v1/ragd_pb2.pyi", "ragd/v1/ragd_pb2_grpc.py",
             "clients/ruby/lib/ragd/v1/ragd_pb.rb", "clients/ruby/lib/ragd/v1/ragd_services_pb.rb"]


def test_committed_stubs_are_fresh(tmp_path):
    subprocess.run([str(REPO / "scripts/gen_stubs.sh"), str(tmp_path)], check=True,
                   env={**os.environ, "PYTHON": sys.executable})
    stale = [p for p in GENERATED if not filecmp.cmp(REPO / p, tmp_path / p, shallow=False)]
    assert not stale, f"stale generated stubs {stale}: run `make stubs` and commit"
