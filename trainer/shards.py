"""The shard store: accepted samples decoded once into append-only .npy shards on disk,
read back row by row with positioned reads (format: gazelab.shardfiles).

- **Incremental.** `update` decodes only the accepted samples that no shard holds yet, a
  batch of rows at a time straight into a memory-mapped file, into new shards; nothing
  already on disk is rewritten. A sample rejected or flagged later stays in its shard and
  is simply not a row of the next snapshot (masked by index).
- **Erasure.** A shard that holds a sample no longer in the database (an erased
  volunteer) is zeroed at those rows and deleted (gazelab.shardfiles.drop_shards_holding,
  which collection.erasure calls too); its other samples are decoded again into a new
  shard. Only those shards are touched.
- **Bounded memory.** One shard at a time is mapped while building, and shards hold at
  most a budget-derived number of rows; ShardedArray reads rows with positioned reads
  into the caller's buffer, so reading the whole store keeps none of it resident.
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from collection.codec import decode_crop, decode_landmarks
from gazelab.schema import CROP_KINDS, CollectionSession, Sample, SampleImages, Trial
from gazelab.shardfiles import (IDS, STORE_PREFIX, drop_shards_holding, erased_ids, read_manifest,
                                store_lock, write_manifest)

# Bumped when what a shard holds changes: a store of another format is removed and rebuilt.
FORMAT = 3
LANDMARK_COUNT = 478
# Per-sample arrays kept in RAM by a snapshot (small), and those left on disk (ShardedArray).
SMALL = ("angles", "targets", "screens", "mm_per_px", "sample_ids", "session_ids", "volunteer_ids",
         "trial_ids", "trial_kinds", "frame_sizes")
MAPPED = (*CROP_KINDS, "landmarks")
DECODE_BATCH = 256            # rows read from the database per query
MAX_SHARD_BYTES = 256 << 20   # a shard's mapped bytes while it is written


def row_layout(image_size: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape of one row and dtype of every array left on disk."""
    side = (image_size, image_size)
    layout = {kind: (side + ((3,) if kind != "head_pos" else ()), np.dtype(np.uint8)) for kind in CROP_KINDS}
    layout["landmarks"] = ((LANDMARK_COUNT, 2), np.dtype(np.float32))
    return layout


def row_bytes(image_size: int, kinds=MAPPED) -> int:
    layout = row_layout(image_size)
    return sum(int(np.prod(layout[k][0])) * layout[k][1].itemsize for k in kinds)


def _query(ids):
    return (select(Sample.id, Sample.yaw, Sample.pitch, Sample.roll, Sample.target_x, Sample.target_y,
                   Sample.session_id, Sample.volunteer_id, Sample.trial_id, Sample.frame_width,
                   Sample.frame_height, CollectionSession.screen_width, CollectionSession.screen_height,
                   CollectionSession.mm_per_px, Trial.kind,
                   *(getattr(SampleImages, k) for k in CROP_KINDS), SampleImages.landmarks)
            .join(SampleImages, SampleImages.sample_id == Sample.id)
            .join(CollectionSession, CollectionSession.id == Sample.session_id)
            .outerjoin(Trial, Trial.id == Sample.trial_id)
            .where(Sample.id.in_([int(i) for i in ids])).order_by(Sample.id))


def decode(db: Session, ids: np.ndarray, mapped: dict[str, np.ndarray], image_size: int) -> dict[str, list]:
    """Decode the samples `ids` (those still in the database) DECODE_BATCH rows at a time
    into `mapped` (arrays of MAPPED, ndarray or memmap, filled from row 0); returns the
    small per-sample columns (lists) of the rows written, in sample-id order."""
    small: dict[str, list] = {k: [] for k in SMALL}
    missing = np.full((LANDMARK_COUNT, 2), np.nan, np.float32)
    row = 0
    for start in range(0, len(ids), DECODE_BATCH):
        for r in db.execute(_query(ids[start:start + DECODE_BATCH])):
            for kind in CROP_KINDS:
                mapped[kind][row] = decode_crop(getattr(r, kind), grey=kind == "head_pos", size=image_size)
            mapped["landmarks"][row] = decode_landmarks(r.landmarks) if r.landmarks else missing
            small["angles"].append([r.yaw or 0.0, r.pitch or 0.0, r.roll or 0.0])
            small["targets"].append([r.target_x / r.screen_width, r.target_y / r.screen_height])
            small["screens"].append([r.screen_width, r.screen_height])
            small["mm_per_px"].append(r.mm_per_px if r.mm_per_px else np.nan)
            small["sample_ids"].append(r.id)
            small["session_ids"].append(r.session_id)
            small["volunteer_ids"].append(r.volunteer_id)
            small["trial_ids"].append(r.trial_id if r.trial_id is not None else -1)
            small["trial_kinds"].append(r.kind or "collection")
            small["frame_sizes"].append([r.frame_width or 0, r.frame_height or 0])
            row += 1
    return small


