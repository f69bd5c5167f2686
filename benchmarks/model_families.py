"""Per-model table: retrieval quality and embedding speed of every model ragd can serve, and
the Japanese keyword analysis compared with morphological analysers (quality.py --models).

Parts (--parts, all by default; the JSON keeps the parts not re-run from its last run):
  cisi       nDCG@10 on CISI (tests/data/cisi, 76 judged queries) for VECTOR and HYBRID
             (exact search, so the model is what differs), each model through its own daemon.
  speed      passage embedding speed per model and graph (fp32, and int8 where the model has
             one), ragd's own embedder in this process, rounds interleaved across the models.
  japanese   the Japanese set (tests/data/redmine_ja: 360 Redmine messages; three query sets,
             one relevant message each: the English message, the first two thirds of the
             Japanese one, its two longest nouns): nDCG@10 and recall@10 for VECTOR, KEYWORD
             and HYBRID per model, each model through its own daemon, once with
             search.keyword_cjk = bigram (the default) and once with off.
  analysers  KEYWORD on the Japanese set with CJK bigrams vs morphological analysers from PyPI
             that ship their dictionaries (SudachiPy + sudachidict_core, fugashi + unidic-lite,
             Janome) plugged into ragd's keyword index through its analysis interface, and
             their indexing speed (interleaved rounds). pip install sudachipy sudachidict-core
             fugashi unidic-lite janome to include them (each is left out when missing).

    python benchmarks/quality.py --models [NAMES...] [--parts speed japanese analysers]
    (writes benchmarks/results/quality_models.json and .png)
"""
from __future__ import annotations

import json
import re
import shutil
import statistics
import time
from pathlib import Path

_WORD = re.compile(r"\w+")
DEFAULT_MODELS = ["all-MiniLM-L6-v2", "bge-small-en-v1.5", "e5-small-v2", "use-multilingual-v3"]


# (model, precision) pairs the speed table measures: every model's fp32 graph and, where
# it has one, its int8 graph (MiniLM's made by ragd, BGE's and E5's the registry's own).
# use-multilingual-v3 ships one graph, already int8-quantised by its publisher.
SPEED_CONFIGS = [("all-MiniLM-L6-v2", "fp32"), ("all-MiniLM-L6-v2", "int8"), ("bge-small-en-v1.5", "fp32"),
                 ("bge-small-en-v1.5", "int8"), ("e5-small-v2", "fp32"), ("e5-small-v2", "int8"),
                 ("use-multilingual-v3", "fp32")]


