"""Input validation for every write and query, done before anything is written:
a request either passes whole or fails with InvalidArgument naming the field."""
from __future__ import annotations

import math
import re

from ragd.config import LimitsConfig
from ragd.domain import Document, DocumentRef, Filter, Grant, SearchMode, Visibility
from ragd.errors import InvalidArgument

DEFAULT_COLLECTION = "default"
DEFAULT_TOP_K = 10
_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_TYPE_BYTES = 64
_MAX_METADATA_BYTES = 64 * 1024
# Filter size limits, part of the API (documented in proto ragd.v1.Filter): a
# Redmine user in thousands of projects fits; a filter that would make the
# per-search mask compilation expensive does not.
MAX_GRANTS = 1000
MAX_FILTER_IDS = 100_000      # project, tracker and group ids of a filter and its grants, together
MAX_GRANT_TYPES = 64
_VISIBILITIES = {int(v) for v in Visibility}


def collection_name(name: str) -> str:
    name = name or DEFAULT_COLLECTION
    if not _COLLECTION_RE.match(name):
        raise InvalidArgument("collection", f"{name[:80]!r} is not a valid name "
                              "(1-64 of letters, digits, '_', '.', '-', starting with a letter or digit)")
    return name


_MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def model_name(name: str) -> str:
    """A model as Reindex names it: a directory under DATA_DIR/models or a model family, so one
    path component (never '..', '/', or a name the filesystem refuses as too long)."""
    if not name:
        raise InvalidArgument("model", "name the model to re-embed the collection with")
    if not _MODEL_RE.fullmatch(name) or ".." in name:
        raise InvalidArgument("model", f"{name[:80]!r} is not a model name (1-128 of letters, digits, '_', '.', "
                              "'-', starting with a letter or digit)")
    return name


_MAX_JOB_ID_BYTES = 128  # job ids are 32 hex digits; LMDB refuses keys over 511 bytes


def job_id(value: str) -> str:
    """A job id as GetJob/WatchJob take it: never handed to LMDB empty or over-long."""
    if not value:
        raise InvalidArgument("job_id", "missing (Upsert with wait=false returns one)")
    n = _utf8_len(value)
    if n > _MAX_JOB_ID_BYTES:
        raise InvalidArgument("job_id", f"{n} bytes, longer than any job id ({_MAX_JOB_ID_BYTES})")
    return value


def _utf8_len(s: str) -> int:
    return len(s.encode("utf-8", "surrogatepass"))


def document_id(doc_id: str, field: str, limits: LimitsConfig) -> None:
    if not doc_id:
        raise InvalidArgument(field, "missing (every document needs an id)")
    n = _utf8_len(doc_id)
    if n > limits.max_id_bytes:
        raise InvalidArgument(field, f"{n} bytes, longer than the limit of {limits.max_id_bytes}")


def documents(docs: list[Document], limits: LimitsConfig) -> None:
    if not docs:
        raise InvalidArgument("documents", "empty: send at least one document")
    if len(docs) > limits.max_batch_documents:
        raise InvalidArgument("documents", f"{len(docs)} documents, more than the limit of "
                              f"{limits.max_batch_documents} per request (split the batch)")
    seen: dict[str, int] = {}
    for i, doc in enumerate(docs):
        where = f"documents[{i}]"
        document_id(doc.id, f"{where}.id", limits)
        if doc.id in seen:
            raise InvalidArgument(f"{where}.id", f"{doc.id!r} repeats documents[{seen[doc.id]}]")
        seen[doc.id] = i
        size = _utf8_len(doc.text)
        if size > limits.max_document_bytes:
            raise InvalidArgument(f"{where}.text", f"{size} bytes, larger than the limit of "
                                  f"{limits.max_document_bytes} (limits.max_document_bytes)")
        if not doc.text.strip():
            raise InvalidArgument(f"{where}.text", "empty or whitespace only")
        if _utf8_len(doc.title) > limits.max_query_bytes:
            raise InvalidArgument(f"{where}.title", f"longer than {limits.max_query_bytes} bytes")
        if _utf8_len(doc.type) > _MAX_TYPE_BYTES:
            raise InvalidArgument(f"{where}.type", f"longer than {_MAX_TYPE_BYTES} bytes")
        if doc.version < 0:
            raise InvalidArgument(f"{where}.version", "negative")
        if doc.tracker_id < 0:
            raise InvalidArgument(f"{where}.tracker_id", f"{doc.tracker_id} is negative")
        _not_negative(doc.owner_ids, f"{where}.owner_ids")
        meta_bytes = 0
        for key, value in doc.metadata.items():
            if not key:
                raise InvalidArgument(f"{where}.metadata", "empty key")
            meta_bytes += _utf8_len(key) + _utf8_len(value)
        if meta_bytes > _MAX_METADATA_BYTES:
            raise InvalidArgument(f"{where}.metadata", f"{meta_bytes} bytes, more than {_MAX_METADATA_BYTES}")


