"""Export a BERT-family sentence encoder to ONNX without torch.

The graph is written node by node with the `onnx` helper API, the weights
taken straight from model.safetensors as numpy initialisers. The node pattern
deliberately mirrors what `torch.onnx.export` emits for Hugging Face's
BertModel, because onnxruntime's transformer optimizer recognises exactly
those patterns when it fuses attention, LayerNorm and GELU.

add_pooling() then appends pooling and L2 normalisation to the graph (ragd's
own export or a given ONNX encoder): the daemon gets finished sentence vectors
from one `session.run`, and ORT applies the padding mask where it has it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

from .card import read_json
from .errors import ModelError
from .manifest import INPUTS, OUTPUT

OPSET = 17  # first opset with LayerNormalization; every onnxruntime >= 1.14 runs it
TOKEN_STATES = "last_hidden_state"
POOL_PREFIX = "pool/"  # node-name prefix of the pooling tail, kept fp32 in the fp16 variant
# What transformers used (and ORT's fused Attention assumes by default) for
# masked attention scores: exp(-10000) is 0 in fp32, and unlike float32's
# minimum it stays finite in the fp16 variant.
_MASK_FILL = -10000.0
_PROTOBUF_LIMIT = 2**31 - 1  # a single-file ONNX model is one protobuf message


class _GraphBuilder:
    """Appends nodes with unique names; a constant named twice is stored once
    (the shared scalars of every GELU and attention block)."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._const_names: set[str] = set()
        self._count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        if name not in self._const_names:
            self._const_names.add(name)
            # np.require, not ascontiguousarray, which turns scalars into shape [1].
            self.initializers.append(numpy_helper.from_array(np.require(value, requirements="C"), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        self._count += 1
        name = name or f"{op_type}_{self._count}"
        output = f"{name}:out"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attrs))
        return output


# ---------------------------------------------------------------- BERT body


