"""The layout of a provisioned model directory and its manifest.

    <models_dir>/<name>/
        model.onnx        fp32 graph, pooling included (the CPU variant)
        model.fp16.onnx   optional half-precision graph for the CUDA provider
        model.int8.onnx   optional int8 graph for the CPU (ragd/embed/quantize.py)
        tokenizer.json    truncation at max_tokens, padding to the longest
        manifest.json     what the model is, where it came from, sha256 of every file

Kept apart from provisioning so that loading a model (the embedder) needs no
export machinery, and verifying one needs nothing but hashlib.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import ModelError

MODEL_FILE = "model.onnx"
FP16_FILE = "model.fp16.onnx"
INT8_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
FORMAT = 1  # bump when the layout changes incompatibly

# The graph's interface: int64 [batch, sequence] inputs (token_type_ids is
# optional; a graph declares what it takes) and one float32 [batch, dim] output.
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "sentence_embedding"

_REQUIRED_KEYS = ("format", "name", "dimension", "max_tokens", "pooling", "normalize", "files", "variants")


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (after an os.replace into it: the rename is then durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(model_dir: Path) -> dict:
    path = Path(model_dir) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"missing file: {path} (is {model_dir} a provisioned model directory?)") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"unreadable manifest {path}: {exc}") from exc
    missing = [k for k in _REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ModelError(f"{path}: missing keys {missing}")
    if manifest["format"] != FORMAT:
        raise ModelError(f"{path}: manifest format {manifest['format']} is not {FORMAT}; re-provision the model")
    return manifest


def verify_model(model_dir: Path) -> list[str]:
    """Problems with a provisioned model directory; empty means it is intact.

    Recomputes the sha256 of every file the manifest lists."""
    model_dir = Path(model_dir)
    try:
        manifest = read_manifest(model_dir)
    except ModelError as exc:
        return [str(exc)]
    problems = []
    # A string-input graph tokenizes inside: no tokenizer.json.
    for required in (MODEL_FILE,) + (() if manifest.get("input") == "text" else (TOKENIZER_FILE,)):
        if required not in manifest["files"]:
            problems.append(f"{MANIFEST_FILE} does not list {required}")
    for name, entry in manifest["files"].items():
        path = model_dir / name
        if not path.is_file():
            problems.append(f"missing file: {path}")
        elif (actual := sha256_file(path)) != entry["sha256"]:
            problems.append(f"{path}: sha256 {actual} does not match the manifest's {entry['sha256']}")
    return problems


def model_info(model_dir: Path) -> dict:
    """The manifest, plus the directory it describes and its size on disk."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    return {
        **manifest,
        "path": str(model_dir.resolve()),
        "size_bytes": sum(entry["bytes"] for entry in manifest["files"].values()),
    }