def measure_speed(configs: list[tuple[str, str]], models_dir: Path, texts: list[str], rounds: int = 3) -> dict:
    """Passage embedding speed of ragd's own embedder (ragd.embed.open_embedder, as the
    daemon runs it: length-sorted batches of 32, one intra-op thread per core, no spinning)
    in this process, each configuration once per round, rounds interleaved (A B C ... then
    reversed), so a load change on the shared machine hits every model alike. Tokens are the
    ones each model sees (its own tokenizer, its prefix, truncated at its limit); for the
    string-input graph they are ragd's estimate (about a third of the characters)."""
    import gc
    import os

    from ragd.embed.catalog import family
    from ragd.embed.onnx_embedder import open_embedder
    from ragd.embed.provision import provision_model
    dirs = {(name, precision): provision_model(models_dir, name if family(name) else None,
                                               int8=precision == "int8" and not family(name))
            for name, precision in configs}
    # One embedder in memory at a time (seven sessions with their arenas together passed 6 GB):
    # each is opened and warmed before its timed pass, outside the timing.
    times: dict[tuple[str, str], list[float]] = {c: [] for c in configs}
    tokens: dict[tuple[str, str], int] = {}
    variant: dict[tuple[str, str], str] = {}
    estimated: dict[tuple[str, str], bool] = {}
    loads = [os.getloadavg()[0]]
    for r in range(rounds):
        for c in (configs if r % 2 == 0 else configs[::-1]):
            emb = open_embedder(dirs[c], device="cpu", precision=c[1])
            emb.embed(texts[:4])  # warm-up: first-run allocations
            t0 = time.perf_counter()
            res = emb.embed(texts, batch_size=32)
            times[c].append(time.perf_counter() - t0)
            tokens[c] = int(res.token_counts.sum())
            variant[c], estimated[c] = emb.variant, type(emb).__name__ == "TextGraphEmbedder"
            del emb, res
            gc.collect()
            print(f"  speed round {r} {c}: {len(texts) / times[c][-1]:.2f} texts/s", flush=True)
        loads.append(os.getloadavg()[0])
    out: dict = {"texts": len(texts), "rounds": rounds, "load_avg_1min": [round(x, 1) for x in loads],
                 "cpu_count": os.cpu_count(), "rows": {}}
    ratios = {c: [t / b for t, b in zip(times[c], times[configs[0]])] for c in configs}
    for c in configs:
        ts = times[c]
        out["rows"][f"{c[0]} {c[1]}"] = {
            "model": c[0], "precision": variant[c],
            "texts_per_s": round(len(texts) / statistics.median(ts), 2),
            "texts_per_s_range": [round(len(texts) / max(ts), 2), round(len(texts) / min(ts), 2)],
            "tokens_per_s": round(tokens[c] / statistics.median(ts)),
            "chars_per_s": round(sum(map(len, texts)) / statistics.median(ts)),
            "tokens_per_text": round(tokens[c] / len(texts), 1),
            # Per round, the time relative to the first configuration's in the same round.
            "time_vs_first": round(statistics.median(ratios[c]), 2),
            "time_vs_first_range": [round(min(ratios[c]), 2), round(max(ratios[c]), 2)],
            "seconds": [round(t, 2) for t in ts],
            "tokens_estimated": estimated[c]}
    return out


class _Sudachi:
    """SudachiPy + sudachidict_core, for the comparison only: the shortest split (mode A, the
    unit Elasticsearch's sudachi plugin searches by), each morpheme as its normalised form
    (サーバ and サーバー meet, し/した/します become 為る); particles, auxiliary verbs and
    symbols are stop terms (dropped from a query's OR-terms, as English stop words are).
    Mode B and C and surface forms measured no better on this set."""
    name = "sudachi"
    format_tag = "cjk-sudachi"

    def __init__(self) -> None:
        from sudachipy import Dictionary, SplitMode
        self._tok = Dictionary(dict="core").tokenizer(SplitMode.A)

    def segments(self, run: str):
        from ragd.index.cjk import Segment
        out = []
        for m in self._tok.tokenize(run):
            norm = m.normalized_form()
            term = norm if _WORD.fullmatch(norm) else m.surface()
            stop = m.part_of_speech()[0] in ("助詞", "助動詞", "補助記号", "空白")
            out.append(Segment(m.begin(), m.end(), term, stop))
        return out


class _Fugashi:
    """fugashi (MeCab) + unidic-lite, for the comparison only: each morpheme as its
    dictionary-form spelling (orthBase), particles and auxiliaries as stop terms."""
    name = "fugashi"
    format_tag = "cjk-fugashi"

    def __init__(self) -> None:
        import fugashi
        self._tagger = fugashi.Tagger()

    def segments(self, run: str):
        from ragd.index.cjk import Segment
        out, at = [], 0
        for w in self._tagger(run):
            start = run.index(w.surface, at)
            at = start + len(w.surface)
            base = getattr(w.feature, "orthBase", None) or w.surface
            term = base if _WORD.fullmatch(base) else w.surface
            out.append(Segment(start, at, term, w.feature.pos1 in ("助詞", "助動詞", "補助記号", "空白")))
        return out


