"""The peers' side of the harness: one long-lived process in the peers' virtualenv.

The harness (benchmarks/harness.py, in ragd's virtualenv) starts it once and sends
one JSON command per line on stdin; each answer is one JSON line on stdout
({"ok": true, "result": ...} or {"ok": false, "error": ...}). Staying alive lets the
harness interleave: a ragd measurement, then the same measurement here, then ragd
again (A B A B ...), with models loaded and indexes built only once. Anything
libraries print goes to stderr; stdout carries only the protocol.

Datasets are directories the harness wrote: vectors.npy (ragd's chunk vectors),
qvectors.npy + queries.json (query vectors from ragd's Embed RPC, and their text),
payload.npz (project_id, is_private, author_id per chunk), optionally docs.json.

Commands (see PeerProcess in benchmarks/peer_process.py for the caller):
  open     {dataset, dir}                        load a dataset
  build    {key, engine, dataset}                build an engine over a dataset's vectors
  sweep    {key, k, filter}                      recall@k vs exact under the filter and
                                                 latency, for each search-time setting
  load     {key, setting, concurrency, seconds, filter, embedder?}
                                                 threads querying for a window: with an
                                                 embedder the query TEXT is embedded first
  embed    {embedder, texts, batch_size?}        encode texts: seconds, tokens
  ingest   {embedder, engines, docs}             split (LangChain 500/50) + encode + add
  mixed    {key, embedder, setting, concurrency, seconds, filter, docs}
                                                 searches while one writer appends
  memory   {}                                    peak RSS of this process
  close    {key}
"""
from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path

# stdout is the protocol: keep the real one, send everything else printed to stderr.
_PROTO = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedders import EMBEDDERS  # noqa: E402
from engines import ENGINES, INGEST_OPTIONS, Payload, Setting  # noqa: E402
from loadgen import cpu_seconds, exact_topk, run_threads, sweep  # noqa: E402
from same_work import embedding_text  # noqa: E402


