"""The vector engines ragd is measured against, behind one small interface.

Runs in the peers' virtualenv (.venv-peers), never imported by ragd. Every
engine holds the SAME vectors (ragd's own, from its Embed RPC) and the same
per-chunk permission fields, and answers top-k under the same Redmine
permission filter the harness gives ragd:

    project_id IN filter.project_ids AND (NOT is_private OR author_id = filter.user_id)

Each engine is queried the way its users query it, in process:
  - qdrant-edge  Qdrant's own segment engine (qdrant-edge-py): the filter as payload
                 conditions over integer payload indexes (project_id, author_id,
                 is_private), HNSW with Qdrant's defaults (m 16, ef_construct 100,
                 full_scan_threshold 10,000 KB); searched at several hnsw_ef, and exact.
                 is_private is stored as 0/1: qdrant-edge-py 0.9.0 turns MatchValue(False)
                 into the integer 0, which never matches a bool payload (checked: a bool
                 field indexed as Bool counts 0 points for MatchValue(True) and (False)).
  - milvus-lite  Milvus Lite 2.5 (the line that ships Milvus's C++ engine as a local
                 server process; pymilvus MilvusClient on a file): the filter as a boolean
                 expression; IVF_FLAT (nlist 4 x sqrt(n)) searched at several nprobe, and
                 FLAT. Lite's local mode refuses HNSW ("local mode only support FLAT
                 IVF_FLAT AUTOINDEX"), so IVF_FLAT is its fastest index.
  - lancedb      LanceDB, prefiltered with the same filter as SQL (flat: exact).
  - faiss        faiss IndexFlatIP, no filter (the RedMica design's stack has none).
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Payload:
    """The permission fields of every chunk, by row (row i is point id i)."""
    project_id: np.ndarray
    is_private: np.ndarray
    author_id: np.ndarray

    @classmethod
    def of_chunks(cls, chunks: list[dict]) -> Payload:
        return cls(np.array([c["project_id"] for c in chunks], np.int64),
                   np.array([bool(c["is_private"]) for c in chunks], bool),
                   np.array([c["author_id"] for c in chunks], np.int64))

    def mask(self, flt: dict) -> np.ndarray:
        return np.isin(self.project_id, flt["project_ids"]) & (~self.is_private | (self.author_id == flt["user_id"]))


@dataclass
class Setting:
    """One point of an engine's recall/speed trade-off (a search-time knob)."""
    label: str
    params: dict = field(default_factory=dict)
    exact: bool = False


