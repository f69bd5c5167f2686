"""The data directory: its layout, restore (the store and everything derived from
it move aside together), and what a kill during model provisioning leaves behind
being cleaned at the next start."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from ragd.embed.provision import remove_stale_staging
from ragd.engine.datadir import DataDir, restore


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_layout_names_every_file_of_a_collection(tmp_path):
    d = DataDir(tmp_path)
    assert d.store == tmp_path / "store" and d.models == tmp_path / "models"
    paths = d.snapshot_paths(3)
    assert (paths.index, paths.columns) == (tmp_path / "index/collection-3.snap", tmp_path / "index/collection-3.cols")
    assert d.keyword_dir(3) == tmp_path / "keyword/3"


def test_restore_moves_the_store_and_every_derived_index_aside(tmp_path):
    bk = DataDir(tmp_path / "backup")
    bk.store.mkdir(parents=True)
    (bk.store / "data.mdb").write_bytes(b"backup store")
    bk.index.mkdir()
    (bk.root / "BACKUP.json").write_text(json.dumps({"sequence": 7}))
    data = DataDir(tmp_path / "data")
    for p in data.state_dirs:
        p.mkdir(parents=True)
        (p / "old").write_text(p.name)
    with pytest.raises(FileExistsError, match="store, index, keyword"):
        restore(bk.root, data.root)
    assert restore(bk.root, data.root, force=True) == 7
    assert (data.store / "data.mdb").read_bytes() == b"backup store"
    # A keyword index of the old history is never replayed onto the restored store.
    assert not data.keyword.exists()
    aside = sorted(p.name.split(".")[0] for p in data.root.glob("*.before-restore-*"))
    assert aside == ["index", "keyword", "store"]


def test_stale_model_staging_is_removed_and_live_ones_kept(tmp_path):
    dead, alive = dead_pid(), os.getppid()
    made = {name: tmp_path / name for name in (
        f".all-MiniLM-L6-v2.{dead}.k2j4h.partial",    # killed mid-provisioning
        f".all-MiniLM-L6-v2.{alive}.x8f0q.partial",   # another process provisioning now
        ".all-MiniLM-L6-v2.a1b2c3.partial",           # written before staging names carried a pid
        f".all-MiniLM-L6-v2.{dead}.old",              # a forced re-export killed after setting the old copy aside
        "all-MiniLM-L6-v2")}                           # the model itself
    for p in made.values():
        p.mkdir()
    removed = {p.name for p in remove_stale_staging(tmp_path)}
    assert removed == {f".all-MiniLM-L6-v2.{dead}.k2j4h.partial", ".all-MiniLM-L6-v2.a1b2c3.partial",
                       f".all-MiniLM-L6-v2.{dead}.old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(made) - removed)
    assert remove_stale_staging(tmp_path / "missing") == []


def test_daemon_start_cleans_a_partial_model_left_by_a_kill(daemon, models_dir, tmp_path):
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    (models / "all-MiniLM-L6-v2").symlink_to(models_dir / "all-MiniLM-L6-v2", target_is_directory=True)
    partial = models / f".all-MiniLM-L6-v2.{dead_pid()}.q1w2e.partial"
    partial.mkdir()
    (partial / "model.onnx").write_bytes(b"half a model")
    d = daemon()  # on tmp_path / "data", whose models dir is made above
    assert not partial.exists()
    assert f"removed {partial}: a model provisioning interrupted by a kill" in d.log()
    assert d.stop() == 0
