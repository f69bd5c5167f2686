"""Filter columns: masks agree with the independent permission oracle, in both
forms (mask: the ragd._native kernel plus numpy; _mask_numpy: numpy alone)."""
import random

import numpy as np

from permission_oracle import may_see
from ragd.domain import Document, Filter, MetadataRange
from ragd.index.columns import FilterColumns


def test_masks_match_the_oracle_on_random_documents_and_filters():
    rng = random.Random(7)
    cols = FilterColumns()
    docs, chunk_doc = [], []
    next_id = 0
    for i in range(400):
        doc = Document(id=f"d{i}", text="x", project_id=rng.randint(1, 6), type=rng.choice(["issue", "wiki", "news"]),
                       is_private=rng.random() < 0.3, author_id=rng.randint(1, 8), updated_at_us=rng.randint(0, 100),
                       metadata={"tracker": rng.choice(["bug", "feature"]), "prio": str(rng.randint(1, 5))},
                       viewer_ids=rng.sample(range(1, 9), rng.randint(0, 2)))
        n = rng.randint(1, 3)
        ids = list(range(next_id, next_id + n))
        next_id += n
        cols.set_chunks(ids, doc)
        docs.append(doc)
        chunk_doc += [doc] * n
    # Delete some documents' chunks: they must never be admitted again.
    dead = set(rng.sample(range(next_id), 50))
    cols.clear_chunks(sorted(dead))
    for _ in range(300):
        f = Filter(project_ids=rng.sample(range(1, 7), rng.randint(0, 3)),
                   types=rng.sample(["issue", "wiki", "news", "zzz"], rng.randint(0, 2)),
                   private_project_ids=rng.sample(range(1, 7), rng.randint(0, 2)),
                   user_id=rng.choice([0, rng.randint(1, 8)]), all_private=rng.random() < 0.1,
                   metadata_equals={"tracker": "bug"} if rng.random() < 0.3 else {},
                   metadata_ranges=[MetadataRange("prio", gte=2, lte=4)] if rng.random() < 0.3 else [],
                   updated_after_us=rng.choice([None, 30]), updated_before_us=rng.choice([None, 70]),
                   exclude_ids=[f"d{rng.randint(0, 399)}"] if rng.random() < 0.3 else [])
        for form in (cols.mask, cols._mask_numpy):  # noqa: SLF001
            mask = form(f)
            got = np.ones(next_id, bool) if mask is None else mask
            for cid, doc in enumerate(chunk_doc):
                if cid in dead:
                    assert mask is None or not got[cid]
                else:
                    assert got[cid] == may_see(doc, f), (form.__name__, cid, doc, f)