def export_bert(model_dir: Path) -> onnx.ModelProto:
    """The ONNX encoder for the BERT checkpoint in model_dir (config.json +
    model.safetensors, Hugging Face tensor names), ending at the token states
    `last_hidden_state` [batch, sequence, hidden]; add_pooling() finishes it."""
    config = read_json(model_dir / "config.json")
    if config.get("model_type") != "bert":
        raise ModelError(
            f"{model_dir / 'config.json'}: model_type {config.get('model_type')!r} is not supported "
            "(ragd exports BERT-architecture encoders: MiniLM, BGE, E5, GTE ...)"
        )
    if config.get("hidden_act", "gelu") != "gelu":
        raise ModelError(f"{model_dir / 'config.json'}: hidden_act {config['hidden_act']!r} is not supported")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ModelError(f"{model_dir / 'config.json'}: only absolute position embeddings are supported")

    weights = _Weights(model_dir / "model.safetensors")
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    eps = float(config.get("layer_norm_eps", 1e-12))

    g = _GraphBuilder()
    states = _embeddings(g, weights, eps, int(config["max_position_embeddings"]))
    mask_bias = _attention_mask_bias(g)
    for i in range(int(config["num_hidden_layers"])):
        states = _encoder_layer(g, weights, f"encoder.layer.{i}", states, mask_bias, heads, hidden, eps)
    weights.check_all_used()
    g.nodes[-1].output[0] = TOKEN_STATES

    graph = helper.make_graph(
        g.nodes,
        "ragd_bert",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in INPUTS],
        [helper.make_tensor_value_info(TOKEN_STATES, TensorProto.FLOAT, ["batch", "sequence", hidden])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ragd")
    # Pin the IR version the opset needs rather than the onnx package's newest,
    # which an older onnxruntime would refuse to load.
    model.ir_version = 8
    return model


class _Weights:
    """model.safetensors as float32 numpy arrays, by their BertModel names."""

    # The unused pooler (tanh dense over [CLS]) and the position_ids buffer
    # are in many checkpoints but not in sentence-transformers' forward pass.
    _IGNORED = ("pooler.", "embeddings.position_ids")

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise ModelError(f"missing file: {path}")
        try:
            tensors = load_file(str(path))
        except Exception as exc:  # safetensors raises several types (bf16 has no numpy dtype)
            raise ModelError(f"{path}: cannot read weights as numpy ({exc})") from exc
        # Checkpoints saved from BertFor* heads prefix the encoder with "bert.".
        self._tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
        self._path = path
        self._used: set[str] = set()

    def __call__(self, name: str) -> np.ndarray:
        try:
            value = self._tensors[name]
        except KeyError:
            raise ModelError(f"{self._path}: tensor {name!r} not found") from None
        self._used.add(name)
        return value.astype(np.float32, copy=False)

    def check_all_used(self) -> None:
        left = [k for k in self._tensors if k not in self._used and not k.startswith(self._IGNORED)]
        if left:  # weights the graph ignores mean this is not a plain BertModel
            raise ModelError(f"{self._path}: unexpected tensors {sorted(left)[:5]}")


def _embeddings(g: _GraphBuilder, w: _Weights, eps: float, max_positions: int) -> str:
    """word + position + token type embeddings, LayerNorm. Positions are a Slice
    of a constant [1, max_positions] range up to the sequence length: the
    pattern ORT fuses into EmbedLayerNormalization."""
    p = "embeddings"
    words = g.op("Gather", [g.const(f"{p}.word_embeddings.weight", w(f"{p}.word_embeddings.weight")), "input_ids"])
    types = g.op(
        "Gather",
        [g.const(f"{p}.token_type_embeddings.weight", w(f"{p}.token_type_embeddings.weight")), "token_type_ids"],
    )
    seq_len = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const("const_one_i64", np.array(1, np.int64))])
    end = g.op("Unsqueeze", [seq_len, g.const("const_axes_0", np.array([0], np.int64))])
    position_ids = g.op(
        "Slice",
        [
            g.const("position_ids", np.arange(max_positions, dtype=np.int64)[None, :]),
            g.const("const_start_0", np.array([0], np.int64)),
            end,
            g.const("const_slice_axes_1", np.array([1], np.int64)),
            g.const("const_slice_steps_1", np.array([1], np.int64)),
        ],
    )
    positions = g.op(
        "Gather", [g.const(f"{p}.position_embeddings.weight", w(f"{p}.position_embeddings.weight")), position_ids]
    )
    summed = g.op("Add", [g.op("Add", [words, types]), positions])
    return _layer_norm(g, w, f"{p}.LayerNorm", summed, eps)


def _attention_mask_bias(g: _GraphBuilder) -> str:
    """(1 - mask[:, None, None, :]) * -10000, added to every layer's scores."""
    unsqueezed = g.op(
        "Unsqueeze",
        [
            g.op("Unsqueeze", ["attention_mask", g.const("const_axes_1", np.array([1], np.int64))]),
            g.const("const_axes_2", np.array([2], np.int64)),
        ],
    )
    as_float = g.op("Cast", [unsqueezed], to=TensorProto.FLOAT)
    inverted = g.op("Sub", [g.const("const_one_f32", np.array(1.0, np.float32)), as_float])
    return g.op("Mul", [inverted, g.const("const_mask_fill", np.array(_MASK_FILL, np.float32))])


def _encoder_layer(
    g: _GraphBuilder, w: _Weights, p: str, x: str, mask_bias: str, heads: int, hidden: int, eps: float
) -> str:
    head_dim = hidden // heads
    split = g.const(f"{p}.split_heads_shape", np.array([0, 0, heads, head_dim], np.int64))
    merge = g.const(f"{p}.merge_heads_shape", np.array([0, 0, hidden], np.int64))

    def heads_of(name: str, perm: list[int]) -> str:
        return g.op("Transpose", [g.op("Reshape", [_linear(g, w, f"{p}.attention.self.{name}", x), split])], perm=perm)

    q = heads_of("query", [0, 2, 1, 3])  # [b, h, s, d]
    k = heads_of("key", [0, 2, 3, 1])  # [b, h, d, s]: transposed for Q K^T
    v = heads_of("value", [0, 2, 1, 3])
    scores = g.op("Div", [g.op("MatMul", [q, k]), g.const(f"{p}.scale", np.array(math.sqrt(head_dim), np.float32))])
    probs = g.op("Softmax", [g.op("Add", [scores, mask_bias])], axis=-1)
    context = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge])
    attended = g.op("Add", [_linear(g, w, f"{p}.attention.output.dense", context), x])
    attended = _layer_norm(g, w, f"{p}.attention.output.LayerNorm", attended, eps)

    inner = _gelu(g, _linear(g, w, f"{p}.intermediate.dense", attended))
    out = g.op("Add", [_linear(g, w, f"{p}.output.dense", inner), attended])
    return _layer_norm(g, w, f"{p}.output.LayerNorm", out, eps)


