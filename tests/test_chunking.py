"""Chars mode of ragd.engine.chunking: chunk for chunk LangChain's
RecursiveCharacterTextSplitter (differential tests on CISI and generated text),
plus the properties every split must have (hypothesis)."""

from __future__ import annotations

import dataclasses
import random
import sys
import threading

import cisi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_text_splitters import RecursiveCharacterTextSplitter

from ragd.engine.chunking import Chunk, Chunker

DEFAULT = ["\n\n", "\n", " ", ""]


def assert_like_langchain(text: str, size: int = 500, overlap: int = 50, separators: list[str] | None = None) -> None:
    """Same chunk texts as LangChain; offsets where the chunks lie, which are
    add_start_index's except where it finds an earlier copy of the chunk."""
    chunks = Chunker(chunk_size=size, chunk_overlap=overlap, separators=separators).chunk(text)
    splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, separators=separators,
                                              add_start_index=True)
    docs = splitter.create_documents([text])
    assert [c.text for c in chunks] == [d.page_content for d in docs]
    for c, d in zip(chunks, docs):
        assert text[c.start : c.end] == c.text
        found = d.metadata["start_index"]
        assert c.start == found or (found < c.start and text[found : found + len(c.text)] == c.text)


# ------------------------------------------------------------ differential


@pytest.mark.parametrize(("size", "overlap"), [(500, 50), (200, 20), (100, 0), (1000, 200), (50, 50), (7, 3)])
def test_cisi_documents_chunk_as_langchain_does(size, overlap):
    for doc in cisi.documents():
        assert_like_langchain(doc["text"], size, overlap)


def test_cisi_as_one_long_document():
    text = (cisi.cisi_dir() / "CISI.ALL").read_text(encoding="latin-1")
    assert_like_langchain(text)
    assert_like_langchain(text, 300, 0, ["\n.W\n", "\n", ""])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t  ",
        "\n\n" * 600,
        "a" + "\n" * 1001 + "b",
        "x" * 20_000,  # one long line, no separator: split by code point
        "".join(random.Random(3).choices("abcdefghij", k=30_000)),
        "word " * 3000 + "\n\n" + "y" * 1500,
        "  lead and trail  \n\n  spaces  ",
    ],
    ids=["empty", "blank", "newlines", "two-words-far-apart", "x-line", "letters-line", "words-then-blob", "padded"],
)
@pytest.mark.parametrize(("size", "overlap"), [(500, 50), (37, 36), (1, 0), (10, 10)])
def test_degenerate_texts(text, size, overlap):
    assert_like_langchain(text, size, overlap)


@pytest.mark.parametrize("length_from_size", [-2, -1, 0, 1])
@pytest.mark.parametrize("fill", ["ab cd\nef ", "x", " \n", "東😀 ", "  é\n\n"],
                         ids=["words", "one-char", "blank", "wide", "padded"])
