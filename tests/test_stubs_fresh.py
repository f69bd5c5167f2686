"""The committed Python and Ruby stubs match a fresh run of scripts/gen_stubs.sh,
and ragd-client's dependency floors admit nothing older than they need."""
import filecmp
import os
import re
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
STUB_DIRS = ["clients/python/ragd_client/v1", "clients/ruby/lib/ragd/v1"]


def _generated(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for d in STUB_DIRS for p in (root / d).glob("*")
            if p.is_file() and p.name != "__init__.py"}


def test_committed_stubs_are_fresh(tmp_path):
    subprocess.run([str(REPO / "scripts/gen_stubs.sh"), str(tmp_path)], check=True,
                   env={**os.environ, "PYTHON": sys.executable})
    fresh, committed = _generated(tmp_path), _generated(REPO)
    assert fresh, "the generator wrote nothing"
    assert committed == fresh, f"missing or extra stubs: {sorted(committed ^ fresh)}: run `make stubs` and commit"
    stale = [p for p in sorted(fresh) if not filecmp.cmp(REPO / p, tmp_path / p, shallow=False)]
    assert not stale, f"stale generated stubs {stale}: run `make stubs` and commit"


def _floor(requirement: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.search(r">=([\d.]+)", requirement).group(1).split("."))


def test_client_requires_the_runtimes_its_stubs_check_for():
    # The generated modules refuse to import under an older grpcio or protobuf
    # than generated them: the client must not promise to install with one.
    deps = tomllib.loads((REPO / "clients/python/pyproject.toml").read_text())["project"]["dependencies"]
    floors = {re.match(r"[\w-]+", d).group(0): _floor(d) for d in deps}
    stubs = REPO / "clients/python/ragd_client/v1"
    grpc_gen = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", (stubs / "ragd_pb2_grpc.py").read_text()).group(1)
    pb_gen = re.search(r"Protobuf Python Version: ([\d.]+)", (stubs / "ragd_pb2.py").read_text()).group(1)
    assert floors["grpcio"] >= tuple(int(x) for x in grpc_gen.split("."))
    assert floors["protobuf"] >= tuple(int(x) for x in pb_gen.split("."))


def test_no_generated_stubs_outside_their_directories():
    # ragd/v1 holds only the re-export: a merge that brings back ragd/v1/ragd_pb2.py
    # would register ragd.v1 a second time beside ragd_client.v1's copy.
    files = subprocess.run(["git", "ls-files", "*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py", "*_pb.rb",
                            "*_services_pb.rb"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    stray = [f for f in files if str(Path(f).parent) not in STUB_DIRS]
    assert not stray, f"generated stubs outside {STUB_DIRS}: {stray} (git rm them; `make stubs`)"
