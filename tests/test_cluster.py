"""Cluster mode end to end: one real redis-server (AOF, appendfsync always), two
`ragd worker` processes and two `ragd serve` replicas on loopback ports, shared by
the module's tests (each test adds its writes to the same cluster).

  - 5,000 documents (TEST_CLUSTER_DOCS to change it) while one worker and then
    one replica are SIGKILLed and restarted: both replicas hold every acknowledged
    document exactly once, with the chunker's chunk counts, index == store, and
    answer the same queries identically;
  - a third replica restored from a snapshot catches up from the snapshot's
    position, and the streams are trimmed below every replica and the snapshot;
  - versioned writes delivered twice (an embedded entry appended again, as by a
    worker that stalled past the claim timeout) or out of order converge;
  - Redis SIGKILLed mid-ingest: writes answer UNAVAILABLE while it is down, every
    acknowledged write survives its restart (AOF).
Every wait is on a real signal: a log line, Redis's pending entries, or a search
asking for at least a position (read your writes).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cisi
import grpc
import pytest
from cluster_procs import COLL, WAIT_S, Redis, Replica, Worker, kill_all, lmdb_docs, wait_for
from conftest import REPO, Daemon

from ragd.v1 import ragd_pb2 as pb

# A hang guard only (every wait is on a signal): on a 2-core machine at load 30, 5,000 documents
# took over 30 min (an idle one embeds them in under a minute).
pytestmark = pytest.mark.timeout(3600)

DOCS = int(os.environ.get("TEST_CLUSTER_DOCS", "1000"))
BATCH = 50
CLAIM_IDLE_S = 10.0  # above one embedding call (64 documents) on a loaded machine


# ---------------------------------------------------------------- the cluster

class Cluster:
    def __init__(self, root: Path, models_dir: Path):
        self.root = root
        self.models_dir = models_dir
        self.redis = Redis(root / "redis")
        (root / "redis").mkdir(parents=True)
        self.redis.start()
        self.env = {"RAGD_CLUSTER_REDIS_URL": self.redis.url, "RAGD_CLUSTER_CLAIM_IDLE_S": str(CLAIM_IDLE_S),
                    "RAGD_CLUSTER_TRIM_EVERY_S": "0", "RAGD_CLUSTER_READ_WAIT_S": "5", "RAGD_CLUSTER_WORKER_BATCH": "2",
                    "RAGD_SERVER_METRICS_LISTEN": "127.0.0.1:0", "RAGD_INDEX_SNAPSHOT_EVERY_OPS": "50"}
        self.workers = [Worker(root / f"worker{i}", models_dir, self.env) for i in range(2)]
        self.replicas = [self.replica(f"r{i}") for i in range(2)]
        self.acked: dict[str, tuple[int, int]] = {}   # doc id -> (version, chunks the chunker made)
        self.sent: set[str] = set()
        self.head = 0                                  # highest acknowledged position
        self.unavailable = 0

    def replica(self, name: str) -> Replica:
        env = {**self.env, "RAGD_CLUSTER_REPLICA_NAME": name}
        return Replica(Daemon(self.root / name, self.models_dir, env), name)

    def start(self) -> Cluster:
        for w in self.workers:
            w.start()
        for r in self.replicas:
            r.start()
        return self

    def close(self) -> None:
        kill_all(self.replicas, self.workers, self.redis)

    def upsert(self, docs: list[dict], fronts: list[Replica]) -> None:
        """Send one batch, to the first front that takes it (a front killed under the call,
        or Redis down: UNAVAILABLE, then the next front, until one acknowledges)."""
        req = pb.UpsertRequest(collection=COLL, wait=True, documents=[pb.Document(**d) for d in docs])
        self.sent.update(d["id"] for d in docs)
        i = 0
        while True:
            front = fronts[i % len(fronts)]
            i += 1
            try:
                resp = front.stub.Upsert(req, timeout=30)
            except (grpc.RpcError, ValueError) as exc:  # ValueError: a closed channel (replica restarting)
                if isinstance(exc, grpc.RpcError) and exc.code() not in (
                        grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                    raise
                self.unavailable += 1
                time.sleep(0.2)
                continue
            assert all(a.status == pb.ACK_STATUS_QUEUED for a in resp.acks), resp.acks
            for a in resp.acks:
                self.acked[a.id] = (a.version, a.chunks)
            self.head = max(self.head, resp.sequence)
            return


def corpus(n: int, offset: int = 0) -> list[dict]:
    """n documents from CISI: mostly a title and one sentence (one chunk, like an issue's
    note), every fiftieth the whole abstract (several chunks). Short, so that 5,000 of them
    embed in about a minute of an idle 2-core machine."""
    base = cisi.documents()
    out = []
    for i in range(offset, offset + n):
        src = base[i % len(base)]
        text = src["text"] if i % 50 == 0 else src["text"].split(". ")[0][:200]
        out.append({"id": f"doc:{i}", "title": src["title"], "text": text or src["title"], "project_id": 1,
                    "type": "issue", "version": 1})
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, models_dir):
    c = Cluster(tmp_path_factory.mktemp("cluster"), models_dir)
    try:
        yield c.start()
    finally:
        c.close()


def pending_of(r, consumer: str) -> int:
    for cons in r.xinfo_consumers(f"ragd:wlog:{COLL}", "workers"):
        if cons["name"].decode() == consumer:
            return int(cons["pending"])
    return 0


def consumer_name(w: Worker) -> str:
    line = [ln for ln in w.log().splitlines() if "embedding for the cluster" in ln][-1]
    return line.split("worker ", 1)[1].split(":", 1)[0]


def check_replica(cluster: Cluster, rep: Replica) -> dict:
    """Every acknowledged document stored exactly once with the chunker's chunk count; index == store."""
    docs = lmdb_docs(rep.daemon.data_dir)
    live = {d: rec for d, rec in docs.items() if not rec.deleted}
    lost = sorted(set(cluster.acked) - set(live))
    assert not lost, f"{rep.name} lost {len(lost)} acknowledged documents, e.g. {lost[:5]}"
    assert set(live) <= cluster.sent, f"{rep.name} holds documents never sent"
    wrong = [(d, len(live[d].chunk_ids), n) for d, (_, n) in cluster.acked.items() if len(live[d].chunk_ids) != n]
    assert not wrong, f"{rep.name}: chunk counts differ from the chunker's: {wrong[:5]}"
    st = rep.stats()
    assert st.documents == len(live)
    assert st.chunks == sum(len(r.chunk_ids) for r in live.values())
    assert st.index_vectors == st.chunks, st  # the vector index holds exactly the stored chunks
    return {"acknowledged": len(cluster.acked), "stored": len(live), "lost": len(lost)}


