"""Client-side conversion between the typed dataclasses and ragd.v1 messages."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from typing import Any

import grpc

from . import types as t
from .errors import from_code
from .v1 import ragd_pb2 as pb

DocLike = t.Document | Mapping[str, Any]

_ACK = {1: "indexed", 2: "unchanged", 3: "stale", 4: "deleted", 5: "not_found", 6: "failed", 7: "queued"}
MODES = {"auto": pb.SEARCH_MODE_AUTO, "vector": pb.SEARCH_MODE_VECTOR,
         "keyword": pb.SEARCH_MODE_KEYWORD, "hybrid": pb.SEARCH_MODE_HYBRID}
_MODE_NAMES = {v: k for k, v in MODES.items()}


def _ts(value: dt.datetime | str | int | float, out) -> None:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value, dt.timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    out.FromDatetime(value)


def document_pb(doc: DocLike) -> pb.Document:
    d = asdict(doc) if isinstance(doc, t.Document) else dict(doc)
    updated = d.pop("updated_at", None)
    msg = pb.Document(**{k: v for k, v in d.items() if v is not None})
    if updated:
        _ts(updated, msg.updated_at)
    return msg


VISIBILITIES = {"all": pb.VISIBILITY_ALL, "default": pb.VISIBILITY_DEFAULT, "own": pb.VISIBILITY_OWN}


def _visibility(value) -> int:
    """"all" / "default" / "own" (or the proto enum's number, passed through for the daemon to judge)."""
    if isinstance(value, str):
        try:
            return VISIBILITIES[value.lower()]
        except KeyError:
            raise ValueError(f"grant visibility must be one of {sorted(VISIBILITIES)}, not {value!r}") from None
    return int(value)


def grant_pb(grant: t.Grant | Mapping[str, Any], out) -> None:
    g = asdict(grant) if isinstance(grant, t.Grant) else dict(grant)
    unknown = set(g) - {f.name for f in t.Grant.__dataclass_fields__.values()}
    if unknown:  # a typo such as "project" would otherwise drop a permission field
        raise ValueError(f"unknown grant field(s) {sorted(unknown)}")
    out.add(types=list(g.get("types") or []), project_ids=list(g.get("project_ids") or []),
            visibility=_visibility(g.get("visibility", 0)), tracker_ids=list(g.get("tracker_ids") or []),
            private_notes=bool(g.get("private_notes", False)))


def filter_pb(flt: t.Filter | Mapping[str, Any] | None) -> pb.Filter | None:
    if flt is None:
        return None
    f = asdict(flt) if isinstance(flt, t.Filter) else dict(flt)
    grants = f.pop("grants", []) or []
    ranges = f.pop("metadata_ranges", []) or []
    after, before = f.pop("updated_after", None), f.pop("updated_before", None)
    msg = pb.Filter(**{k: v for k, v in f.items() if v is not None})
    for r in ranges:
        r = r if isinstance(r, dict) else asdict(r)
        msg.metadata_ranges.add(**{k: v for k, v in r.items() if v is not None})
    for g in grants:
        grant_pb(g, msg.grants)
    if after:
        _ts(after, msg.updated_after)
    if before:
        _ts(before, msg.updated_before)
    return msg


def delete_request(collection: str, ids: Iterable[str], versions: Mapping[str, int] | None) -> pb.DeleteRequest:
    req = pb.DeleteRequest(collection=collection, wait=True)
    for doc_id in ids:
        if versions and doc_id in versions:
            req.refs.add(id=doc_id, version=versions[doc_id])
        else:
            req.ids.append(doc_id)
    return req


def timings(m: pb.Timings) -> t.Timings:
    return t.Timings(m.queue_ms, m.tokenize_ms, m.embed_ms, m.search_ms, m.store_ms, m.total_ms, m.cache_hit)


def acks(items) -> list[t.Ack]:
    return [t.Ack(a.id, _ACK.get(a.status, "unspecified"), a.version, a.chunks, a.error, a.truncated)
            for a in items]


def write_result(resp) -> t.WriteResult:
    return t.WriteResult(acks(resp.acks), resp.sequence, getattr(resp, "job_id", ""),
                         timings(resp.timings) if hasattr(resp, "timings") else t.Timings())


def document(m: pb.Document) -> t.Document:
    return t.Document(id=m.id, text=m.text, title=m.title, project_id=m.project_id, type=m.type,
                      is_private=m.is_private, author_id=m.author_id,
                      updated_at=m.updated_at.ToDatetime(dt.timezone.utc) if m.HasField("updated_at") else None,
                      version=m.version, metadata=dict(m.metadata), viewer_ids=list(m.viewer_ids),
                      tracker_id=m.tracker_id, owner_ids=list(m.owner_ids), private_note=m.private_note)


def hits(items) -> list[t.Hit]:
    return [t.Hit(h.document_id, h.chunk_id, h.text, h.start, h.end, h.score, document(h.document),
                  h.vector_score, h.keyword_score, [(s.start, s.end) for s in h.highlights]) for h in items]


def search_result(m: pb.SearchResponse) -> t.SearchResult:
    return t.SearchResult(hits(m.hits), _MODE_NAMES.get(m.mode, "auto"), timings(m.timings), m.complex)


def embed_result(m: pb.EmbedResponse) -> t.EmbedResult:
    return t.EmbedResult([list(e.values) for e in m.embeddings], m.dimension, [e.tokens for e in m.embeddings],
                         [e.truncated for e in m.embeddings], m.model, timings(m.timings))


def stats(m: pb.StatsResponse) -> t.Stats:
    colls = [t.CollectionStats(c.name, c.documents, c.chunks, c.index_kind, c.index_vectors, c.tombstones,
                               c.sequence, c.dimension) for c in m.collections]
    mi = m.model
    return t.Stats(colls, t.ModelInfo(mi.name, mi.dimension, mi.max_tokens, mi.provider, mi.sha256),
                   m.version, m.uptime_s, m.disk_bytes)


def search_request(collection: str, query: str, top_k: int, flt, mode: str, group_by_document: bool,
                   min_score: float) -> pb.SearchRequest:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, not {mode!r}")
    return pb.SearchRequest(collection=collection, query=query, top_k=top_k, mode=MODES[mode],
                            filter=filter_pb(flt), group_by_document=group_by_document, min_score=min_score)


_JOB_STATES = {1: "queued", 2: "running", 3: "succeeded", 4: "partial", 5: "failed"}


def job(m: pb.Job) -> t.Job:
    return t.Job(m.id, m.collection, _JOB_STATES.get(m.state, "unspecified"), m.total, m.done, m.failed,
                 [t.JobError(e.document_id, e.error, e.attempts) for e in m.errors])


_STATUS = {code.value[0]: code for code in grpc.StatusCode}


def stream_result(m: pb.SearchStreamResponse):
    """(tag, SearchResult or RagError) for one SearchStream answer."""
    if m.error_code:
        return m.tag, from_code(_STATUS[m.error_code], m.error_message)
    return m.tag, search_result(m.response)


def search_stream_requests(collection: str, queries, top_k: int, flt, mode: str):
    return (pb.SearchStreamRequest(tag=tag, request=search_request(collection, q, top_k, flt, mode, False, 0.0))
            for tag, q in queries)


_GROUNDING = {1: "cited", 2: "not_supported", 3: "uncited", 4: "no_passages"}


def answer_request(collection: str, question: str, top_k: int, flt, max_tokens: int, temperature: float | None,
                   language: str, group_by_document: bool) -> pb.AnswerRequest:
    req = pb.AnswerRequest(collection=collection, question=question, top_k=top_k, filter=filter_pb(flt),
                           max_tokens=max_tokens, language=language, group_by_document=group_by_document)
    if temperature is not None:
        req.temperature = temperature
    return req


def answer_event(m: pb.AnswerResponse) -> t.AnswerContext | t.AnswerDelta | t.AnswerDone:
    kind = m.WhichOneof("event")
    if kind == "delta":
        return t.AnswerDelta(m.delta)
    if kind == "context":
        return t.AnswerContext(hits(m.context.passages), m.context.expanded)
    d = m.done
    return t.AnswerDone(
        text=d.text, citations=[t.Citation(c.passage, c.document_id, c.chunk_id, c.start, c.end, c.score)
                                for c in d.citations],
        grounding=_GROUNDING.get(d.grounding, "unspecified"), invalid_citations=list(d.invalid_citations),
        usage=t.TokenUsage(d.usage.prompt_tokens, d.usage.completion_tokens, d.usage.estimated),
        timings=t.AnswerTimings(d.timings.expansion_ms, d.timings.retrieval_ms, d.timings.first_token_ms,
                                d.timings.generation_ms, d.timings.total_ms),
        model=d.model, finish_reason=d.finish_reason)


class AnswerCollector:
    """Folds answer() events into one Answer."""

    def __init__(self) -> None:
        self.passages: list[t.Hit] = []
        self.expanded = False
        self.done: t.AnswerDone | None = None

    def add(self, event) -> None:
        if isinstance(event, t.AnswerContext):
            self.passages, self.expanded = event.passages, event.expanded
        elif isinstance(event, t.AnswerDone):
            self.done = event

    def answer(self) -> t.Answer:
        d = self.done
        if d is None:
            raise RuntimeError("the answer stream ended without its final message")
        return t.Answer(**{f.name: getattr(d, f.name) for f in fields(d)}, passages=self.passages,
                        expanded=self.expanded)
