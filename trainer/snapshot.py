"""Dataset snapshot: accepted samples as uint8 arrays in memory, and a leakage-free split.

The snapshot is decoded from the database once and cached on disk (``.npz``) keyed by
the dataset version — a hash of the accepted sample ids and the image size — so an
unchanged dataset is not decoded again.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from collection.codec import decode_crop, decode_landmarks
from gazelab.schema import CROP_KINDS, CollectionSession, Sample, SampleImages, Trial

# Bumped when the arrays a snapshot holds change, so older disk caches are not reused.
SNAPSHOT_FORMAT = 2
LANDMARK_COUNT = 478
ARRAYS = ("angles", "targets", "screens", "mm_per_px", "sample_ids", "session_ids", "volunteer_ids",
          "trial_ids", "trial_kinds", "landmarks", "frame_sizes")


@dataclass
class Snapshot:
    images: dict[str, np.ndarray]   # CROP_KINDS: photos (N,S,S,3) uint8 RGB; head_pos (N,S,S) uint8
    angles: np.ndarray              # (N,3) float32 yaw, pitch, roll in degrees (0 when unknown)
    targets: np.ndarray             # (N,2) float32 target / screen size
    screens: np.ndarray             # (N,2) float32 screen width, height (CSS px)
    mm_per_px: np.ndarray           # (N,) float32, NaN when unknown
    sample_ids: np.ndarray          # (N,) int64
    session_ids: np.ndarray         # (N,) str
    volunteer_ids: np.ndarray       # (N,) str
    trial_ids: np.ndarray           # (N,) int64, -1 for a sample without a trial
    trial_kinds: np.ndarray         # (N,) str: the sample's trial kind ("collection" without a trial)
    landmarks: np.ndarray           # (N,478,2) float32 frame px, NaN where not stored
    frame_sizes: np.ndarray         # (N,2) float32 frame width, height (px; 0 when unknown)
    version: str

    def __len__(self) -> int:
        return len(self.sample_ids)


def _training_frames(query):
    """Accepted samples, without validation-dot frames (never used for training or calibration)."""
    return (query.outerjoin(Trial, Trial.id == Sample.trial_id)
            .where(Sample.status == "accepted", or_(Trial.kind.is_(None), Trial.kind != "validation")))


def _accepted(db: Session):
    return _training_frames(select(Sample.id)).order_by(Sample.id)


def dataset_version(db: Session, image_size: int) -> str:
    ids = np.asarray(db.scalars(_accepted(db)).all(), dtype=np.int64)
    digest = hashlib.sha256(ids.tobytes() + f"{image_size}:{SNAPSHOT_FORMAT}".encode()).hexdigest()
    return digest[:16]


def _read(db: Session, image_size: int, version: str) -> Snapshot:
    query = (_training_frames(select(Sample, SampleImages, CollectionSession, Trial.kind)
                              .join(SampleImages, SampleImages.sample_id == Sample.id)
                              .join(CollectionSession, CollectionSession.id == Sample.session_id))
             .order_by(Sample.id)
             .execution_options(yield_per=500))
    images: dict[str, list[np.ndarray]] = {k: [] for k in CROP_KINDS}
    angles, targets, screens, mm, ids, sessions, volunteers = [], [], [], [], [], [], []
    trials, kinds, landmarks, frames = [], [], [], []
    missing = np.full((LANDMARK_COUNT, 2), np.nan, np.float32)
    for sample, crops, session, trial_kind in db.execute(query):
        for kind in images:
            images[kind].append(decode_crop(getattr(crops, kind), grey=kind == "head_pos", size=image_size))
        angles.append([sample.yaw or 0.0, sample.pitch or 0.0, sample.roll or 0.0])
        screen = (session.screen_width, session.screen_height)
        targets.append([sample.target_x / screen[0], sample.target_y / screen[1]])
        screens.append(screen)
        mm.append(session.mm_per_px if session.mm_per_px else np.nan)
        ids.append(sample.id)
        sessions.append(sample.session_id)
        volunteers.append(sample.volunteer_id)
        trials.append(sample.trial_id if sample.trial_id is not None else -1)
        kinds.append(trial_kind or "collection")
        landmarks.append(decode_landmarks(crops.landmarks) if crops.landmarks else missing)
        frames.append([sample.frame_width or 0, sample.frame_height or 0])
    empty = {k: (0, image_size, image_size) + ((3,) if k != "head_pos" else ()) for k in images}
    return Snapshot(
        images={k: np.stack(v) if v else np.zeros(empty[k], np.uint8) for k, v in images.items()},
        angles=np.asarray(angles, np.float32).reshape(-1, 3),
        targets=np.asarray(targets, np.float32).reshape(-1, 2),
        screens=np.asarray(screens, np.float32).reshape(-1, 2),
        mm_per_px=np.asarray(mm, np.float32), sample_ids=np.asarray(ids, np.int64),
        session_ids=np.asarray(sessions, dtype=str), volunteer_ids=np.asarray(volunteers, dtype=str),
        trial_ids=np.asarray(trials, np.int64), trial_kinds=np.asarray(kinds, dtype=str),
        landmarks=np.asarray(landmarks, np.float32).reshape(-1, LANDMARK_COUNT, 2),
        frame_sizes=np.asarray(frames, np.float32).reshape(-1, 2), version=version)


def load_snapshot(db: Session, image_size: int, cache_dir: Path | None = None) -> Snapshot:
    """All accepted samples; from the disk cache when the dataset version is unchanged."""
    version = dataset_version(db, image_size)
    path = cache_dir / f"snapshot-{version}.npz" if cache_dir else None
    if path is not None and path.exists():
        with np.load(path) as data:
            return Snapshot(images={k: data[k] for k in CROP_KINDS}, **{k: data[k] for k in ARRAYS},
                            version=version)
    snapshot = _read(db, image_size, version)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob("snapshot-*.npz"):
            old.unlink()
        tmp = path.with_suffix(".tmp.npz")
        tmp.touch(mode=0o600)   # faces: private to the user, whatever the process umask
        np.savez(tmp, **snapshot.images, **{k: getattr(snapshot, k) for k in ARRAYS})
        tmp.replace(path)
    return snapshot


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


def kfold(snapshot: Snapshot, folds: int, validation_fraction: float, seed: int) -> list[dict]:
    """Grouped k-fold cross-validation: `folds` splits (at most one per group) in split()'s
    layout whose test parts hold each volunteer (session when < 3 volunteers) exactly once;
    each fold's validation part (early stopping) comes from its own training groups.
    Same seed, same folds."""
    by, keys = grouping(snapshot)
    groups = np.array(sorted(set(keys)))
    n_val_wanted = 1 if validation_fraction > 0 else 0
    folds = min(folds, len(groups))
    if folds < 2 or len(groups) < 2 + n_val_wanted:
        raise ValueError(f"cross-validation needs at least {2 + n_val_wanted} {by}s with accepted "
                         f"samples; have {len(groups)}")
    np.random.default_rng(seed).shuffle(groups)
    layouts = []
    for fold, test in enumerate(np.array_split(groups, folds)):
        rest = np.array([g for g in groups if g not in set(test)])
        np.random.default_rng([seed, fold]).shuffle(rest)
        n_val = min(len(rest) - 1, max(n_val_wanted, round(validation_fraction * len(rest))))
        layouts.append(_layout(by, keys, {"test": test, "validation": rest[:n_val], "train": rest[n_val:]}))
    return layouts