def _linear(g: _GraphBuilder, w: _Weights, p: str, x: str) -> str:
    # torch Linear stores [out, in]; MatMul wants [in, out].
    weight = g.const(f"{p}.weight", w(f"{p}.weight").T)
    return g.op("Add", [g.op("MatMul", [x, weight]), g.const(f"{p}.bias", w(f"{p}.bias"))])


def _layer_norm(g: _GraphBuilder, w: _Weights, p: str, x: str, eps: float) -> str:
    scale, bias = g.const(f"{p}.weight", w(f"{p}.weight")), g.const(f"{p}.bias", w(f"{p}.bias"))
    return g.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=eps)


def _gelu(g: _GraphBuilder, x: str) -> str:
    """Exact (erf) GELU, written as torch exports it so ORT fuses it to Gelu."""
    erf = g.op("Erf", [g.op("Div", [x, g.const("const_sqrt2", np.array(math.sqrt(2.0), np.float32))])])
    one_plus = g.op("Add", [erf, g.const("const_one_gelu", np.array(1.0, np.float32))])
    return g.op("Mul", [g.op("Mul", [x, one_plus]), g.const("const_half", np.array(0.5, np.float32))])


# ------------------------------------------------------------------ pooling


def add_pooling(model: onnx.ModelProto, pooling: str, normalize: bool) -> onnx.ModelProto:
    """Replace the model's token-state output [batch, seq, dim] with a pooled
    (and optionally L2-normalised) `sentence_embedding` [batch, dim].

    Works on any encoder graph with an `attention_mask` input, so an ONNX file
    that ends at last_hidden_state gets the same tail as ragd's own export.
    A graph that already outputs `sentence_embedding` is returned unchanged.
    The argument itself is left untouched.
    """
    if OUTPUT in [o.name for o in model.graph.output]:
        return model
    model = _copy(model)
    if "attention_mask" not in {i.name for i in model.graph.input}:
        raise ModelError("the ONNX graph has no attention_mask input, so padding cannot be excluded from pooling")
    token_states = model.graph.output[0]
    dims = token_states.type.tensor_type.shape.dim
    if len(dims) != 3:
        raise ModelError(f"the ONNX graph's first output {token_states.name!r} is not [batch, sequence, dim]")
    opset = _opset(model)
    if opset < 11:
        raise ModelError(f"the ONNX graph uses opset {opset}; ragd needs opset 11 or later")

    g = _GraphBuilder()
    states = token_states.name
    if opset >= 13:
        unsqueezed = g.op("Unsqueeze", ["attention_mask", g.const("pool/axes_last", np.array([-1], np.int64))],
                          name="pool/unsq")
    else:  # axes were an attribute before opset 13 (graphs exported for older runtimes)
        unsqueezed = g.op("Unsqueeze", ["attention_mask"], name="pool/unsq", axes=[-1])
    mask = g.op("Cast", [unsqueezed], name="pool/mask", to=TensorProto.FLOAT)  # [b, s, 1]
    axis1 = g.const("pool/axis_seq", np.array([1], np.int64))
    if pooling == "mean":
        summed = _reduce(g, "ReduceSum", g.op("Mul", [states, mask], name="pool/masked"), axis1, opset, "pool/sum")
        count = _reduce(g, "ReduceSum", mask, axis1, opset, "pool/count")
        # sentence-transformers clamps the token count at 1e-9.
        count = g.op("Max", [count, g.const("pool/min_count", np.array(1e-9, np.float32))], name="pool/clamp")
        pooled = g.op("Div", [summed, count], name="pool/mean")
    elif pooling == "max":
        # sentence-transformers sets padded positions to -1e9 before the max.
        keep = g.op("Cast", [mask], name="pool/keep", to=TensorProto.BOOL)
        filled = g.op("Where", [keep, states, g.const("pool/neg", np.array(-1e9, np.float32))], name="pool/fill")
        pooled = _reduce(g, "ReduceMax", filled, axis1, opset, "pool/max")
    elif pooling == "cls":
        pooled = g.op("Gather", [states, g.const("pool/cls_index", np.array(0, np.int64))], name="pool/cls", axis=1)
    else:
        raise ModelError(f"unsupported pooling {pooling!r}")

    if normalize:
        # torch.nn.functional.normalize: x / max(||x||, 1e-12)
        square_sum = _reduce(
            g,
            "ReduceSum",
            g.op("Mul", [pooled, pooled], name="pool/sq"),
            g.const("pool/axis_dim", np.array([-1], np.int64)),
            opset,
            "pool/sqsum",
            keepdims=1,
        )
        norm = g.op(
            "Max",
            [g.op("Sqrt", [square_sum], name="pool/l2"), g.const("pool/eps", np.array(1e-12, np.float32))],
            name="pool/l2_clamp",
        )
        pooled = g.op("Div", [pooled, norm], name="pool/normalize")

    g.nodes[-1].output[0] = OUTPUT
    model.graph.node.extend(g.nodes)
    used = {name for node in g.nodes for name in node.input}  # axes became attributes before opset 13
    model.graph.initializer.extend(i for i in g.initializers if i.name in used)
    dim = dims[2].dim_value or "dim"
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", dim]))
    return model


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _reduce(g: _GraphBuilder, op: str, x: str, axes: str, opset: int, name: str, keepdims: int = 0) -> str:
    # Axes moved from an attribute to an input: ReduceSum at opset 13, the other reductions at 18.
    if (op == "ReduceSum" and opset >= 13) or opset >= 18:
        return g.op(op, [x, axes], name=name, keepdims=keepdims)
    axes_values = [int(a) for a in numpy_helper.to_array(next(i for i in g.initializers if i.name == axes))]
    return g.op(op, [x], name=name, keepdims=keepdims, axes=axes_values)