def small_arrays(columns: dict[str, list]) -> dict[str, np.ndarray]:
    """The small columns as typed arrays (strings at their shortest fixed width)."""
    dtypes = {"angles": (np.float32, 3), "targets": (np.float32, 2), "screens": (np.float32, 2),
              "frame_sizes": (np.float32, 2), "mm_per_px": (np.float32, None), "sample_ids": (np.int64, None),
              "trial_ids": (np.int64, None)}
    out = {}
    for name, values in columns.items():
        if name in dtypes:
            dtype, width = dtypes[name]
            array = np.asarray(values, dtype)
            out[name] = array.reshape(-1, width) if width else array
        else:
            out[name] = np.asarray(values, dtype=str) if values else np.zeros(0, "<U1")
    return out


# ---- building -------------------------------------------------------------------------

def store_path(snapshot_dir: Path, image_size: int) -> Path:
    return snapshot_dir / f"{STORE_PREFIX}{image_size}"


def _private_file(path: Path):
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _write_shard(db: Session, folder: Path, ids: np.ndarray, image_size: int) -> int:
    """One shard of the samples `ids` in `folder` (a new, private folder); returns its rows."""
    mapped = {}
    for name, (shape, dtype) in row_layout(image_size).items():
        path = folder / f"{name}.npy"
        _private_file(path).close()   # 0600 before any byte is written
        mapped[name] = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(max(1, len(ids)), *shape))
    columns = decode(db, ids, mapped, image_size)
    for array in mapped.values():
        array.flush()
    del mapped                        # unmapped: the shard's pages leave this process
    for name, array in small_arrays(columns).items():
        with _private_file(folder / f"{name}.npy") as handle:
            np.save(handle, array)
            handle.flush()
            os.fsync(handle.fileno())
    return len(columns["sample_ids"])


def stored_ids(store: Path, manifest: dict) -> list[np.ndarray]:
    return [np.load(store / name / IDS) for name in manifest["shards"]]


