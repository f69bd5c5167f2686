"""The messages sent to the model.

The answer prompt holds the question and the numbered passages, and nothing
else from the index: the passages are the hits of a search under the caller's
own filter, so a document the caller may not see cannot reach the model. The
system message asks for an answer from the passages only, with [n] citations,
and for NOT_SUPPORTED when the passages do not answer; the post-check
(ragd.answer.citations) verifies the result instead of trusting it.

The HyDE draft prompt holds the question only.
"""
from __future__ import annotations

import re
from dataclasses import replace

from ragd.domain import Hit

# What the model is told to say, and what ragd says itself when no permitted
# passage matched. ragd.answer.citations recognises it (and close variants).
NOT_SUPPORTED = "The passages do not support an answer."

# Language codes of Redmine's locales that a small model may not know by code.
_LANGUAGES = {
    "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish",
    "fr": "French", "he": "Hebrew", "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian", "it": "Italian",
    "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "nl": "Dutch", "no": "Norwegian",
    "pl": "Polish", "pt": "Portuguese", "pt-br": "Brazilian Portuguese", "ro": "Romanian", "ru": "Russian",
    "sk": "Slovak", "sl": "Slovenian", "sr": "Serbian", "sv": "Swedish", "th": "Thai", "tr": "Turkish",
    "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese", "zh-tw": "Traditional Chinese",
}
# A language name or code in any script ("de", "pt-BR", "日本語"): letters, spaces, '-' and '_' only,
# so the value cannot carry instructions into the system message.
LANGUAGE_RE = re.compile(r"[^\W\d_][^\W\d]*(?:[ -][^\W\d]+)*")  # use with fullmatch

SYSTEM = (
    "You answer questions about a project's issues, notes, wiki pages and other documents. "
    "Use only the numbered passages given with the question, never other knowledge.\n"
    "Rules:\n"
    "1. Every statement must come from the passages. After each statement, cite the passages it comes "
    "from by number in square brackets, like [1] or [2][3].\n"
    f"2. If the passages do not answer the question, reply exactly: {NOT_SUPPORTED}\n"
    "3. Be concise. {language}"
)

HYDE_SYSTEM = (
    "Write a short passage, as it could appear in a project's issue tracker or wiki, that answers the "
    "question. Write only the passage, in the language of the question."
)


def language_instruction(language: str) -> str:
    if not language:
        return "Write in the language of the question."
    name = _LANGUAGES.get(language.lower().replace("_", "-"), language)
    return f"Write in {name}."


def passage_block(number: int, hit: Hit) -> str:
    title = " ".join(hit.document.title.split())
    head = f"[{number}] {title}" if title else f"[{number}]"
    return f"{head}\n{hit.text.strip()}"


def fit(hits: list[Hit], max_chars: int) -> list[Hit]:
    """The best-ranked hits whose text fits in `max_chars`, in rank order (the first
    one always, cut to the budget if it alone exceeds it)."""
    out: list[Hit] = []
    used = 0
    for hit in hits:
        size = len(hit.text) + len(hit.document.title)
        if out and used + size > max_chars:
            break
        if not out and size > max_chars:
            hit = replace(hit, text=hit.text[: max(max_chars - len(hit.document.title), 1)])
            size = max_chars
        out.append(hit)
        used += size
    return out


def answer_messages(question: str, passages: list[Hit], language: str = "") -> list[dict]:
    blocks = "\n\n".join(passage_block(i, h) for i, h in enumerate(passages, 1))
    user = f"Passages:\n\n{blocks}\n\nQuestion: {question.strip()}"
    return [{"role": "system", "content": SYSTEM.format(language=language_instruction(language))},
            {"role": "user", "content": user}]


def hyde_messages(question: str) -> list[dict]:
    return [{"role": "system", "content": HYDE_SYSTEM}, {"role": "user", "content": question.strip()}]
