"""One Answer call: (expand) -> retrieve -> prompt -> stream -> check.

1. Optionally (answer.hyde, complex questions only) the model drafts a
   hypothetical passage from the question alone; it is embedded beside the
   question for the vector half of retrieval.
2. Retrieval is the engine's own HYBRID search under the caller's filter (the
   retriever is injected), so the passages are exactly what Search would show
   this caller. Nothing else from the index enters the prompt.
3. The passages that fit answer.max_context_chars are sent first (the
   AnswerContext event), numbered as in the prompt.
4. The model's tokens are passed on as they arrive.
5. The post-check turns [n] markers into citations of given passages and
   decides the grounding; a response with no valid citation is flagged.

When no passage is permitted and relevant, the model is not called: the answer
is the NOT_SUPPORTED sentence with grounding NO_PASSAGES.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from ragd.answer import citations, prompt
from ragd.answer.chat import ChatClient
from ragd.answer.stats import AnswerStats
from ragd.answer.types import (
    AnswerContext,
    AnswerDelta,
    AnswerDone,
    AnswerEvent,
    AnswerQuery,
    AnswerTimings,
    Citation,
    Grounding,
    Usage,
)
from ragd.domain import SearchMode, SearchQuery, SearchResult
from ragd.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, Unavailable

Retriever = Callable[[SearchQuery], Awaitable[SearchResult]]

_ERROR_CODES = ((Unavailable, "unavailable"), (FailedPrecondition, "failed_precondition"),
                (ResourceExhausted, "resource_exhausted"), (TimeoutError, "deadline_exceeded"))


@dataclass
class AnswerSettings:
    top_k: int = 6
    max_top_k: int = 50
    max_context_chars: int = 12000
    max_tokens: int = 512
    max_tokens_limit: int = 4096
    temperature: float = 0.1
    hyde: bool = False
    hyde_max_tokens: int = 128


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


class Answerer:
    def __init__(self, settings: AnswerSettings, chat: ChatClient | None, retrieve: Retriever,
                 stats: AnswerStats | None = None):
        self.settings = settings
        self.chat = chat
        self.retrieve = retrieve
        self.stats = stats or AnswerStats()

    def validate(self, q: AnswerQuery) -> None:
        """Fields the engine's own validation does not cover (question and filter are Search's)."""
        s = self.settings
        if q.top_k < 0 or q.top_k > s.max_top_k:
            raise InvalidArgument("top_k", f"{q.top_k} is not between 0 (default {s.top_k}) and {s.max_top_k} "
                                  "(answer.max_top_k)")
        if q.max_tokens < 0 or q.max_tokens > s.max_tokens_limit:
            raise InvalidArgument("max_tokens", f"{q.max_tokens} is not between 0 (default {s.max_tokens}) and "
                                  f"{s.max_tokens_limit} (answer.max_tokens_limit)")
        if q.temperature is not None and not 0 <= q.temperature <= 2:
            raise InvalidArgument("temperature", f"{q.temperature} is not between 0 and 2")
        if q.language and (len(q.language) > 64 or not prompt.LANGUAGE_RE.fullmatch(q.language)):
            raise InvalidArgument("language", f"{q.language[:80]!r} is not a language name or code "
                                  "(letters, spaces, '-' or '_', at most 64)")

    async def run(self, q: AnswerQuery, *, expand: bool, deadline: float | None = None) -> AsyncIterator[AnswerEvent]:
        """The call's events: AnswerContext, AnswerDelta..., AnswerDone.
        `expand`: draft a HyDE passage first. `deadline`: absolute loop.time(), or None."""
        if self.chat is None:
            raise FailedPrecondition("no model server is configured: set answer.model_url "
                                     "(README: Answers with citations)")
        t0 = time.perf_counter()
        s = self.settings
        timings = AnswerTimings()
        usage = Usage()
        in_model = False  # failures while the model server is being asked are counted as model errors
        try:
            expansion = ""
            if expand and s.hyde:
                t1 = time.perf_counter()
                in_model = True
                expansion = await self._draft(q.question, usage, deadline)
                in_model = False
                timings.expansion_ms = _ms(t1)
                self.stats.expansions.inc()
            t2 = time.perf_counter()
            query = SearchQuery(collection=q.collection, query=q.question, top_k=q.top_k or s.top_k,
                                mode=SearchMode.HYBRID, filter=q.filter, group_by_document=q.group_by_document,
                                expansion=expansion)
            async with asyncio.timeout_at(deadline):
                result = await self.retrieve(query)
            timings.retrieval_ms = _ms(t2)
            self.stats.retrieval.observe(timings.retrieval_ms / 1000)
            passages = prompt.fit(result.hits, s.max_context_chars)
            yield AnswerContext(passages=passages, expanded=bool(expansion))

            if not passages:
                timings.first_token_ms = timings.total_ms = _ms(t0)
                yield AnswerDelta(prompt.NOT_SUPPORTED)
                self.stats.answers.labels("no_passages").inc()
                yield AnswerDone(text=prompt.NOT_SUPPORTED, citations=[], grounding=Grounding.NO_PASSAGES,
                                 usage=usage, timings=timings)
                return

            messages = prompt.answer_messages(q.question, passages, q.language)
            parts: list[str] = []
            pieces = 0
            model = finish = ""
            answer_usage = Usage(estimated=True)
            t3 = time.perf_counter()
            in_model = True
            stream = self.chat.stream(messages, max_tokens=q.max_tokens or s.max_tokens,
                                      temperature=s.temperature if q.temperature is None else q.temperature,
                                      deadline=deadline)
            try:
                async for chunk in stream:
                    model = chunk.model or model
                    finish = chunk.finish_reason or finish
                    if chunk.prompt_tokens is not None:
                        answer_usage.prompt_tokens = chunk.prompt_tokens
                    if chunk.completion_tokens is not None:
                        answer_usage.completion_tokens = chunk.completion_tokens
                        answer_usage.estimated = False
                    if chunk.text:
                        if not parts:
                            timings.first_token_ms = _ms(t0)
                            self.stats.first_token.observe(timings.first_token_ms / 1000)
                        parts.append(chunk.text)
                        pieces += 1
                        yield AnswerDelta(chunk.text)
            finally:
                await stream.aclose()  # a cancelled call closes the HTTP stream now, not at garbage collection
            in_model = False
            timings.generation_ms = _ms(t3)
            if answer_usage.estimated:
                answer_usage.completion_tokens = pieces
            usage.prompt_tokens += answer_usage.prompt_tokens
            usage.completion_tokens += answer_usage.completion_tokens
            usage.estimated = usage.estimated or answer_usage.estimated
            self.stats.tokens.labels("prompt").inc(answer_usage.prompt_tokens)
            self.stats.tokens.labels("completion").inc(answer_usage.completion_tokens)

            text = "".join(parts)
            verdict = citations.check(text, len(passages))
            cited = [Citation(passage=n, hit=passages[n - 1]) for n in verdict.cited]
            self.stats.answers.labels(verdict.grounding.name.lower()).inc()
            timings.total_ms = _ms(t0)
            yield AnswerDone(text=text, citations=cited, grounding=verdict.grounding,
                             invalid_citations=verdict.invalid, usage=usage, timings=timings, model=model,
                             finish_reason=finish)
        except Exception as exc:
            for cls, code in _ERROR_CODES if in_model else ():
                if isinstance(exc, cls):
                    self.stats.model_errors.labels(code).inc()
                    break
            raise

    async def _draft(self, question: str, usage: Usage, deadline: float | None) -> str:
        """The HyDE passage: the model's answer to the question without any passage."""
        parts = []
        stream = self.chat.stream(prompt.hyde_messages(question), max_tokens=self.settings.hyde_max_tokens,
                                  temperature=0.0, deadline=deadline)
        try:
            async for chunk in stream:
                parts.append(chunk.text)
                if chunk.prompt_tokens is not None:
                    usage.prompt_tokens += chunk.prompt_tokens
                    self.stats.tokens.labels("prompt").inc(chunk.prompt_tokens)
                if chunk.completion_tokens is not None:
                    usage.completion_tokens += chunk.completion_tokens
                    self.stats.tokens.labels("completion").inc(chunk.completion_tokens)
        finally:
            await stream.aclose()
        return "".join(parts).strip()