@pytest.mark.parametrize(("size", "overlap"), [(500, 50), (12, 4), (3, 0)])
def test_texts_about_chunk_size_long(length_from_size, fill, size, overlap):
    # Texts shorter than chunk_size take the native short cut (one stripped
    # chunk, no separator search); at chunk_size and above, the recursion.
    text = (fill * (size // len(fill) + 2))[: size + length_from_size]
    assert_like_langchain(text, size, overlap)
    chunks = Chunker(chunk_size=size, chunk_overlap=overlap).chunk(text.encode())  # the UTF-8 path too
    peer = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap)
    assert [c.text for c in chunks] == peer.split_text(text)


MARKUP = """h1. Installation guide

{{toc}}

h2. Requirements

* Ruby 3.1 or later, see [[RubyVersions|supported versions]]
* A database: _MySQL_, *PostgreSQL* or @SQLite@
** nested item with a link: https://www.redmine.org/projects/redmine/wiki/RedmineInstall#Step-1

|_. Component |_. Version |
| Rails | 7.1 |
| Puma | 6.4 |

<pre><code class="ruby">
Rails.application.configure do
  config.action_mailer.delivery_method = :smtp
end
</code></pre>

## Markdown section

1. First, run `bundle install --without development test`
2. Then `RAILS_ENV=production bundle exec rake db:migrate`

> Quoted note from #1234: the migration takes a while on large `journals` tables.
"""

UNICODE = (
    "東京都の図書館では、情報検索の研究が進んでいる。大規模な目録を扱うためである。\n\n"
    "Größe, naïve café, Ελληνικά κείμενα και русский текст.\u2028Línea\u00a0dura\u3000全角スペース\n"
    "emoji 😀👍🏽🇯🇵 and combining e\u0301 marks, RTL مرحبا بالعالم עברית\u0085NEL\u2029PS\n"
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 mathematical letters beyond the BMP " * 3
)


@pytest.mark.parametrize("text", [MARKUP, UNICODE, MARKUP * 40, UNICODE * 40],
                         ids=["markup", "unicode", "markup-long", "unicode-long"])
@pytest.mark.parametrize(
    "separators",
    [None, ["\n\n", "\n", "。", " ", ""], ["\nh2. ", "\n", " "], ["|", "*", ""], ["\u3000", "\u2028", ""]],
    ids=["default", "cjk-period", "no-empty", "markup-chars", "unicode-spaces"],
)
@pytest.mark.parametrize(("size", "overlap"), [(500, 50), (60, 20), (13, 0)])
def test_markup_and_unicode(text, separators, size, overlap):
    assert_like_langchain(text, size, overlap, separators)


FRAGMENTS = ["a", "bc", "word", "Größe", "東京", "😀", "e\u0301", " ", "  ", "\t", "\n", "\n\n", "\n\n\n",
             "\u3000", "\u00a0", "\u2028", "\u0085", ". ", "。", "--", "* ", "|", "http://x.y/z?q=1", "```"]
texts = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=120).map("".join)
separator_lists = st.sampled_from([DEFAULT, ["\n\n", "\n", " "], ["--", ""], ["。", ". ", ""], [" ", "\n"]]) | st.lists(
    st.sampled_from(["\n\n", "\n", " ", "", "--", "。", "a", "\u3000", "ab"]), min_size=1, max_size=5)


@st.composite
def settings_(draw):
    size = draw(st.integers(1, 60))
    return size, draw(st.integers(0, size)), draw(separator_lists)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, setting=settings_())
def test_generated_texts_chunk_as_langchain_does(text, setting):
    size, overlap, separators = setting
    assert_like_langchain(text, size, overlap, separators)


# ------------------------------------------------------------ CPython's string kinds

# A str is stored in the narrowest of three layouts (PEP 393) and the splitter
# reads each in place: 1 byte per code point (ASCII, latin-1), 2 (the BMP), 4.
KIND_TEXTS = {
    "ascii": (MARKUP * 3, 0x7F),
    "latin1": ("Café crème brûlée\xa0à la carte, naïve façade;\x85NEL\nGrüße aus Köln. ¿Qué? ¡Sí! " * 40
               + "\n\n" + "ÿ" * 700, 0xFF),
    "bmp": ("東京都の図書館では、情報検索の研究が進んでいる。\u3000全角\u2028改行 Ελληνικά русский\n" * 30
            + "\n\n" + "語" * 900, 0xFFFF),
    "astral": (UNICODE * 8 + "😀" * 600 + " plain ascii tail " * 20, 0x10FFFF),
}

# Separators some kinds cannot hold. Cut to a narrower unit they would turn
# into others: U+0120 and U+10020 end in 0x20 (a space), U+010A in "\n".
FOREIGN_SEPARATORS = [
    ["\u0120", "\U00010020", ""],
    ["\u010a\u010a", "é", "\u3000", "😀", " ", ""],
    ["😀", "\U0001F600\n", "\n\n", "\n", "。", " ", ""],
    ["\u00ff\u00ff", "\uffff", "ÿ", ""],
    ["\u0120", "\u3020"],  # no "": pieces too long pass through whole
]


