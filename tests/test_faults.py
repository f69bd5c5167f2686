"""Faults: a full LMDB map, a full disk, an unreadable or corrupt store.

Nothing acknowledged is lost: documents are upserted (wait=True) in small
batches until the daemon answers RESOURCE_EXHAUSTED naming the cause; searches
keep working meanwhile; after the fault (space freed: without a restart; a map
raised: after one) writes resume, and a restart finds every acknowledged
document with index == store.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import uuid

import pytest
from conftest import REPO

from ragd_client import RagClient, ResourceExhausted

# Short texts (one chunk, few tokens): the store fills with little embedding work.
TEXT = "Document {n} (ticket tk{n}x): the nightly backup of project {p} failed, the volume was full. "


def _batch(start: int, size: int = 32) -> list[dict]:
    return [{"id": f"doc:{n}", "text": TEXT.format(n=n, p=n % 7) + uuid.uuid4().hex, "project_id": n % 7}
            for n in range(start, start + size)]


def _fill(client: RagClient, limit: int = 20000) -> tuple[set[str], ResourceExhausted]:
    """Upsert batches until refused; the acknowledged ids and the refusal."""
    acked: set[str] = set()
    n = 0
    while n < limit:
        batch = _batch(n)
        try:
            result = client.upsert(batch)
        except ResourceExhausted as exc:
            return acked, exc
        assert all(a.status == "indexed" for a in result.acks)
        acked.update(a.id for a in result.acks)
        n += len(batch)
    pytest.fail(f"{n} documents stored without the store filling up")


def _check_all_there(client: RagClient, acked: set[str]) -> None:
    st = client.stats().collections[0]
    assert st.documents == len(acked), (st.documents, len(acked))
    assert st.index_vectors == st.chunks  # index == store
    for doc_id in sorted(acked)[:: max(1, len(acked) // 10)]:  # the keyword index too
        n = doc_id.split(":")[1]
        hits = client.search(f"tk{n}x", top_k=1, mode="keyword").hits
        assert hits and hits[0].document_id == doc_id, (doc_id, hits)


def test_a_full_lmdb_map_refuses_writes_keeps_reads_and_loses_nothing(daemon):
    d = daemon(config={"store": {"map_size_gb": 0.002}})  # 2 MiB
    with RagClient(d.address, timeout=120) as c:
        acked, refusal = _fill(c)
        assert refusal.code.name == "RESOURCE_EXHAUSTED" and "LMDB map" in refusal.message
        assert "store.map_size_gb" in refusal.message and refusal.retry_after_s and refusal.retry_after_s > 0
        print(f"map full after {len(acked)} acknowledged documents")
        assert len(acked) >= 32
        assert c.search("nightly backup volume full", top_k=3).hits  # reads go on
        with pytest.raises(ResourceExhausted):
            c.upsert(_batch(100_000))
        _check_all_there(c, acked)
    assert d.stop() == 0
    # A bigger map (the documented fix) and a restart: everything acknowledged is there, writes resume.
    (d.config_path).write_text('[store]\nmap_size_gb = 0.05\n')
    d.start()
    with RagClient(d.address, timeout=120) as c:
        _check_all_there(c, acked)
        c.upsert(_batch(200_000))
        assert c.stats().collections[0].documents == len(acked) + 32


@pytest.fixture
def small_fs(tmp_path):
    """A 64 MiB tmpfs the test mounts and unmounts (requested before `daemon`, so it is
    unmounted after the daemon stopped)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip()}); the map-full test covers the same path")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_refuses_writes_keeps_reads_and_resumes_when_space_is_freed(small_fs, daemon):
    d = daemon(start=False, name="data")
    # The data dir on the small filesystem: the fixture made it under tmp_path; move it there.
    data = small_fs / "data"
    shutil.copytree(d.data_dir, data, symlinks=True)
    d.data_dir, d.log_path = data, small_fs.parent / "daemon.log"  # the log stays off the full disk
    d.start()
    free = shutil.disk_usage(small_fs).free
    ballast = small_fs / "ballast"
    with open(ballast, "wb") as fh:
        fh.write(b"\0" * max(0, free - 3 * 1024 * 1024))  # leave 3 MiB
    with RagClient(d.address, timeout=120) as c:
        acked, refusal = _fill(c)
        assert "disk full" in refusal.message and refusal.retry_after_s, refusal.message
        print(f"disk full after {len(acked)} acknowledged documents")
        assert len(acked) >= 32
        assert c.search("nightly backup volume full", top_k=3).hits  # reads go on
        ballast.unlink()  # space freed: writes resume, no restart
        c.upsert(_batch(100_000))
        acked.update(f"doc:{n}" for n in range(100_000, 100_032))
        _check_all_there(c, acked)
    assert d.stop() == 0
    d.start()
    with RagClient(d.address, timeout=120) as c:
        _check_all_there(c, acked)


def _serve(data_dir) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ragd.cli", "serve", "--data-dir", str(data_dir),
                           "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "RAGD_SERVER_METRICS_LISTEN": ""})


def test_a_corrupt_or_unreadable_store_refuses_to_start(daemon):
    d = daemon()
    with RagClient(d.address, timeout=120) as c:
        c.upsert(_batch(0))
    assert d.stop() == 0
    mdb = d.data_dir / "store" / "data.mdb"
    good = mdb.read_bytes()
    mdb.write_bytes(b"\x00garbage" * 4096)  # not an LMDB file any more
    out = _serve(d.data_dir)
    assert out.returncode == 1
    assert "refusing to start: cannot open the LMDB store in" in out.stderr and "corrupt" in out.stderr
    assert "Traceback" not in out.stderr
    mdb.unlink()
    mdb.mkdir()  # unreadable as a file
    out = _serve(d.data_dir)
    assert out.returncode == 1 and "cannot open the LMDB store" in out.stderr and "Traceback" not in out.stderr
    mdb.rmdir()
    mdb.write_bytes(good)
    d.start()
    with RagClient(d.address, timeout=120) as c:
        assert c.stats().collections[0].documents == 32