class Engine:
    name = "engine"
    filtered = True

    def build(self, vectors: np.ndarray, payload: Payload) -> dict:
        raise NotImplementedError

    def search(self, vector: np.ndarray, k: int, flt: dict, setting: Setting) -> list[int]:
        raise NotImplementedError

    def settings(self) -> list[Setting]:
        """From fastest to most exact; the last is the engine's exact search."""
        return [Setting("exact", exact=True)]

    def append(self, vectors: np.ndarray, payload: Payload, setting: Setting | None = None) -> None:
        """Add more points (ids continue after the existing ones): the mixed read/write step
        (`setting`: the one being searched meanwhile, where an engine keeps several indexes)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- qdrant-edge


class QdrantEdge(Engine):
    name = "qdrant-edge"

    def __init__(self, ef_values=(16, 32, 64, 128, 256)) -> None:
        import qdrant_edge as q
        self.q = q
        self.ef_values = ef_values
        self.dir = tempfile.mkdtemp(prefix="bench-qdrant-edge-")
        self.shard = None
        self.n = 0

    def build(self, vectors, payload):
        q = self.q
        # Qdrant's defaults for HNSW (m 16, ef_construct 100, full_scan_threshold 10,000 KB);
        # the search-time hnsw_ef is what the sweep varies.
        cfg = q.EdgeConfig(vectors=q.EdgeVectorParams(size=vectors.shape[1], distance=q.Distance.Dot),
                           hnsw_config=q.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000))
        self.shard = q.EdgeShard.create(self.dir, cfg)
        t0 = time.perf_counter()
        # Payload indexes first, as Qdrant advises: the planner uses their cardinality
        # estimates, and HNSW adds per-value links for indexed fields.
        for key in ("project_id", "is_private", "author_id"):
            self.shard.update(q.UpdateOperation.create_field_index(key, q.PayloadSchemaType.Integer))
        self.append(vectors, payload)
        t_upsert = time.perf_counter() - t0
        t1 = time.perf_counter()
        self.shard.optimize()  # builds the HNSW graphs (blocking), as the optimizer would in the background
        info = self.shard.info()
        return {"upsert_s": t_upsert, "index_s": time.perf_counter() - t1, "points": info.points_count,
                "indexed_vectors": info.indexed_vectors_count, "segments": info.segments_count,
                "hnsw": {"m": 16, "ef_construct": 100, "full_scan_threshold_kb": 10_000}}

    def append(self, vectors, payload, setting=None):
        q = self.q
        for s in range(0, len(vectors), 1000):
            part = range(s, min(s + 1000, len(vectors)))
            self.shard.update(q.UpdateOperation.upsert_points([
                q.Point(self.n + i, vectors[i].tolist(),
                        {"project_id": int(payload.project_id[i]), "is_private": int(payload.is_private[i]),
                         "author_id": int(payload.author_id[i])}) for i in part]))
        self.n += len(vectors)

    def _filter(self, flt):
        q = self.q
        return q.Filter(must=[q.FieldCondition(key="project_id", match=q.MatchAny(any=list(flt["project_ids"])))],
                        should=[q.FieldCondition(key="is_private", match=q.MatchValue(0)),
                                q.FieldCondition(key="author_id", match=q.MatchValue(int(flt["user_id"])))])

    def search(self, vector, k, flt, setting):
        q = self.q
        params = q.SearchParams(exact=True) if setting.exact else q.SearchParams(hnsw_ef=setting.params["hnsw_ef"])
        hits = self.shard.query(q.QueryRequest(limit=k, query=q.Query.Nearest(vector.tolist()),
                                               filter=self._filter(flt), params=params, with_payload=False))
        return [int(p.id) for p in hits]

    def settings(self):
        return [Setting(f"hnsw_ef {ef}", {"hnsw_ef": ef}) for ef in self.ef_values] + [Setting("exact", exact=True)]

    def close(self):
        if self.shard is not None:
            self.shard.close()
            self.shard = None
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- milvus-lite


class MilvusLite(Engine):
    name = "milvus-lite"

    def __init__(self, nprobe_values=(1, 2, 4, 8, 16, 32, 64), kinds=("FLAT", "IVF_FLAT")) -> None:
        from pymilvus import MilvusClient
        self.kinds = kinds
        self.dir = tempfile.mkdtemp(prefix="bench-milvus-lite-")
        self.client = MilvusClient(os.path.join(self.dir, "bench.db"))  # starts the local Milvus server
        self.nprobe_values = nprobe_values
        self.collections: dict[str, str] = {}
        self.n = 0

    def build(self, vectors, payload):
        from pymilvus import DataType
        c = self.client
        n, dim = vectors.shape
        nlist = max(1, int(4 * math.sqrt(n)))  # Milvus' guidance: nlist about 4 x sqrt(n)
        t0 = time.perf_counter()
        for kind in self.kinds:
            name = f"chunks_{kind.lower()}"
            schema = c.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("project_id", DataType.INT64)
            schema.add_field("is_private", DataType.BOOL)
            schema.add_field("author_id", DataType.INT64)
            ip = c.prepare_index_params()
            ip.add_index(field_name="vector", index_type=kind, metric_type="IP",
                         params={"nlist": nlist} if kind == "IVF_FLAT" else {})
            c.create_collection(name, schema=schema, index_params=ip)
            self.collections[kind] = name
        self.n = 0
        self.append(vectors, payload)
        t_insert = time.perf_counter() - t0
        t1 = time.perf_counter()
        for name in self.collections.values():
            c.flush(name)  # seals the segments: the index is built on sealed segments
            c.load_collection(name)
        return {"insert_s": t_insert, "index_load_s": time.perf_counter() - t1, "nlist": nlist,
                "indexes": {k: c.describe_index(v, "vector") for k, v in self.collections.items()}}

    def append(self, vectors, payload, setting=None):
        # While searching one index (the mixed step), write into that one only.
        names = self.collections.values() if setting is None else \
            [self.collections["FLAT" if setting.exact else "IVF_FLAT"]]
        for name in names:
            for s in range(0, len(vectors), 2000):
                rows = [{"id": self.n + i, "vector": vectors[i].tolist(), "project_id": int(payload.project_id[i]),
                         "is_private": bool(payload.is_private[i]), "author_id": int(payload.author_id[i])}
                        for i in range(s, min(s + 2000, len(vectors)))]
                self.client.insert(name, rows)
        self.n += len(vectors)

    @staticmethod
    def _expr(flt):
        projects = ", ".join(str(int(p)) for p in flt["project_ids"])
        return f"project_id in [{projects}] and (is_private == false or author_id == {int(flt['user_id'])})"

    def search(self, vector, k, flt, setting):
        name = self.collections["FLAT" if setting.exact else "IVF_FLAT"]
        res = self.client.search(name, data=[vector.tolist()], limit=k, filter=self._expr(flt),
                                 search_params={"metric_type": "IP", "params": setting.params})
        return [int(h["id"]) for h in res[0]]

    def settings(self):
        out = [Setting(f"IVF_FLAT nprobe {p}", {"nprobe": p}) for p in self.nprobe_values] \
            if "IVF_FLAT" in self.kinds else []
        return out + ([Setting("FLAT", exact=True)] if "FLAT" in self.kinds else [])

    def close(self):
        try:
            self.client.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- lancedb


class LanceDB(Engine):
    name = "lancedb"

    def __init__(self) -> None:
        import lancedb
        self.dir = tempfile.mkdtemp(prefix="bench-lancedb-")
        self.db = lancedb.connect(self.dir)
        self.table = None
        self.n = 0

    def _arrow(self, vectors, payload, start):
        import pyarrow as pa
        return pa.table({
            "id": pa.array(range(start, start + len(vectors)), pa.int64()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), vectors.shape[1]),
            "project_id": pa.array(payload.project_id, pa.int64()),
            "is_private": pa.array(payload.is_private, pa.bool_()),
            "author_id": pa.array(payload.author_id, pa.int64())})

    def build(self, vectors, payload):
        t0 = time.perf_counter()
        self.table = self.db.create_table("chunks", self._arrow(vectors, payload, 0), mode="overwrite")
        self.n = len(vectors)
        return {"add_s": time.perf_counter() - t0}

    def append(self, vectors, payload, setting=None):
        self.table.add(self._arrow(vectors, payload, self.n))
        self.n += len(vectors)

    @staticmethod
    def _where(flt):
        projects = ",".join(str(int(p)) for p in flt["project_ids"])
        return f"project_id IN ({projects}) AND (NOT is_private OR author_id = {int(flt['user_id'])})"

    def search(self, vector, k, flt, setting):
        qb = self.table.search(vector).distance_type("dot").where(self._where(flt), prefilter=True).limit(k)
        return qb.select(["id"]).to_arrow()["id"].to_pylist()

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- faiss (unfiltered)


class FaissFlat(Engine):
    """The RedMica design's index: IndexFlatIP, no permission filter. FAISS may not be
    searched while it grows, so while a writer appends (the mixed step) searches and
    appends share one lock (what an application embedding FAISS has to do)."""
    name = "faiss"
    filtered = False

    def __init__(self) -> None:
        import contextlib
        import threading
        self.lock = threading.Lock()
        self.no_lock = contextlib.nullcontext()
        self.writing = False  # set by the mixed step
        self.index = None

    def build(self, vectors, payload):
        import faiss
        t0 = time.perf_counter()
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(np.ascontiguousarray(vectors, np.float32))
        return {"add_s": time.perf_counter() - t0}

    def append(self, vectors, payload, setting=None):
        with self.lock:
            self.index.add(np.ascontiguousarray(vectors, np.float32))

    def search(self, vector, k, flt, setting):
        with self.lock if self.writing else self.no_lock:
            return self.index.search(np.asarray(vector, np.float32)[None, :], k)[1][0].tolist()


ENGINES = {"qdrant-edge": QdrantEdge, "milvus-lite": MilvusLite, "lancedb": LanceDB, "faiss": FaissFlat}
# Ingest builds the one index a stack searches (Milvus: IVF_FLAT, not also the FLAT copy).
INGEST_OPTIONS = {"milvus-lite": {"kinds": ("IVF_FLAT",)}}
