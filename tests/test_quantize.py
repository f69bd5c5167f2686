"""The int8 CPU variant (ragd/embed/quantize.py): made from the real default model,
listed in the manifest, chosen by model.precision, close to fp32 on real text, and
made by a daemon that is asked for it."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cisi
import numpy as np
import onnx
import pytest

from ragd.embed.errors import ModelError
from ragd.embed.manifest import FP16_FILE, INT8_FILE, MANIFEST_FILE, MODEL_FILE, read_manifest, verify_model
from ragd.embed.onnx_embedder import CPU_DEFAULT_PRECISION, OnnxEmbedder, choose_variant
from ragd.embed.quantize import INT8_MIN_COS, add_int8_variant, quantize_int8

REPO = Path(__file__).resolve().parents[1]


def fp32_copy(models_dir: Path, dest: Path) -> Path:
    """A copy of the session's provisioned model with only its fp32 graph (no int8 yet)."""
    src = models_dir / "all-MiniLM-L6-v2"
    out = dest / "all-MiniLM-L6-v2"
    out.mkdir(parents=True)
    manifest = read_manifest(src)
    for f in (MODEL_FILE, "tokenizer.json"):
        shutil.copy(src / f, out / f)
    manifest["files"] = {k: v for k, v in manifest["files"].items() if k in (MODEL_FILE, "tokenizer.json")}
    manifest["variants"] = {MODEL_FILE: manifest["variants"][MODEL_FILE]}
    manifest.pop("int8_min_cosine", None)
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module")
def int8_model(models_dir, tmp_path_factory) -> Path:
    model = fp32_copy(models_dir, tmp_path_factory.mktemp("int8"))
    add_int8_variant(model)
    return model


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [d["text"] for d in cisi.documents() if d["text"]][:64] + ["short query", "Größe Übersicht 東京"]


def test_variant_is_listed_verified_and_recorded(int8_model):
    manifest = read_manifest(int8_model)
    assert INT8_FILE in manifest["files"] and INT8_FILE in manifest["variants"]
    assert "int8" in manifest["variants"][INT8_FILE] and "per-channel" in manifest["variants"][INT8_FILE]
    assert manifest["int8_min_cosine"] >= INT8_MIN_COS
    assert verify_model(int8_model) == []  # the sha256 of the new file matches the rewritten manifest
    assert not [p for p in int8_model.iterdir() if p.name.startswith(".")]  # no staging leftovers
    # A quarter of the fp32 size: int8 weights and embedding tables.
    assert (int8_model / INT8_FILE).stat().st_size < 0.35 * (int8_model / MODEL_FILE).stat().st_size


def test_int8_vectors_are_close_to_fp32_on_real_text(int8_model, texts):
    fp32 = OnnxEmbedder(int8_model, device="cpu", precision="fp32")
    int8 = OnnxEmbedder(int8_model, device="cpu", precision="int8")
    assert (fp32.variant, int8.variant) == (MODEL_FILE, INT8_FILE)
    a, b = fp32.embed(texts).vectors, int8.embed(texts).vectors
    cos = (a * b).sum(1)
    assert cos.min() > 0.97, cos.min()
    assert cos.mean() > 0.99, cos.mean()
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)  # pooling and normalisation stayed float
    # Not the fp32 graph under another name.
    assert not np.allclose(a, b, atol=1e-4)


def test_int8_ranks_like_fp32(int8_model):
    """The nearest abstracts of a CISI query mostly agree between int8 and fp32."""
    docs = [d["text"] for d in cisi.documents() if d["text"]][:150]
    q = list(cisi.queries().values())[:10]
    fp32 = OnnxEmbedder(int8_model, device="cpu", precision="fp32")
    int8 = OnnxEmbedder(int8_model, device="cpu", precision="int8")
    d32, d8 = fp32.embed(docs).vectors, int8.embed(docs).vectors
    q32, q8 = fp32.embed(q).vectors, int8.embed(q).vectors
    top32 = np.argsort(-(q32 @ d32.T), axis=1)[:, :10]
    top8 = np.argsort(-(q8 @ d8.T), axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top32, top8)])
    assert overlap >= 0.8, overlap


def test_attention_is_quantised_unless_kept(int8_model):
    fp32 = onnx.load(str(int8_model / MODEL_FILE))
    default = Counter(n.op_type for n in onnx.load(str(int8_model / INT8_FILE)).graph.node)
    kept = Counter(n.op_type for n in quantize_int8(fp32, keep_attention=True).graph.node)
    assert default["QAttention"] == 6 and default["Attention"] == 0 and default["MatMulInteger"] > 0
    assert kept["Attention"] == 6 and kept["QAttention"] == 0 and kept["MatMulInteger"] > 0
    # LayerNorm and GELU are never quantised.
    for ops in (default, kept):
        assert ops["SkipLayerNormalization"] == 12 and ops["BiasGelu"] == 6