def refs(refs_: list[DocumentRef], limits: LimitsConfig) -> None:
    if not refs_:
        raise InvalidArgument("ids", "empty: name at least one document id")
    if len(refs_) > limits.max_batch_documents:
        raise InvalidArgument("ids", f"more than the limit of {limits.max_batch_documents} per request")
    for i, ref in enumerate(refs_):
        document_id(ref.id, f"ids[{i}]", limits)
        if ref.version < 0:
            raise InvalidArgument(f"refs[{i}].version", "negative")


def query_text(query: str, limits: LimitsConfig, field: str = "query") -> None:
    if not query.strip():
        raise InvalidArgument(field, "empty or whitespace only")
    n = _utf8_len(query)
    if n > limits.max_query_bytes:
        raise InvalidArgument(field, f"{n} bytes, longer than the limit of {limits.max_query_bytes}")


def top_k(k: int, limits: LimitsConfig) -> int:
    """0 means the default (proto3 cannot tell unset from 0); out of range is an error, not a clamp."""
    if k == 0:
        return DEFAULT_TOP_K
    if k < 0 or k > limits.max_top_k:
        raise InvalidArgument("top_k", f"{k} is outside 1..{limits.max_top_k} (0 means {DEFAULT_TOP_K})")
    return k


DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000


def page_size(n: int) -> int:
    """0 means the default; out of range is an error, not a clamp."""
    if n == 0:
        return DEFAULT_PAGE_SIZE
    if n < 0 or n > MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"{n} is outside 1..{MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
    return n


def mode(value: int) -> SearchMode:
    try:
        return SearchMode(value)
    except ValueError:
        raise InvalidArgument("mode", f"unknown search mode {value}") from None


def min_score(value: float) -> float:
    if math.isnan(value):
        raise InvalidArgument("min_score", "NaN")
    return value


def search_params(nprobe: int, rerank_factor: int) -> None:
    """SearchParams: 0 means the index's default; negative is an error."""
    for name, value in (("nprobe", nprobe), ("rerank_factor", rerank_factor)):
        if value < 0:
            raise InvalidArgument(f"params.{name}", f"{value} is negative (0 means the default)")


def filter_(flt: Filter, field: str = "filter") -> None:
    for i, rng in enumerate(flt.metadata_ranges):
        where = f"{field}.metadata_ranges[{i}]"
        if not rng.key:
            raise InvalidArgument(f"{where}.key", "empty")
        for name in ("gte", "lte"):
            value = getattr(rng, name)
            if value is not None and math.isnan(value):
                raise InvalidArgument(f"{where}.{name}", "NaN is not a bound")
        if rng.gte is None and rng.lte is None:
            raise InvalidArgument(where, "needs gte, lte or both")
        if rng.gte is not None and rng.lte is not None and rng.gte > rng.lte:
            raise InvalidArgument(where, f"gte {rng.gte} is greater than lte {rng.lte}")
    if (flt.updated_after_us is not None and flt.updated_before_us is not None
            and flt.updated_after_us > flt.updated_before_us):
        raise InvalidArgument(f"{field}.updated_after", "later than updated_before")
    _grants(flt, field)


