"""FAISS vector index and filter columns (derived from LMDB, rebuilt on start)."""
