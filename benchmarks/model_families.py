"""Per-model table: retrieval quality and embedding speed of every model ragd can serve,
each through its own daemon (quality.py --models runs this).

CISI (tests/data/cisi, 76 judged queries): nDCG@10 for VECTOR and HYBRID (exact search, so
the model is what differs) per model. Speed: texts/s and tokens/s of Embed over gRPC on the
first 256 CISI abstracts, 8 concurrent callers, rounds interleaved across the daemons (A B C
A B C ...; each round's order reversed), so a load change on the shared machine hits every
model alike; the median of the rounds and their spread are reported.

Japanese: a labeled set built from a parallel corpus, Redmine's own messages in English and
Japanese (config/locales/en.yml and ja.yml of Debian's `redmine` package, which the plugin's
set-up installs): every key whose English message has at least 4 words and whose Japanese
message is unique gives one document (the Japanese message). Two query sets, one relevant
document each:
  en->ja   the English message (cross-lingual retrieval);
  ja-part  the first two thirds of the Japanese message (a user who remembers part of an
           error message), which the keyword index can only find inside a sentence without
           spaces when CJK bigrams are on.
Run for the multilingual model and MiniLM, each with search.keyword_cjk bigram and off.

    python benchmarks/quality.py --models [NAMES...]   (writes quality_models.json/.png)
"""
from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import time
from pathlib import Path

REDMINE_LOCALES = Path("/usr/share/redmine/config/locales")
DEFAULT_MODELS = ["all-MiniLM-L6-v2", "bge-small-en-v1.5", "e5-small-v2", "use-multilingual-v3"]


