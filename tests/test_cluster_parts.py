"""Cluster mode's pure parts: the stream position a replica commits with each write, the
entries' encoding, how a worker groups entries into embedding calls, the config checks."""
from __future__ import annotations

import numpy as np
import pytest

from ragd.cluster import streams
from ragd.cluster.streams import DELETE, FAILED, UPSERT, EmbeddedDoc, EmbeddedEntry, WriteEntry
from ragd.cluster.worker import _parts
from ragd.config import ConfigError, load_config
from ragd.domain import Document, DocumentRef
from ragd.store.records import LogPosition, decode_position, encode_position


def test_position_advances_over_out_of_order_sequences_and_knows_duplicates():
    pos = LogPosition()
    for seq in (2, 4, 1):
        assert not pos.has(seq)
        pos.add(seq)
    assert (pos.applied, pos.above) == (2, [4])
    assert pos.has(1) and pos.has(2) and pos.has(4) and not pos.has(3)
    pos.add(3)
    assert (pos.applied, pos.above) == (4, [])
    pos.add(2)  # a duplicate changes nothing
    assert (pos.applied, pos.above) == (4, [])
    pos.stream_id = "17-3"
    assert decode_position(encode_position(pos)) == pos


def test_entries_round_trip():
    doc = Document(id="issue:1", text="Login fails", title="Bug", project_id=3, type="issue", version=7,
                   metadata={"tracker": "Bug"}, viewer_ids=[4])
    w = streams.decode_write("5-0", {b"seq": b"9", b"op": b"u", b"b": streams.encode_write_body(UPSERT, docs=[doc])})
    assert (w.seq, w.op, w.docs, w.stream_id) == (9, UPSERT, [doc], "5-0")
    d = streams.decode_write("6-0", {"seq": "10", "op": "d",
                                     "b": streams.encode_write_body(DELETE, refs=[DocumentRef("a", 3)])})
    assert d.refs == [DocumentRef("a", 3)]
    vecs = np.arange(6, dtype=np.float32).reshape(2, 3)
    e = EmbeddedEntry(9, "5-0", UPSERT, model="m:abc", docs=[EmbeddedDoc(doc, [(0, 5), (4, 11)], ["Login", "n fails"],
                                                                         vecs, True)])
    back = streams.decode_embedded("8-1", {k.encode(): v for k, v in streams.encode_embedded(e).items()})
    assert (back.seq, back.write_id, back.model, back.stream_id) == (9, "5-0", "m:abc", "8-1")
    assert back.docs[0].doc == doc and back.docs[0].spans == [(0, 5), (4, 11)] and back.docs[0].truncated
    np.testing.assert_array_equal(back.docs[0].vectors, vecs)
    f = streams.decode_embedded("8-2", streams.encode_embedded(EmbeddedEntry(11, "7-0", FAILED, error="boom")))
    assert f.error == "boom"
    assert streams.id_tuple("12-3") < streams.id_tuple("12-10") < streams.id_tuple("13-0")


def test_worker_groups_small_writes_and_never_splits_one():
    def entry(n):
        return WriteEntry(0, UPSERT, docs=[Document(id=str(i), text="x") for i in range(n)])
    sizes = [[len(e.docs) for e in part] for part in _parts([entry(1)] * 70 + [entry(100), entry(3)], 64)]
    assert sizes == [[1] * 64, [1] * 6, [100], [3]]
    deletes = [WriteEntry(0, DELETE, refs=[DocumentRef("a")]) for _ in range(3)]
    assert [len(p) for p in _parts(deletes, 2)] == [2, 1]  # a delete counts as one document


@pytest.mark.parametrize("env", [{"RAGD_CLUSTER_REDIS_URL": "http://x"}, {"RAGD_CLUSTER_WORKER_BATCH": "0"},
                                 {"RAGD_CLUSTER_CLAIM_IDLE_S": "0"}])
def test_cluster_options_are_checked(env):
    with pytest.raises(ConfigError):
        load_config(env=env)


def test_a_worker_gathers_small_writes_and_takes_a_bulk_write_alone(tmp_path):
    """Against a real redis-server: one-document writes are taken together (up to
    cluster.worker_batch), a bulk write alone, so the writes behind it stay for other workers."""
    from cluster_procs import Redis

    from ragd.cluster.worker import Worker
    from ragd.cluster.writelog import WriteLog
    redis = Redis(tmp_path).start()
    try:
        cfg = load_config(env={"RAGD_CLUSTER_REDIS_URL": redis.url, "RAGD_CLUSTER_WORKER_BATCH": "8"})
        log = WriteLog(redis.url, streams.Keys(cfg.cluster.prefix), 5.0)
        docs = [Document(id=f"d{i}", text=f"text {i}") for i in range(200)]
        for i in range(10):
            log.upsert("c", docs[i:i + 1])       # ten one-document writes (Redmine's hooks)
        log.upsert("c", docs[:200])              # a reindex's bulk write
        log.upsert("c", docs[:50])
        w = Worker(cfg, None, None, "model:x", name="w1")
        other = Worker(cfg, None, None, "model:x", name="w2")

        def take(worker) -> list[int]:
            batches: dict = {}
            worker.read_new(["c"], batches)
            return [len(e.docs) for e in batches.get("c", [])]

        assert take(w) == [1] * 8                # worker_batch entries of small writes
        assert take(w) == [1, 1, 200]            # the rest, then a bulk write ends the read
        assert take(other) == [50]               # the write behind it was left to another worker
        assert take(other) == []                 # nothing left: an empty read (after its block) returns
        log.close()
        w.redis.close()
        other.redis.close()
    finally:
        redis.kill()