def test_precision_int8_without_the_variant_names_the_command(models_dir, tmp_path):
    model = fp32_copy(models_dir, tmp_path)
    with pytest.raises(ModelError, match="ragd model export --quantize int8"):
        OnnxEmbedder(model, device="cpu", precision="int8")
    assert OnnxEmbedder(model, device="cpu", precision="auto").variant == MODEL_FILE


@pytest.mark.parametrize(("files", "cuda", "precision", "expected"), [
    ({MODEL_FILE}, False, "auto", MODEL_FILE),
    ({MODEL_FILE, INT8_FILE}, False, "fp32", MODEL_FILE),
    ({MODEL_FILE, INT8_FILE}, False, "int8", INT8_FILE),
    ({MODEL_FILE, INT8_FILE}, False, "auto", INT8_FILE if CPU_DEFAULT_PRECISION == "int8" else MODEL_FILE),
    ({MODEL_FILE, FP16_FILE, INT8_FILE}, True, "auto", FP16_FILE),
    ({MODEL_FILE, FP16_FILE, INT8_FILE}, True, "fp32", MODEL_FILE),
    ({MODEL_FILE, FP16_FILE, INT8_FILE}, True, "int8", FP16_FILE),  # int8 is a CPU variant: CUDA runs fp16
    ({MODEL_FILE, INT8_FILE}, True, "auto", MODEL_FILE),
])
def test_choose_variant(files, cuda, precision, expected):
    assert choose_variant(files, cuda, precision) == expected


def test_export_quantize_adds_the_variant_in_place(models_dir, tmp_path):
    data = tmp_path / "data"
    fp32_copy(models_dir, data / "models")
    out = subprocess.run([sys.executable, "-m", "ragd.cli", "model", "export", "--quantize", "int8",
                          "--data-dir", str(data)], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert INT8_FILE in info["files"] and info["variants"][MODEL_FILE] == "fp32-fused"
    assert verify_model(data / "models" / "all-MiniLM-L6-v2") == []


def test_daemon_with_precision_int8_makes_and_runs_the_variant(daemon_factory, models_dir, tmp_path):
    """A daemon asked for int8 on a model without it quantises it at start, serves with it,
    and its vectors agree with fp32 computed in this process."""
    models = tmp_path / "models"
    model = fp32_copy(models_dir, models)
    from ragd_client import RagClient
    d = daemon_factory("int8", env={"RAGD_MODEL_PRECISION": "int8"})
    (d.data_dir / "models").unlink()
    (d.data_dir / "models").symlink_to(models, target_is_directory=True)
    d.start(timeout=600)
    try:
        assert "quantising it now" in d.log()
        manifest = read_manifest(model)
        with RagClient(d.address, timeout=120) as c:
            st = c.stats()
            assert st.model.sha256 == manifest["files"][INT8_FILE]["sha256"]
            text = cisi.documents()[3]["text"]
            served = c.embed([text]).vectors[0]
            c.upsert([{"id": "issue:1", "text": "The nightly backup fails after the database upgrade", "project_id": 1},
                      {"id": "issue:2", "text": "Gantt chart colours are wrong in dark mode", "project_id": 1}])
            hits = c.search("backup job broken since the DB upgrade", top_k=1, mode="vector").hits
        assert hits[0].document_id == "issue:1"
        ref = OnnxEmbedder(model, device="cpu", precision="fp32").embed([text]).vectors[0]
        assert float(served @ ref) > 0.97
        assert not np.allclose(served, ref, atol=1e-4)
    finally:
        d.stop()


@pytest.mark.parametrize("spin", [False, True])
def test_spin_wait_option_reaches_the_session(int8_model, spin):
    e = OnnxEmbedder(int8_model, device="cpu", spin_wait=spin)
    opts = e._session.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == ("1" if spin else "0")
    assert e.embed(["still embeds"]).vectors.shape == (1, 384)


def test_int8_vector_depends_on_its_batch_and_fp32_does_not(int8_model, texts):
    """Why int8 is not the CPU default (onnx_embedder.CPU_DEFAULT_PRECISION): dynamic
    quantisation scales activations per batch tensor, so the same query embeds differently
    alone and beside other texts; fp32 does not."""
    query = "why does the nightly backup job fail after the database server upgrade"
    for precision, stable in (("fp32", True), ("int8", False)):
        e = OnnxEmbedder(int8_model, device="cpu", precision=precision)
        alone = e.embed([query]).vectors[0]
        batched = e.embed([query, *texts[:31]], batch_size=32).vectors[0]
        cos = float(alone @ batched)
        assert (cos > 0.99999) == stable, (precision, cos)
        assert cos > 0.97, (precision, cos)
