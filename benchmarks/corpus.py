"""A Redmine-like corpus from real text (the CISI abstracts), deterministic by seed.

Mix (by count): 60% issues (subject + an abstract as description), 30% notes
(journals: one to three sentences), 10% wiki pages (five to twelve abstracts
joined under headings: long, multi-chunk). Projects, authors, private flags
and versions are drawn like a mid-size Redmine: 20 projects, 10% private.
"""
from __future__ import annotations

import random
import re

import common


def redmine_corpus(n: int, seed: int = 42) -> list[dict]:
    rng = random.Random(seed)
    abstracts = [d for d in common.cisi.documents() if d["text"]]
    docs = []
    for i in range(n):
        kind = rng.choices(["issue", "journal", "wiki"], weights=[60, 30, 10])[0]
        project = rng.randint(1, 20)
        base = {"project_id": project, "author_id": rng.randint(1, 200), "is_private": rng.random() < 0.1,
                "version": rng.randint(1, 30), "type": kind}
        a = rng.choice(abstracts)
        if kind == "issue":
            docs.append({**base, "id": f"issue:{i}", "title": a["title"], "text": a["text"]})
        elif kind == "journal":
            sentences = [s for s in re.split(r"(?<=[.!?])\s+", a["text"]) if s.strip()]
            start = rng.randrange(len(sentences))
            note = " ".join(sentences[start:start + rng.randint(1, 3)])
            docs.append({**base, "id": f"journal:{i}", "title": "", "text": note})
        else:
            pages = rng.sample(abstracts, rng.randint(5, 12))
            text = "\n\n".join(f"h2. {p['title']}\n\n{p['text']}" for p in pages)
            docs.append({**base, "id": f"wiki:{project}:Page{i}", "title": pages[0]["title"], "text": text})
    return docs
