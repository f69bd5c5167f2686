"""The Ruby client (clients/ruby, gem ragd-client): its minitest suite, run with
Debian's ruby + ruby-grpc against one real daemon. Each test file runs in its own
interpreter, bounded in time, so a hang fails the test instead of stalling CI."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from conftest import REPO

RUBY_DIR = REPO / "clients" / "ruby"
TEST_FILES = sorted(p.name for p in (RUBY_DIR / "test").glob("test_*.rb") if p.name != "test_helper.rb")
SUMMARY = re.compile(r"(\d+) runs, (\d+) assertions, (\d+) failures, (\d+) errors, (\d+) skips")


def ruby_bin() -> str:
    found = shutil.which("ruby")
    assert found, "ruby missing: scripts/setup.sh --test installs Debian's ruby, ruby-grpc and ruby-minitest"
    return found


@pytest.fixture(scope="module")
def served(module_daemon):
    return module_daemon()


def test_suite_is_found():
    assert {"test_live.rb", "test_fork.rb", "test_deadline.rb", "test_redmine.rb"} <= set(TEST_FILES)


@pytest.mark.parametrize("test_file", TEST_FILES)
def test_minitest(served, test_file):
    env = {**os.environ, "RAGD_ADDRESS": served.address}
    env.pop("GRPC_ENABLE_FORK_SUPPORT", None)  # the fork tests check the default behaviour
    cmd = [ruby_bin(), "-Iclients/ruby/lib", "-Iclients/ruby/test", f"clients/ruby/test/{test_file}", "-v"]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{test_file} did not finish in 600 s:\n{exc.stdout or ''}{exc.stderr or ''}")
    output = proc.stdout + proc.stderr
    print(output)
    summary = SUMMARY.findall(output)
    assert summary, f"no minitest summary from {test_file} (exit {proc.returncode}):\n{output}"
    runs, _assertions, failures, errors, skips = map(int, summary[-1])
    assert (failures, errors, skips) == (0, 0, 0), output  # a skip here means the daemon was not reached
    assert runs > 0
    assert proc.returncode == 0, output
