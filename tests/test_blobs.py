"""The blob store (gazelab.blobs) on a folder and on an S3-compatible server, the blob_url
setting, and a node dropping its snapshots when the cluster-wide erasure count moves."""
from __future__ import annotations

from pathlib import Path

import pytest

from gazelab.blobs import FolderStore, S3Store, blob_store
from gazelab.config import ConfigError
from gazelab.files import SNAPSHOT_DIR
from gazelab.shardfiles import catch_up_erasures, store_lock
from tests.support import GazeEnv
from tests.test_multinode import BUCKET, s3_server  # noqa: F401  (fixture)


def _exercise(store, tmp_path) -> None:
    source = tmp_path / "zip.part"
    source.write_bytes(b"x" * 3_000_000)
    store.move_in("exports/a.zip", source)
    assert not source.exists()
    assert store.size("exports/a.zip") == 3_000_000 and store.size("exports/missing.zip") is None
    assert b"".join(store.read_chunks("exports/a.zip")) == b"x" * 3_000_000
    assert store.keys("exports/") == ["exports/a.zip"] and store.keys("nothing/") == []
    store.delete("exports/a.zip")
    store.delete("exports/a.zip")     # already gone: not an error
    assert store.size("exports/a.zip") is None and store.keys("exports") == []
    with pytest.raises(FileNotFoundError):
        b"".join(store.read_chunks("exports/a.zip"))
    for hostile in ("../etc/passwd", "/abs", "exports/../../x", "", "exports//a"):
        with pytest.raises(ValueError, match="bad blob key"):
            store.size(hostile)


def test_folder_store(tmp_path):
    store = FolderStore(tmp_path / "blobs")
    _exercise(store, tmp_path)
    source = tmp_path / "b.part"
    source.write_bytes(b"faces")
    store.move_in("exports/b.zip", source)
    path = store.local_path("exports/b.zip")
    assert path.read_bytes() == b"faces" and oct(path.stat().st_mode & 0o777) == "0o600"


def test_s3_store(tmp_path, s3_server):  # noqa: F811
    endpoint, _ = s3_server
    store = S3Store(f"s3://{BUCKET}/some/prefix?endpoint_url={endpoint}")
    _exercise(store, tmp_path)
    assert store.local_path("exports/a.zip") is None


def test_blob_url_setting(tmp_path):
    gz = GazeEnv(tmp_path, f"sqlite:///{tmp_path}/g.db")
    assert blob_store(gz.config) == FolderStore(tmp_path)     # default: the data dir
    shared = GazeEnv(tmp_path, gz.database_url, overrides={"GAZELAB_SERVER_BLOB_URL": "file:///srv/gazelab"})
    assert blob_store(shared.config) == FolderStore(Path("/srv/gazelab"))
    for bad in ("ftp://x/y", "s3:///nobucket", "file://relative/path", "/plain/path"):
        with pytest.raises(ConfigError, match="BLOB_URL"):
            GazeEnv(tmp_path, gz.database_url, overrides={"GAZELAB_SERVER_BLOB_URL": bad}).config


def test_a_node_drops_its_snapshots_when_the_erasure_count_moves(tmp_path):
    folder = tmp_path / SNAPSHOT_DIR
    folder.mkdir()
    (folder / "stray.npz").write_bytes(b"faces")
    (folder / "store-64" / "shard-0").mkdir(parents=True)
    (folder / "store-64" / "shard-0" / "face.npy").write_bytes(b"faces")
    assert catch_up_erasures(folder, 4) is True          # a node that never looked: drop
    assert sorted(p.name for p in folder.iterdir()) == [".erasures-seen", ".lock"]
    (folder / "stray.npz").write_bytes(b"faces")
    assert catch_up_erasures(folder, 4) is False          # nothing new: the cache stays
    assert (folder / "stray.npz").exists()
    with store_lock(folder):                              # a build holds the store: ask again later
        assert catch_up_erasures(folder, 5) is False
    assert (folder / "stray.npz").exists()
    assert catch_up_erasures(folder, 5) is True           # an erasure elsewhere: drop
    assert not (folder / "stray.npz").exists()
