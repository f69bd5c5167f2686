"""Document chunking for ingestion, done by the compiled core (ragd/native/splitter.cpp).

One algorithm, LangChain's RecursiveCharacterTextSplitter (recursive separators,
keep_separator=True, strip_whitespace=True), measured in one of two units:

* ``mode="chars"``: chunk_size and chunk_overlap count characters (code points).
  The chunks are exactly those of LangChain's splitter with the same separators,
  size and overlap (differential tests in tests/test_chunking.py). Given the
  embedding model's tokenizer, a *token guard* then re-splits, by tokens, the
  rare chunk that the model would truncate (dense text: CJK, code, base64).
* ``mode="tokens"``: chunk_size and chunk_overlap count the model's tokens, read
  from one tokenization of the whole document. A piece costs every token that
  overlaps it and the last-resort split falls between words (between tokens
  only inside a word longer than chunk_size), so no chunk exceeds the budget,
  and a chunk tokenized alone, as the embedder does, gets the tokens counted.

In both cases ``embed_prefix`` (ragd embeds ``title + "\\n" + chunk``) is
counted against the model's limit.

Default for the daemon: chars mode, 500/50, with the token guard, that is
``Chunker(tokenizer=<the embedder's>, max_tokens=256)``; ``Chunker()`` alone
is LangChain's splitter exactly. Retrieval quality does not tell the units
apart. Measured with
all-MiniLM-L6-v2 (``python benchmarks/chunking.py quality``; results in
benchmarks/results/chunking_quality.json): nDCG@10 over the 76 judged CISI
queries, documents ranked by their best chunk, and paired bootstrap 95%
intervals of the difference to chars 500/50:

    configuration       abstracts (1460)          long documents (78, passages ranked)
    chars 500/50        0.424                     0.404
    chars 650/65        0.426 [-0.019, +0.020]    0.409 [-0.019, +0.029]
    tokens 110/11       0.431 [-0.012, +0.025]    0.415 [-0.016, +0.040]
    tokens 128/13       0.424 [-0.020, +0.019]    0.411 [-0.020, +0.032]
    tokens 254/25       0.421 [-0.027, +0.019]    0.352 [-0.082, -0.022]

Token chunks of about the size of 500 characters score within noise of chars
mode; the only significant effect is size: filling the model's 256 tokens
dilutes chunks and costs 13% on long documents (so token mode should be
sized well below its maximum). Chars mode keeps LangChain's exact chunks and
runs without the GIL at about a GB/s, where token mode is bound by the
tokenizer (about 2 MB/s, holding the GIL); the guard brings it token mode's
one real advantage, that the model truncates no chunk. On English prose the
guard never fires (500 characters are about 110 tokens); it does on CJK,
code, base64 and URLs.

Token-exactness: a chunk that starts inside a word tokenizes differently on
its own (a WordPiece "##" piece becomes a word start), so token mode cuts
between words, and inside a word only when the word alone exceeds
chunk_size. A WordPiece word has at most 100 tokens (a longer one is a single
[UNK]), so from chunk_size 100 up the model sees exactly the tokens counted;
below that, a chunk starting inside a cut word may get a token more.

Many documents at once: ``Chunker.chunk_many`` returns the same chunks as a
``chunk`` call per document, as one flat ``ChunkBatch`` (chunk texts plus int64
offset arrays): one native call that releases the GIL once per 256 KiB of text
(splitting, then building that block's chunk texts while it is still in cache),
and no Python object per chunk but its text. For CISI-sized documents (~800
bytes) this cuts the cost per document by a third to a half (benchmarks/chunking.py,
"ragd" against "ragd (per document)").
Ingestion should chunk a request's documents with it.

A str is read in place, in CPython's own layout (one array element of 1, 2 or
4 bytes per code point, PEP 393), never encoded: sizes and offsets are index
differences. Bytes go through UTF-8 validation and decoding instead. A str
holding a lone surrogate has no UTF-8 and is refused as encoding refuses it
(ValueError, "surrogates not allowed").

Offsets are code-point indices into the text as given (ragd passes normalised
document text), so ``chunk.text == text[chunk.start:chunk.end]`` always. They
are where each chunk really lies; LangChain's ``add_start_index`` searches with
``str.find`` and reports the same offsets except where a chunk's text also
occurs a little earlier (repeated boilerplate), where it reports that copy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ragd import _native

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DEFAULT_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", " ", "")
DEFAULT_CHUNK_SIZE = 500
DEFAULT_CHUNK_OVERLAP = 50


# The native splitter builds instances without calling __init__ (as the
# generated __init__ of a frozen dataclass does: object.__setattr__ per
# field), so keep exactly these three fields and no __post_init__.
@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk of a document: ``text == document_text[start:end]`` (code points)."""

    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class ChunkBatch:
    """The chunks of several documents, flat: document ``i``'s chunks are
    ``texts[bounds[i]:bounds[i + 1]]``, lying at ``starts``/``ends`` (code
    points into that document). One str per chunk and three int64 arrays, so
    a batch of small documents costs no Python object per chunk beyond its text.
    """

    texts: list[str]
    starts: np.ndarray
    ends: np.ndarray
    bounds: np.ndarray

    def __len__(self) -> int:
        """Number of documents."""
        return len(self.bounds) - 1

    def count(self, i: int) -> int:
        """Number of chunks of document i."""
        return int(self.bounds[i + 1] - self.bounds[i])

    def texts_of(self, i: int) -> list[str]:
        return self.texts[self.bounds[i] : self.bounds[i + 1]]

    def spans(self, i: int) -> list[tuple[int, int]]:
        """(start, end) of each chunk of document i."""
        a, b = self.bounds[i], self.bounds[i + 1]
        return list(zip(self.starts[a:b].tolist(), self.ends[a:b].tolist()))

    def chunks(self, i: int) -> list[Chunk]:
        a, b = int(self.bounds[i]), int(self.bounds[i + 1])
        return [Chunk(s, e, t) for s, e, t in zip(self.starts[a:b].tolist(), self.ends[a:b].tolist(), self.texts[a:b])]

    @classmethod
    def from_lists(cls, per_document: Sequence[Sequence[Chunk]]) -> ChunkBatch:
        flat = [c for chunks in per_document for c in chunks]
        bounds = np.zeros(len(per_document) + 1, dtype=np.int64)
        np.cumsum([len(chunks) for chunks in per_document], out=bounds[1:])
        return cls([c.text for c in flat], np.fromiter((c.start for c in flat), np.int64, len(flat)),
                   np.fromiter((c.end for c in flat), np.int64, len(flat)), bounds)


