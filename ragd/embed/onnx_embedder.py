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
from .manifest import FP16_FILE, INT8_FILE, MODEL_FILE, OUTPUT, TOKENIZER_FILE, read_manifest

log = logging.getLogger(__name__)

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"

PRECISIONS = ("auto", "fp32", "int8")
# What precision "auto" runs on a CPU: fp32. The rule was that int8 (model.int8.onnx) may
# become the CPU default only if it loses less than 0.005 nDCG@10 on CISI through the daemon.
# It passes that (benchmarks/quality.py --precision fp32 int8 int8-attention-fp32, 76 queries):
#   fp32        VECTOR 0.4235  HYBRID 0.4554
#   int8        VECTOR 0.4264 (+0.0029)  HYBRID 0.4521 (-0.0033)
#   int8, attention in float  VECTOR 0.4221 (-0.0014)  HYBRID 0.4504 (-0.0050)
# and is faster (benchmarks/embed_throughput.py). It is still not the default, because dynamic
# int8 quantises activations with one scale per batch tensor: a text's vector depends on the
# other texts of its micro-batch (a CISI query alone vs in a batch of 76: cosine 0.984 at worst,
# 0.993 on average; fp32: 0.9999999). Rankings would then depend on concurrent traffic, and
# micro-batching would no longer be invisible (tests/test_batcher.py asserts it is). Making int8
# the default needs batch-independent activation scales: static (calibrated) quantisation or
# per-row dynamic scales, judged by the same nDCG rule.
CPU_DEFAULT_PRECISION = "fp32"


def choose_variant(files, cuda: bool, precision: str = "auto") -> str:
    """The graph file to run: on CUDA the fp16 variant when provisioned (precision auto),
    on a CPU the int8 variant when asked for (or when it is the CPU default). `files` are
    the manifest's file names. Raises ModelError when precision int8 is asked for a model
    without the int8 variant."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if cuda:
        if precision == "int8":
            log.warning("model.precision int8 is a CPU variant; on CUDA the %s graph runs",
                        "fp16" if FP16_FILE in files else "fp32")
        return FP16_FILE if precision != "fp32" and FP16_FILE in files else MODEL_FILE
    wanted = CPU_DEFAULT_PRECISION if precision == "auto" else precision
    if wanted == "int8":
        if INT8_FILE in files:
            return INT8_FILE
        if precision == "int8":
            raise ModelError(f"model.precision is int8 but the model has no {INT8_FILE}; "
                             "make it with `ragd model export --quantize int8`")
    return MODEL_FILE


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


def check_device(device: str) -> None:
    """The `model.device` values every embedder accepts."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")


