"""Dataset snapshot: the accepted samples as arrays, and a leakage-free split.

With a cache folder (the data dir's snapshots/), the crops and landmarks live in the shard
store (trainer.shards): decoded once, incrementally, and read row by row from disk, so a
snapshot of a million samples costs a few hundred bytes of RAM per sample (the small
per-sample arrays), not 57 kB. Without one (tests, quick benches) everything is decoded
into RAM. Either way `snapshot.images[kind][indices]` gives a uint8 array of those rows.
The dataset version is a hash of the accepted sample ids and the image size.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gazelab.schema import CROP_KINDS, Sample, Trial
from trainer import shards

SNAPSHOT_FORMAT = shards.FORMAT
DEFAULT_MEMORY_BUDGET_MB = 2048


@dataclass
class Snapshot:
    images: dict                    # CROP_KINDS: photos (N,S,S,3) uint8 RGB; head_pos (N,S,S) uint8
                                    # (ndarray, or shards.ShardedArray: same indexing, rows copied on read)
    angles: np.ndarray              # (N,3) float32 yaw, pitch, roll in degrees (0 when unknown)
    targets: np.ndarray             # (N,2) float32 target / screen size
    screens: np.ndarray             # (N,2) float32 screen width, height (CSS px)
    mm_per_px: np.ndarray           # (N,) float32, NaN when unknown
    sample_ids: np.ndarray          # (N,) int64
    session_ids: np.ndarray         # (N,) str
    volunteer_ids: np.ndarray       # (N,) str
    trial_ids: np.ndarray           # (N,) int64, -1 for a sample without a trial
    trial_kinds: np.ndarray         # (N,) str: the sample's trial kind ("collection" without a trial)
    landmarks: np.ndarray           # (N,478,2) float32 frame px, NaN where not stored (ndarray or ShardedArray)
    frame_sizes: np.ndarray         # (N,2) float32 frame width, height (px; 0 when unknown)
    version: str
    build: dict | None = None       # what loading decoded: shards.update's report (None without a cache)
    geometry: np.ndarray | None = None   # (N,5) float32 trainer.geometry inputs, once attach_geometry ran
    geometry_hfov: float | None = None   # the field of view they assume

    def __len__(self) -> int:
        return len(self.sample_ids)


def _training_frames(query):
    """Accepted samples, without validation-dot frames (never used for training or calibration)."""
    return (query.outerjoin(Trial, Trial.id == Sample.trial_id)
            .where(Sample.status == "accepted", or_(Trial.kind.is_(None), Trial.kind != "validation")))


def accepted_ids(db: Session) -> np.ndarray:
    return np.asarray(db.scalars(_training_frames(select(Sample.id)).order_by(Sample.id)).all(), dtype=np.int64)


def _version(ids: np.ndarray, image_size: int) -> str:
    return hashlib.sha256(ids.tobytes() + f"{image_size}:{SNAPSHOT_FORMAT}".encode()).hexdigest()[:16]


def dataset_version(db: Session, image_size: int) -> str:
    return _version(accepted_ids(db), image_size)


def _in_ram(db: Session, ids: np.ndarray, image_size: int) -> dict:
    mapped = {name: np.empty((len(ids), *shape), dtype) for name, (shape, dtype) in shards.row_layout(image_size).items()}
    small = shards.small_arrays(shards.decode(db, ids, mapped, image_size))
    return {**small, **{name: array[:len(small["sample_ids"])] for name, array in mapped.items()}}


def load_snapshot(db: Session, image_size: int, cache_dir: Path | None = None,
                  memory_budget_mb: int = DEFAULT_MEMORY_BUDGET_MB) -> Snapshot:
    """All accepted samples: through the shard store in `cache_dir` (only samples it does
    not hold yet are decoded; memory bounded by `memory_budget_mb`), or into RAM."""
    ids = accepted_ids(db)
    build = None
    if cache_dir is None:
        columns = _in_ram(db, ids, image_size)
    else:
        build = shards.update(db, image_size, cache_dir, ids, memory_budget_mb)
        columns = shards.open_rows(cache_dir, image_size, ids)
    return Snapshot(images={k: columns.pop(k) for k in CROP_KINDS}, **columns,
                    version=_version(columns["sample_ids"], image_size), build=build)


def attach_geometry(snapshot: Snapshot, hfov_deg: float) -> np.ndarray:
    """snapshot.geometry for a camera of this field of view (computed once per snapshot)."""
    from trainer.geometry import snapshot_geometry
    if snapshot.geometry is None or snapshot.geometry_hfov != hfov_deg:
        snapshot.geometry, snapshot.geometry_hfov = snapshot_geometry(snapshot, hfov_deg), hfov_deg
    return snapshot.geometry


def grouping(snapshot: Snapshot) -> tuple[str, np.ndarray]:
    """What splits keep whole: volunteers, or sessions when there are fewer than 3 volunteers."""
    by = "volunteer" if len(set(snapshot.volunteer_ids)) >= 3 else "session"
    return by, snapshot.volunteer_ids if by == "volunteer" else snapshot.session_ids


def _layout(by: str, keys: np.ndarray, parts: dict[str, np.ndarray]) -> dict:
    indices = {name: np.flatnonzero(np.isin(keys, members)) for name, members in parts.items()}
    return {"by": by, "indices": indices,
            "groups": {name: sorted(members.tolist()) for name, members in parts.items()},
            "sizes": {name: int(len(idx)) for name, idx in indices.items()}}


def split(snapshot: Snapshot, validation_fraction: float, test_fraction: float, seed: int) -> dict:
    """Train/validation/test indices, whole volunteers per split (whole sessions when fewer
    than 3 volunteers), so frames of one session never appear in two splits."""
    by, keys = grouping(snapshot)
    groups = np.array(sorted(set(keys)))
    n_val_wanted = 1 if validation_fraction > 0 else 0
    if len(groups) < 2 + n_val_wanted:
        raise ValueError(f"need at least {2 + n_val_wanted} {by}s with accepted samples to split "
                         f"train/validation/test; have {len(groups)}")
    np.random.default_rng(seed).shuffle(groups)
    n_test = max(1, round(test_fraction * len(groups)))
    n_val = max(n_val_wanted, round(validation_fraction * len(groups)))
    n_test = min(n_test, len(groups) - 1 - n_val)
    return _layout(by, keys, {"test": groups[:n_test], "validation": groups[n_test:n_test + n_val],
                              "train": groups[n_test + n_val:]})


def kfold(snapshot: Snapshot, folds: int, validation_fraction: float, seed: int,
          held_out: frozenset[str] = frozenset()) -> list[dict]:
    """Grouped k-fold cross-validation: `folds` splits (at most one per group) in split()'s
    layout whose test parts hold each volunteer (session when < 3 volunteers) exactly once;
    each fold's validation part (early stopping) comes from its own training groups.
    `held_out` groups (e.g. every volunteer of a held-out rendering style) are spread over
    the folds' test parts and never enter a training or validation part. Same seed, same folds."""
    by, keys = grouping(snapshot)
    everyone = sorted(set(keys))
    groups = np.array([g for g in everyone if g not in held_out], dtype=str)
    outsiders = np.array([g for g in everyone if g in held_out], dtype=str)
    n_val_wanted = 1 if validation_fraction > 0 else 0
    folds = min(folds, len(groups))
    if folds < 2 or len(groups) < 2 + n_val_wanted:
        raise ValueError(f"cross-validation needs at least {2 + n_val_wanted} {by}s with accepted "
                         f"samples (not held out); have {len(groups)}")
    np.random.default_rng(seed).shuffle(groups)
    np.random.default_rng([seed, 1]).shuffle(outsiders)
    layouts = []
    for fold, (test, tested_outsiders) in enumerate(zip(np.array_split(groups, folds),
                                                        np.array_split(outsiders, folds))):
        rest = np.array([g for g in groups if g not in set(test)])
        np.random.default_rng([seed, fold]).shuffle(rest)
        n_val = min(len(rest) - 1, max(n_val_wanted, round(validation_fraction * len(rest))))
        layouts.append(_layout(by, keys, {"test": np.concatenate([test, tested_outsiders]),
                                          "validation": rest[:n_val], "train": rest[n_val:]}))
    return layouts
