"""What the peers must do as ragd does, so that ratios compare the same work.

Kept free of ragd imports: the peers run in their own virtualenv. A test
(tests/test_bench_peers.py) checks it against ragd.engine.ingest.
"""


def embedding_text(title: str, chunk: str) -> str:
    """The text ragd embeds for a chunk (ragd.engine.ingest.embedding_text):
    the document's title, a newline, the chunk."""
    return f"{title}\n{chunk}" if title else chunk
