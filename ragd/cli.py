"""The `ragd` command: serve, worker, cluster, health, index, search, ask, snapshot, restore, reindex,
model, doctor, token, tls, config.

Flags override RAGD_* environment variables, which override the TOML file
(--config or $RAGD_CONFIG), which overrides the defaults (see ragd/config.py).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from ragd import __version__
from ragd.config import Config, ConfigError, env_name, iter_options, load_config

DEFAULT_ADDRESS = "127.0.0.1:50051"
# Read by `ragd health` only (a container's health check): the name the daemon's certificate is checked against.
TLS_SERVER_NAME_VARIABLE = "RAGD_TLS_SERVER_NAME"


def _config(args) -> Config:
    overrides = {
        "data_dir": getattr(args, "data_dir", None),
        "log_level": getattr(args, "log_level", None),
        "server.listen": getattr(args, "listen", None),
        "server.port_file": getattr(args, "port_file", None),
        "model.device": getattr(args, "device", None),
        "model.source": getattr(args, "source", None),
        "cluster.redis_url": getattr(args, "redis_url", None),
    }
    return load_config(getattr(args, "config", None), overrides=overrides)


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _client(args, **kwargs):
    """A RagClient from the client flags (each defaults to its RAGD_* variable)."""
    from ragd_client import RagClient
    return RagClient(args.address, token=args.token, ca_file=args.ca_file, cert_file=args.cert_file,
                     key_file=args.key_file, **kwargs)


# ---------------------------------------------------------------- serve

def cmd_serve(args) -> int:
    cfg = _config(args)
    _setup_logging(cfg.log_level)
    from ragd.server import serve
    return asyncio.run(serve(cfg))


# ---------------------------------------------------------------- cluster

def cmd_worker(args) -> int:
    cfg = _config(args)
    _setup_logging(cfg.log_level)
    from ragd.cluster.worker import run_worker
    return run_worker(cfg)


def cmd_cluster(args) -> int:
    """The cluster's state from Redis: streams, workers, replicas, snapshots."""
    from ragd.cluster import status, streams
    from ragd.cluster.snapshots import forget_snapshot
    from ragd.cluster.trim import trim
    cfg = _config(args)
    c = cfg.cluster
    if not c.redis_url:
        print("ragd cluster: set cluster.redis_url (--redis-url or RAGD_CLUSTER_REDIS_URL)", file=sys.stderr)
        return 2
    keys = streams.Keys(c.prefix)
    r = streams.connect(c.redis_url, c.redis_timeout_s)
    try:
        if args.cluster_cmd == "status":
            states = status.cluster_state(r, keys)
            snaps = status.snapshots(r, keys)
            if args.json:
                from dataclasses import asdict
                print(json.dumps({"collections": [asdict(s) | {"backlog": s.backlog} for s in states],
                                  "snapshots": snaps}, indent=2))
            else:
                print(status.render(states, snaps))
        elif args.cluster_cmd == "forget":
            if not args.name:
                print("ragd cluster forget: name the replica (or --snapshot PATH)", file=sys.stderr)
                return 2
            gone = [forget_snapshot(r, keys, args.name)] if args.snapshot else \
                [bool(r.hdel(keys.replicas(col), args.name)) for col in streams.collections(r, keys)]
            if not any(gone):
                print(f"ragd cluster forget: {args.name!r} is not registered", file=sys.stderr)
                return 1
            print(f"forgot {args.name}")
        elif args.cluster_cmd == "trim":
            removed = trim(r, keys, streams.collections(r, keys), c.keep_snapshots)
            print(json.dumps({col: {"embedded": e, "write_log": w} for col, (e, w) in removed.items()}))
    except streams.redis_errors() as exc:
        print(f"ragd cluster: Redis at {c.redis_url} is unreachable: {exc}", file=sys.stderr)
        return 1
    finally:
        r.close()
    return 0


# ---------------------------------------------------------------- index

def _read_jsonl(path: Path):
    """Yields (line number, document dict); raises SystemExit naming the line on bad input."""
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not isinstance(doc.get("text"), str):
                raise SystemExit(f"{path}:{lineno}: need an object with string fields \"id\" and \"text\"")
            yield lineno, doc


