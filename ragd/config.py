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
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

MiB = 1024 * 1024


def opt(default: Any, doc: str):
    """A config option: its default and the sentence that documents it."""
    return field(default=default, metadata={"doc": doc})


@dataclass
class ServerConfig:
    listen: str = opt("127.0.0.1:50051", "gRPC listen address HOST:PORT (port 0 picks a free port).")
    grace_s: float = opt(10.0, "On SIGTERM, seconds to let in-flight calls finish before cancelling them.")
    max_message_bytes: int = opt(64 * MiB, "Largest gRPC message accepted or sent.")
    port_file: str = opt("", "If set, the bound port is written to this file once serving (for tests and supervisors).")


@dataclass
class ModelConfig:
    name: str = opt("all-MiniLM-L6-v2", "Provisioned model to load from DATA_DIR/models/NAME.")
    source: str = opt("", "Where to provision the model from when missing: a BERT-family directory "
                          "or an .onnx file; empty = the bundled all-MiniLM-L6-v2 package.")
    device: str = opt("auto", "auto (CUDA when available), cpu or cuda.")
    threads: int = opt(0, "ONNX Runtime intra-op threads (0 = one per core).")
    batch_size: int = opt(32, "Texts per inference batch.")


@dataclass
class BatchingConfig:
    max_batch_tokens: int = opt(8192, "Most padded tokens (rows x longest row) in one inference batch.")
    max_batch_texts: int = opt(64, "Most texts in one inference batch.")
    max_queue_tokens: int = opt(262144, "Tokens waiting for the model before calls get RESOURCE_EXHAUSTED "
                                        "(streams and jobs wait instead).")


@dataclass
class ChunkingConfig:
    mode: str = opt("chars", "chars (RecursiveCharacterTextSplitter semantics) or tokens (model tokens).")
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
class StoreConfig:
    map_size_gb: int = opt(256, "LMDB map size (virtual address space, not disk; the file grows as needed).")


@dataclass
class Config:
    data_dir: str = opt("./var/ragd", "Where documents, vectors, indexes and models live.")
    log_level: str = opt("info", "debug, info, warning or error.")
    server: ServerConfig = field(default_factory=ServerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)

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
        if name.startswith("RAGD_") and name != "RAGD_CONFIG":
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


def validate(cfg: Config) -> None:
    if cfg.model.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"model.device: {cfg.model.device!r} is not auto, cpu or cuda")
    if cfg.chunking.mode not in ("chars", "tokens"):
        raise ConfigError(f"chunking.mode: {cfg.chunking.mode!r} is not chars or tokens")
    c = cfg.chunking
    if c.size < 0 or c.overlap < -1 or (c.size and c.overlap >= c.size):
        raise ConfigError("chunking: need size >= 0 (0 = default), overlap >= -1 (-1 = default), overlap < size")
    host, sep, port = cfg.server.listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"server.listen: {cfg.server.listen!r} is not HOST:PORT")
    if cfg.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level: {cfg.log_level!r} is not debug, info, warning or error")