class _Janome:
    """Janome (pure Python, IPADIC inside), for the comparison only: base forms,
    particles, auxiliaries and symbols as stop terms."""
    name = "janome"
    format_tag = "cjk-janome"

    def __init__(self) -> None:
        from janome.tokenizer import Tokenizer
        self._tok = Tokenizer()

    def segments(self, run: str):
        from ragd.index.cjk import Segment
        out, at = [], 0
        for t in self._tok.tokenize(run):
            start = run.index(t.surface, at)
            at = start + len(t.surface)
            term = t.base_form if t.base_form != "*" and _WORD.fullmatch(t.base_form) else t.surface
            out.append(Segment(start, at, term, t.part_of_speech.split(",")[0] in ("助詞", "助動詞", "記号")))
        return out


def _analyses() -> dict:
    """The keyword analyses compared: ragd's (bigram, sudachi, off) and, when installed,
    fugashi + unidic-lite and Janome through the same interface."""
    out: dict = {"bigram": "bigram"}
    for name, cls in (("sudachi", _Sudachi), ("fugashi+unidic-lite", _Fugashi), ("janome", _Janome)):
        try:
            out[name] = cls()
        except ImportError:
            print(f"  {name} not installed: left out of the comparison", flush=True)
    out["off"] = "off"
    return out


def _rank_metrics(ranked: list[str], relevant: str) -> tuple[float, float]:
    """(nDCG@10, recall@10) of one query with one relevant document."""
    return _ndcg1(ranked, relevant), float(relevant in ranked[:10])


