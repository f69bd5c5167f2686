"""Answers with citations: the "complex" route of cost-aware routing.

    pipeline   retrieve (HYBRID, the caller's filter) -> prompt -> stream -> check
    chat       an OpenAI-compatible chat client (httpx): timeouts, retries before
               the first token, a concurrency cap, errors mapped to ragd.errors
    prompt     the messages: numbered permitted passages only, "answer only from
               them", the HyDE draft request
    citations  the post-check: which [n] markers name a passage that was given
    stats      counters and histograms the metrics endpoint reads at scrape time

No protobuf here (ragd/api converts); the engine builds the pipeline with its
own search as the retriever, so permissions are exactly Search's.
"""