def japanese_set() -> tuple[list[dict], dict[str, str], dict[str, str]]:
    """(documents, en->ja queries, ja-part queries), queries keyed by their relevant doc id."""
    import yaml
    en = yaml.safe_load((REDMINE_LOCALES / "en.yml").read_text())["en"]
    ja = yaml.safe_load((REDMINE_LOCALES / "ja.yml").read_text())["ja"]

    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            elif isinstance(v, str):
                yield f"{prefix}{k}", v

    en_f, ja_f = dict(flat(en)), dict(flat(ja))
    counts: dict[str, int] = {}
    for v in ja_f.values():
        counts[v] = counts.get(v, 0) + 1
    docs, en_q, part_q = [], {}, {}
    for key in sorted(en_f.keys() & ja_f.keys()):
        e, j = en_f[key].strip(), ja_f[key].strip()
        if len(e.split()) < 4 or counts[j] != 1 or "%{" in j and len(j) < 8 or len(j) < 6:
            continue
        doc_id = f"msg:{key}"
        docs.append({"id": doc_id, "text": j, "project_id": 1, "type": "message"})
        en_q[doc_id] = e
        part_q[doc_id] = j[: max(2, len(j) * 2 // 3)]
    return docs, en_q, part_q


def _ndcg1(ranked: list[str], relevant: str) -> float:
    import math
    return next((1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d == relevant), 0.0)


def measure_models(names: list[str], tmp: Path, start_daemon, ndcg_at_10, doc_num, models_dir: Path) -> dict:
    import cisi
    import grpc

    from ragd.embed.catalog import family
    from ragd.embed.provision import provision_model
    from ragd.v1 import ragd_pb2 as pb
    from ragd.v1 import ragd_pb2_grpc
    from ragd_client import AsyncRagClient, RagClient
    for name in names:  # before the daemons: they share this cache
        provision_model(models_dir, name if family(name) else None)
    docs = cisi.documents()
    queries, rel = cisi.queries(), cisi.judgments()
    judged = sorted(q for q in rel if q in queries)
    texts = [d["text"] for d in docs[:256]]
    out: dict = {"cisi": {}, "speed": {}, "japanese": {}}
    daemons = {}
    try:
        for name in names:
            proc, address = start_daemon(tmp / f"data-{name}", {"RAGD_MODEL_NAME": name, "RAGD_CACHE_ENABLED": "false"},
                                         models_dir)
            daemons[name] = (proc, address)
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
            out["cisi"][name] = row
            print(f"  CISI {name}: {row}", flush=True)

        # Speed, interleaved across the live daemons.
        async def one_round(address: str) -> tuple[float, int]:
            async with AsyncRagClient(address, timeout=1200) as client:
                sem = asyncio.Semaphore(8)
                tokens = 0

                async def call(chunk):
                    nonlocal tokens
                    async with sem:
                        resp = await client.embed(chunk)
                        tokens += sum(resp.tokens)
                t0 = time.perf_counter()
                await asyncio.gather(*(call(texts[i:i + 8]) for i in range(0, len(texts), 8)))
                return time.perf_counter() - t0, tokens

        rounds: dict[str, list[tuple[float, int]]] = {n: [] for n in names}
        for r in range(3):
            for name in (names if r % 2 == 0 else names[::-1]):
                rounds[name].append(asyncio.run(one_round(daemons[name][1])))
        for name, rs in rounds.items():
            tps = [len(texts) / s for s, _ in rs]
            toks = [t / s for s, t in rs]
            out["speed"][name] = {"texts_per_s": round(statistics.median(tps), 1),
                                  "texts_per_s_range": [round(min(tps), 1), round(max(tps), 1)],
                                  "tokens_per_s": round(statistics.median(toks)),
                                  "tokens_per_text": round(rs[0][1] / len(texts), 1)}
            print(f"  speed {name}: {out['speed'][name]}", flush=True)
    finally:
        for proc, _ in daemons.values():
            proc.terminate()
            proc.wait(60)

    if not (REDMINE_LOCALES / "ja.yml").exists():
        out["japanese"] = {"skipped": f"{REDMINE_LOCALES} missing (Debian package redmine)"}
        return out
    jdocs, en_q, part_q = japanese_set()
    out["japanese_set"] = {"documents": len(jdocs), "queries_en_ja": len(en_q), "queries_ja_part": len(part_q),
                           "source": "Redmine en.yml/ja.yml (Debian package redmine), keys with >= 4 English words"}
    for name in [n for n in ("use-multilingual-v3", "all-MiniLM-L6-v2") if n in names]:
        for cjk in ("bigram", "off"):
            data = tmp / f"ja-{name}-{cjk}"
            proc, address = start_daemon(data, {"RAGD_MODEL_NAME": name, "RAGD_CACHE_ENABLED": "false",
                                                "RAGD_SEARCH_KEYWORD_CJK": cjk}, models_dir)
            try:
                with RagClient(address, timeout=1200) as client:
                    for i in range(0, len(jdocs), 200):
                        client.upsert(jdocs[i:i + 200], collection="ja")
                channel = grpc.insecure_channel(address)
                stub = ragd_pb2_grpc.RagServiceStub(channel)
                row = {}
                for qname, qs in (("en->ja", en_q), ("ja-part", part_q)):
                    for mode, label in ((pb.SEARCH_MODE_VECTOR, "VECTOR"), (pb.SEARCH_MODE_KEYWORD, "KEYWORD"),
                                        (pb.SEARCH_MODE_HYBRID, "HYBRID")):
                        if cjk == "off" and mode == pb.SEARCH_MODE_VECTOR:
                            continue  # the keyword analysis does not change vectors
                        total = 0.0
                        for doc_id, q in qs.items():
                            resp = stub.Search(pb.SearchRequest(collection="ja", query=q, top_k=10, mode=mode,
                                                                group_by_document=True), timeout=300)
                            total += _ndcg1([h.document_id for h in resp.hits], doc_id)
                        row[f"{qname} {label}"] = round(total / len(qs), 4)
                channel.close()
            finally:
                proc.terminate()
                proc.wait(60)
            out["japanese"][f"{name}, keyword_cjk={cjk}"] = row
            print(f"  japanese {name} cjk={cjk}: {row}", flush=True)
            shutil.rmtree(data, ignore_errors=True)
    return out


def write(out: dict, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "quality_models.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(out["cisi"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    for i, mode in enumerate(("VECTOR", "HYBRID")):
        vals = [out["cisi"][n][mode] for n in names]
        ax.barh([y + i * 0.4 for y in range(len(names))], vals, height=0.4, label=mode)
        for y, v in enumerate(vals):
            ax.text(v + 0.003, y + i * 0.4, f"{v:.3f}", va="center", fontsize=8)
    ax.set_yticks([y + 0.2 for y in range(len(names))], names)
    ax.set_xlabel("nDCG@10, CISI (76 queries, exact search)")
    ax.legend()
    ax = axes[1]
    vals = [out["speed"][n]["tokens_per_s"] for n in names]
    ax.barh(names, vals, color="tab:green")
    for y, n in enumerate(names):
        s = out["speed"][n]
        ax.text(vals[y], y, f" {s['tokens_per_s']} tok/s, {s['texts_per_s']} texts/s", va="center", fontsize=8)
    ax.set_xlabel("Embed over gRPC, 256 CISI abstracts, median of 3 interleaved rounds")
    ax.set_xlim(0, max(vals) * 1.6)
    ax = axes[2]
    ja = {k: v for k, v in out.get("japanese", {}).items() if isinstance(v, dict)}
    labels, vals = [], []
    for cfg, row in ja.items():
        for metric, v in row.items():
            labels.append(f"{cfg.replace('keyword_cjk=', 'cjk ')}: {metric}")
            vals.append(v)
    if vals:
        ax.barh(labels[::-1], vals[::-1], color="tab:purple")
        ax.tick_params(axis="y", labelsize=6)
        ax.set_xlabel("nDCG@10, Redmine messages en/ja (one relevant each)")
    fig.tight_layout()
    fig.savefig(dest / "quality_models.png", dpi=110)