_DOC_FIELDS = {"id", "title", "text", "project_id", "type", "is_private", "author_id", "updated_at",
               "version", "metadata", "viewer_ids", "tracker_id", "owner_ids", "private_note"}


def cmd_index(args) -> int:
    from tqdm import tqdm

    from ragd_client import RagError
    path = Path(args.file)
    if not path.exists():
        raise SystemExit(f"{path}: no such file")
    # First pass: parse everything, so a bad line stops the run before anything is sent.
    total = 0
    for _, doc in _read_jsonl(path):
        unknown = set(doc) - _DOC_FIELDS
        if unknown:
            raise SystemExit(f"{path}: unknown field(s) {sorted(unknown)}; known: {sorted(_DOC_FIELDS)}")
        total += 1

    def batches():
        batch = []
        for _, doc in _read_jsonl(path):
            batch.append(doc)
            if len(batch) == args.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    counts: dict[str, int] = {}
    # No deadline on the whole stream: a large file takes as long as it takes
    # (the progress bar shows it moving; each batch is acked as it lands).
    with _client(args, collection=args.collection, stream_timeout=None) as client, \
            tqdm(total=total, unit="doc", desc="indexing", disable=args.quiet) as bar:
        try:
            for result in client.index_stream(batches()):
                for ack in result.acks:
                    counts[ack.status] = counts.get(ack.status, 0) + 1
                bar.update(len(result.acks))
        except RagError as exc:
            print(f"ragd index: {exc}", file=sys.stderr)
            return 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"{total} documents from {path}: {summary}")
    return 0


# ---------------------------------------------------------------- search

