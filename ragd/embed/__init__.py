"""Embedding: ONNX Runtime embedder, torch-free model export and provisioning.

provision_model(models_dir)          -> models_dir/all-MiniLM-L6-v2/
OnnxEmbedder(model_dir).embed(texts) -> EmbedResult(vectors, token_counts, truncated)
"""

from .errors import ModelError
from .manifest import model_info, verify_model
from .onnx_embedder import EmbedResult, OnnxEmbedder, TokenBatch, Tokens
from .provision import DEFAULT_MODEL_NAME, provision_model

__all__ = [
    "DEFAULT_MODEL_NAME",
    "EmbedResult",
    "ModelError",
    "OnnxEmbedder",
    "TokenBatch",
    "Tokens",
    "model_info",
    "provision_model",
    "verify_model",
]