class OnnxEmbedder:
    """A provisioned model loaded into an ONNX Runtime session.

    device "auto" and "cuda" use the CUDA provider when ONNX Runtime has it
    (with the fp16 variant, if provisioned), else the CPU. precision picks the
    graph (choose_variant): auto, fp32, or int8 (the CPU variant). intra_op_threads
    None lets ONNX Runtime use one thread per physical core; spin_wait lets those threads
    spin between operators (ONNX Runtime's default; ragd's is off). Safe to share between
    threads: ORT sessions and tokenizers allow concurrent calls.
    """

    def __init__(self, model_dir: str | Path, device: str = "auto", intra_op_threads: int | None = None,
                 precision: str = "auto", spin_wait: bool = False) -> None:
        check_device(device)
        model_dir = Path(model_dir)
        self._manifest = read_manifest(model_dir)
        want_cuda = cuda_requested(device)
        if device == "cuda" and not want_cuda:
            log.warning("CUDA requested but this ONNX Runtime has no CUDA provider; using the CPU")

        options = session_options(intra_op_threads, spin_wait)

        files = self._manifest["files"]
        self._file = choose_variant(files, want_cuda, precision)
        self._session = _open_session(model_dir / self._file, options, want_cuda)
        if want_cuda and self.provider != _CUDA:
            # The CUDA provider is installed but failed to start (no driver, no GPU): run the
            # CPU's choice (the fp16 graph would run on the CPU at a fraction of fp32's speed).
            cpu_file = choose_variant(files, False, precision)
            log.warning("the CUDA provider did not start; running %s on the CPU", cpu_file)
            if cpu_file != self._file:
                self._file = cpu_file
                self._session = _open_session(model_dir / self._file, options, False)
        self._inputs = frozenset(i.name for i in self._session.get_inputs())
        self._check_dimension(model_dir)

        tokenizer_path = model_dir / TOKENIZER_FILE
        if not tokenizer_path.is_file():
            raise ModelError(f"missing file: {tokenizer_path}")
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(self.max_tokens)
        padding = self._tokenizer.padding or {}
        self._pad_id = int(padding.get("pad_id", 0))
        self._pad_type_id = int(padding.get("pad_type_id", 0))
        self._tokenizer.no_padding()  # run() pads, once per merged batch

    def _check_dimension(self, model_dir: Path) -> None:
        """A manifest that lies about the dimension would make every index wrong (or FAISS
        crash on the first add): refuse to load instead."""
        outputs = {o.name: o.shape for o in self._session.get_outputs()}
        if OUTPUT not in outputs:
            raise ModelError(f"{model_dir / self._file}: the graph has no {OUTPUT!r} output "
                             f"(it has {sorted(outputs)}); provision it with ragd")
        shape = outputs[OUTPUT]
        declared = self._manifest["dimension"]
        if not isinstance(declared, int) or declared < 1:
            raise ModelError(f"{model_dir}/manifest.json: dimension {declared!r} is not a positive integer")
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != declared):
            raise ModelError(f"{model_dir}/manifest.json declares {declared}-d vectors but "
                             f"{self._file} outputs shape {shape}")

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
    def query_prefix(self) -> str:
        """Put in front of every query (BGE's instruction, E5's "query: "), per the manifest."""
        return str(self._manifest.get("query_prefix", ""))

    @property
    def passage_prefix(self) -> str:
        """Put in front of every indexed text (E5's "passage: "), per the manifest."""
        return str(self._manifest.get("passage_prefix", ""))

    def prefixed(self, texts: Sequence[str], is_query: bool) -> list[str]:
        """The texts as the model was trained to see them: queries and passages each with
        their declared prefix (the prefix counts against max_tokens, as in the reference)."""
        prefix = self.query_prefix if is_query else self.passage_prefix
        return [prefix + t for t in texts] if prefix else list(texts)

    @property
    def provider(self) -> str:
        """The execution provider actually running the model."""
        return self._session.get_providers()[0]

    @property
    def variant(self) -> str:
        """The graph file in use (model.onnx, model.fp16.onnx or model.int8.onnx)."""
        return self._file

    @property
    def sha256(self) -> str:
        """sha256 of the ONNX file in use, as recorded in the manifest."""
        return self._manifest["files"][self._file]["sha256"]

    # ---------------------------------------------------------------- steps

    def tokenize(self, texts: Sequence[str], is_query: bool = False) -> list[Tokens]:
        """Prefix (query or passage, per the manifest), tokenise and truncate at max_tokens;
        no padding. Runs on the tokenizers thread pool with the GIL released."""
        encodings = self._tokenizer.encode_batch(self.prefixed(texts, is_query))
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
        vectors = self._session.run([OUTPUT], {k: v for k, v in feed.items() if k in self._inputs})[0]
        if vectors.shape != (len(batch), self.dimension):  # a graph with a dynamic output dimension that lies
            raise ModelError(f"{self._file} returned vectors of shape {vectors.shape}, not "
                             f"[{len(batch)}, {self.dimension}] as the manifest declares")
        return vectors

    def embed(self, texts: Sequence[str], batch_size: int = 32, is_query: bool = False) -> EmbedResult:
        """Embed texts (passages, or queries with is_query) in batches of similar length;
        results in input order."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        tokens = self.tokenize(texts, is_query)
        counts = np.fromiter((len(t) for t in tokens), dtype=np.int32, count=len(tokens))
        truncated = np.fromiter((t.truncated for t in tokens), dtype=np.bool_, count=len(tokens))
        vectors = np.empty((len(tokens), self.dimension), dtype=np.float32)
        order = np.argsort(counts, kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            vectors[rows] = self.run(self.pad([tokens[i] for i in rows]))
        return EmbedResult(vectors=vectors, token_counts=counts, truncated=truncated)


def session_options(intra_op_threads: int | None, spin_wait: bool) -> ort.SessionOptions:
    """ONNX Runtime options of every embedder: all graph optimisations, one inter-op thread
    (the graph is a chain; parallelism is inside operators), spinning as configured."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    # Spinning threads waiting for work: a waste on a machine shared with other work (config model.spin_wait).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_wait else "0")
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    return options


def cuda_requested(device: str) -> bool:
    """Whether OnnxEmbedder(device=...) will try the CUDA provider (it may still
    fall back to the CPU if the provider fails to start)."""
    return device != "cpu" and _CUDA in ort.get_available_providers()


def preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries of NVIDIA's pip wheels (the GPU build installs
    them, scripts/setup_gpu.sh) before the CUDA provider looks for them: they are not on
    the loader's path. Once per process; a no-op for a CPU build of ONNX Runtime."""
    global _PRELOADED
    if _PRELOADED or not hasattr(ort, "preload_dlls"):
        return
    _PRELOADED = True
    try:
        ort.preload_dlls()
    except Exception as exc:  # noqa: BLE001 - the provider then reports what is missing
        log.warning("could not preload the CUDA libraries (%s)", exc)


