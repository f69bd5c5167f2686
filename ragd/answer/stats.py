"""What the Answer pipeline counts, as prometheus_client metrics that belong to
no registry: the daemon's collector (ragd/api/metrics.py) yields them at scrape
time beside the engine's other figures, so each daemon keeps its own."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

# Time to first token spans a cached retrieval with a fast hosted model (~0.2 s)
# to a CPU model reading a long prompt (tens of seconds).
_TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
_RETRIEVAL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class AnswerStats:
    def __init__(self) -> None:
        self.answers = Counter("ragd_answer_answers", "Answers finished, by grounding (cited, not_supported, "
                               "uncited = flagged, no_passages).", ["grounding"], registry=None)
        self.tokens = Counter("ragd_answer_tokens", "Model tokens, by kind (prompt, completion).", ["kind"],
                              registry=None)
        self.first_token = Histogram("ragd_answer_time_to_first_token_seconds", "From the Answer call's start to "
                                     "the answer's first token (retrieval and expansion included).",
                                     buckets=_TTFT_BUCKETS, registry=None)
        self.retrieval = Histogram("ragd_answer_retrieval_seconds", "Retrieval under the caller's filter, per "
                                   "Answer call.", buckets=_RETRIEVAL_BUCKETS, registry=None)
        self.expansions = Counter("ragd_answer_expansions", "Questions expanded with a HyDE draft.", registry=None)
        self.model_errors = Counter("ragd_answer_model_errors", "Model requests that failed, by gRPC code given "
                                    "to the caller.", ["code"], registry=None)

    def collect(self):
        for metric in (self.answers, self.tokens, self.first_token, self.retrieval, self.expansions,
                       self.model_errors):
            yield from metric.collect()
