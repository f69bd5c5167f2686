"""The int8 CPU variant of a provisioned model: one step after export, separate from it.

`quantize_int8(model)` turns the fp32 graph (ragd's fused export, pooling included)
into a dynamically quantised one with ONNX Runtime's quantiser: weights int8 per
output channel (symmetric), activations uint8 with their range measured per batch
at run time (so no calibration set decides the model's behaviour), LayerNorm,
GELU, softmax, pooling and the L2 normalisation left in float. On x86 ONNX Runtime
runs the int8 matrix products with VNNI (AVX-512 or AVX) or AMX-INT8 where the CPU
has them.

What is quantised was decided by retrieval quality, not by cosine alone (the
figures: benchmarks/results/embed_throughput.json and quality_int8.json):
  - every MatMul, the fused attention (QAttention) and the embedding tables
    (QEmbedLayerNormalization): the default, `INT8_OPS`;
  - keeping attention in float (`keep_attention=True`) was measured too: slower and
    no better on nDCG@10 through the daemon, so it is an option, not the default.

`add_int8_variant(model_dir)` writes the variant beside an existing provisioned model
(model.int8.onnx, listed in the manifest with its cosine to fp32 on the probe texts),
atomically: the file and the manifest are replaced by rename, never half-written.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx

from .errors import ModelError
from .manifest import INT8_FILE, MANIFEST_FILE, MODEL_FILE, fsync_path, read_manifest, sha256_file

log = logging.getLogger(__name__)

# ONNX op types the default int8 variant quantises (ONNX Runtime's dynamic IntegerOps).
INT8_OPS = ("MatMul", "Attention", "EmbedLayerNormalization")
# Below this cosine to fp32 on the probe texts something went wrong (a graph pattern the
# quantiser mishandles), not the expected int8 rounding (~0.98 and above on MiniLM).
INT8_MIN_COS = 0.95


def quantize_int8(model: onnx.ModelProto, *, keep_attention: bool = False) -> onnx.ModelProto:
    """Dynamic int8 quantisation, per-channel weights. keep_attention leaves the fused
    Attention nodes (Q/K/V projections and scores) in float."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = [op for op in INT8_OPS if not (keep_attention and op == "Attention")]
    with tempfile.TemporaryDirectory(prefix="ragd-quantize-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(model, str(src))
        quantize_dynamic(
            str(src), str(dst), op_types_to_quantize=ops, per_channel=True, reduce_range=False,
            weight_type=QuantType.QInt8,
            # The fused graph's contrib ops (Attention, SkipLayerNormalization) have no ONNX shape
            # inference: their outputs are float, which the quantiser must be told.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True})
        return onnx.load(str(dst))


def describe(keep_attention: bool) -> str:
    kept = "attention, LayerNorm, GELU, pooling in float" if keep_attention else "LayerNorm, GELU, pooling in float"
    return f"int8 dynamic, per-channel weights ({kept})"


def add_int8_variant(model_dir: Path, *, keep_attention: bool = False, probe=None) -> Path:
    """Quantise model_dir/model.onnx into model_dir/model.int8.onnx and list it in the
    manifest. `probe` (token batch dict) checks the variant against fp32; the default is
    the provisioning probe texts. Raises ModelError when the variant drifts past INT8_MIN_COS."""
    from .provision import min_cosine, probe_batch, run_graph

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    fp32 = onnx.load(str(model_dir / MODEL_FILE))
    int8 = quantize_int8(fp32, keep_attention=keep_attention)
    batch = probe if probe is not None else probe_batch(model_dir)
    cos = min_cosine(run_graph(int8, batch), run_graph(fp32, batch))
    if cos < INT8_MIN_COS:
        raise ModelError(f"{model_dir / INT8_FILE}: the int8 variant's cosine to fp32 is {cos:.4f}, "
                         f"below {INT8_MIN_COS}; not written")
    staged = model_dir / f".{INT8_FILE}.{os.getpid()}.partial"
    onnx.save_model(int8, str(staged))
    fsync_path(staged)
    os.replace(staged, model_dir / INT8_FILE)
    manifest["variants"][INT8_FILE] = f"{describe(keep_attention)} of {manifest['variants'].get(MODEL_FILE, 'fp32')}"
    manifest["files"][INT8_FILE] = {"sha256": sha256_file(model_dir / INT8_FILE),
                                    "bytes": (model_dir / INT8_FILE).stat().st_size}
    manifest["int8_min_cosine"] = round(float(cos), 6)
    write_manifest(model_dir, manifest)
    log.info("int8 variant of %s written (min cosine to fp32 on the probe texts %.4f)", model_dir.name, cos)
    return model_dir / INT8_FILE


def needs_int8(precision: str, cuda: bool) -> bool:
    """Whether model.precision (on this device) runs the int8 variant, so it must exist."""
    from .onnx_embedder import CPU_DEFAULT_PRECISION
    return not cuda and (precision == "int8" or (precision == "auto" and CPU_DEFAULT_PRECISION == "int8"))


def ensure_int8_variant(model_dir: Path) -> None:
    """Make the int8 variant of a provisioned model that lacks it (a model provisioned
    before it was asked for); a few seconds, logged."""
    if INT8_FILE not in read_manifest(model_dir)["files"]:
        log.info("model.precision wants %s, which %s lacks: quantising it now", INT8_FILE, model_dir)
        add_int8_variant(model_dir)


def write_manifest(model_dir: Path, manifest: dict) -> None:
    staged = model_dir / f".{MANIFEST_FILE}.{os.getpid()}.partial"
    staged.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    fsync_path(staged)
    os.replace(staged, model_dir / MANIFEST_FILE)
    fsync_path(model_dir)


def cosine_to_fp32(model_dir: Path, texts: list[str]) -> np.ndarray:
    """Per-text cosine between the int8 and fp32 variants (for benchmarks and tests)."""
    from .onnx_embedder import OnnxEmbedder
    a = OnnxEmbedder(model_dir, device="cpu", precision="fp32").embed(texts).vectors.astype(np.float64)
    b = OnnxEmbedder(model_dir, device="cpu", precision="int8").embed(texts).vectors.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