# ----------------------------------------------------------------- variants


def save(model: onnx.ModelProto, path: Path) -> None:
    if model.ByteSize() > _PROTOBUF_LIMIT:
        raise ModelError(f"{path.name}: the model exceeds 2 GB, which a single-file ONNX model cannot hold")
    onnx.save_model(model, str(path))


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    return clone


def optimize_bert(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Fuse attention, SkipLayerNorm, Gelu and the embedding layer with ORT's
    transformer optimizer. opt_level=0 applies only the portable Python fusions,
    so the file stays valid on any CPU and on CUDA; the session still applies
    its own hardware-specific optimisations at load time.

    Returns the optimized model and the count of each fused operator."""
    from onnxruntime.transformers.optimizer import optimize_model

    # The optimizer rewrites a ModelProto in place; work on a copy.
    optimized = optimize_model(_copy(model), model_type="bert", opt_level=0, use_gpu=False)
    fused = optimized.model
    # The fused operators live in onnxruntime's contrib domain; declare it, as
    # the optimizer only does when it saves to a file itself.
    if not any(o.domain == "com.microsoft" for o in fused.opset_import):
        fused.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return fused, optimized.get_fused_operator_statistics()


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Half-precision weights and activations for the CUDA provider. Inputs,
    output and the pooling tail stay fp32: sums over up to max_tokens states
    and the L2 norm are where fp16 would lose precision."""
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapper = OnnxModel(_copy(model))  # the conversion works in place
    pool_nodes = [n.name for n in wrapper.model.graph.node if n.name.startswith(POOL_PREFIX)]
    wrapper.convert_float_to_float16(keep_io_types=True, node_block_list=pool_nodes)
    return wrapper.model