def cmd_search(args) -> int:
    from ragd_client import RagError
    flt = {}
    if args.project:
        flt["project_ids"] = args.project
    if args.type:
        flt["types"] = args.type
    with _client(args, collection=args.collection) as client:
        try:
            result = client.search(args.query, top_k=args.top_k, filter=flt or None, mode=args.mode,
                                   group_by_document=not args.chunks)
        except RagError as exc:
            print(f"ragd search: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps([{"score": h.score, "document_id": h.document_id, "title": h.document.title,
                           "start": h.start, "end": h.end, "text": h.text} for h in result.hits], indent=2))
        return 0
    width = max([len(h.document_id) for h in result.hits] + [8])
    print(f"{'score':>6}  {'document':<{width}}  text")
    for h in result.hits:
        title = f"{h.document.title} — " if h.document.title else ""
        snippet = " ".join((title + h.text).split())
        print(f"{h.score:6.3f}  {h.document_id:<{width}}  {snippet[:100]}")
    t = result.timings
    print(f"{len(result.hits)} hits, mode {result.mode}, {t.total_ms:.1f} ms "
          f"(embed {t.embed_ms:.1f}, search {t.search_ms:.1f})", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- ask

def cmd_ask(args) -> int:
    """Stream an answer to stdout; citations, grounding and timings to stderr (a check of
    the [answer] set-up from the shell)."""
    from ragd_client import AnswerContext, AnswerDelta, AnswerDone, RagError
    flt = {"project_ids": args.project or [], "user_id": args.user}
    passages, done = [], None
    with _client(args, collection=args.collection) as client:
        try:
            for event in client.answer(args.question, top_k=args.top_k, filter=flt, max_tokens=args.max_tokens,
                                       language=args.language):
                if isinstance(event, AnswerContext):
                    passages = event.passages
                elif isinstance(event, AnswerDelta):
                    print(event.text, end="", flush=True)
                elif isinstance(event, AnswerDone):
                    done = event
        except RagError as exc:
            print(f"\nragd ask: {exc}", file=sys.stderr)
            return 1
    print()
    if done is None:
        return 1
    for c in done.citations:
        title = passages[c.passage - 1].document.title
        print(f"[{c.passage}] {c.document_id} {title} (chars {c.start}-{c.end}, score {c.score:.3f})", file=sys.stderr)
    t, u = done.timings, done.usage
    print(f"grounding {done.grounding}, {len(passages)} passages, first token {t.first_token_ms:.0f} ms "
          f"(retrieval {t.retrieval_ms:.0f}), total {t.total_ms:.0f} ms, tokens {u.prompt_tokens} + "
          f"{u.completion_tokens}, model {done.model or '?'}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- model

def cmd_model(args) -> int:
    from ragd.embed.errors import ModelError
    from ragd.embed.provision import model_info, provision_model, verify_model
    from ragd.engine.datadir import DataDir
    cfg = _config(args)
    _setup_logging(cfg.log_level)
    models_dir = DataDir(cfg.data_path).models
    model_dir = models_dir / cfg.model.name
    try:
        if args.model_cmd == "export":
            from ragd.engine.engine import model_source
            out = provision_model(models_dir, model_source(cfg), force=args.force,
                                  packages=cfg.model.packages_dir or None)
            if args.quantize == "int8":  # a separate step over the exported fp32 model
                from ragd.embed.manifest import INT8_FILE, read_manifest
                from ragd.embed.quantize import add_int8_variant
                if args.force or INT8_FILE not in read_manifest(out)["files"]:
                    add_int8_variant(out, keep_attention=args.keep_attention)
            print(json.dumps(model_info(out), indent=2))
        elif args.model_cmd == "verify":
            problems = verify_model(model_dir)
            for p in problems:
                print(f"{model_dir}: {p}", file=sys.stderr)
            if problems:
                return 1
            print(f"{model_dir}: ok")
        else:
            print(json.dumps(model_info(model_dir), indent=2))
    except ModelError as exc:
        print(f"ragd model {args.model_cmd}: {exc}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- doctor

def cmd_doctor(args) -> int:
    """Which execution provider, graph and index the daemon would use here, and why not a GPU."""
    from ragd.doctor import diagnose, render
    cfg = _config(args)
    report = diagnose(cfg)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if report["problems"] else 0


# ---------------------------------------------------------------- health

def cmd_health(args) -> int:
    """grpc.health.v1 check of a daemon (container health checks, Kubernetes exec probes): 0 when
    SERVING. Health is open (no token), but a daemon with TLS is reached over TLS: --ca-file (or
    $RAGD_CA_FILE) turns it on, --server-name (or $RAGD_TLS_SERVER_NAME) is the name its
    certificate is checked against when that is not the address's host (a probe dials 127.0.0.1,
    the certificate names the Service), and a daemon asking for client certificates (mutual TLS)
    gets --cert-file/--key-file."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from ragd_client.security import Credentials, sync_channel
    try:
        creds = Credentials.resolve("", ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file)
    except ValueError as exc:
        print(f"ragd health: {exc}", file=sys.stderr)
        return 2
    server_name = args.server_name or os.environ.get(TLS_SERVER_NAME_VARIABLE, "")
    options = [("grpc.ssl_target_name_override", server_name)] if creds.tls and server_name else []
    try:
        channel, raw = sync_channel(args.address, creds, options)
    except OSError as exc:  # an unreadable CA or certificate file
        print(f"ragd health: {exc}", file=sys.stderr)
        return 2
    with raw:
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                             timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"ragd health: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    print(status)
    return 0 if resp.status == health_pb2.HealthCheckResponse.SERVING else 1


# ---------------------------------------------------------------- snapshot / restore

def cmd_snapshot(args) -> int:
    """Ask a running daemon for a consistent backup (Snapshot RPC) into its backup directory."""
    from ragd_client import RagError
    with _client(args) as client:
        try:
            path, sequence, size = client.snapshot(args.name, timeout=args.timeout)
        except RagError as exc:
            print(f"ragd snapshot: {exc}", file=sys.stderr)
            return 1
    print(json.dumps({"path": path, "sequence": sequence, "bytes": size}))
    return 0


def cmd_reindex(args) -> int:
    """Re-embed a collection with another model in the running daemon (Reindex RPC), with a
    progress bar; searches are answered from the old vectors until the switch."""
    import time

    from tqdm import tqdm

    from ragd_client import RagError
    bar = None
    with _client(args) as client:
        try:
            while True:
                r = client.reindex(args.collection, args.model, timeout=600)
                if bar is None:
                    bar = tqdm(total=r.documents_total, unit="doc", disable=args.quiet,
                               desc=f"{r.collection}: {r.from_model} -> {r.to_model}")
                bar.update(r.documents_done - bar.n)
                if r.state != "running" or args.no_wait:
                    break
                time.sleep(args.poll)
        except RagError as exc:
            print(f"ragd reindex: {exc}", file=sys.stderr)
            return 1
        finally:
            if bar is not None:
                bar.close()
    print(json.dumps({"collection": r.collection, "from": r.from_model, "to": r.to_model,
                      "state": r.state, "documents": r.documents_done, "chunks": r.chunks,
                      **({"error": r.error} if r.error else {})}))
    return 0 if r.state != "failed" else 1


def cmd_restore(args) -> int:
    """Bring a backup back into the data dir (the daemon must be stopped)."""
    from ragd.engine.datadir import restore
    cfg = _config(args)
    _setup_logging(cfg.log_level)
    try:
        seq = restore(Path(args.backup), cfg.data_path, force=args.force)
    except (OSError, ValueError, KeyError) as exc:
        print(f"ragd restore: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"data_dir": str(cfg.data_path), "sequence": seq}))
    return 0


# ---------------------------------------------------------------- token / tls

def cmd_token(args) -> int:
    """Manage the daemon's tokens file (auth.tokens_file); a running daemon picks changes up by itself."""
    from ragd.security.tokens import TokenFileError, create_token, read_tokens, revoke_token
    path = args.tokens_file or _config(args).auth.tokens_file
    if not path:
        raise SystemExit("ragd token: no tokens file: pass --tokens-file or set auth.tokens_file")
    try:
        if args.token_cmd == "create":
            if not args.name:
                raise SystemExit("ragd token create NAME --scopes search,write")
            token = create_token(path, args.name, args.scopes)
            print(token)
            print(f"token {args.name!r} ({args.scopes}) added to {path}; it is shown once and stored only "
                  "hashed", file=sys.stderr)
        elif args.token_cmd == "revoke":
            if not args.name:
                raise SystemExit("ragd token revoke NAME")
            revoke_token(path, args.name)
            print(f"token {args.name!r} revoked", file=sys.stderr)
        else:
            for entry in read_tokens(path):
                print(f"{entry.name}\t{','.join(sorted(entry.scopes))}")
    except TokenFileError as exc:
        print(f"ragd token {args.token_cmd}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_tls(args) -> int:
    """A throw-away CA with a server certificate (and client ones), for trying TLS out."""
    from ragd.security.tls import make_self_signed
    files = make_self_signed(args.out, args.host or ["localhost", "127.0.0.1"], args.client or [], days=args.days)
    print(json.dumps({k: str(v) for k, v in files.items()}, indent=2))
    return 0


# ---------------------------------------------------------------- config

def cmd_config(args) -> int:
    if args.markdown:
        print("| option | environment | default | meaning |\n| --- | --- | --- | --- |")
        for section, key, value, doc in iter_options(Config()):
            name = f"{section}.{key}" if section else key
            print(f"| `{name}` | `{env_name(section, key)}` | `{value!r}` | {doc} |")
        return 0
    cfg = _config(args)
    for section, key, value, _ in iter_options(cfg):
        print(f"{section + '.' if section else ''}{key} = {value!r}")
    return 0


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ragd", description="Retrieval daemon for RedMica/Redmine semantic search.")
    p.add_argument("--version", action="version", version=f"ragd {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    def daemon_flags(sp):
        sp.add_argument("--config", help="TOML configuration file (default: $RAGD_CONFIG)")
        sp.add_argument("--data-dir", help="data directory (default ./var/ragd)")
        sp.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    s = sub.add_parser("serve", help="run the gRPC daemon")
    daemon_flags(s)
    s.add_argument("--listen", help=f"HOST:PORT to listen on (default {DEFAULT_ADDRESS}; port 0 = any free port)")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], help="inference device (default auto)")
    s.add_argument("--port-file", help="write the bound port here once SERVING")
    s.add_argument("--redis-url", help="cluster mode: the Redis of the write log (cluster.redis_url)")
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("worker", help="cluster mode: chunk and embed writes from the write log (stateless; "
                                      "run as many as the load needs)")
    daemon_flags(s)
    s.add_argument("--redis-url", help="the Redis of the write log (cluster.redis_url)")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], help="inference device (default auto)")
    s.set_defaults(fn=cmd_worker)

    s = sub.add_parser("cluster", help="cluster mode: status of streams, workers and replicas; forget a replica "
                                       "or snapshot; trim the streams now")
    s.add_argument("cluster_cmd", choices=["status", "forget", "trim"])
    s.add_argument("name", nargs="?", default="", help="forget: the replica name (or snapshot path with --snapshot)")
    daemon_flags(s)
    s.add_argument("--redis-url", help="the Redis of the write log (cluster.redis_url)")
    s.add_argument("--snapshot", action="store_true", help="forget: NAME is a snapshot path")
    s.add_argument("--json", action="store_true", help="status: print JSON")
    s.set_defaults(fn=cmd_cluster)

    def connection_flags(sp):
        sp.add_argument("--address", help=f"daemon address (default $RAGD_ADDRESS or {DEFAULT_ADDRESS})")
        sp.add_argument("--token", help="bearer token (default $RAGD_TOKEN)")
        sp.add_argument("--ca-file", help="CA bundle verifying the daemon's certificate; turns TLS on "
                                          "(default $RAGD_CA_FILE)")
        sp.add_argument("--cert-file", help="client certificate for mutual TLS (default $RAGD_CLIENT_CERT_FILE)")
        sp.add_argument("--key-file", help="its private key (default $RAGD_CLIENT_KEY_FILE)")

    def client_flags(sp):
        connection_flags(sp)
        sp.add_argument("--collection", default="default")

    s = sub.add_parser("index", help="index a JSON-lines file of documents (one object per line)")
    s.add_argument("file")
    client_flags(s)
    s.add_argument("--batch-size", type=int, default=64, help="documents per stream message (default 64)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_index)

    s = sub.add_parser("search", help="search and print a table of hits")
    s.add_argument("query")
    client_flags(s)
    s.add_argument("--top-k", type=int, default=10)
    s.add_argument("--mode", default="auto", choices=["auto", "vector", "keyword", "hybrid"])
    s.add_argument("--project", type=int, action="append", help="restrict to project id (repeatable)")
    s.add_argument("--type", action="append", help="restrict to document type (repeatable)")
    s.add_argument("--chunks", action="store_true", help="show every matching chunk, not one per document")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(fn=cmd_search)

    s = sub.add_parser("ask", help="answer a question with citations, streamed (needs answer.model_url on the "
                                   "daemon)")
    s.add_argument("question")
    client_flags(s)
    s.add_argument("--project", type=int, action="append", help="restrict to project id (repeatable)")
    s.add_argument("--user", type=int, default=0, help="the asking user's id (their private documents)")
    s.add_argument("--top-k", type=int, default=0, help="passages given to the model (default: the daemon's)")
    s.add_argument("--max-tokens", type=int, default=0, help="most tokens generated (default: the daemon's)")
    s.add_argument("--language", default="", help="answer language, e.g. de or Japanese (default: the question's)")
    s.set_defaults(fn=cmd_ask)

    s = sub.add_parser("model", help="provision, inspect or verify the embedding model")
    s.add_argument("model_cmd", choices=["info", "export", "verify"])
    daemon_flags(s)
    s.add_argument("--source", help="BERT-family directory or .onnx file (default: bundled all-MiniLM-L6-v2)")
    s.add_argument("--force", action="store_true", help="export again even if provisioned")
    s.add_argument("--quantize", choices=["int8"], help="export: also write the int8 CPU variant (model.int8.onnx), "
                                                         "run when model.precision is int8")
    s.add_argument("--keep-attention", action="store_true",
                   help="with --quantize int8: leave the attention blocks in float (slower; see the README)")
    s.set_defaults(fn=cmd_model)

    s = sub.add_parser("doctor", help="show the execution provider, model graph and index the daemon would use "
                                      "here, and why a GPU is not used")
    daemon_flags(s)
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], help="inference device to check (default: config)")
    s.add_argument("--json", action="store_true", help="print the facts and decisions as JSON")
    s.set_defaults(fn=cmd_doctor)

    s = sub.add_parser("snapshot", help="ask the daemon for a consistent backup of its data dir (admin scope)")
    s.add_argument("name", help="the backup's name: a new directory under the daemon's server.backup_dir")
    connection_flags(s)
    s.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait (default 3600)")
    s.set_defaults(fn=cmd_snapshot)

    s = sub.add_parser("reindex", help="re-embed a collection with another model in the running daemon, "
                                       "without downtime (then set model.name to it)")
    s.add_argument("collection")
    s.add_argument("--model", required=True, help="a provisioned model or a fetched model family, e.g. e5-small-v2")
    connection_flags(s)
    s.add_argument("--no-wait", action="store_true", help="start it and return (run again for progress)")
    s.add_argument("--poll", type=float, default=1.0, help="seconds between progress calls (default 1)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_reindex)

    s = sub.add_parser("health", help="exit 0 when the daemon's grpc.health.v1 status is SERVING (health checks)")
    s.add_argument("--address", default=DEFAULT_ADDRESS, help=f"daemon address (default {DEFAULT_ADDRESS})")
    s.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    s.add_argument("--ca-file", help="CA bundle verifying the daemon's certificate; turns TLS on "
                                     "(default $RAGD_CA_FILE). No token: health is open")
    s.add_argument("--server-name", help="the name the daemon's certificate is checked against, when not the "
                                         "address's host, e.g. the Service a probe's 127.0.0.1 stands for "
                                         f"(default ${TLS_SERVER_NAME_VARIABLE})")
    s.add_argument("--cert-file", help="client certificate, for a daemon with mutual TLS "
                                       "(default $RAGD_CLIENT_CERT_FILE)")
    s.add_argument("--key-file", help="its private key (default $RAGD_CLIENT_KEY_FILE)")
    s.set_defaults(fn=cmd_health)

    s = sub.add_parser("restore", help="restore a backup made by `ragd snapshot` into the data dir "
                                       "(daemon stopped)")
    s.add_argument("backup", help="the backup directory")
    daemon_flags(s)
    s.add_argument("--force", action="store_true", help="move an existing store/index aside instead of refusing")
    s.set_defaults(fn=cmd_restore)

    s = sub.add_parser("token", help="create, list or revoke bearer tokens in the tokens file")
    s.add_argument("token_cmd", choices=["create", "list", "revoke"])
    s.add_argument("name", nargs="?", help="the token's name (create, revoke)")
    s.add_argument("--scopes", default="search", help="create: comma-separated search, write, admin, metrics "
                                                      "(default search)")
    s.add_argument("--tokens-file", help="the tokens file (default: auth.tokens_file of the configuration)")
    daemon_flags(s)
    s.set_defaults(fn=cmd_token)

    s = sub.add_parser("tls", help="make a throw-away CA and certificates for trying TLS out")
    s.add_argument("tls_cmd", choices=["selfsigned"])
    s.add_argument("--out", required=True, help="directory to write ca.pem, server.pem, server.key into")
    s.add_argument("--host", action="append", help="DNS name or IP the server certificate is for (repeatable; "
                                                   "default localhost and 127.0.0.1)")
    s.add_argument("--client", action="append", help="also make a client certificate NAME.pem/NAME.key "
                                                     "(mutual TLS; repeatable)")
    s.add_argument("--days", type=int, default=365)
    s.set_defaults(fn=cmd_tls)

    s = sub.add_parser("config", help="print the effective configuration")
    daemon_flags(s)
    s.add_argument("--markdown", action="store_true", help="print the options table for the README")
    s.set_defaults(fn=cmd_config)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args) or 0
    except ConfigError as exc:
        print(f"ragd: configuration: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
