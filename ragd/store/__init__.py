"""LMDB: the source of truth for documents, chunks, vectors and the op log."""