def _not_negative(ids: list[int], field: str) -> None:
    for i, x in enumerate(ids):
        if x < 0:
            raise InvalidArgument(f"{field}[{i}]", f"{x} is negative")


def _grants(flt: Filter, field: str) -> None:
    """The grants part of a filter (proto ragd.v1.Filter / Grant): well formed,
    within the limits, and not mixed with the fields grants replace."""
    if not flt.grants:
        if flt.group_ids:
            # Without grants nothing reads them: a caller sending groups meant grants, and
            # an empty grant list would otherwise show every public document.
            raise InvalidArgument(f"{field}.group_ids", "only meaningful with grants (filter.grants is empty)")
        return
    if len(flt.grants) > MAX_GRANTS:
        raise InvalidArgument(f"{field}.grants", f"{len(flt.grants)} grants, more than the limit of {MAX_GRANTS} "
                              "(merge the projects of roles that see alike into one grant)")
    if flt.private_project_ids:
        raise InvalidArgument(f"{field}.private_project_ids", "not allowed with grants (the grants decide "
                              "which private documents are visible)")
    if flt.all_private:
        raise InvalidArgument(f"{field}.all_private", "not allowed with grants (use a grant with "
                              "VISIBILITY_ALL and private_notes)")
    if flt.user_id < 0:
        raise InvalidArgument(f"{field}.user_id", f"{flt.user_id} is negative")
    _not_negative(flt.group_ids, f"{field}.group_ids")
    total = len(flt.project_ids) + len(flt.group_ids) + sum(len(g.project_ids) + len(g.tracker_ids)
                                                           for g in flt.grants)
    if total > MAX_FILTER_IDS:
        raise InvalidArgument(f"{field}.grants", f"{total} project, tracker and group ids in all, more than the "
                              f"limit of {MAX_FILTER_IDS}")
    for i, g in enumerate(flt.grants):
        _grant(g, f"{field}.grants[{i}]")


def _grant(g: Grant, where: str) -> None:
    if g.visibility not in _VISIBILITIES:
        what = "unset (VISIBILITY_UNSPECIFIED)" if g.visibility == 0 else f"unknown value {g.visibility}"
        raise InvalidArgument(f"{where}.visibility", f"{what}; one of VISIBILITY_ALL, VISIBILITY_DEFAULT, "
                              "VISIBILITY_OWN")
    if not g.types:
        raise InvalidArgument(f"{where}.types", "empty: name the document types the grant covers")
    if len(g.types) > MAX_GRANT_TYPES:
        raise InvalidArgument(f"{where}.types", f"{len(g.types)} types, more than the limit of {MAX_GRANT_TYPES}")
    for j, t in enumerate(g.types):
        if not t or _utf8_len(t) > _MAX_TYPE_BYTES:
            raise InvalidArgument(f"{where}.types[{j}]", f"must be 1..{_MAX_TYPE_BYTES} bytes")
    if not g.project_ids:
        raise InvalidArgument(f"{where}.project_ids", "empty: name the projects the grant covers")
    _not_negative(g.project_ids, f"{where}.project_ids")
    _not_negative(g.tracker_ids, f"{where}.tracker_ids")


def embed_texts(texts: list[str], limits: LimitsConfig) -> None:
    if not texts:
        raise InvalidArgument("texts", "empty: send at least one text")
    if len(texts) > limits.max_embed_texts:
        raise InvalidArgument("texts", f"{len(texts)} texts, more than the limit of {limits.max_embed_texts}")
    for i, text in enumerate(texts):
        if not text.strip():
            raise InvalidArgument(f"texts[{i}]", "empty or whitespace only")
        n = _utf8_len(text)
        if n > limits.max_document_bytes:
            raise InvalidArgument(f"texts[{i}]", f"{n} bytes, larger than {limits.max_document_bytes}")
