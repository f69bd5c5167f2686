"""The Answer RPC on this CPU with the small model (llama.cpp's llama-server,
SmolLM2-135M-Instruct Q4_1, installed by scripts/model_server.sh):

1. Time to first token, ragd vs the model server alone, interleaved. For each
   CISI question ragd's Answer (HYBRID retrieval under a filter, prompt, stream
   through gRPC) and a direct streaming chat request with the very same prompt
   (the passages ragd gave the model) alternate A B / B A over two rounds. The
   server runs with --no-cache-prompt so neither side reuses the other's prompt.
   Reported: both TTFT distributions, the per-question ratio and difference
   (ragd's overhead) with their spread, and ragd's own retrieval_ms.
2. HyDE's effect on retrieval: nDCG@10 over the 76 judged CISI queries through
   the daemon's Answer passages (top_k 10, one per document), with answer.hyde
   off, then on (same data dir, daemon restarted). Only questions the router
   flags complex are expanded; the count is reported, with a few drafts.

    python benchmarks/answer.py [--questions 20] [--no-hyde]

Writes benchmarks/results/answer.json and answer.png.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import MODEL_CACHE, REPO, RESULTS, cisi, write
from quality import doc_num, ndcg_at_10, start_daemon, upsert_all

sys.path.insert(0, str(REPO / "clients" / "python"))


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def summary(values: list[float]) -> dict:
    return {"p10": round(pct(values, 0.1), 3), "p50": round(statistics.median(values), 3),
            "p90": round(pct(values, 0.9), 3), "mean": round(statistics.fmean(values), 3), "n": len(values)}


def direct_ttft(base_url: str, messages: list[dict], max_tokens: int) -> float:
    """Seconds to the first content token of a streaming chat request straight to the model server."""
    import json

    import httpx
    from httpx_sse import connect_sse
    body = {"messages": messages, "stream": True, "max_tokens": max_tokens, "temperature": 0.0}
    t0 = time.perf_counter()
    with httpx.Client(timeout=600) as http, connect_sse(http, "POST", base_url + "/chat/completions",
                                                         json=body) as events:
        for sse in events.iter_sse():
            if sse.data.strip() == "[DONE]":
                break
            for choice in json.loads(sse.data).get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    return time.perf_counter() - t0
    raise RuntimeError("the model server streamed no token")


def ragd_ttft(client, question: str, flt: dict, max_tokens: int):
    """(client-side seconds to the first token, passages, the AnswerDone)."""
    from ragd_client import AnswerContext, AnswerDelta, AnswerDone
    t0 = time.perf_counter()
    first, passages, done = None, [], None
    for event in client.answer(question, filter=flt, max_tokens=max_tokens, temperature=0.0):
        if isinstance(event, AnswerContext):
            passages = event.passages
        elif isinstance(event, AnswerDelta) and first is None:
            first = time.perf_counter() - t0
        elif isinstance(event, AnswerDone):
            done = event
    return first, passages, done


def ttft_rounds(address: str, base_url: str, questions: list[str], max_tokens: int) -> dict:
    from ragd.answer import prompt
    from ragd_client import RagClient
    flt = {"all_private": True}
    rows = {q: {"ragd": [], "direct": [], "retrieval_ms": [], "server_first_token_ms": []} for q in questions}
    passages: dict[str, list] = {}
    with RagClient(address, timeout=600) as client:
        for rnd in range(2):  # round 0: A B, round 1: B A (B reuses round 0's passages)
            for q in questions:
                order = ("ragd", "direct") if rnd == 0 else ("direct", "ragd")
                for side in order:
                    if side == "ragd":
                        t, got, done = ragd_ttft(client, q, flt, max_tokens)
                        passages.setdefault(q, got)
                        rows[q]["ragd"].append(t)
                        rows[q]["retrieval_ms"].append(done.timings.retrieval_ms)
                        rows[q]["server_first_token_ms"].append(done.timings.first_token_ms)
                    else:
                        from ragd.domain import Document, Hit
                        hits = [Hit(document=Document(id=h.document_id, text="", title=h.document.title),
                                    chunk_id=h.chunk_id, text=h.text, start=h.start, end=h.end, score=h.score)
                                for h in passages[q]]
                        rows[q]["direct"].append(direct_ttft(base_url, prompt.answer_messages(q, hits), max_tokens))
            print(f"  round {rnd + 1} of 2 done", flush=True)
    ragd = [t for r in rows.values() for t in r["ragd"]]
    direct = [t for r in rows.values() for t in r["direct"]]
    ratios = [a / b for r in rows.values() for a, b in zip(r["ragd"], r["direct"])]
    overhead = [(a - b) * 1000 for r in rows.values() for a, b in zip(r["ragd"], r["direct"])]
    retrieval = [m for r in rows.values() for m in r["retrieval_ms"]]
    return {"questions": len(questions), "rounds": 2, "max_tokens": max_tokens,
            "ttft_s": {"ragd Answer": summary(ragd), "model server alone": summary(direct)},
            "ratio_ragd_over_direct": summary(ratios), "overhead_ms": summary(overhead),
            "ragd_retrieval_ms": summary(retrieval), "per_question": rows}


def ndcg_pass(address: str, queries: dict[int, str], rel: dict[int, set[int]], judged: list[int]) -> dict:
    from ragd.engine.router import is_complex
    from ragd_client import RagClient
    per_query, expanded, expansion_ms = {}, 0, []
    with RagClient(address, timeout=600) as client:
        for q in judged:
            ans = client.ask(queries[q], top_k=10, group_by_document=True, max_tokens=1,
                             filter={"all_private": True})
            per_query[q] = round(ndcg_at_10([doc_num(p.document_id) for p in ans.passages], rel[q]), 4)
            expanded += ans.expanded
            if ans.expanded:
                expansion_ms.append(ans.timings.expansion_ms)
    return {"ndcg@10": round(statistics.fmean(per_query.values()), 4), "expanded": expanded,
            "complex_by_router": sum(is_complex(queries[q]) for q in judged),
            "expansion_ms": summary(expansion_ms) if expansion_ms else None, "per_query": per_query}


def sample_drafts(base_url: str, queries: dict[int, str], judged: list[int], n: int = 3) -> list[dict]:
    """A few HyDE drafts, asked exactly as ragd asks them, to show what the small model writes."""
    import asyncio

    from ragd.answer import prompt
    from ragd.answer.chat import ChatClient, ChatSettings

    async def draft(question):
        chat = ChatClient(ChatSettings(url=base_url))
        try:
            return await chat.complete(prompt.hyde_messages(question), max_tokens=96, temperature=0.0)
        finally:
            await chat.close()
    return [{"question": queries[q], "draft": asyncio.run(draft(queries[q])).strip()} for q in judged[:n]]


def save_partial(out: dict) -> None:
    """What is measured so far, in case a later phase fails (the final write replaces it)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "answer.partial.json").write_text(json.dumps(out, indent=2, default=str) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=20, help="CISI questions in the TTFT rounds")
    ap.add_argument("--max-tokens", type=int, default=16, help="tokens generated per answer in the TTFT rounds")
    ap.add_argument("--no-hyde", action="store_true", help="skip the HyDE nDCG passes")
    args = ap.parse_args()

    from model_server import LlamaServer

    from ragd.embed.provision import provision_model
    from ragd_client import RagClient

    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    provision_model(MODEL_CACHE)
    docs, queries, rel = cisi.documents(), cisi.queries(), cisi.judgments()
    judged = sorted(q for q in rel if q in queries)
    out: dict = {"model_server": "llama.cpp llama-server (scripts/model_server.sh), SmolLM2-135M-Instruct Q4_1, "
                                 "1 slot, 4096-token context, 2 threads, --no-cache-prompt",
                 "load_average_start": os.getloadavg()}
    tmp = Path(tempfile.mkdtemp(prefix="ragd-answer-bench-"))
    llama = LlamaServer(tmp / "llama", slots=1, ctx_per_slot=4096, threads=2, extra=("--no-cache-prompt",))
    try:
        llama.wait_ready()
        env = {"RAGD_ANSWER_MODEL_URL": llama.base_url, "RAGD_CACHE_ENABLED": "false",
               "RAGD_SERVER_METRICS_LISTEN": "", "RAGD_ANSWER_HYDE_MAX_TOKENS": "96"}
        proc, address = start_daemon(tmp / "data", env)
        try:
            with RagClient(address, timeout=600) as client:
                out["index_s"] = upsert_all(client, docs)
            print(f"indexed {len(docs)} CISI documents in {out['index_s']} s; TTFT rounds", flush=True)
            out["ttft"] = ttft_rounds(address, llama.base_url, [queries[q] for q in judged[:args.questions]],
                                      args.max_tokens)
            save_partial(out)
            if not args.no_hyde:
                print("nDCG@10 with answer.hyde off", flush=True)
                out["hyde_off"] = ndcg_pass(address, queries, rel, judged)
                save_partial(out)
        finally:
            proc.terminate()
            proc.wait(60)
        if not args.no_hyde:
            print("nDCG@10 with answer.hyde on", flush=True)
            proc, address = start_daemon(tmp / "data", {**env, "RAGD_ANSWER_HYDE": "true"})
            try:
                out["hyde_on"] = ndcg_pass(address, queries, rel, judged)
            finally:
                proc.terminate()
                proc.wait(60)
            on, off = out["hyde_on"]["per_query"], out["hyde_off"]["per_query"]
            out["hyde_effect"] = {"delta_ndcg@10": round(out["hyde_on"]["ndcg@10"] - out["hyde_off"]["ndcg@10"], 4),
                                  "better": sum(on[q] > off[q] for q in judged),
                                  "worse": sum(on[q] < off[q] for q in judged),
                                  "same": sum(on[q] == off[q] for q in judged)}
            out["hyde_samples"] = sample_drafts(llama.base_url, queries, judged)
    finally:
        llama.stop()
    out["load_average_end"] = os.getloadavg()

    t = out["ttft"]
    print(f"TTFT p50: ragd {t['ttft_s']['ragd Answer']['p50']:.3f} s, model server alone "
          f"{t['ttft_s']['model server alone']['p50']:.3f} s; ratio p50 {t['ratio_ragd_over_direct']['p50']:.2f} "
          f"(p10 {t['ratio_ragd_over_direct']['p10']:.2f}, p90 {t['ratio_ragd_over_direct']['p90']:.2f}); overhead "
          f"p50 {t['overhead_ms']['p50']:.0f} ms; retrieval p50 {t['ragd_retrieval_ms']['p50']:.0f} ms")
    if "hyde_effect" in out:
        print(f"nDCG@10: hyde off {out['hyde_off']['ndcg@10']}, on {out['hyde_on']['ndcg@10']} "
              f"({out['hyde_on']['expanded']} of {len(judged)} expanded); {out['hyde_effect']}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2 if "hyde_effect" in out else 1, figsize=(11, 4.2), squeeze=False)
    ax = axes[0][0]
    data = [[x for r in t["per_question"].values() for x in r["ragd"]],
            [x for r in t["per_question"].values() for x in r["direct"]]]
    ax.boxplot(data, showfliers=True)
    ax.set_xticks([1, 2], ["ragd Answer\n(retrieval + prompt + gRPC)", "model server alone\n(same prompt)"])
    ax.set_ylabel("time to first token (s)")
    ax.set_title(f"TTFT, {t['questions']} CISI questions x 2 rounds, interleaved\nratio p50 "
                 f"{t['ratio_ragd_over_direct']['p50']:.2f}, retrieval p50 {t['ragd_retrieval_ms']['p50']:.0f} ms")
    if "hyde_effect" in out:
        ax = axes[0][1]
        vals = [out["hyde_off"]["ndcg@10"], out["hyde_on"]["ndcg@10"]]
        ax.bar(["hyde off", "hyde on"], vals, color=["tab:gray", "tab:blue"])
        for x, v in enumerate(vals):
            ax.text(x, v + 0.005, f"{v:.3f}", ha="center")
        ax.set_ylabel("nDCG@10 (76 judged CISI queries)")
        ax.set_title(f"HyDE drafts by SmolLM2-135M ({out['hyde_on']['expanded']} expanded)")
        ax.set_ylim(0, max(vals) * 1.2)
    fig.tight_layout()
    write("answer", out, fig)
    (RESULTS / "answer.partial.json").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