_PRELOADED = False


def _open_session(path: Path, options: ort.SessionOptions, cuda: bool) -> ort.InferenceSession:
    if not path.is_file():
        raise ModelError(f"missing file: {path}")
    if cuda:
        preload_cuda_libraries()
    providers = [_CUDA, _CPU] if cuda else [_CPU]
    return ort.InferenceSession(str(path), options, providers=providers)


# ------------------------------------------------------------ string-input graphs


def text_session(path: Path, options: ort.SessionOptions) -> ort.InferenceSession:
    """A CPU session for a graph whose tokenizer is inside it, as onnxruntime-extensions'
    custom operators (SentencePiece)."""
    try:
        from onnxruntime_extensions import get_library_path
    except ImportError:
        raise ModelError(f"{path} needs onnxruntime-extensions (pip install onnxruntime-extensions; "
                         "scripts/setup.sh installs it)") from None
    options.register_custom_ops_library(get_library_path())
    if not Path(path).is_file():
        raise ModelError(f"missing file: {path}")
    return ort.InferenceSession(str(path), options, providers=[_CPU])


@dataclass(frozen=True, slots=True)
class TextItem:
    """One text for a string-input graph. Its length is an estimate of the graph's tokens
    (about one per 3 characters): the batcher budgets batches with it."""

    text: str
    truncated: bool = False

    def __len__(self) -> int:
        return max(1, len(self.text) // 3)


@dataclass(frozen=True, slots=True)
class TextBatch:
    texts: np.ndarray  # object [n] of str
    attention_mask: np.ndarray  # [n, longest] estimated tokens (metrics only)

    def __len__(self) -> int:
        return len(self.texts)


class TextGraphEmbedder(OnnxEmbedder):
    """A provisioned string-input model (manifest input "text"): the graph takes the texts
    themselves and returns sentence vectors. Same interface as OnnxEmbedder; runs on the
    CPU (the custom tokenizer operators have no CUDA kernels); token counts are estimates."""

    def __init__(self, model_dir: str | Path, device: str = "auto", intra_op_threads: int | None = None,
                 precision: str = "auto", spin_wait: bool = False) -> None:
        check_device(device)
        model_dir = Path(model_dir)
        self._manifest = read_manifest(model_dir)
        if device == "cuda":
            log.warning("%s takes strings (its tokenizer runs inside the graph): it runs on the CPU",
                        self._manifest["name"])
        if precision == "int8":
            log.warning("%s ships one graph (already int8-quantised by its publisher)", self._manifest["name"])
        options = session_options(intra_op_threads, spin_wait)
        self._file = MODEL_FILE
        self._session = text_session(model_dir / MODEL_FILE, options)
        self._input = self._manifest.get("input_name", "inputs")
        self._output = self._manifest.get("output", "outputs")
        outputs = {o.name: o.shape for o in self._session.get_outputs()}
        if self._output not in outputs:
            raise ModelError(f"{model_dir / MODEL_FILE}: no output {self._output!r} (it has {sorted(outputs)})")
        shape, declared = outputs[self._output], self._manifest["dimension"]
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != declared):
            raise ModelError(f"{model_dir}/manifest.json declares {declared}-d vectors but "
                             f"{MODEL_FILE} outputs shape {shape}")

    def tokenize(self, texts: Sequence[str], is_query: bool = False) -> list[TextItem]:  # type: ignore[override]
        return [TextItem(t) for t in self.prefixed(texts, is_query)]

    def pad(self, tokens: Sequence[TextItem]) -> TextBatch:  # type: ignore[override]
        lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
        mask = (np.arange(int(lengths.max(initial=0))) < lengths[:, None]).astype(np.int64)
        return TextBatch(np.array([t.text for t in tokens], dtype=object), mask)

    def run(self, batch: TextBatch) -> np.ndarray:  # type: ignore[override]
        if len(batch) == 0:
            return np.empty((0, self.dimension), dtype=np.float32)
        vectors = self._session.run([self._output], {self._input: batch.texts})[0]
        if vectors.shape != (len(batch), self.dimension):
            raise ModelError(f"{self._file} returned vectors of shape {vectors.shape}, not "
                             f"[{len(batch)}, {self.dimension}] as the manifest declares")
        return vectors.astype(np.float32, copy=False)


def open_embedder(model_dir: str | Path, **kwargs) -> OnnxEmbedder:
    """The embedder a provisioned model needs: token ids (OnnxEmbedder) or strings
    (TextGraphEmbedder), as its manifest declares."""
    if read_manifest(Path(model_dir)).get("input") == "text":
        return TextGraphEmbedder(model_dir, **kwargs)
    return OnnxEmbedder(model_dir, **kwargs)
