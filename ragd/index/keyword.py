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

The index is derived data, like the FAISS index: it lives under
DATA_DIR/keyword/<collection id>/ with a `seq` file holding the op-log sequence it
contains; on start the op log after that sequence is replayed (idempotently: every
touched chunk id is deleted, then re-added if LMDB still has it), and an index that
is missing or unreadable is rebuilt from LMDB.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import weakref
from pathlib import Path

import numpy as np
import tantivy

log = logging.getLogger("ragd.keyword")

_FORMAT = 1  # bump when the schema or analyzer changes: the index is rebuilt
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

    def __init__(self, text: str, an: tantivy.TextAnalyzer):
        self.terms: list[str] = []
        self.phrases: list[list[str]] = []
        quoted = text.strip()
        if len(quoted) > 2 and quoted[0] == quoted[-1] == '"':
            stems = an.analyze(quoted[1:-1])
            if len(stems) > 1:
                self.phrases.append(stems[:MAX_TERMS])  # "an exact phrase"
                return
        for piece in text.split():
            if is_identifier(piece):
                stems = an.analyze(piece.strip(_STRIP))
                if len(stems) > 1:
                    self.phrases.append(stems)
                    continue
                self.terms.extend(stems)  # "#1234", "E500": one term, kept even if short
                continue
            for word in _WORD.findall(piece):
                if word.lower() not in STOPWORDS:
                    self.terms.extend(an.analyze(word))
        self.terms = self.terms[:MAX_TERMS]
        self.phrases = self.phrases[:MAX_TERMS]

    @property
    def stems(self) -> set[str]:
        return set(self.terms) | {s for p in self.phrases for s in p}

    def __bool__(self) -> bool:
        return bool(self.terms or self.phrases)


class KeywordIndex:
    kind = "tantivy"

    def __init__(self, path: Path | None, store, coll_id: int):
        self.path = path
        self.store = store
        self.coll_id = coll_id
        self.schema = _schema()
        self.analyzer = analyzer()
        self._lock = threading.Lock()
        self._dirty = False
        self._failed = False  # the last commit failed: redo from the op log (refresh)
        self._pending_seq = 0
        self.seq = 0
        self._index = self._open_index()
        self._writer = self._index.writer(heap_size=32_000_000, num_threads=1)  # indexing buffer; flushed when full
        self._searcher = self._index.searcher()

    def _open_index(self) -> tantivy.Index:
        if self.path is None:
            index = tantivy.Index(self.schema)
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            index = tantivy.Index(self.schema, path=str(self.path))
        index.register_tokenizer(_TOKENIZER, self.analyzer)
        return index

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, store, coll_id: int, root: Path | None) -> KeywordIndex:
        """Open the persisted index (replaying the op log after its sequence) or rebuild it."""
        path = None if root is None else root / str(coll_id)
        seq = _read_seq(path) if path is not None else None
        if seq is not None and seq > store.sequence():
            # Ahead of LMDB (the store was restored from an older backup): its chunk ids
            # may be reused for other text now, so it cannot be trusted.
            log.warning("keyword index of collection %d is at sequence %d, ahead of the store's %d; rebuilding",
                        coll_id, seq, store.sequence())
            seq = None
        if seq is not None:
            try:
                kw = cls(path, store, coll_id)
                kw.seq = seq
                replayed = kw.replay()
                log.info("keyword index of collection %d: opened at sequence %d, %d op-log entries replayed",
                         coll_id, seq, replayed)
                return kw
            except Exception:  # noqa: BLE001 - derived data: rebuild it
                log.exception("keyword index of collection %d unreadable; rebuilding from LMDB", coll_id)
        if path is not None and path.exists():
            shutil.rmtree(path)
        kw = cls(path, store, coll_id)
        kw.rebuild()
        return kw

    def rebuild(self) -> None:
        seq = self.store.sequence()
        n = 0
        with self._lock:
            self._writer.delete_all_documents()
            batch: list[tuple[str, list[int]]] = []
            for _doc_id, rec in self.store.iter_docs(self.coll_id):
                if rec.get("c"):
                    batch.append((rec.get("ti", "") or "", list(rec["c"])))
                if len(batch) >= 256:
                    n += self._add_batch(batch)
                    batch = []
            n += self._add_batch(batch)
            self._pending_seq = seq
            self._commit()
        log.info("keyword index of collection %d rebuilt from LMDB: %d chunks", self.coll_id, n)

    def _add_batch(self, batch: list[tuple[str, list[int]]]) -> int:
        ids = [cid for _, cids in batch for cid in cids]
        chunks = self.store.get_chunks(self.coll_id, ids)
        docs = self.store.get_docs(self.coll_id, {c.doc_id for c in chunks if c is not None})
        n = 0
        for chunk in chunks:
            if chunk is None:
                continue
            title = _title(docs.get(chunk.doc_id))
            self._writer.add_document(tantivy.Document(body=_body(title, chunk.text), cid=chunk.chunk_id))
            n += 1
        return n

    def replay(self) -> int:
        """Apply the op-log entries after self.seq for this collection (idempotent)."""
        with self._lock:
            return self._replay_locked()

    def _replay_locked(self) -> int:
        n = 0
        last = self.seq
        for seq, entry in self.store.iter_oplog(self.seq):
            last = seq
            if entry["c"] != self.coll_id:
                continue
            n += 1
            for cid in list(entry["r"]) + list(entry["a"]):
                self._writer.delete_documents_by_term("cid", int(cid))
            if entry["a"]:
                self._add_ids(entry["a"])
        if last != self.seq:
            self._pending_seq = last
            self._dirty = True
            self._commit()
        return n

    def _add_ids(self, ids) -> None:
        chunks = [c for c in self.store.get_chunks(self.coll_id, ids) if c is not None]
        docs = self.store.get_docs(self.coll_id, {c.doc_id for c in chunks})
        for chunk in chunks:
            self._writer.add_document(tantivy.Document(body=_body(_title(docs.get(chunk.doc_id)), chunk.text),
                                                       cid=chunk.chunk_id))

    # ------------------------------------------------------------ writes (engine write lock held)

    def apply(self, title: str, added_ids, removed_ids, texts: list[str] | None = None) -> int:
        """Stage a committed write; it is committed to tantivy before the next search reads.
        Returns the store's sequence (this write's, as the engine's write lock is held)."""
        with self._lock:
            if self._writer is None:  # closed (shutting down): the op log has the write
                return self.store.sequence()
            # Added ids are deleted first too: a collection created by this very write was
            # just rebuilt from LMDB, which already holds them (ids are never reused).
            for cid in [*removed_ids, *added_ids]:
                self._writer.delete_documents_by_term("cid", int(cid))
            if len(added_ids):
                if texts is None:
                    chunks = self.store.get_chunks(self.coll_id, added_ids)
                    texts = [c.text if c is not None else None for c in chunks]
                for cid, text in zip(added_ids, texts):
                    if text is not None:
                        self._writer.add_document(tantivy.Document(body=_body(title, text), cid=int(cid)))
            self._pending_seq = self.store.sequence()
            self._dirty = True
            return self._pending_seq

    def _commit(self) -> None:
        self._writer.commit()
        self._index.reload()
        self._searcher = self._index.searcher()
        self._dirty = False
        self.seq = self._pending_seq
        if self.path is not None:
            _write_seq(self.path, self.seq)

    def refresh(self) -> None:
        """Make staged writes visible (one tantivy commit for however many writes came since).

        A commit that fails (a full disk) never fails the search that asked for it:
        searches read the last committed state, and the next refresh redoes the
        staged writes from the op log (the way a restart would) once it can."""
        if self._dirty:
            with self._lock:
                if self._dirty and self._writer is not None:
                    try:
                        if self._failed:
                            self._writer.rollback()  # whatever the failed commit left staged
                            self._dirty = True
                            self._replay_locked()
                            log.info("keyword index of collection %d: committing again (sequence %d)",
                                     self.coll_id, self.seq)
                        else:
                            self._commit()
                        self._failed = False
                    except (OSError, ValueError) as exc:
                        if not self._failed:
                            log.warning("keyword index of collection %d: commit failed (%s); keyword searches "
                                        "read the last committed state until it succeeds", self.coll_id, exc)
                        self._failed = True

    def close(self, commit: bool = True) -> None:
        """Commit staged writes (commit=False drops them, as a crash would: replayed on
        the next open) and release the index's writer lock."""
        with self._lock:
            if self._writer is None:
                return
            if commit and self._dirty:
                self._commit()
            elif not commit:
                self._writer.rollback()
            self._writer.wait_merging_threads()  # consumes the writer, releasing its lock
            self._writer = None

    @property
    def num_docs(self) -> int:
        self.refresh()
        return int(self._searcher.num_docs)

    # ------------------------------------------------------------ search

    def terms(self, text: str) -> QueryTerms:
        return QueryTerms(text, self.analyzer)

    def _query(self, qt: QueryTerms):
        subs = [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, "body", t)) for t in qt.terms]
        for p in qt.phrases:
            # A phrase outweighs its loose words: an exact identifier is what the user typed.
            subs.append((tantivy.Occur.Should,
                         tantivy.Query.boost_query(tantivy.Query.phrase_query(self.schema, "body", p), 2.0)))
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

    def highlight(self, qt: QueryTerms, text: str, limit: int = 64) -> list[tuple[int, int]]:
        """Code-point spans of `text` whose words stem to a query term."""
        stems = qt.stems
        if not stems:
            return []
        spans: list[tuple[int, int]] = []
        for m in _WORD.finditer(text):
            st = self.analyzer.analyze(m.group())
            if st and any(s in stems for s in st):
                spans.append((m.start(), m.end()))
                if len(spans) >= limit:
                    break
        return spans


def _title(rec: dict | None) -> str:
    return (rec or {}).get("ti", "") or ""


def _body(title: str, text: str) -> str:
    return f"{title}\n{text}" if title else text


def _read_seq(path: Path) -> int | None:
    try:
        meta = (path / "ragd-seq").read_text().split()
        if int(meta[0]) != _FORMAT:
            return None
        return int(meta[1])
    except (OSError, ValueError, IndexError):
        return None


def _write_seq(path: Path, seq: int) -> None:
    tmp = path / "ragd-seq.tmp"
    with open(tmp, "w") as f:
        f.write(f"{_FORMAT} {seq}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / "ragd-seq")


# The engine binds each store it opens to the directory its keyword indexes live in;
# a store never bound (in-process tests) gets in-memory indexes rebuilt from LMDB.
_roots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def bind(store, root: Path | None) -> None:
    _roots[store] = root


def open_for(store, coll_id: int) -> KeywordIndex:
    return KeywordIndex.open(store, coll_id, _roots.get(store))