QUERIES = ["information retrieval evaluation", "library catalog automation", "citation analysis of journals",
           "indexing vocabulary", "user needs survey"]


# ---------------------------------------------------------------- tests

def test_kill_a_worker_and_a_replica_mid_ingest_loses_nothing(cluster):
    docs = corpus(DOCS)
    batches = [docs[i:i + BATCH] for i in range(0, len(docs), BATCH)]
    fronts = list(cluster.replicas)
    failures: list[BaseException] = []
    # The second half of the writes waits until replica r1 has been killed, so it is killed
    # mid-stream on any machine (on an idle one the whole ingest outran the kill).
    replica_killed = threading.Event()

    def write():
        try:
            for i, b in enumerate(batches):
                if i == len(batches) // 2:
                    replica_killed.wait(900)
                cluster.upsert(b, fronts[i % 2:] + fronts[:i % 2])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    r = cluster.redis.client()
    w0 = cluster.workers[0]
    victim = consumer_name(w0)
    # Kill the worker while it holds entries (pending in its name): they must be claimed by another.
    # What it held is read after the kill (a dead worker's count no longer moves): one that had
    # acknowledged its last entry in between is restarted and waited for again.
    held = 0
    while not held:
        wait_for(lambda name=victim: pending_of(r, name) > 0, "worker 0 holding entries", every=0.02)
        w0.kill()
        held = pending_of(r, victim)
        w0.start()
        victim = victim if held else consumer_name(w0)
    # Then a replica, while it applies the stream: once it has applied a fifth of the writes
    # (its position as it publishes it in Redis), before it has applied them all.
    rep = cluster.replicas[1]

    def applied_by_r1() -> int:
        raw = r.hget(f"ragd:replicas:{COLL}", rep.name)
        return json.loads(raw)["applied"] if raw else 0

    try:
        wait_for(lambda: applied_by_r1() >= len(batches) // 5, "replica r1 a fifth through the stream", every=0.05)
        at_kill = applied_by_r1()
        rep.kill()
        rep.start()
    finally:
        replica_killed.set()
    writer.join()
    assert not failures, failures
    assert held > 0, "the worker was killed holding no entries: the claim path was not exercised"
    assert at_kill < len(batches), "the replica was killed after applying everything"
    for rep in cluster.replicas:
        rep.reach(cluster.head)
    counts = [check_replica(cluster, rep) for rep in cluster.replicas]
    for rep in cluster.replicas:
        rep.reach(int(r.get(f"ragd:wseq:{COLL}")))  # unacknowledged writes too, so both hold the same
    a, b = cluster.replicas
    assert lmdb_docs(a.daemon.data_dir).keys() == lmdb_docs(b.daemon.data_dir).keys()
    for q in QUERIES:
        assert a.search(q) == b.search(q), q
    # The entries the killed worker held were claimed and embedded by a live one.
    assert any("claimed" in w.log() for w in cluster.workers)
    print(f"\ncluster kill test: {counts[0]} (replica r0), {counts[1]} (replica r1); the worker was killed "
          f"holding {held} entries, the replica after applying {at_kill} of {len(batches)} writes; "
          f"{cluster.unavailable} sends retried on another front")


def test_a_replica_restored_from_a_snapshot_catches_up_and_matches(cluster, tmp_path):
    src = cluster.replicas[0]
    # Snapshot takes a name: the backup is written under the replica's server.backup_dir.
    resp = src.stub.Snapshot(pb.SnapshotRequest(path="snap"), timeout=600)
    backup = Path(resp.path)
    assert backup.exists() and backup.name == "snap"
    new = cluster.replica("r2")
    subprocess.run([sys.executable, "-m", "ragd.cli", "restore", str(backup), "--data-dir",
                    str(new.daemon.data_dir)], check=True, cwd=REPO, capture_output=True)
    r = cluster.redis.client()
    stream_len_before = r.xlen(f"ragd:elog:{COLL}")
    # More writes while the new replica starts: it must apply the snapshot's tail and these.
    extra = corpus(200, offset=DOCS)
    new.start()
    cluster.replicas.append(new)
    for i in range(0, len(extra), BATCH):
        cluster.upsert(extra[i:i + BATCH], cluster.replicas[:2])
    for rep in cluster.replicas:
        rep.reach(cluster.head)
    for rep in cluster.replicas:
        check_replica(cluster, rep)
    for q in QUERIES:
        assert new.search(q) == src.search(q), q
    info = json.loads(subprocess.run([sys.executable, "-m", "ragd.cli", "cluster", "status", "--json",
                                      "--redis-url", cluster.redis.url], check=True, cwd=REPO,
                                     capture_output=True, text=True).stdout)
    coll = next(c for c in info["collections"] if c["name"] == COLL)
    assert {rep["name"] for rep in coll["replicas"]} == {"r0", "r1", "r2"}
    assert str(backup.resolve()) in {s["path"] for s in info["snapshots"]}
    # Trimming keeps everything above the lowest of the replicas' and the snapshot's positions.
    out = subprocess.run([sys.executable, "-m", "ragd.cli", "cluster", "trim", "--redis-url", cluster.redis.url],
                         check=True, cwd=REPO, capture_output=True, text=True).stdout
    removed = json.loads(out)[COLL]["embedded"]
    assert 0 < removed < stream_len_before
    floor = r.get(f"ragd:trimmed:{COLL}").decode()
    first = r.xrange(f"ragd:elog:{COLL}", count=1)[0][0].decode()
    assert first == floor  # the lowest position is kept, everything below it is gone
    snap_pos = json.loads(r.hget("ragd:snapshots", str(backup.resolve())))["positions"][COLL]
    assert floor == min([snap_pos] + [rep["stream_id"] for rep in coll["replicas"]],
                        key=lambda s: tuple(int(x) for x in s.split("-")))


def test_metrics_and_cluster_status_report_streams_workers_and_replicas(cluster):
    head = int(cluster.redis.client().get(f"ragd:wseq:{COLL}"))
    for rep in cluster.replicas:
        rep.reach(head)
    m = cluster.replicas[0].metrics()
    c = f'collection="{COLL}"'
    assert m[f"ragd_cluster_applied_sequence{{{c}}}"] == head == m[f"ragd_cluster_head_sequence{{{c}}}"]
    assert m[f"ragd_cluster_replica_lag_entries{{{c}}}"] == 0
    assert m[f"ragd_cluster_write_backlog{{{c}}}"] == 0  # every write embedded and acknowledged
    assert m[f'ragd_cluster_stream_length{{{c},stream="embedded"}}'] > 0
    assert m["ragd_cluster_connected"] == 1 and m["ragd_cluster_broken_collections"] == 0
    assert m["ragd_cluster_apply_delay_seconds_count"] > 0
    assert any(k.startswith("ragd_cluster_pending_entries{") for k in m)  # one series per consumer
    r = cluster.redis.client()
    # Replicas publish their positions about once a second: wait for what the status will print.
    wait_for(lambda: all(json.loads(v)["applied"] == head for v in r.hgetall(f"ragd:replicas:{COLL}").values()),
             "every replica's published position at the head")
    out = subprocess.run([sys.executable, "-m", "ragd.cli", "cluster", "status", "--redis-url", cluster.redis.url],
                         check=True, cwd=REPO, capture_output=True, text=True).stdout
    assert f"collection {COLL}: {head} writes" in out
    for rep in cluster.replicas:
        assert f"replica {rep.name}: applied {head} (0 behind" in out, out


def test_versioned_writes_twice_and_out_of_order_converge(cluster):
    a, b = cluster.replicas[0], cluster.replicas[1]
    r = cluster.redis.client()

    def send(doc_id: str, version: int, front: Replica, text: str | None = None) -> int:
        cluster.sent.add(doc_id)
        resp = front.stub.Upsert(pb.UpsertRequest(collection=COLL, wait=True, documents=[pb.Document(
            id=doc_id, version=version, title=f"{doc_id} v{version}",
            text=text or f"Convergence probe {doc_id} at version {version}: ordering across workers.")]),
            timeout=30)
        return resp.sequence

    # Newest first, then older ones through the other front, then the newest again.
    send("conv:1", 3, a)
    send("conv:1", 1, b)
    send("conv:1", 2, a)
    send("conv:1", 3, b)
    # A versioned delete overtaking the upsert it deletes (older version after it).
    cluster.sent.add("conv:2")
    a.stub.Delete(pb.DeleteRequest(collection=COLL, refs=[pb.DocumentRef(id="conv:2", version=5)]), timeout=30)
    seq = send("conv:2", 4, b)
    for rep in cluster.replicas:
        rep.reach(seq)
    # Deliver an applied upsert (of version 1) twice more, as a worker that stalled past the claim
    # timeout would: appended again to the embedded stream under its original write-log position.
    old = next(e for e in r.xrevrange(f"ragd:elog:{COLL}", count=200)
               if b"conv:1 v1" in e[1][b"b"])
    r.xadd(f"ragd:elog:{COLL}", old[1])
    r.xadd(f"ragd:elog:{COLL}", old[1])
    last = send("conv:3", 1, a)
    for rep in cluster.replicas:
        rep.reach(last)
        docs = lmdb_docs(rep.daemon.data_dir)
        assert docs["conv:1"].version == 3 and docs["conv:1"].document.title == "conv:1 v3", rep.name
        assert docs["conv:2"].deleted and docs["conv:2"].version == 5, rep.name
    states = [{d: (rec.version, len(rec.chunk_ids)) for d, rec in lmdb_docs(rep.daemon.data_dir).items()}
              for rep in cluster.replicas]
    assert all(s == states[0] for s in states)


def test_redis_killed_mid_ingest_keeps_every_acknowledged_write(cluster):
    docs = corpus(600, offset=DOCS + 200)
    fronts = cluster.replicas[:2]
    before = len(cluster.acked)
    failures: list[BaseException] = []
    first_half = threading.Event()

    def write():
        try:
            for i in range(0, len(docs), BATCH):
                cluster.upsert(docs[i:i + BATCH], fronts)
                if i >= len(docs) // 3:
                    first_half.set()
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)
        first_half.set()

    writer = threading.Thread(target=write)
    writer.start()
    first_half.wait(WAIT_S)
    cluster.redis.kill()
    # While Redis is down a write answers UNAVAILABLE (nothing half-written), and searches go on.
    with pytest.raises(grpc.RpcError) as err:
        fronts[0].stub.Upsert(pb.UpsertRequest(collection=COLL, wait=True, documents=[
            pb.Document(id="down:1", text="written while Redis is down")]), timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
    assert fronts[0].search("information retrieval")
    cluster.redis.start()
    writer.join()
    assert not failures, failures
    assert len(cluster.acked) == before + len(docs)
    for rep in cluster.replicas:
        rep.reach(cluster.head)
    counts = [check_replica(cluster, rep) for rep in cluster.replicas]
    print(f"\nRedis restart: {counts}, {cluster.unavailable} sends retried")