class Server:
    def __init__(self) -> None:
        self.datasets: dict[str, dict] = {}
        self.engines: dict[str, tuple[object, str]] = {}  # key -> (engine, dataset)
        self.embedders: dict[str, object] = {}
        self.splitter = None

    # ------------------------------------------------------------ helpers

    def embedder(self, name: str):
        if name not in self.embedders:
            if name == "fastembed":
                self.embedders[name] = EMBEDDERS[name](os.environ["BENCH_FASTEMBED_DIR"])
            else:
                self.embedders[name] = EMBEDDERS[name]()
        return self.embedders[name]

    def split(self, docs):
        if self.splitter is None:
            from langchain_text_splitters import RecursiveCharacterTextSplitter
            self.splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)
        texts, payload = [], {"project_id": [], "is_private": [], "author_id": []}
        for d in docs:
            for c in self.splitter.split_text(d["text"]):
                texts.append(embedding_text(d.get("title", ""), c))  # as ragd embeds a chunk
                payload["project_id"].append(d["project_id"])
                payload["is_private"].append(bool(d["is_private"]))
                payload["author_id"].append(d["author_id"])
        return texts, Payload(np.array(payload["project_id"], np.int64), np.array(payload["is_private"], bool),
                              np.array(payload["author_id"], np.int64))

    def truth(self, ds: dict, flt: dict | None, k: int) -> np.ndarray:
        key = ("truth", json.dumps(flt, sort_keys=True), k)
        if key not in ds:
            ds[key] = exact_topk(ds["vectors"], ds["qvectors"], None if flt is None else ds["payload"].mask(flt), k)
        return ds[key]

    # ------------------------------------------------------------ commands

    def op_hello(self):
        from importlib.metadata import version
        out = {"python": sys.version.split()[0]}
        for dist in ("qdrant-edge-py", "milvus-lite", "pymilvus", "lancedb", "faiss-cpu", "fastembed",
                     "sentence-transformers", "torch", "onnxruntime", "langchain-text-splitters"):
            try:
                out[dist] = version(dist)
            except Exception:  # noqa: BLE001 - not installed
                out[dist] = None
        return out

    def op_open(self, dataset, dir):
        d = Path(dir)
        p = np.load(d / "payload.npz")
        ds = {"vectors": np.load(d / "vectors.npy").astype(np.float32),
              "qvectors": np.load(d / "qvectors.npy").astype(np.float32),
              "queries": json.loads((d / "queries.json").read_text()),
              "payload": Payload(p["project_id"], p["is_private"].astype(bool), p["author_id"])}
        if (d / "docs.json").exists():
            ds["docs"] = json.loads((d / "docs.json").read_text())
        self.datasets[dataset] = ds
        return {"vectors": len(ds["vectors"]), "queries": len(ds["queries"])}

    def op_build(self, key, engine, dataset):
        ds = self.datasets[dataset]
        if key in self.engines:
            self.op_close(key)
        eng = ENGINES[engine]()
        before = rss_mib()
        info = eng.build(ds["vectors"], ds["payload"])
        info["rss_growth_mib"] = rss_mib() - before
        self.engines[key] = (eng, dataset)
        return info

    def op_sweep(self, key, k, filter):
        eng, dsname = self.engines[key]
        ds = self.datasets[dsname]
        truth = self.truth(ds, filter if eng.filtered else None, k)
        return [{"setting": s.label, "params": s.params, "exact": s.exact,
                 **sweep(lambda v, s=s: eng.search(v, k, filter, s), ds["qvectors"], truth, k)}
                for s in eng.settings()]

    def op_load(self, key, setting, concurrency, seconds, filter, embedder=None, k=10):
        eng, dsname = self.engines[key]
        ds = self.datasets[dsname]
        s = Setting(**setting)
        if embedder:
            emb = self.embedder(embedder)
            queries = ds["queries"]

            def one(i):
                eng.search(emb.query(queries[i]), k, filter, s)
            n = len(queries)
        else:
            qv = ds["qvectors"]

            def one(i):
                eng.search(qv[i], k, filter, s)
            n = len(qv)
        return with_cpu(lambda: run_threads(one, n, concurrency, seconds), "n")

    def op_embed(self, embedder, texts, batch_size=None):
        emb = self.embedder(embedder)
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        vecs = emb.encode(texts, **({"batch_size": batch_size} if batch_size else {}))
        seconds = time.perf_counter() - t0
        cpu = cpu_seconds() - c0
        return {"seconds": seconds, "texts": len(texts), "texts_per_s": len(texts) / seconds, "cpu_s": cpu,
                "texts_per_cpu_s": len(texts) / cpu if cpu else None, "dim": int(vecs.shape[1])}

    def op_ingest(self, embedder, engines, docs):
        """The in-process stacks' ingest: LangChain split, encode (title + chunk, as ragd
        embeds), then each engine's add; one encode shared by the engines (each engine's
        ingest time is split + encode + its own add)."""
        emb = self.embedder(embedder)
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        texts, payload = self.split(docs)
        t_split = time.perf_counter() - t0
        t0 = time.perf_counter()
        vecs = emb.encode(texts)
        t_encode = time.perf_counter() - t0
        c_encode = cpu_seconds() - c0
        out = {"docs": len(docs), "chunks": len(texts), "split_s": t_split, "encode_s": t_encode, "engines": {}}
        for name in engines:
            eng = ENGINES[name](**INGEST_OPTIONS.get(name, {}))
            try:
                c1 = cpu_seconds()  # the engine's own processes included (Milvus Lite's server)
                t0 = time.perf_counter()
                eng.build(vecs, payload)
                t_add = time.perf_counter() - t0
                c_add = cpu_seconds() - c1
            finally:
                eng.close()
            total, cpu = t_split + t_encode + t_add, c_encode + c_add
            out["engines"][name] = {"add_s": t_add, "seconds": total, "docs_per_s": len(docs) / total,
                                    "chunks_per_s": len(texts) / total, "cpu_s": cpu,
                                    "docs_per_cpu_s": len(docs) / cpu if cpu else None}
        return out

    def op_mixed(self, key, embedder, setting, concurrency, seconds, filter, docs, batch=16, k=10):
        """Searches (text -> embedder -> engine) while one writer thread splits, encodes and
        appends batches of `batch` documents (appends: no engine here replaces a document's
        old chunks as ragd does)."""
        eng, dsname = self.engines[key]
        ds = self.datasets[dsname]
        emb = self.embedder(embedder)
        s = Setting(**setting)
        stop = threading.Event()
        written = [0]
        failure: list[str] = []

        def writer():
            i = 0
            try:
                while not stop.is_set():
                    part = docs[i % len(docs):i % len(docs) + batch]
                    i += batch
                    texts, payload = self.split(part)
                    if texts:
                        eng.append(emb.encode(texts, batch_size=32), payload, s)
                    written[0] += len(part)
            except Exception as exc:  # noqa: BLE001 - reported in the result
                failure.append(repr(exc))

        queries = ds["queries"]
        if hasattr(eng, "writing"):
            eng.writing = True
        t = threading.Thread(target=writer)
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        t.start()
        try:
            r = run_threads(lambda i: eng.search(emb.query(queries[i]), k, filter, s), len(queries), concurrency,
                            seconds)
        finally:
            stop.set()
            t.join()
            if hasattr(eng, "writing"):
                eng.writing = False
        out = {"concurrency": concurrency, "search": r, "cpu_s": cpu_seconds() - c0,
               "write": {"docs": written[0], "docs_per_s": written[0] / (time.perf_counter() - t0)}}
        if failure:
            out["write"]["error"] = failure[0]
        return out

    def op_memory(self):
        return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_mib": rss_mib()}

    def op_close(self, key):
        eng, _ = self.engines.pop(key)
        eng.close()
        return {}

    def shutdown(self):
        for key in list(self.engines):
            try:
                self.op_close(key)
            except Exception:  # noqa: BLE001 - best effort on the way out
                traceback.print_exc()


def with_cpu(fn, count_key: str) -> dict:
    """fn()'s result with the CPU seconds this process tree spent on it and the count per CPU-second."""
    c0 = cpu_seconds()
    out = fn()
    out["cpu_s"] = cpu_seconds() - c0
    out["per_cpu_s"] = out[count_key] / out["cpu_s"] if out["cpu_s"] else None
    return out


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def die_with_parent() -> None:
    """Linux: end with the harness even when it is killed without a chance to say quit."""
    try:
        import ctypes
        import signal
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    except (OSError, AttributeError):
        pass


def main() -> None:
    die_with_parent()
    server = Server()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            msg = json.loads(line)
            op = msg.pop("op")
            if op == "quit":
                break
            try:
                result = getattr(server, f"op_{op}")(**msg)
                _PROTO.write(json.dumps({"ok": True, "result": result}) + "\n")
            except Exception as exc:  # noqa: BLE001 - sent back to the harness with the traceback
                traceback.print_exc()
                _PROTO.write(json.dumps({"ok": False, "error": f"{op}: {exc!r}"}) + "\n")
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
