"""Reader for the Japanese retrieval set in tests/data/redmine_ja (Redmine's messages in
English and Japanese; its README says how it was built and under which licence)."""
from __future__ import annotations

import json
from pathlib import Path

PATH = Path(__file__).resolve().parent / "data" / "redmine_ja" / "messages.jsonl"
QUERY_SETS = ("en", "ja_part", "ja_words")


def messages() -> list[dict]:
    return [json.loads(line) for line in PATH.read_text(encoding="utf-8").splitlines() if line]


def documents() -> list[dict]:
    """One ragd document per message (id "msg:<locale key>", the Japanese text)."""
    return [{"id": f"msg:{m['id']}", "text": m["ja"], "project_id": 1, "type": "message"} for m in messages()]


def queries(name: str) -> dict[str, str]:
    """Query set `name` (QUERY_SETS), keyed by its one relevant document's id."""
    return {f"msg:{m['id']}": m[name] for m in messages() if m[name]}
