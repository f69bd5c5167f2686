"""What a sentence-transformers model directory declares about its pipeline.

sentence-transformers keeps pooling, normalisation and the sequence limit in
small JSON files beside the transformer weights (modules.json,
1_Pooling/config.json, sentence_bert_config.json). ragd bakes pooling and
normalisation into the ONNX graph, so it must read them exactly as
sentence-transformers does, or vectors stop matching the model's published ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

POOLINGS = ("mean", "cls", "max")

# sentence-transformers' pooling flags, by the name ragd uses for them.
_POOLING_FLAGS = {
    "mean": "pooling_mode_mean_tokens",
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
}


@dataclass(frozen=True)
class ModelCard:
    pooling: str  # one of POOLINGS
    normalize: bool  # a Normalize module follows pooling (vectors are unit length)
    max_tokens: int | None  # sentence_bert_config.json max_seq_length, if declared


def read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"missing file: {path}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"unreadable JSON in {path}: {exc}") from exc


def read_card(directory: Path) -> ModelCard:
    """Read the declared pipeline; without sentence-transformers configs, use
    the defaults sentence-transformers itself applies to a bare transformer
    (mean pooling, no normalisation)."""
    pooling_dir = None
    normalize = False
    modules_path = directory / "modules.json"
    if modules_path.exists():
        for module in read_json(modules_path):
            kind = str(module.get("type", ""))
            if kind.endswith(".Pooling"):
                pooling_dir = directory / module.get("path", "")
            elif kind.endswith(".Normalize"):
                normalize = True
    elif (directory / "1_Pooling").is_dir():
        pooling_dir = directory / "1_Pooling"

    pooling = "mean"
    if pooling_dir is not None:
        pooling = _pooling_mode(pooling_dir / "config.json")

    max_tokens = None
    st_config = directory / "sentence_bert_config.json"
    if st_config.exists():
        max_tokens = read_json(st_config).get("max_seq_length")
    return ModelCard(pooling=pooling, normalize=normalize, max_tokens=max_tokens)


def _pooling_mode(config_path: Path) -> str:
    config = read_json(config_path)
    enabled = sorted(key for key, value in config.items() if key.startswith("pooling_mode_") and value)
    modes = [name for name, flag in _POOLING_FLAGS.items() if flag in enabled]
    # Concatenated poolings and the rarer modes (weighted mean, last token,
    # mean/sqrt(len)) would need their own graph code; refuse rather than
    # silently produce different vectors.
    if len(enabled) != 1 or len(modes) != 1:
        raise ModelError(
            f"{config_path}: unsupported pooling {enabled or 'none'}; "
            f"ragd supports exactly one of {', '.join(_POOLING_FLAGS.values())}"
        )
    return modes[0]
