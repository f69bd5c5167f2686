"""Real processes of a ragd cluster for tests and benchmarks/cluster.py: a redis-server
with AOF, `ragd worker`s, `ragd serve` replicas in cluster mode, and a read of a running
replica's LMDB. Every wait is on a real signal (PING, a log line, a search asking for at
least a position)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import lmdb
from conftest import REPO, Daemon, free_port

from ragd.store.records import decode_collection, decode_doc
from ragd.v1 import ragd_pb2 as pb
from ragd.v1 import ragd_pb2_grpc

COLL = "default"
WAIT_S = 900.0  # a generous bound on waiting for real signals on a loaded 2-core machine


class Redis:
    """A real redis-server with AOF (appendfsync always) on a free loopback port."""

    def __init__(self, workdir: Path):
        self.exe = shutil.which("redis-server")
        assert self.exe, "redis-server is not installed (Debian package redis-server; scripts/setup.sh --test)"
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.workdir), "--protected-mode", "yes"],
            stdout=open(self.workdir / "redis.log", "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self._pong():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{(self.workdir / 'redis.log').read_text()}")
            time.sleep(0.05)
        return self

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def client(self):
        import redis
        return redis.Redis.from_url(self.url)


class Worker:
    """A real `ragd worker` subprocess."""

    def __init__(self, data_dir: Path, models_dir: Path, env: dict[str, str]):
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        if not (data_dir / "models").exists():
            (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}  # as conftest.Daemon
        self.env = {**inherited, "RAGD_MODEL_THREADS": "1", **env}
        self.log_path = data_dir / "worker.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Worker:
        self.starts += 1
        mark = f"worker-start-{self.starts}"
        with open(self.log_path, "a") as fh:
            fh.write(mark + "\n")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "ragd.cli", "worker", "--data-dir", str(self.data_dir)],
                                     stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO)
        log.close()
        wait_for(lambda: "embedding for the cluster" in self.log().split(mark, 1)[1] or self._dead(),
                 "worker ready")
        return self

    def _dead(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
        return False

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def kill_all(replicas, workers, redis: Redis) -> None:
    """Stop a cluster's processes (SIGKILL: a test's data dirs are thrown away)."""
    for r in replicas:
        r.kill()
    for w in workers:
        w.kill()
    redis.kill()


def wait_for(cond, what: str, timeout: float = WAIT_S, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(every)


class Replica:
    """A `ragd serve` replica in cluster mode, with a gRPC stub."""

    def __init__(self, daemon: Daemon, name: str):
        self.daemon = daemon
        self.name = name
        self.channel: grpc.Channel | None = None
        self.stub: ragd_pb2_grpc.RagServiceStub | None = None

    def start(self) -> Replica:
        self.daemon.start()
        self.channel = grpc.insecure_channel(self.daemon.address)
        self.stub = ragd_pb2_grpc.RagServiceStub(self.channel)
        return self

    def kill(self) -> None:
        self.daemon.kill()
        if self.channel is not None:
            self.channel.close()

    def stats(self) -> pb.CollectionStats:
        return self.stub.Stats(pb.StatsRequest(collection=COLL), timeout=30).collections[0]

    def reach(self, seq: int) -> None:
        """Read your writes: a search that asks for at least `seq` (retried while UNAVAILABLE)."""
        def ok() -> bool:
            try:
                self.stub.Search(pb.SearchRequest(collection=COLL, query="probe", top_k=1, min_sequence=seq,
                                                  mode=pb.SEARCH_MODE_KEYWORD), timeout=60)
                return True
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INVALID_ARGUMENT):
                    return False  # behind, or the collection not created here yet
                raise
        wait_for(ok, f"replica {self.name} at position {seq}", every=0.2)

    def metrics(self) -> dict[str, float]:
        """The replica's /metrics (server.metrics_listen on port 0), by sample."""
        import urllib.request
        port = self.daemon.metrics_port  # read from its log by conftest.Daemon
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line and not line.startswith("#")}

    def search(self, query: str, top_k: int = 10) -> list[tuple[str, float]]:
        resp = self.stub.Search(pb.SearchRequest(collection=COLL, query=query, top_k=top_k,
                                                 mode=pb.SEARCH_MODE_HYBRID), timeout=60)
        return [(h.document_id, round(h.score, 4)) for h in resp.hits]


def lmdb_docs(data_dir: Path, collection: str = COLL) -> dict:
    """Every document record of a collection, read from a running replica's LMDB (read-only)."""
    env = lmdb.open(str(data_dir / "store"), readonly=True, max_dbs=8, lock=True)
    try:
        with env.begin() as txn:
            colls = env.open_db(b"collections", txn=txn, create=False)
            docs_db = env.open_db(b"docs", txn=txn, create=False)
            raw = txn.get(collection.encode(), db=colls)
            meta = decode_collection(collection, raw)
            prefix = meta.id.to_bytes(4, "big")
            out = {}
            cur = txn.cursor(db=docs_db)
            if cur.set_range(prefix):
                for k, v in cur:
                    k = bytes(k)
                    if not k.startswith(prefix):
                        break
                    out[k[4:].decode()] = decode_doc(k[4:].decode(), v)
            return out
    finally:
        env.close()