@pytest.mark.parametrize("kind", list(KIND_TEXTS))
@pytest.mark.parametrize("separators", [None, *FOREIGN_SEPARATORS], ids=["default", *map(repr, FOREIGN_SEPARATORS)])
@pytest.mark.parametrize(("size", "overlap"), [(500, 50), (40, 10), (3, 1)])
def test_every_string_kind_chunks_as_langchain_does(kind, separators, size, overlap):
    text, widest = KIND_TEXTS[kind]
    assert max(map(ord, text)) <= widest and (widest == 0x7F or max(map(ord, text)) > widest >> 8)
    assert_like_langchain(text, size, overlap, separators)
    chunker = Chunker(chunk_size=size, chunk_overlap=overlap, separators=separators)
    chunks = chunker.chunk(text)
    # The UTF-8 path (bytes) and the batch path agree with the in-place one.
    assert chunker.chunk(text.encode()) == chunks
    batch = chunker.chunk_many([text, text.encode(), text])
    assert batch.chunks(0) == batch.chunks(1) == batch.chunks(2) == chunks


def test_separators_outside_a_texts_kind_never_match():
    # Truncated to a byte, U+0120 would be " "; truncated to 16 bits U+10020
    # would too. Neither occurs, so the texts split by code point alone.
    for text in ["a b c d e f", "é b c d e f", "東 b c d e f", "😀 b c d e f"]:
        foreign = Chunker(chunk_size=3, chunk_overlap=0, separators=["\u0120", "\U00010020", ""]).chunk(text)
        assert foreign == Chunker(chunk_size=3, chunk_overlap=0, separators=[""]).chunk(text)
        assert [c.text for c in foreign] == [text[:3], "c", "d e", "f"]
        assert_like_langchain(text, 3, 0, ["\u0120", "\U00010020", ""])


def test_chunk_texts_are_ordinary_strs_of_the_narrowest_kind():
    # An ASCII chunk cut from a 4-byte str must still compare (and hash) equal
    # to the same ASCII text: CPython compares strs of different kinds unequal.
    text = "😀" * 15 + "\n\n" + "plain words only" + "\n\n" + "東京" * 8
    chunker = Chunker(chunk_size=20, chunk_overlap=0)
    for texts in ([c.text for c in chunker.chunk(text)], chunker.chunk_many([text]).texts):
        assert texts == ["😀" * 15, "plain words only", "東京" * 8]
        assert {"plain words only": 1}[texts[1]] == 1 and texts[1].isascii()


@pytest.mark.parametrize("text", ["broken \ud800 text", "東京 \udfff", "😀 \udbff\udc00 pair"])
def test_lone_surrogates_in_wide_strs_are_value_errors(text):
    with pytest.raises(ValueError, match="surrogates not allowed"):
        Chunker().chunk(text)
    with pytest.raises(ValueError, match=r"texts\[1\]: .*surrogates not allowed"):
        Chunker().chunk_many(["ok", text, "fine"])


# ------------------------------------------------------------ properties


@settings(max_examples=1500, deadline=None)
@given(text=texts, setting=settings_())
def test_chunks_fit_reconstruct_overlap_and_cover(text, setting):
    size, overlap, separators = setting
    chunks = Chunker(chunk_size=size, chunk_overlap=overlap, separators=separators).chunk(text)
    covered = 0
    for prev, c in zip([None, *chunks], chunks):
        assert text[c.start : c.end] == c.text and c.text
        if "" in separators:  # the last resort that bounds the size
            assert len(c.text) <= size
        if prev is not None:
            # Never backwards (a large overlap can repeat a chunk once stripped).
            assert c.start >= prev.start and c.end >= prev.end
            assert max(0, prev.end - c.start) <= overlap
        assert text[covered : c.start].strip() == ""  # nothing but whitespace left out
        covered = max(covered, c.end)
    assert text[covered:].strip() == ""


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="abcxyz東😀", min_size=1, max_size=400), size=st.integers(1, 50), data=st.data())
def test_text_without_separators_overlaps_exactly(text, size, data):
    # Split by code point, consecutive chunks share all that the overlap
    # allows while leaving room for one new code point.
    overlap = data.draw(st.integers(0, size))
    chunks = Chunker(chunk_size=size, chunk_overlap=overlap).chunk(text)
    assert all(len(c.text) == size for c in chunks[:-1])
    for prev, c in zip(chunks, chunks[1:]):
        assert prev.end - c.start == min(overlap, size - 1)