class TextError(ValueError):
    """A document of a chunk_many batch that cannot be chunked: which one
    (`index`) and why (`reason`); its message is "texts[index]: reason"."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"texts[{index}]: {reason}")
        self.index, self.reason = index, reason


# The native batch call names the document in its message; parsed here, once.
_NATIVE_TEXT_ERROR = re.compile(r"texts\[(\d+)\]: (.*)", re.DOTALL)


class Chunker:
    """Splits document text into chunks with offsets; immutable and thread-safe.

    Chunking releases the GIL, so ingestion threads chunk in parallel, except
    while tokenizing the document in token mode (``tokenizers`` holds it).

    Args:
        mode: "chars" sizes chunks in characters, "tokens" in the tokenizer's tokens.
        chunk_size: Largest chunk; default 500 characters, or in token mode
            ``max_tokens`` less the special tokens the model adds.
        chunk_overlap: Most text consecutive chunks share; default 50
            characters, or a tenth of chunk_size in token mode.
        separators: Tried in order, as LangChain does; default
            ``["\\n\\n", "\\n", " ", ""]``. With a tokenizer they must include "",
            the last resort that guarantees the size.
        tokenizer: The embedding model's ``tokenizers.Tokenizer``: required in
            token mode, and turns on the token guard in chars mode. It is
            copied; the copy neither truncates nor pads.
        max_tokens: The model's input limit, special tokens included (256 for
            all-MiniLM-L6-v2); required with a tokenizer.
    """

    def __init__(
        self,
        mode: Literal["chars", "tokens"] = "chars",
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        separators: Sequence[str] | None = None,
        tokenizer: Tokenizer | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if mode not in ("chars", "tokens"):
            raise ValueError(f"mode must be 'chars' or 'tokens', got {mode!r}")
        if (tokenizer is None) != (max_tokens is None):
            raise ValueError("tokenizer and max_tokens go together")
        if mode == "tokens" and tokenizer is None:
            raise ValueError("mode='tokens' needs a tokenizer and max_tokens")
        self.mode = mode
        self.separators = tuple(DEFAULT_SEPARATORS if separators is None else separators)
        self._tokenizer = None if tokenizer is None else _counting_copy(tokenizer)
        if self._tokenizer is not None and max_tokens is not None:
            if "" not in self.separators:
                raise ValueError("sizing by tokens needs '' among the separators to guarantee the size")
            self._budget = max_tokens - self._tokenizer.num_special_tokens_to_add(False)
            if self._budget <= 0:
                raise ValueError(f"max_tokens {max_tokens} leaves no room beside the special tokens")
        if mode == "chars":
            self.chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
            self.chunk_overlap = DEFAULT_CHUNK_OVERLAP if chunk_overlap is None else chunk_overlap
        else:
            self.chunk_size = self._budget if chunk_size is None else chunk_size
            if self.chunk_size > self._budget:
                raise ValueError(
                    f"chunk_size {self.chunk_size} exceeds max_tokens {max_tokens} less the special tokens"
                )
            self.chunk_overlap = self.chunk_size // 10 if chunk_overlap is None else chunk_overlap
        # Validates sizes as LangChain does (ValueError).
        self._splitter = _native.Splitter(list(self.separators), self.chunk_size, self.chunk_overlap, Chunk)

    def chunk(self, text: str | bytes, embed_prefix: str = "") -> list[Chunk]:
        """Chunks in document order.

        Args:
            text: Document text; bytes must be UTF-8 and offsets are then code
                points of the decoded text. Invalid UTF-8 raises ValueError
                naming the byte offset.
            embed_prefix: Text the embedder puts before every chunk (ragd: the
                title and a newline); with a tokenizer, its tokens are taken
                from each chunk's budget.
        """
        if self._tokenizer is None:
            return self._splitter.split_chars(text)
        budget = self._budget - (self._count_tokens(embed_prefix) if embed_prefix else 0)
        if budget <= 0:
            raise ValueError(f"embed_prefix {embed_prefix[:40]!r} leaves no room for text within max_tokens")
        if self.mode == "chars":
            return self._guard(self._splitter.split_chars(text), budget)
        if isinstance(text, bytes):
            text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError naming the byte
        if budget >= self.chunk_size:
            return self._split_tokens(self._splitter, text)
        return self._split_tokens(self._token_splitter(budget, self.chunk_overlap), text)

    def chunk_many(self, texts: Sequence[str | bytes], embed_prefixes: Sequence[str] | None = None) -> ChunkBatch:
        """The chunks of many documents, exactly ``[self.chunk(t, p) for t, p in
        zip(texts, embed_prefixes)]``, in one flat ChunkBatch.

        In chars mode the documents are split in one native call that
        releases the GIL once per 256 KiB of text, and the token guard, if any, tokenizes every chunk of
        the batch in one ``encode_batch``: for many small documents (issues,
        journals) this is several times faster than a call per document.

        Args:
            texts: Document texts (str, or UTF-8 bytes). Invalid UTF-8 (or a
                str with lone surrogates) raises TextError (a ValueError)
                naming the document, ``texts[i]``, and the byte offset.
            embed_prefixes: Per document, what ``chunk``'s embed_prefix is;
                None for no prefix.
        """
        if embed_prefixes is not None and len(embed_prefixes) != len(texts):
            raise ValueError(f"{len(embed_prefixes)} embed_prefixes for {len(texts)} texts")
        if self._tokenizer is not None and self.mode == "tokens":
            # Bound by the tokenizer (GIL held) anyway: one document at a time.
            prefixes = embed_prefixes or [""] * len(texts)
            per_doc = []
            for i, (text, prefix) in enumerate(zip(texts, prefixes)):
                try:
                    per_doc.append(self.chunk(text, embed_prefix=prefix))
                except ValueError as exc:
                    raise TextError(i, str(exc)) from None
            return ChunkBatch.from_lists(per_doc)
        try:
            batch = ChunkBatch(*self._splitter.split_chars_many(texts))
        except ValueError as exc:
            if m := _NATIVE_TEXT_ERROR.fullmatch(str(exc)):
                raise TextError(int(m[1]), m[2]) from None
            raise
        if self._tokenizer is None:
            return batch
        return self._guard_batch(batch, embed_prefixes)

    def _guard_batch(self, batch: ChunkBatch, embed_prefixes: Sequence[str] | None) -> ChunkBatch:
        """The token guard over a whole batch: one encode_batch for every chunk."""
        n = len(batch)
        budgets = np.full(n, self._budget, dtype=np.int64)
        if embed_prefixes is not None:
            distinct = sorted({p for p in embed_prefixes if p})
            if distinct:
                counts = dict(zip(distinct, (len(e.ids) for e in self._tok.encode_batch(
                    distinct, add_special_tokens=False))))
                budgets -= np.fromiter((counts.get(p, 0) for p in embed_prefixes), np.int64, n)
            if n and budgets.min() <= 0:
                i = int(np.argmin(budgets))
                raise ValueError(f"texts[{i}]: embed_prefix {embed_prefixes[i][:40]!r} leaves no room for text "
                                 f"within max_tokens")
        encodings = self._tok.encode_batch(batch.texts, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
        chunk_budgets = np.repeat(budgets, np.diff(batch.bounds))
        if not np.any(lengths > chunk_budgets):
            return batch
        per_doc = []
        for i in range(n):
            chunks = batch.chunks(i)
            a, b = batch.bounds[i], batch.bounds[i + 1]
            if np.any(lengths[a:b] > budgets[i]):
                chunks = self._guard(chunks, int(budgets[i]), lengths[a:b].tolist())
            per_doc.append(chunks)
        return ChunkBatch.from_lists(per_doc)

    @property
    def _tok(self) -> Tokenizer:
        """The tokenizer of the token guard / tokens mode (those paths run only with one)."""
        if self._tokenizer is None:
            raise RuntimeError("this chunker sizes by characters only (no tokenizer)")
        return self._tokenizer

    def _count_tokens(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def _guard(self, chunks: list[Chunk], budget: int, lengths: Sequence[int] | None = None) -> list[Chunk]:
        """Re-splits by tokens the chunks over budget; `lengths`: their token
        counts when known."""
        if lengths is None:
            # One batch call: tokenizers runs it in parallel without the GIL.
            encodings = self._tok.encode_batch([c.text for c in chunks], add_special_tokens=False)
            lengths = [len(e.ids) for e in encodings]
        too_long = [n > budget for n in lengths]
        if not any(too_long):
            return chunks
        splitter = self._token_splitter(budget, budget // 10)
        out: list[Chunk] = []
        for c, resplit in zip(chunks, too_long):
            if not resplit:
                out.append(c)
                continue
            for part in self._split_tokens(splitter, c.text):
                out.append(Chunk(c.start + part.start, c.start + part.end, part.text))
        return out

    def _token_splitter(self, size: int, overlap: int) -> _native.Splitter:
        return _native.Splitter(list(self.separators), size, min(overlap, size), Chunk)

    def _split_tokens(self, splitter: _native.Splitter, text: str) -> list[Chunk]:
        encoding = self._tok.encode(text, add_special_tokens=False)
        return splitter.split_tokens(text, encoding.offsets, encoding.word_ids)


def _counting_copy(tokenizer: Tokenizer) -> Tokenizer:
    """A copy that reports every token: the model's tokenizer.json truncates
    (to 128 for all-MiniLM-L6-v2) and pads."""
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy
