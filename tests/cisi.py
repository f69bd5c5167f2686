"""Reader for the CISI test collection in tests/data/cisi (SMART format).

CISI is a public information-retrieval test collection (1,460 abstracts, 112 queries,
relevance judgments for 76 of them); it is committed so that a clone carries its test data."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cisi_dir() -> Path:
    return REPO / "tests" / "data" / "cisi"


def _records(path: Path) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    current: dict[str, str] | None = None
    field = None
    for line in path.read_text(encoding="latin-1").splitlines():
        m = re.match(r"^\.([ITAWBX])\s*(\d*)\s*$", line)
        if m:
            tag = m.group(1)
            if tag == "I":
                current = out.setdefault(int(m.group(2)), {})
                field = None
            else:
                field = tag
                current.setdefault(field, "")
            continue
        if current is not None and field:
            current[field] += line + "\n"
    return out


def documents() -> list[dict]:
    """CISI abstracts as ragd documents, with deterministic projects and private flags."""
    docs = []
    for num, rec in sorted(_records(cisi_dir() / "CISI.ALL").items()):
        docs.append({"id": f"cisi:{num}", "title": " ".join(rec.get("T", "").split()),
                     "text": rec.get("W", "").strip(), "project_id": num % 5 + 1,
                     "type": "wiki" if num % 3 == 0 else "issue", "author_id": num % 7 + 1,
                     "is_private": num % 10 == 0, "version": 1})
    return docs


def queries() -> dict[int, str]:
    return {num: " ".join(rec.get("W", "").split()) for num, rec in _records(cisi_dir() / "CISI.QRY").items()}


def judgments() -> dict[int, set[int]]:
    rel: dict[int, set[int]] = {}
    for line in (cisi_dir() / "CISI.REL").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            rel.setdefault(int(parts[0]), set()).add(int(parts[1]))
    return rel