# ------------------------------------------------------------ interface


def test_bytes_give_the_same_chunks_as_str():
    chunker = Chunker(chunk_size=40, chunk_overlap=10)
    assert chunker.chunk(UNICODE.encode()) == chunker.chunk(UNICODE)


def test_invalid_utf8_names_the_byte():
    with pytest.raises(ValueError, match="invalid UTF-8 at byte 8"):
        Chunker().chunk("Größe ".encode() + b"\xff rest")  # G r ö ß e: 8 bytes


def test_lone_surrogate_is_a_value_error():
    with pytest.raises(ValueError, match="surrogates not allowed"):
        Chunker().chunk("broken \ud800 text")


def test_other_types_are_refused():
    with pytest.raises(TypeError):
        Chunker().chunk(["not", "text"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(chunk_size=0), "chunk_size must be > 0"),
        (dict(chunk_overlap=-1), "chunk_overlap must be >= 0"),
        (dict(chunk_size=10, chunk_overlap=11), "must not exceed chunk_size"),
        (dict(separators=[]), "separators must not be empty"),
        (dict(mode="words"), "mode must be"),
        (dict(mode="tokens"), "needs a tokenizer"),
        (dict(max_tokens=256), "go together"),
    ],
)
def test_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Chunker(**kwargs)


def test_defaults_mirror_langchain():
    chunker = Chunker()
    assert (chunker.mode, chunker.chunk_size, chunker.chunk_overlap) == ("chars", 500, 50)
    assert list(chunker.separators) == RecursiveCharacterTextSplitter()._separators  # noqa: SLF001


def test_chunks_are_the_frozen_dataclass():
    # The native splitter builds Chunk without calling __init__: it must stay
    # three plain fields, and what it builds must equal what __init__ builds.
    assert [f.name for f in dataclasses.fields(Chunk)] == ["start", "end", "text"]
    assert not hasattr(Chunk, "__post_init__")
    chunk = Chunker(chunk_size=8, chunk_overlap=0).chunk("hello world")[1]
    assert type(chunk) is Chunk
    assert chunk == Chunk(6, 11, "world") and hash(chunk) == hash(Chunk(6, 11, "world"))
    assert repr(chunk) == "Chunk(start=6, end=11, text='world')"
    with pytest.raises(dataclasses.FrozenInstanceError):
        chunk.start = 0


def test_chunking_releases_the_gil():
    # Ordering, not timing (a loaded machine makes every wall-clock bound
    # flaky): with a switch interval far longer than the test, a thread
    # holding the GIL keeps it until it blocks or releases it. The main thread
    # waits on `started` (GIL released) and can only run again while the
    # worker is still chunking if the chunker gives the GIL up; if it held
    # the GIL throughout, the main thread would wake after `finished` is set.
    # A loaded machine may still not schedule the main thread inside the
    # chunking window (about 0.3 s here), so: several attempts. A chunker that
    # holds the GIL never passes one, so retrying cannot hide that defect.
    chunker = Chunker(chunk_size=100_000, chunk_overlap=0)
    text = "ab " * 5_000_000
    attempts = 5
    for _ in range(attempts):
        started, finished = threading.Event(), threading.Event()

        def work(started=started, finished=finished):
            started.set()
            chunker.chunk(text)
            finished.set()

        worker = threading.Thread(target=work)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)
        try:
            worker.start()
            started.wait()
            ran_while_chunking = not finished.is_set()
        finally:
            sys.setswitchinterval(interval)
            worker.join()
        if ran_while_chunking:
            return
    pytest.fail(f"the main thread never ran while the worker was chunking ({attempts} attempts)")
