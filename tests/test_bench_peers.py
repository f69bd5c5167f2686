"""The benchmark peers do ragd's model work: the text they embed per chunk is
the text ragd embeds (benchmarks/peers/same_work.py mirrors ragd without
importing it, since the peers run in their own virtualenv)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ragd.engine.ingest import embedding_text

SAME_WORK = Path(__file__).resolve().parent.parent / "benchmarks" / "peers" / "same_work.py"


@pytest.mark.parametrize(("title", "chunk"), [("Login fails with LDAP", "Users cannot sign in."), ("", "a note"),
                                              ("東京 😀", "  spaced\n\nchunk  ")])
def test_peers_embed_the_text_ragd_embeds(title, chunk):
    spec = importlib.util.spec_from_file_location("same_work", SAME_WORK)
    same_work = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(same_work)
    assert same_work.embedding_text(title, chunk) == embedding_text(title, chunk)
