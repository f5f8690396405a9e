"""The on-disk format of the training-data shard store, shared by the layer that builds
it (trainer.shards) and the one that erases from it (collection.erasure).

data_dir/snapshots/                      (gazelab.files.SNAPSHOT_DIR)
    .lock                                one writer at a time: builders and erasure
    erased.npy                           (n,) int64: every sample id erased so far (no personal
                                         data): a build that read the database before an
                                         erasure committed skips them
    store-<image_size>/
        manifest.json                    {"format", "image_size", "next", "shards": [names]}
        <name>/sample_ids.npy            (n,) int64: the rows of this shard
        <name>/<array>.npy               (>= n, ...) one per crop kind and per-sample array

Shards are append-only: a build adds new shard folders and then rewrites the manifest
(the commit point; a folder not in the manifest is an unfinished build and is removed).
A shard's arrays may have more rows than its sample_ids (rows whose sample vanished while
it was written); only the first len(sample_ids) rows count. Erasure zeroes the erased
samples' rows, deletes every shard that held one and drops it from the manifest; the
surviving samples of those shards are decoded again by the next build.
"""
from __future__ import annotations

import fcntl
import io
import json
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from gazelab.files import write_atomically

MANIFEST = "manifest.json"
LOCK = ".lock"
STORE_PREFIX = "store-"
IDS = "sample_ids.npy"
ERASED = "erased.npy"
# The cluster-wide erasure count (gazelab.broker) this node's stores are up to date with.
ERASURES_SEEN = ".erasures-seen"


@contextmanager
def store_lock(snapshot_dir: Path) -> Iterator[None]:
    """Exclusive lock over every shard store in `snapshot_dir` (processes and threads alike)."""
    snapshot_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(snapshot_dir / LOCK, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def _store_lock_if_free(snapshot_dir: Path) -> Iterator[bool]:
    """The store lock if no one holds it (yields True), else nothing (yields False)."""
    snapshot_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(snapshot_dir / LOCK, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def catch_up_erasures(snapshot_dir: Path, erasures: int) -> bool:
    """Drop every store of this node if volunteers were erased (on any node) since it last
    looked: `erasures` is the cluster-wide count. Skipped while a build holds the lock (the
    caller, a heartbeat, asks again shortly). Returns whether it dropped them."""
    marker = snapshot_dir / ERASURES_SEEN
    if marker.exists() and marker.read_text().strip() == str(erasures):
        return False
    with _store_lock_if_free(snapshot_dir) as locked:
        if not locked:
            return False
        for path in snapshot_dir.iterdir():
            if path.name in (LOCK, ERASURES_SEEN):
                continue
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
        write_atomically(marker, str(erasures).encode())
    return True


def read_manifest(store: Path) -> dict | None:
    try:
        return json.loads((store / MANIFEST).read_text())
    except FileNotFoundError:
        return None


def write_manifest(store: Path, manifest: dict) -> None:
    write_atomically(store / MANIFEST, json.dumps(manifest).encode())


def stores(snapshot_dir: Path) -> list[Path]:
    return sorted(p for p in snapshot_dir.glob(STORE_PREFIX + "*") if p.is_dir()) if snapshot_dir.is_dir() else []


def erased_ids(snapshot_dir: Path) -> np.ndarray:
    try:
        return np.load(snapshot_dir / ERASED)
    except FileNotFoundError:
        return np.zeros(0, np.int64)


def drop_shards_holding(snapshot_dir: Path, sample_ids: Iterable[int]) -> int:
    """Under store_lock: record `sample_ids` as erased, and in every store zero their rows
    and delete each shard that held one (the manifest first, then the folder). Returns the
    shards deleted."""
    erased = np.fromiter(sample_ids, np.int64)
    buffer = io.BytesIO()
    np.save(buffer, np.union1d(erased_ids(snapshot_dir), erased))
    snapshot_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomically(snapshot_dir / ERASED, buffer.getvalue())
    dropped = 0
    for store in stores(snapshot_dir):
        manifest = read_manifest(store)
        if manifest is None:
            continue
        keep = []
        for name in manifest["shards"]:
            try:
                ids = np.load(store / name / IDS)
            except FileNotFoundError:
                continue          # a shard without its ids cannot be trusted: dropped
            rows = np.flatnonzero(np.isin(ids, erased))
            if not len(rows):
                keep.append(name)
                continue
            for path in (store / name).glob("*.npy"):
                array = np.load(path, mmap_mode="r+")
                array[rows] = 0
                array.flush()
                del array
        removed = [name for name in manifest["shards"] if name not in keep]
        if removed:
            write_manifest(store, {**manifest, "shards": keep})
            for name in removed:
                shutil.rmtree(store / name, ignore_errors=True)
            dropped += len(removed)
    return dropped
