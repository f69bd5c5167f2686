"""proto <-> domain conversion. The only module besides the servicer that knows ragd.v1."""
from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from ragd import domain
from ragd.answer import types as answer
from ragd.v1 import ragd_pb2 as pb


def _ts_to_us(ts: Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def _us_to_ts(us: int, out: Timestamp) -> None:
    out.seconds, rem = divmod(us, 1_000_000)
    out.nanos = rem * 1000


def document(d: pb.Document) -> domain.Document:
    return domain.Document(
        id=d.id, text=d.text, title=d.title, project_id=d.project_id, type=d.type, is_private=d.is_private,
        author_id=d.author_id, updated_at_us=_ts_to_us(d.updated_at) if d.HasField("updated_at") else 0,
        version=d.version, metadata=dict(d.metadata), viewer_ids=list(d.viewer_ids), tracker_id=d.tracker_id,
        owner_ids=list(d.owner_ids), private_note=d.private_note)


def document_pb(d: domain.Document, out: pb.Document) -> None:
    out.id, out.title, out.text = d.id, d.title, d.text
    out.project_id, out.type, out.is_private = d.project_id, d.type, d.is_private
    out.author_id, out.version = d.author_id, d.version
    if d.updated_at_us:
        _us_to_ts(d.updated_at_us, out.updated_at)
    out.metadata.update(d.metadata)
    out.viewer_ids.extend(d.viewer_ids)
    out.tracker_id, out.private_note = d.tracker_id, d.private_note
    out.owner_ids.extend(d.owner_ids)


def document_infos(items: list[domain.DocumentInfo], out) -> None:
    for d in items:
        info = out.add(id=d.id, type=d.type, project_id=d.project_id, version=d.version, chunks=d.chunks)
        if d.updated_at_us:
            _us_to_ts(d.updated_at_us, info.updated_at)


def refs(req: pb.DeleteRequest) -> list[domain.DocumentRef]:
    return [domain.DocumentRef(i) for i in req.ids] + [domain.DocumentRef(r.id, r.version) for r in req.refs]


def filter_(f: pb.Filter) -> domain.Filter:
    return domain.Filter(
        project_ids=list(f.project_ids), types=list(f.types), private_project_ids=list(f.private_project_ids),
        user_id=f.user_id, all_private=f.all_private, metadata_equals=dict(f.metadata_equals),
        metadata_ranges=[domain.MetadataRange(r.key, r.gte if r.HasField("gte") else None,
                                              r.lte if r.HasField("lte") else None) for r in f.metadata_ranges],
        updated_after_us=_ts_to_us(f.updated_after) if f.HasField("updated_after") else None,
        updated_before_us=_ts_to_us(f.updated_before) if f.HasField("updated_before") else None,
        exclude_ids=list(f.exclude_ids),
        grants=[domain.Grant(types=list(g.types), project_ids=list(g.project_ids), visibility=int(g.visibility),
                             tracker_ids=list(g.tracker_ids), private_notes=g.private_notes) for g in f.grants],
        group_ids=list(f.group_ids))


def search_query(r: pb.SearchRequest, mode: domain.SearchMode) -> domain.SearchQuery:
    return domain.SearchQuery(collection=r.collection, query=r.query, top_k=r.top_k, mode=mode,
                              filter=filter_(r.filter), group_by_document=r.group_by_document,
                              min_score=r.min_score, nprobe=r.params.nprobe,
                              rerank_factor=r.params.rerank_factor, exact=r.params.exact,
                              min_sequence=r.min_sequence)


def timings(t: domain.Timings, out: pb.Timings) -> None:
    out.queue_ms, out.tokenize_ms, out.embed_ms = t.queue_ms, t.tokenize_ms, t.embed_ms
    out.search_ms, out.store_ms, out.total_ms, out.cache_hit = t.search_ms, t.store_ms, t.total_ms, t.cache_hit


def acks(items: list[domain.Ack], out) -> None:
    for a in items:
        out.add(id=a.id, status=int(a.status), version=a.version, chunks=a.chunks, error=a.error,
                truncated=a.truncated)


def hits(items: list[domain.Hit], out) -> None:
    for h in items:
        hit = out.add(document_id=h.document.id, chunk_id=h.chunk_id, text=h.text, start=h.start,
                      end=h.end, score=h.score, vector_score=h.vector_score, keyword_score=h.keyword_score)
        document_pb(h.document, hit.document)
        for start, end in h.highlights:
            hit.highlights.add(start=start, end=end)


def search_response(res: domain.SearchResult) -> pb.SearchResponse:
    resp = pb.SearchResponse(mode=int(res.mode), complex=res.complex)
    hits(res.hits, resp.hits)
    timings(res.timings, resp.timings)
    return resp


def answer_query(r: pb.AnswerRequest) -> answer.AnswerQuery:
    return answer.AnswerQuery(collection=r.collection, question=r.question, filter=filter_(r.filter), top_k=r.top_k,
                              max_tokens=r.max_tokens,
                              temperature=r.temperature if r.HasField("temperature") else None,
                              language=r.language, group_by_document=r.group_by_document)


def answer_event(e: answer.AnswerEvent) -> pb.AnswerResponse:
    if isinstance(e, answer.AnswerDelta):
        return pb.AnswerResponse(delta=e.text)
    if isinstance(e, answer.AnswerContext):
        resp = pb.AnswerResponse(context=pb.AnswerContext(expanded=e.expanded))
        hits(e.passages, resp.context.passages)
        return resp
    done = pb.AnswerDone(text=e.text, grounding=int(e.grounding), invalid_citations=e.invalid_citations,
                         model=e.model, finish_reason=e.finish_reason)
    for c in e.citations:
        done.citations.add(passage=c.passage, document_id=c.hit.document.id, chunk_id=c.hit.chunk_id,
                           start=c.hit.start, end=c.hit.end, score=c.hit.score)
    done.usage.CopyFrom(pb.TokenUsage(prompt_tokens=e.usage.prompt_tokens,
                                      completion_tokens=e.usage.completion_tokens, estimated=e.usage.estimated))
    t = e.timings
    done.timings.CopyFrom(pb.AnswerTimings(expansion_ms=t.expansion_ms, retrieval_ms=t.retrieval_ms,
                                           first_token_ms=t.first_token_ms, generation_ms=t.generation_ms,
                                           total_ms=t.total_ms))
    return pb.AnswerResponse(done=done)


_JOB_STATES = {domain.JobState.QUEUED: pb.JOB_STATE_QUEUED, domain.JobState.RUNNING: pb.JOB_STATE_RUNNING,
               domain.JobState.SUCCEEDED: pb.JOB_STATE_SUCCEEDED, domain.JobState.PARTIAL: pb.JOB_STATE_PARTIAL,
               domain.JobState.FAILED: pb.JOB_STATE_FAILED}


def job(j: domain.Job) -> pb.Job:
    out = pb.Job(id=j.id, collection=j.collection, state=_JOB_STATES[j.state], total=j.total, done=j.done,
                 failed=j.failed)
    for e in j.errors:
        out.errors.add(document_id=e.document_id, error=e.error, attempts=e.attempts)
    _us_to_ts(int(j.created * 1e6), out.created_at)
    _us_to_ts(int(j.updated * 1e6), out.updated_at)
    return out


def model_info(m: domain.ModelInfo, out: pb.ModelInfo) -> None:
    out.name, out.dimension, out.max_tokens, out.provider, out.sha256 = (
        m.name, m.dimension, m.max_tokens, m.provider, m.sha256)
