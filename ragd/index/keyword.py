"""Keyword (BM25) index of one collection, on tantivy (a Lucene-like engine in Rust).

Why tantivy and not SQLite FTS5 (benchmarks/search_latency.py --engines measures
both on the same 100k chunks): FTS5 computes bm25() for every matching row before
it can sort, so a broad query over 100k chunks took ~135 ms whatever the filter;
tantivy's block-max WAND answers the same top-10 in ~2 ms, builds faster, and
gives phrase queries (identifiers such as ERR_CONN_RESET or foo_bar.rb are phrases
of their parts) with positions.

One tantivy document per chunk: the chunk's title-prefixed text (as embedded, see
ingest.embedding_text) and its chunk id (an indexed fast field). Permissions are
enforced inside the search with the same boolean mask over chunk ids the vector
index gets (ragd.index.columns): a selective filter becomes a TermSet on chunk ids
that must match; a broad one is searched with a widening top-k checked against the
mask, falling back to the exact TermSet (or its complement) when the page is not
full. Either way a page is full whenever enough admitted chunks match.

The index is derived data, like the FAISS index (ragd.index.derived): it lives in
its own directory (ragd.engine.datadir) with a `ragd-seq` file holding the op-log
sequence it contains; on start the op log after that sequence is replayed
(idempotently: every touched chunk id is deleted, then re-added), and an index that
is missing or unreadable is rebuilt from LMDB.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import tantivy

from ragd.index import cjk as cjk_analysis
from ragd.index.derived import Change, StoreReader

log = logging.getLogger("ragd.keyword")

_FORMAT = 1  # bump when the schema or analyzer changes: the index is rebuilt
# Keyword analysis of CJK text (config search.keyword_cjk): "bigram" indexes CJK runs as
# overlapping bigrams, "sudachi" as morphemes (ragd/index/cjk.py), "off" as whole
# space-delimited words. Part of the index's format tag, so changing it (or the Sudachi
# dictionary's version) rebuilds the index from LMDB on the next start.
CJK_MODES = cjk_analysis.ANALYSES
_TOKENIZER = "ragd_en"
# English stop words, dropped from OR-queries (as bm25s does): a natural-language
# question otherwise matches nearly every chunk through "the" and "of".
STOPWORDS = frozenset("""a about above after again against all am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just me more most my
myself no nor not now of off on once only or other our ours ourselves out over own same she should so some
such than that the their theirs them themselves then there these they this those through to too under until
up very was we were what when where which while who whom why will with would you your yours yourself
yourselves""".split())
_WORD = re.compile(r"\w+")
MAX_TERMS = 256


def analyzer() -> tantivy.TextAnalyzer:
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(40))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.stemmer("english"))
            .build())


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("body", stored=False, tokenizer_name=_TOKENIZER, index_option="position")
    sb.add_integer_field("cid", stored=False, indexed=True, fast=True)
    return sb.build()


# One query "word" that only makes sense verbatim (the AUTO router uses it too).
_IDENTIFIER = re.compile(r"""
    ^(?:
        \#\d+                          # issue reference: #1234
      | r\d+                           # revision: r1234
      | [\w-]+(?:[./\\:][\w-]+)+       # file name, path, module, host, version: foo_bar.rb, app/models, a::b
      | \w*_\w*                        # snake / SCREAMING case: ERR_CONN_RESET, user_id
      | [a-z]+[A-Z]\w*                 # camelCase
      | [A-Z][a-z0-9]+[A-Z]\w*         # PascalCase with an inner capital: NoMethodError
      | [A-Za-z]*\d[\w-]*              # anything with a digit: E1234, 0x1f, 404, utf8
    )$""", re.VERBOSE)
_STRIP = ",;:!?()[]{}<>'\""


def is_identifier(word: str) -> bool:
    w = word.strip(_STRIP)
    return bool(w) and bool(_IDENTIFIER.match(w))


class QueryTerms:
    """A query analysed like the indexed text: stems (repeats kept: a term a long query
    repeats weighs more, as in classic BM25 query term frequency; measured on CISI,
    +0.06 nDCG@10 over de-duplicated terms) and phrases for identifier-like pieces
    (ERR_CONN_RESET, mail_handler.rb, v1.2.3 are phrases of their parts)."""

    def __init__(self, text: str, an: tantivy.TextAnalyzer, cjk: cjk_analysis.Analysis | None = None):
        self.terms: list[str] = []
        self.phrases: list[list[str]] = []
        # CJK runs become bigrams (or morphemes) as in the index; a phrase or identifier
        # keeps them in order.

        def prepare(t: str) -> str:
            return cjk_analysis.index_text(t, cjk) if cjk is not None else t
        quoted = text.strip()
        if len(quoted) > 2 and quoted[0] == quoted[-1] == '"':
            stems = an.analyze(prepare(quoted[1:-1]))
            if len(stems) > 1:
                self.phrases.append(stems[:MAX_TERMS])  # "an exact phrase"
                return
        for piece in text.split():
            if is_identifier(piece):
                stems = an.analyze(prepare(piece.strip(_STRIP)))
                if len(stems) > 1:
                    self.phrases.append(stems)
                    continue
                self.terms.extend(stems)  # "#1234", "E500": one term, kept even if short
                continue
            for word in _WORD.findall(piece):
                parts = cjk_analysis.split_runs(word) if cjk is not None else [(False, word)]
                for is_cjk, part in parts:
                    if is_cjk:  # every term of the run, ORed: BM25 ranks texts holding more of them
                        self.terms.extend(an.analyze(cjk_analysis.query_terms(part, cjk)))
                    elif part.lower() not in STOPWORDS:
                        self.terms.extend(an.analyze(part))
        self.terms = self.terms[:MAX_TERMS]
        self.phrases = self.phrases[:MAX_TERMS]

    @property
    def stems(self) -> set[str]:
        return set(self.terms) | {s for p in self.phrases for s in p}

    def __bool__(self) -> bool:
        return bool(self.terms or self.phrases)


class KeywordIndex:
    """One collection's tantivy index, a derived index (ragd.index.derived.DerivedIndex).
    Writes are staged and committed to tantivy before the next search reads."""
    kind = "tantivy"
    label = "keyword index"

    def __init__(self, path: Path | None, store: StoreReader | None = None, coll_id: int = 0,
                 cjk: str | cjk_analysis.Analysis = "bigram"):
        self.cjk = cjk_analysis.analysis(cjk)  # None: off
        self.format_tag = f"{_FORMAT}+{self.cjk.format_tag}" if self.cjk is not None else f"{_FORMAT}"
        self.path = path            # None: in memory (rebuilt on every start)
        self.store = store          # for rebuild() only
        self.coll_id = coll_id
        self.schema = _schema()
        self.analyzer = analyzer()
        self._lock = threading.Lock()
        self._dirty = False
        self._failed_at: float | None = None  # when a commit failed; refresh() rebuilds (full disk)
        self._free_at_failure = 0   # free bytes on the index's disk then
        self.sequence = 0           # op-log sequence of what it holds (staged writes included)
        self._unreadable: Exception | None = None
        self._index = self._open_index()
        # Indexing buffer, flushed when full; None once closed.
        self._writer: tantivy.IndexWriter | None = self._index.writer(heap_size=32_000_000, num_threads=1)
        self._searcher = self._index.searcher()

    def _open_index(self) -> tantivy.Index:
        if self.path is None:
            index = tantivy.Index(self.schema)
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                index = tantivy.Index(self.schema, path=str(self.path))
            except Exception as exc:  # noqa: BLE001 - derived data: load() reports it, rebuild() refills
                self._unreadable = exc
                shutil.rmtree(self.path)
                self.path.mkdir(parents=True)
                index = tantivy.Index(self.schema, path=str(self.path))
        index.register_tokenizer(_TOKENIZER, self.analyzer)
        return index

    # ------------------------------------------------------------ the derived-index protocol

    def load(self) -> int | None:
        if self._unreadable is not None:
            raise self._unreadable
        seq = _read_seq(self.path, self.format_tag) if self.path is not None else None
        if seq is not None:
            self.sequence = seq
        return seq

    def rebuild(self) -> int:
        if self.store is None:
            raise RuntimeError("a keyword index without a store cannot be rebuilt")
        seq = self.store.sequence()  # before the scan: replaying what it already saw is harmless
        n = 0
        with self._lock:
            self._open_writer().delete_all_documents()
            batch: list[tuple[str, list[int]]] = []
            for rec in self.store.iter_docs(self.coll_id):
                if rec.document is not None and rec.chunk_ids:
                    batch.append((rec.document.title, rec.chunk_ids))
                if len(batch) >= 256:
                    n += self._add_batch(batch)
                    batch = []
            n += self._add_batch(batch)
            self.sequence = seq
            self._commit()
        log.info("keyword index of collection %d rebuilt from LMDB: %d chunks", self.coll_id, n)
        return seq

    def _add_batch(self, batch: list[tuple[str, list[int]]]) -> int:
        if not batch or self.store is None:
            return 0
        titles = {cid: title for title, cids in batch for cid in cids}
        writer = self._open_writer()
        n = 0
        for chunk in self.store.get_chunks(self.coll_id, list(titles)):
            if chunk is not None:
                writer.add_document(tantivy.Document(body=self._body(titles[chunk.chunk_id], chunk.text),
                                                           cid=chunk.chunk_id))
                n += 1
        return n

    def apply(self, change: Change) -> None:
        """Stage a change (engine write lock held, or during start-up replay)."""
        with self._lock:
            writer = self._writer
            if writer is None:  # closed (shutting down): the op log has the write
                return
            # Added ids are deleted first too: a replayed entry may already be in tantivy
            # (a commit that landed just before its ragd-seq file was written).
            for cid in change.removed:
                writer.delete_documents_by_term("cid", int(cid))
            for part in change.documents:
                for cid, text in zip(part.chunk_ids, part.texts):
                    writer.delete_documents_by_term("cid", int(cid))
                    writer.add_document(tantivy.Document(body=self._body(part.document.title, text), cid=int(cid)))
            self.sequence = change.seq
            self._dirty = True

    # ------------------------------------------------------------ commits

    def _open_writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            raise RuntimeError(f"keyword index of collection {self.coll_id} is closed")
        return self._writer

    def _commit(self) -> None:
        self._open_writer().commit()
        self._index.reload()
        self._searcher = self._index.searcher()
        self._dirty = False
        if self.path is not None:
            _write_seq(self.path, self.sequence, self.format_tag)

    def refresh(self) -> None:
        """Make staged writes visible (one tantivy commit for however many writes came since).

        A commit that fails (a full disk) never fails the search that asked for it:
        searches read the last committed state, and the index is rebuilt from LMDB
        (what it would be after a restart) at most every RETRY_S until that succeeds."""
        if self._failed_at is not None:
            # Retry when space was freed (a real signal: the next search after an admin
            # frees the disk sees every acknowledged write), else at most every RETRY_S.
            if time.monotonic() - self._failed_at >= self.RETRY_S or self._space_freed():
                self._recover()
            return
        if self._dirty:
            with self._lock:
                if self._dirty and self._writer is not None:
                    try:
                        self._commit()
                    except (OSError, ValueError) as exc:
                        self._failed_at, self._free_at_failure = time.monotonic(), self._free_bytes()
                        log.warning("keyword index of collection %d: commit failed (%s); keyword searches read "
                                    "the last committed state until it is rebuilt", self.coll_id, exc)

    RETRY_S = 2.0
    FREED_BYTES = 1 << 20  # this much more free space than at the failure: retry now

    def _free_bytes(self) -> int:
        if self.path is None:
            return 0
        try:
            return shutil.disk_usage(self.path).free
        except OSError:
            return 0

    def _space_freed(self) -> bool:
        return self.path is not None and self._free_bytes() >= self._free_at_failure + self.FREED_BYTES

    def _recover(self) -> None:
        try:
            with self._lock:
                self._open_writer().rollback()  # whatever the failed commit left staged
            self.rebuild()
        except (OSError, ValueError, RuntimeError) as exc:
            self._failed_at, self._free_at_failure = time.monotonic(), self._free_bytes()
            log.debug("keyword index of collection %d: rebuild failed again (%s)", self.coll_id, exc)
            return
        self._failed_at = None

    def close(self, commit: bool = True) -> None:
        """Commit staged writes (commit=False drops them, as a crash would: replayed on
        the next open) and release the index's writer lock."""
        with self._lock:
            writer = self._writer
            if writer is None:
                return
            if commit and self._dirty:
                self._commit()
            elif not commit:
                writer.rollback()
            writer.wait_merging_threads()  # consumes the writer, releasing its lock
            self._writer = None

    @property
    def num_docs(self) -> int:
        self.refresh()
        return int(self._searcher.num_docs)

    # ------------------------------------------------------------ search

    def terms(self, text: str) -> QueryTerms:
        return QueryTerms(text, self.analyzer, self.cjk)

    def _query(self, qt: QueryTerms):
        subs = [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, "body", t)) for t in qt.terms]
        for p in qt.phrases:
            # A phrase outweighs its loose words: an exact identifier is what the user typed.
            words: list[str | tuple[int, str]] = list(p)
            subs.append((tantivy.Occur.Should,
                         tantivy.Query.boost_query(tantivy.Query.phrase_query(self.schema, "body", words), 2.0)))
        return tantivy.Query.boolean_query(subs)

    def search(self, text: str | QueryTerms, k: int, mask: np.ndarray | None = None,
               admitted: int | None = None) -> list[tuple[int, float]]:
        """Top-k (chunk id, BM25 score) among chunks the mask admits, best first."""
        self.refresh()
        qt = text if isinstance(text, QueryTerms) else self.terms(text)
        if not qt or k <= 0:
            return []
        query = self._query(qt)
        searcher = self._searcher
        total = int(searcher.num_docs)
        if total == 0:
            return []
        if mask is None:
            return self._run(searcher, query, min(k, total))
        if admitted is None:
            admitted = int(mask.sum())
        if admitted == 0:
            return []
        share = admitted / max(total, 1)
        if share >= 0.05:
            # Broad filter: widen an unfiltered top-k until the mask leaves a full page.
            want = int(k / share * 1.5) + 8
            for _ in range(2):
                want = min(want, total)
                got = self._run(searcher, query, want)
                kept = [(c, s) for c, s in got if c < len(mask) and mask[c]]
                if len(kept) >= k or len(got) < want:
                    return kept[:k]
                want *= 4
        return self._run(searcher, self._filtered(query, mask, admitted), k)

    def _filtered(self, query, mask: np.ndarray, admitted: int):
        if admitted <= len(mask) - admitted:
            allowed = np.flatnonzero(mask).tolist()
            sel = tantivy.Query.const_score_query(tantivy.Query.term_set_query(self.schema, "cid", allowed), 0.0)
            return tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, sel)])
        # Mostly admitted: exclude the few forbidden ids instead (chunk ids beyond the
        # mask were written after it was computed, so they are excluded too).
        denied = np.flatnonzero(~mask).tolist()
        subs = [(tantivy.Occur.Must, query)]
        if denied:
            subs.append((tantivy.Occur.MustNot, tantivy.Query.term_set_query(self.schema, "cid", denied)))
        subs.append((tantivy.Occur.MustNot, tantivy.Query.range_query(
            self.schema, "cid", tantivy.FieldType.Integer, len(mask), 2**63 - 1)))
        return tantivy.Query.boolean_query(subs)

    @staticmethod
    def _run(searcher, query, k: int) -> list[tuple[int, float]]:
        hits = searcher.search(query, k, count=False).hits
        if not hits:
            return []
        cids = searcher.fast_field_values("cid", [addr for _, addr in hits])
        return [(int(c), float(s)) for (s, _), c in zip(hits, cids)]

    # ------------------------------------------------------------ highlights

    def highlight(self, qt: QueryTerms, text: str, limit: int = 64,
                  memo: dict[str, tuple[tuple[int, int], ...]] | None = None) -> list[tuple[int, int]]:
        """Code-point spans of `text` whose words stem to a query term (CJK: the characters
        a matching bigram covers). `memo` (word -> its matching spans, for these query
        terms only) lets the texts of one result page share their words' analysis: each
        distinct word is split and analysed once (a page of 50 hits repeats most of its
        thousands of words; analysing each occurrence was most of the page's assembly)."""
        stems = qt.stems
        if not stems:
            return []
        if memo is None:
            memo = {}
        spans: list[tuple[int, int]] = []
        for m in _WORD.finditer(text):
            word = m.group()
            rel = memo.get(word)
            if rel is None:
                rel = memo[word] = self._word_spans(word, stems)
            if rel:
                at = m.start()
                spans.extend((at + a, at + b) for a, b in rel)
        if self.cjk is not None:
            spans.extend(cjk_analysis.highlight_spans(text, stems, self.cjk))
            spans.sort()
        return spans[:limit]

    def _word_spans(self, word: str, stems) -> tuple[tuple[int, int], ...]:
        """Spans (relative to `word`) of its non-CJK runs that stem to one of `stems`."""
        out = []
        at = 0
        for is_cjk, part in (cjk_analysis.split_runs(word) if self.cjk is not None else [(False, word)]):
            if not is_cjk:
                st = self.analyzer.analyze(part)
                if st and any(s in stems for s in st):
                    out.append((at, at + len(part)))
            at += len(part)
        return tuple(out)

    def _body(self, title: str, text: str) -> str:
        body = f"{title}\n{text}" if title else text
        return cjk_analysis.index_text(body, self.cjk) if self.cjk is not None else body


def _read_seq(path: Path, tag: str) -> int | None:
    try:
        meta = (path / "ragd-seq").read_text().split()
        if meta[0] != tag:
            return None
        return int(meta[1])
    except (OSError, ValueError, IndexError):
        return None


def _write_seq(path: Path, seq: int, tag: str) -> None:
    tmp = path / "ragd-seq.tmp"
    with open(tmp, "w") as f:
        f.write(f"{tag} {seq}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / "ragd-seq")
