"""ragd: retrieval daemon giving RedMica and Redmine semantic search.

Kept import-light on purpose: the client package and the CLI import this
module, and must not pay for ONNX Runtime or FAISS at import time.
"""

__version__ = "0.1.0"
