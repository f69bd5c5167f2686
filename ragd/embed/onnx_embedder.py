"""Sentence embeddings from a provisioned model with ONNX Runtime.

Two public steps, so a micro-batcher can merge requests between them:
`tokenize()` (texts -> unpadded token ids, in parallel and without the GIL)
and `run()` (one padded batch -> vectors). `embed()` chains them with
length-sorted batches, because padded positions cost as much as real tokens
(on CISI abstracts, batches of 32 sorted by length cost 1.45x less CPU than
batches in arrival order).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from .errors import ModelError
from .manifest import FP16_FILE, MODEL_FILE, OUTPUT, TOKENIZER_FILE, read_manifest

log = logging.getLogger(__name__)

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


@dataclass(frozen=True, slots=True)
class Tokens:
    """One text after tokenisation and truncation, not padded."""

    ids: np.ndarray  # int64 [n_tokens], special tokens included
    type_ids: np.ndarray  # int64 [n_tokens]
    truncated: bool  # the text had more than max_tokens tokens; the rest was dropped

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class TokenBatch:
    """Tokens padded to the longest of the batch: the model's inputs."""

    input_ids: np.ndarray  # int64 [n, longest]
    attention_mask: np.ndarray  # int64 [n, longest], 1 for real tokens
    token_type_ids: np.ndarray  # int64 [n, longest]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True, slots=True)
class EmbedResult:
    vectors: np.ndarray  # float32 [n, dimension], in input order
    token_counts: np.ndarray  # int32 [n], tokens the model saw (special tokens included)
    truncated: np.ndarray  # bool [n], text cut at max_tokens


class OnnxEmbedder:
    """A provisioned model loaded into an ONNX Runtime session.

    device "auto" and "cuda" use the CUDA provider when ONNX Runtime has it
    (with the fp16 variant, if provisioned), else the CPU. intra_op_threads None
    lets ONNX Runtime use one thread per physical core. Safe to share between
    threads: ORT sessions and tokenizers allow concurrent calls.
    """

    def __init__(self, model_dir: str | Path, device: str = "auto", intra_op_threads: int | None = None) -> None:
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
        model_dir = Path(model_dir)
        self._manifest = read_manifest(model_dir)
        want_cuda = cuda_requested(device)
        if device == "cuda" and not want_cuda:
            log.warning("CUDA requested but this ONNX Runtime has no CUDA provider; using the CPU")

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1  # the graph is a chain; parallelism is inside operators
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads

        use_fp16 = want_cuda and FP16_FILE in self._manifest["files"]
        self._file = FP16_FILE if use_fp16 else MODEL_FILE
        self._session = _open_session(model_dir / self._file, options, want_cuda)
        if use_fp16 and self.provider != _CUDA:
            # The CUDA provider is installed but failed to start (no driver, no GPU):
            # the fp16 graph would run on the CPU at a fraction of fp32's speed.
            self._file = MODEL_FILE
            self._session = _open_session(model_dir / self._file, options, False)
        self._inputs = frozenset(i.name for i in self._session.get_inputs())

        tokenizer_path = model_dir / TOKENIZER_FILE
        if not tokenizer_path.is_file():
            raise ModelError(f"missing file: {tokenizer_path}")
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(self.max_tokens)
        padding = self._tokenizer.padding or {}
        self._pad_id = int(padding.get("pad_id", 0))
        self._pad_type_id = int(padding.get("pad_type_id", 0))
        self._tokenizer.no_padding()  # run() pads, once per merged batch

    # ------------------------------------------------------------ properties

    @property
    def name(self) -> str:
        return self._manifest["name"]

    @property
    def dimension(self) -> int:
        return int(self._manifest["dimension"])

    @property
    def max_tokens(self) -> int:
        return int(self._manifest["max_tokens"])

    @property
    def normalize(self) -> bool:
        """Vectors are L2-normalised (inner product equals cosine)."""
        return bool(self._manifest["normalize"])

    @property
    def provider(self) -> str:
        """The execution provider actually running the model."""
        return self._session.get_providers()[0]

    @property
    def sha256(self) -> str:
        """sha256 of the ONNX file in use, as recorded in the manifest."""
        return self._manifest["files"][self._file]["sha256"]

    # ---------------------------------------------------------------- steps

    def tokenize(self, texts: Sequence[str]) -> list[Tokens]:
        """Tokenise and truncate at max_tokens; no padding. Runs on the
        tokenizers thread pool with the GIL released."""
        encodings = self._tokenizer.encode_batch(list(texts))
        return [
            Tokens(np.array(e.ids, dtype=np.int64), np.array(e.type_ids, dtype=np.int64), bool(e.overflowing))
            for e in encodings
        ]

    def pad(self, tokens: Sequence[Tokens]) -> TokenBatch:
        """Pad to the longest sequence of this batch."""
        lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
        longest = int(lengths.max(initial=0))
        input_ids = np.full((len(tokens), longest), self._pad_id, dtype=np.int64)
        type_ids = np.full((len(tokens), longest), self._pad_type_id, dtype=np.int64)
        for row, t in enumerate(tokens):
            input_ids[row, : len(t)] = t.ids
            type_ids[row, : len(t)] = t.type_ids
        mask = (np.arange(longest) < lengths[:, None]).astype(np.int64)
        return TokenBatch(input_ids, mask, type_ids)

    def run(self, batch: TokenBatch) -> np.ndarray:
        """Vectors float32 [len(batch), dimension] for one padded batch."""
        if len(batch) == 0:
            return np.empty((0, self.dimension), dtype=np.float32)
        feed = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        # Only the inputs the graph declares: not every encoder takes token types.
        return self._session.run([OUTPUT], {k: v for k, v in feed.items() if k in self._inputs})[0]

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> EmbedResult:
        """Embed texts in batches of similar length; results in input order."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        tokens = self.tokenize(texts)
        counts = np.fromiter((len(t) for t in tokens), dtype=np.int32, count=len(tokens))
        truncated = np.fromiter((t.truncated for t in tokens), dtype=np.bool_, count=len(tokens))
        vectors = np.empty((len(tokens), self.dimension), dtype=np.float32)
        order = np.argsort(counts, kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            vectors[rows] = self.run(self.pad([tokens[i] for i in rows]))
        return EmbedResult(vectors=vectors, token_counts=counts, truncated=truncated)


def cuda_requested(device: str) -> bool:
    """Whether OnnxEmbedder(device=...) will try the CUDA provider (it may still
    fall back to the CPU if the provider fails to start)."""
    return device != "cpu" and _CUDA in ort.get_available_providers()


def _open_session(path: Path, options: ort.SessionOptions, cuda: bool) -> ort.InferenceSession:
    if not path.is_file():
        raise ModelError(f"missing file: {path}")
    providers = [_CUDA, _CPU] if cuda else [_CPU]
    return ort.InferenceSession(str(path), options, providers=providers)