def measure_analysers(rounds: int = 5, copies: int = 20) -> dict:
    """KEYWORD quality on the Japanese set per analysis (ragd's keyword index in this process,
    exactly what the daemon's KEYWORD mode searches), and indexing speed: the 360 messages
    `copies` times over through the index's write path (analysis + tantivy, one commit),
    each analysis once per round, rounds interleaved (A B C ..., then reversed); the time
    relative to bigrams is taken per round (the same load) and its median reported."""
    import os

    import numpy as np
    import redmine_ja

    from ragd.domain import Document
    from ragd.index.derived import Change, DocChunks
    from ragd.index.keyword import KeywordIndex
    msgs = redmine_ja.messages()
    docs = redmine_ja.documents()
    analyses = _analyses()

    def change(n_copies: int) -> Change:
        parts = [DocChunks(Document(id=f"{d['id']}#{c}", text=d["text"]), [c * len(docs) + i], [d["text"]])
                 for c in range(n_copies) for i, d in enumerate(docs)]
        return Change(1, (), lambda: (np.zeros(0, np.int64), np.zeros((0, 1), np.float32)), lambda: parts)

    out: dict = {"documents": len(docs), "quality": {}, "speed": {}}
    for name, an in analyses.items():
        kw = KeywordIndex(None, None, 1, an)
        kw.apply(change(1))
        row = {}
        for qset in redmine_ja.QUERY_SETS:
            qs = redmine_ja.queries(qset)
            nd = rc = 0.0
            for doc_id, q in qs.items():
                ranked = [docs[c]["id"] for c, _ in kw.search(q, 10)]
                a, b = _rank_metrics(ranked, doc_id)
                nd, rc = nd + a, rc + b
            row[qset] = {"ndcg@10": round(nd / len(qs), 4), "recall@10": round(rc / len(qs), 4)}
        out["quality"][name] = row
        kw.close()
        print(f"  keyword {name}: {row}", flush=True)
    # Janome (pure Python) indexes a fifth of the copies: its rate is what is compared.
    n_copies = {name: max(1, copies // 5) if name == "janome" else copies for name in analyses}
    chars_one = sum(len(m["ja"]) for m in msgs)
    times: dict[str, list[float]] = {n: [] for n in analyses}
    loads = [os.getloadavg()[0]]
    names = list(analyses)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            ch = change(n_copies[name])
            kw = KeywordIndex(None, None, 1, analyses[name])
            t0 = time.perf_counter()
            kw.apply(ch)
            kw.refresh()
            times[name].append((time.perf_counter() - t0) / n_copies[name])  # seconds per copy of the set
            kw.close()
        loads.append(os.getloadavg()[0])
    for name, ts in times.items():
        # Per round, the time relative to bigrams' in the same round: the load cancels out.
        ratios = sorted(t / b for t, b in zip(ts, times["bigram"]))
        out["speed"][name] = {"chars_per_s": round(chars_one / statistics.median(ts)),
                              "chars_per_s_range": [round(chars_one / max(ts)), round(chars_one / min(ts))],
                              "time_vs_bigram": round(statistics.median(ratios), 2),
                              "time_vs_bigram_range": [round(ratios[0], 2), round(ratios[-1], 2)]}
    out["speed_setup"] = {"chars_per_copy": chars_one, "copies": n_copies, "rounds": rounds,
                          "load_avg_1min": [round(x, 1) for x in loads]}
    print(f"  keyword speed: {out['speed']}", flush=True)
    return out


def _ndcg1(ranked: list[str], relevant: str) -> float:
    import math
    return next((1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d == relevant), 0.0)


PARTS = ("cisi", "speed", "japanese", "analysers")


def measure_models(names: list[str], parts: list[str], tmp: Path, start_daemon, ndcg_at_10, doc_num,
                   models_dir: Path) -> dict:
    """The parts asked for, as one dict (write() merges it into the last run's JSON)."""
    import os

    import cisi

    from ragd.embed.catalog import family
    from ragd.embed.provision import provision_model
    for name in names:  # before the daemons: they share this cache
        provision_model(models_dir, name if family(name) else None)
    out: dict = {"machine": {"cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}}
    if "cisi" in parts:
        out["cisi"] = measure_cisi(names, tmp, start_daemon, ndcg_at_10, doc_num, models_dir)
    if "speed" in parts:
        texts = [d["text"] for d in cisi.documents()[:32]]
        out["speed"] = measure_speed([c for c in SPEED_CONFIGS if c[0] in names], models_dir, texts, rounds=5)
    if "analysers" in parts:
        out["analysers"] = measure_analysers()
    if "japanese" in parts:
        out["japanese"] = measure_japanese(names, tmp, start_daemon, models_dir)
    return out


def measure_cisi(names: list[str], tmp: Path, start_daemon, ndcg_at_10, doc_num, models_dir: Path) -> dict:
    """nDCG@10 on CISI per model, VECTOR and HYBRID, exact search, each model in its own daemon."""
    import cisi
    import grpc

    from ragd.v1 import ragd_pb2 as pb
    from ragd.v1 import ragd_pb2_grpc
    from ragd_client import RagClient
    docs = cisi.documents()
    queries, rel = cisi.queries(), cisi.judgments()
    judged = sorted(q for q in rel if q in queries)
    out: dict = {}
    for name in names:
        proc, address = start_daemon(tmp / f"data-{name}", {"RAGD_MODEL_NAME": name, "RAGD_CACHE_ENABLED": "false"},
                                     models_dir)
        try:
            with RagClient(address, timeout=1200) as client:
                t0 = time.perf_counter()
                for i in range(0, len(docs), 100):
                    client.upsert(docs[i:i + 100])
                index_s = time.perf_counter() - t0
                chunks = client.stats().collections[0].chunks
            channel = grpc.insecure_channel(address)
            stub = ragd_pb2_grpc.RagServiceStub(channel)
            row = {"index_s": round(index_s, 1), "chunks": chunks}
            for mode, label in ((pb.SEARCH_MODE_VECTOR, "VECTOR"), (pb.SEARCH_MODE_HYBRID, "HYBRID")):
                total = 0.0
                for q in judged:
                    resp = stub.Search(pb.SearchRequest(query=queries[q], top_k=10, mode=mode, group_by_document=True,
                                                        filter=pb.Filter(all_private=True),
                                                        params=pb.SearchParams(exact=True)), timeout=300)
                    total += ndcg_at_10([doc_num(h.document_id) for h in resp.hits], rel[q])
                row[label] = round(total / len(judged), 4)
            channel.close()
        finally:
            proc.terminate()
            proc.wait(60)
            shutil.rmtree(tmp / f"data-{name}", ignore_errors=True)
        out[name] = row
        print(f"  CISI {name}: {row}", flush=True)
    return out


def measure_japanese(names: list[str], tmp: Path, start_daemon, models_dir: Path) -> dict:
    """nDCG@10 and recall@10 on the Japanese set per model, query set and mode, through a
    daemon per model and search.keyword_cjk (bigram, off). The query-embedding cache is on
    (VECTOR and HYBRID embed each query once, as a daemon would); result pages are per mode."""
    import grpc
    import redmine_ja

    from ragd.v1 import ragd_pb2 as pb
    from ragd.v1 import ragd_pb2_grpc
    from ragd_client import RagClient
    docs = redmine_ja.documents()
    sets = {q: redmine_ja.queries(q) for q in redmine_ja.QUERY_SETS}
    modes = {"VECTOR": pb.SEARCH_MODE_VECTOR, "KEYWORD": pb.SEARCH_MODE_KEYWORD, "HYBRID": pb.SEARCH_MODE_HYBRID}
    out: dict = {"set": {"documents": len(docs), **{f"queries_{k}": len(v) for k, v in sets.items()},
                         "source": "tests/data/redmine_ja (Redmine 5.0.4 en.yml/ja.yml)"}, "rows": {}}
    for name in names:
        for cjk in ("bigram", "off"):
            data = tmp / f"ja-{name}-{cjk}"
            proc, address = start_daemon(data, {"RAGD_MODEL_NAME": name, "RAGD_SEARCH_KEYWORD_CJK": cjk}, models_dir)
            try:
                with RagClient(address, timeout=1200) as client:
                    t0 = time.perf_counter()
                    for i in range(0, len(docs), 120):
                        client.upsert(docs[i:i + 120], collection="ja")
                    index_s = round(time.perf_counter() - t0, 1)
                channel = grpc.insecure_channel(address)
                stub = ragd_pb2_grpc.RagServiceStub(channel)
                row: dict = {"index_s": index_s}
                for qname, qs in sets.items():
                    for label, mode in modes.items():
                        if cjk == "off" and label == "VECTOR":
                            continue  # the keyword analysis does not change vectors
                        nd = rc = 0.0
                        for doc_id, q in qs.items():
                            resp = stub.Search(pb.SearchRequest(collection="ja", query=q, top_k=10, mode=mode,
                                                                group_by_document=True), timeout=300)
                            a, b = _rank_metrics([h.document_id for h in resp.hits], doc_id)
                            nd, rc = nd + a, rc + b
                        row[f"{qname} {label}"] = {"ndcg@10": round(nd / len(qs), 4),
                                                   "recall@10": round(rc / len(qs), 4)}
                channel.close()
            finally:
                proc.terminate()
                proc.wait(60)
                shutil.rmtree(data, ignore_errors=True)
            out["rows"][f"{name}, keyword_cjk={cjk}"] = row
            print(f"  japanese {name} cjk={cjk}: {row}", flush=True)
    return out


def write(out: dict, dest: Path) -> dict:
    """Merge `out` into dest/quality_models.json (parts not re-run keep their last figures),
    write it and the PNG; the merged dict."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "quality_models.json"
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update(out)
    path.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n")
    plot(merged, dest / "quality_models.png")
    return merged


def plot(out: dict, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams["font.family"] = ["DejaVu Sans"]
    fig, axes = plt.subplots(2, 2, figsize=(15, 9))
    ax = axes[0][0]
    cisi_rows = {k: v for k, v in out.get("cisi", {}).items() if isinstance(v, dict)}
    names = list(cisi_rows)
    for i, mode in enumerate(("VECTOR", "HYBRID")):
        vals = [cisi_rows[n][mode] for n in names]
        ax.barh([y + i * 0.4 for y in range(len(names))], vals, height=0.4, label=mode)
        for y, v in enumerate(vals):
            ax.text(v + 0.003, y + i * 0.4, f"{v:.3f}", va="center", fontsize=8)
    ax.set_yticks([y + 0.2 for y in range(len(names))], names)
    ax.set_xlabel("nDCG@10, CISI (76 queries, exact search)")
    ax.set_xlim(0, 0.6)
    ax.legend(loc="lower right")
    ax = axes[0][1]
    rows = out.get("speed", {}).get("rows", {})
    labels = list(rows)[::-1]
    vals = [rows[k]["texts_per_s"] for k in labels]  # comparable across tokenizers (one model estimates)
    ax.barh(labels, vals, color="tab:green")
    for y, k in enumerate(labels):
        r = rows[k]
        est = " (est.)" if r.get("tokens_estimated") else ""
        ax.text(vals[y], y, f" {r['texts_per_s']} texts/s [{r['texts_per_s_range'][0]}-{r['texts_per_s_range'][1]}], "
                f"{r['tokens_per_s']} tok/s{est}, {r['time_vs_first']}x MiniLM fp32's time", va="center", fontsize=7)
    if vals:
        ax.set_xlim(0, max(vals) * 2.3)
    ax.set_xlabel(f"texts/s, passage embedding on this CPU, {out.get('speed', {}).get('texts')} CISI abstracts, "
                  "median of interleaved rounds")
    ax = axes[1][0]
    ja = out.get("japanese", {}).get("rows", {})
    models = [k.split(", keyword_cjk=")[0] for k in ja if k.endswith("keyword_cjk=bigram")]
    qsets = [("en", "from English"), ("ja_part", "first two thirds"), ("ja_words", "two nouns")]
    bars = [("KEYWORD", models[0] if models else "", "KEYWORD, bigrams (any model)")]
    bars += [(mode, m, f"{mode} {m}") for m in models for mode in ("VECTOR", "HYBRID")]
    width = 0.9 / max(len(bars), 1)
    cmap = plt.get_cmap("tab10")
    for i, (mode, m, label) in enumerate(bars):
        row = ja.get(f"{m}, keyword_cjk=bigram", {})
        vals = [row.get(f"{q} {mode}", {}).get("ndcg@10", 0.0) for q, _ in qsets]
        color = "tab:gray" if mode == "KEYWORD" else cmap(models.index(m))
        ax.bar([x + i * width for x in range(len(qsets))], vals, width, label=label, color=color,
               hatch="//" if mode == "HYBRID" else None, edgecolor="white")
    ax.set_xticks([x + 0.45 - width / 2 for x in range(len(qsets))], [t for _, t in qsets])
    ax.set_ylabel("nDCG@10")
    ax.set_ylim(0, 1.35)
    ax.legend(fontsize=6, ncol=3, loc="upper center")
    ax.set_title("Japanese set (360 Redmine messages, one relevant each), keyword_cjk = bigram", fontsize=9)
    ax = axes[1][1]
    an = out.get("analysers", {})
    names = list(an.get("quality", {}))
    for i, qset in enumerate(("ja_part", "ja_words")):
        vals = [an["quality"][n][qset]["ndcg@10"] for n in names]
        ax.barh([y + i * 0.4 for y in range(len(names))], vals, height=0.4, label=f"KEYWORD nDCG@10, {qset}")
    for y, n in enumerate(names):
        sp = an.get("speed", {}).get(n)
        if sp:
            ax.text(1.0, y + 0.2, f" {sp['chars_per_s'] / 1000:.0f}k chars/s indexed, "
                    f"{sp['time_vs_bigram']}x bigrams' time", va="center", fontsize=7)
    ax.set_yticks([y + 0.2 for y in range(len(names))], names)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_xlim(0, 1.6)
    ax.set_xlabel("Japanese keyword analysis: quality and indexing speed")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
