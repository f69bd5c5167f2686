"""Build the Japanese evaluation set (tests/data/redmine_ja/messages.jsonl) from Redmine's
own messages in English and Japanese: config/locales/en.yml and ja.yml of a Redmine tree
(Debian's `redmine` package by default, Redmine 5.0.4).

Every key whose English message has at least 4 words and whose Japanese message is unique
and at least 6 characters long gives one document (the Japanese message) and three queries,
each with that document as its one relevant answer:
  en        the English message (cross-lingual retrieval: only a vector can find it);
  ja_part   the first two thirds of the Japanese message, cut by characters (a user who
            remembers how an error message began; the cut often falls inside a word);
  ja_words  the message's two longest nouns, space-separated, in their order in the message
            (a user typing keywords; nouns of two characters or more, not the
            all-hiragana formal nouns こと, ため, もの). The nouns come from fugashi + unidic-lite (MeCab with
            UniDic), a different analyser and dictionary from the ones ragd's keyword index is
            compared with (bigrams, Sudachi), so that the queries favour neither.

    pip install pyyaml fugashi unidic-lite
    python benchmarks/make_japanese_set.py [--locales /usr/share/redmine/config/locales]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "redmine_ja" / "messages.jsonl"


def _flat(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        elif isinstance(v, str):
            yield f"{prefix}{k}", v


def build(locales: Path) -> list[dict]:
    import fugashi
    import yaml
    en = dict(_flat(yaml.safe_load((locales / "en.yml").read_text())["en"]))
    ja = dict(_flat(yaml.safe_load((locales / "ja.yml").read_text())["ja"]))
    counts: dict[str, int] = {}
    for v in ja.values():
        counts[v] = counts.get(v, 0) + 1
    tagger = fugashi.Tagger()
    rows = []
    for key in sorted(en.keys() & ja.keys()):
        e, j = en[key].strip(), ja[key].strip()
        if len(e.split()) < 4 or counts[ja[key]] != 1 or len(j) < 6:
            continue
        nouns = [(i, w.surface) for i, w in enumerate(tagger(j))
                 if w.feature.pos1 == "名詞" and len(w.surface) >= 2 and not w.surface.isascii()
                 and not all("\u3040" <= c <= "\u309f" for c in w.surface)]  # not こと, ため, もの
        longest = sorted(sorted(nouns, key=lambda n: -len(n[1]))[:2])
        rows.append({"id": key, "en": e, "ja": j, "ja_part": j[: max(2, len(j) * 2 // 3)],
                     "ja_words": " ".join(w for _, w in longest)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--locales", type=Path, default=Path("/usr/share/redmine/config/locales"))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows = build(args.locales)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} messages -> {args.out} ({sum(1 for r in rows if r['ja_words'])} with keyword queries)")


if __name__ == "__main__":
    main()
