"""ragd's index search alone, in process: what the daemon runs for a VECTOR search
once the query is embedded, without gRPC, batching or hit assembly.

A collection is written through the daemon's own write path (Ingestor.commit: LMDB,
filter columns, the flat index; IVF-PQ trained with IndexKeeper.train_and_swap as the
background trainer does) with pre-computed vectors, then searched as
ragd.engine.search does: the permission mask from the filter columns (native code),
then VectorIndex.search with the mask inside FAISS (IDSelector) and the IVF-PQ
candidates re-ranked with the exact vectors read back from LMDB.
"""
from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


@dataclass
class IndexSetting:
    label: str
    params: dict = field(default_factory=dict)  # nprobe / rerank_factor / exact for VectorIndex.search
    exact: bool = False


class RagdIndex:
    name = "ragd"

    def __init__(self, workdir: Path) -> None:
        self.data = Path(workdir) / "ragd-index"
        self.store = None
        self.collections = None
        self.coll = None
        self.rows_of: np.ndarray | None = None  # chunk id -> row of the dataset

    def build(self, vectors: np.ndarray, project_id, is_private, author_id, chunks_per_doc: int) -> dict:
        """One document per `chunks_per_doc` rows (the rows of a document share its fields)."""
        from ragd.config import load_config
        from ragd.domain import Document
        from ragd.engine.collection import Collections
        from ragd.engine.datadir import DataDir
        from ragd.engine.ingest import Ingestor, PreparedDoc
        from ragd.index.lifecycle import index_context_from
        from ragd.store.lmdb_store import Store

        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        cfg = load_config(env={}, overrides={"data_dir": str(self.data)})
        lock = threading.Lock()
        layout = DataDir(self.data)
        self.store = Store(layout.store, int(cfg.store.map_size_gb * (1 << 30)))
        ctx = index_context_from(cfg, lock)
        ctx.background = False  # IVF-PQ is trained below, in the foreground
        self.collections = Collections(self.store, ctx, layout)

        class _Dim:  # the embedder as the write path sees it (vectors are pre-computed)
            dimension = vectors.shape[1]

        ing = Ingestor(self.store, _Dim(), None, self.collections, "all-MiniLM-L6-v2")
        n = len(vectors)
        t0 = time.perf_counter()
        for d0 in range(0, n, chunks_per_doc * 1000):  # 1,000 documents per write transaction
            prepared, rows = [], []
            for s in range(d0, min(d0 + chunks_per_doc * 1000, n), chunks_per_doc):
                e = min(s + chunks_per_doc, n)
                texts = [f"chunk {i}" for i in range(s, e)]
                doc = Document(id=f"doc:{s // chunks_per_doc}", text="", title="", project_id=int(project_id[s]),
                               type="issue", is_private=bool(is_private[s]), author_id=int(author_id[s]), version=1)
                spans = [(0, len(t)) for t in texts]
                prepared.append(PreparedDoc(doc=doc, spans=spans, texts=texts, vectors=vectors[s:e]))
                rows.append(range(s, e))
            acks, _ = ing.commit("default", prepared)
            assert all(a.chunks == len(r) for a, r in zip(acks, rows)), acks[:3]
        self.coll = self.collections.get("default")
        # A fresh collection hands out chunk ids consecutively in write order (Store.add_chunks):
        # chunk id = first + row.
        meta = self.store.collections()["default"]
        first = meta.next_chunk - n
        assert meta.chunks == n and self.coll.index.ntotal == n, (meta.chunks, self.coll.index.ntotal, n)
        self.rows_of = np.full(meta.next_chunk, -1, np.int64)
        self.rows_of[first:] = np.arange(n)
        t_write = time.perf_counter() - t0
        return {"write_s": t_write, "vectors": n}

    def train(self) -> dict:
        t0 = time.perf_counter()
        self.coll.keeper.train_and_swap()
        return {"train_and_build_s": time.perf_counter() - t0, "kind": self.coll.index.kind,
                "nlist": self.coll.index.nlist}

    @property
    def kind(self) -> str:
        return self.coll.index.kind

    @staticmethod
    def _filter(flt: dict):
        from ragd.domain import Filter
        return Filter(project_ids=list(flt["project_ids"]), user_id=int(flt["user_id"]))

    def search(self, vector: np.ndarray, k: int, flt: dict, setting: IndexSetting) -> list[int]:
        mask = self.coll.columns.mask(self._filter(flt))  # per query, as the engine does
        _, ids = self.coll.index.search(vector[None, :], k, mask, **setting.params)
        return [int(self.rows_of[i]) for i in ids[0] if i >= 0]

    def settings(self) -> list[IndexSetting]:
        if self.kind == "flat":
            return [IndexSetting("flat (exact)", exact=True)]
        out = [IndexSetting(f"IVF-PQ nprobe {p} rerank x{rf}", {"nprobe": p, "rerank_factor": rf})
               for p in (4, 8, 16, 32, 64) for rf in (10, 40)]
        return sorted(out, key=lambda s: (s.params["nprobe"], s.params["rerank_factor"]))

    def close(self) -> None:
        if self.collections is not None:
            self.collections.close(snapshot=False)
            self.collections = self.coll = None
        if self.store is not None:
            self.store.close()
            self.store = None
        shutil.rmtree(self.data, ignore_errors=True)