def update(db: Session, image_size: int, snapshot_dir: Path, accepted: np.ndarray,
           memory_budget_mb: int) -> dict:
    """Bring the store up to date for the `accepted` sample ids: drop shards holding samples
    no longer in the database, decode the accepted samples no shard holds into new shards.
    Returns {"decoded": rows written, "shards_added", "shards_dropped"}."""
    store = store_path(snapshot_dir, image_size)
    report = {"decoded": 0, "shards_added": 0, "shards_dropped": 0}
    existing = np.asarray(db.scalars(select(Sample.id)).all(), np.int64)
    with store_lock(snapshot_dir):
        manifest = read_manifest(store)
        if manifest is None or manifest.get("format") != FORMAT or manifest.get("image_size") != image_size:
            shutil.rmtree(store, ignore_errors=True)
            store.mkdir(parents=True, mode=0o700)
            manifest = {"format": FORMAT, "image_size": image_size, "next": 1, "shards": []}
            write_manifest(store, manifest)
        for path in store.iterdir():      # unfinished builds (a crash between folder and manifest)
            if path.is_dir() and path.name not in manifest["shards"]:
                shutil.rmtree(path, ignore_errors=True)
        for old in snapshot_dir.glob("snapshot-*.npz"):   # the single-file cache of earlier versions
            old.unlink()
        held = np.concatenate([np.zeros(0, np.int64), *stored_ids(store, manifest)])
        vanished = np.setdiff1d(held, existing)
        if len(vanished):
            report["shards_dropped"] = drop_shards_holding(snapshot_dir, vanished)
            manifest = read_manifest(store)
            held = np.concatenate([np.zeros(0, np.int64), *stored_ids(store, manifest)])
    todo = np.setdiff1d(accepted, held)
    per_shard = max(64, min(MAX_SHARD_BYTES, (memory_budget_mb << 20) // 8) // row_bytes(image_size))
    for start in range(0, len(todo), per_shard):
        # Each shard is read and committed under the lock, so an erasure (which holds it from
        # its delete to its drop) is wholly before or after; one before it is in erased.npy,
        # for a transaction that began earlier may still see the erased rows.
        with store_lock(snapshot_dir):
            chunk = todo[start:start + per_shard]
            chunk = chunk[~np.isin(chunk, erased_ids(snapshot_dir))]
            manifest = read_manifest(store)
            name = f"{manifest['next']:06d}"
            temp = store / f".{name}.{secrets.token_hex(4)}.tmp"
            temp.mkdir(mode=0o700)
            try:
                rows = _write_shard(db, temp, chunk, image_size) if len(chunk) else 0
                if not rows:
                    continue
                temp.rename(store / name)
            finally:
                shutil.rmtree(temp, ignore_errors=True)
            write_manifest(store, {**manifest, "next": manifest["next"] + 1, "shards": [*manifest["shards"], name]})
            report["decoded"] += rows
            report["shards_added"] += 1
    return report


# ---- reading --------------------------------------------------------------------------

class ShardedArray:
    """Rows spread over .npy shard files, as one read-only array: len, shape, dtype,
    nbytes and indexing (an int, a slice, an index or boolean array; every result is a
    copy in RAM). Rows are read with positioned reads (os.preadv) straight into the
    result, runs of consecutive rows in one read: unlike a memory map, whose every touched
    page — and the kernel's fault-around, up to 64 kB a fault — stays resident in this
    process until unmapped (19,200 random rows of a 50k store: 1.8 GB of RSS), reading
    costs no memory beyond the result. Up to MAX_OPEN files stay open."""

    MAX_OPEN = 256

    def __init__(self, paths: list[Path], shard: np.ndarray, local: np.ndarray,
                 row_shape: tuple[int, ...], dtype: np.dtype):
        self.paths, self.shard, self.local = paths, shard, local
        self.row_shape, self.dtype = tuple(row_shape), np.dtype(dtype)
        self.row_nbytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._files: dict[int, tuple[int, int]] = {}   # shard → (fd, offset of row 0)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.shard), *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    @property
    def nbytes(self) -> int:
        return len(self.shard) * self.row_nbytes

    def __len__(self) -> int:
        return len(self.shard)

    def _open(self, shard: int) -> tuple[int, int]:
        if shard not in self._files:
            if len(self._files) >= self.MAX_OPEN:
                os.close(self._files.pop(next(iter(self._files)))[0])
            with open(self.paths[shard], "rb") as handle:
                version = np.lib.format.read_magic(handle)
                (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(handle)
                offset = handle.tell()
            self._files[shard] = (os.open(self.paths[shard], os.O_RDONLY), offset)
        return self._files[shard]

    def take(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The rows `rows` (int array) into `out` (or a new array)."""
        rows = np.asarray(rows, np.int64).ravel()
        out = np.empty((len(rows), *self.row_shape), self.dtype) if out is None else out
        if not len(rows):
            return out
        shards, local = self.shard[rows], self.local[rows]
        order = np.lexsort((local, shards))
        s, l = shards[order], local[order]
        cut = np.flatnonzero((np.diff(s) != 0) | (np.diff(l) != 1)) + 1
        flat = out.reshape(len(rows), -1).view(np.uint8)
        for a, b in zip(np.r_[0, cut], np.r_[cut, len(rows)]):
            fd, offset = self._open(int(s[a]))
            targets = order[a:b]
            contiguous = targets[-1] - targets[0] == b - a - 1 and (b - a == 1 or (np.diff(targets) == 1).all())
            buffer = flat[targets[0]:targets[-1] + 1] if contiguous else np.empty((b - a, flat.shape[1]), np.uint8)
            wanted = buffer.nbytes
            if os.preadv(fd, [buffer], offset + int(l[a]) * self.row_nbytes) != wanted:
                raise RuntimeError(f"{self.paths[int(s[a])]} is shorter than its manifest says")
            if not contiguous:
                flat[targets] = buffer
        return out

    def release(self) -> None:
        """Close every open file (they are opened again when next read)."""
        for fd, _ in self._files.values():
            os.close(fd)
        self._files = {}

    def __del__(self):
        self.release()

    def __getitem__(self, key):
        if isinstance(key, tuple):
            return self[key[0]][(slice(None), *key[1:])] if not np.isscalar(key[0]) else self[key[0]][key[1:]]
        if isinstance(key, (int, np.integer)):
            return self.take(np.array([key if key >= 0 else len(self) + key]))[0]
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        return self.take(np.where(key < 0, key + len(self), key))

    def __array__(self, dtype=None, copy=None):
        out = self.take(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)


def open_rows(snapshot_dir: Path, image_size: int, accepted: np.ndarray) -> dict:
    """The arrays of the samples `accepted` (sorted ids) that the store holds (all but those
    erased meanwhile), in that order: SMALL ones in RAM, MAPPED ones as ShardedArrays."""
    store = store_path(snapshot_dir, image_size)
    manifest = read_manifest(store)
    ids = stored_ids(store, manifest)
    held = np.concatenate([np.zeros(0, np.int64), *ids])
    shard_of = np.concatenate([np.zeros(0, np.int32), *(np.full(len(x), i, np.int32) for i, x in enumerate(ids))])
    local_of = np.concatenate([np.zeros(0, np.int64), *(np.arange(len(x)) for x in ids)])
    by_id = np.argsort(held)
    position = np.minimum(np.searchsorted(held, accepted, sorter=by_id), max(0, len(held) - 1))
    found = by_id[position] if len(held) else np.zeros(0, np.int64)
    found = found[held[found] == accepted] if len(held) else found   # erased since `accepted` was read
    shard, local = shard_of[found], local_of[found]
    columns = {}
    for name in SMALL:
        parts = [np.load(store / s / f"{name}.npy")[:len(x)] for s, x in zip(manifest["shards"], ids)]
        column = np.concatenate(parts) if parts else small_arrays({name: []})[name]
        columns[name] = column[found] if len(parts) else column
    for name, (shape, dtype) in row_layout(image_size).items():
        columns[name] = ShardedArray([store / s / f"{name}.npy" for s in manifest["shards"]], shard, local,
                                     shape, dtype)
    return columns
