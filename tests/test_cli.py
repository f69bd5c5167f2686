"""The `ragd` command line against a real daemon."""
from __future__ import annotations

import json
import subprocess
import sys

import cisi
import pytest
from conftest import REPO

from ragd_client import RagClient


@pytest.fixture(scope="module")
def served(module_daemon):
    return module_daemon()


def ragd(*args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ragd.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_index_jsonl_then_search_table(served, tmp_path):
    docs = cisi.documents()[:40]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    out = ragd("index", str(path), "--address", served.address, "--collection", "cli", "--batch-size", "16")
    assert "40 documents" in out.stdout and "40 indexed" in out.stdout
    assert "doc/s" in out.stderr  # the progress bar shows the rate
    out = ragd("search", docs[5]["title"], "--address", served.address, "--collection", "cli", "--top-k", "3")
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["score", "document", "text"]
    assert lines[1].split()[1] == docs[5]["id"]
    assert "hits, mode hybrid" in out.stderr  # AUTO: a natural-language query goes hybrid


def test_bad_jsonl_line_stops_before_sending_anything(served, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "fine"}) + "\n{not json\n")
    proc = ragd("index", str(path), "--address", served.address, "--collection", "clibad", check=False)
    assert proc.returncode != 0 and "bad.jsonl:2" in proc.stderr
    with RagClient(served.address) as c:
        assert "clibad" not in {s.name for s in c.stats().collections}


def test_model_info_and_verify(served):
    info = json.loads(ragd("model", "info", "--data-dir", str(served.data_dir)).stdout)
    assert info["name"] == "all-MiniLM-L6-v2" and info["dimension"] == 384
    assert "ok" in ragd("model", "verify", "--data-dir", str(served.data_dir)).stdout


def test_config_markdown_lists_every_option():
    out = ragd("config", "--markdown").stdout
    for name in ("data_dir", "server.listen", "model.device", "chunking.size", "limits.max_top_k"):
        assert f"`{name}`" in out
    assert "RAGD_SERVER_LISTEN" in out


def test_readme_configuration_table_is_current():
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- config-table -->\n")[1].split("<!-- /config-table -->")[0]
    assert table == ragd("config", "--markdown").stdout, "README config table is stale: paste `ragd config --markdown`"
