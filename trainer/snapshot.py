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
from sqlalchemy import select
from sqlalchemy.orm import Session

from collection.codec import decode_crop
from gazelab.schema import CROP_KINDS, CollectionSession, Sample, SampleImages


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
    version: str

    def __len__(self) -> int:
        return len(self.sample_ids)


def _accepted(db: Session):
    return select(Sample.id).where(Sample.status == "accepted").order_by(Sample.id)


def dataset_version(db: Session, image_size: int) -> str:
    ids = np.asarray(db.scalars(_accepted(db)).all(), dtype=np.int64)
    digest = hashlib.sha256(ids.tobytes() + str(image_size).encode()).hexdigest()
    return digest[:16]


def _read(db: Session, image_size: int, version: str) -> Snapshot:
    query = (select(Sample, SampleImages, CollectionSession)
             .join(SampleImages, SampleImages.sample_id == Sample.id)
             .join(CollectionSession, CollectionSession.id == Sample.session_id)
             .where(Sample.status == "accepted").order_by(Sample.id)
             .execution_options(yield_per=500))
    images: dict[str, list[np.ndarray]] = {k: [] for k in CROP_KINDS}
    angles, targets, screens, mm, ids, sessions, volunteers = [], [], [], [], [], [], []
    for sample, crops, session in db.execute(query):
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
    empty = {k: (0, image_size, image_size) + ((3,) if k != "head_pos" else ()) for k in images}
    return Snapshot(
        images={k: np.stack(v) if v else np.zeros(empty[k], np.uint8) for k, v in images.items()},
        angles=np.asarray(angles, np.float32).reshape(-1, 3),
        targets=np.asarray(targets, np.float32).reshape(-1, 2),
        screens=np.asarray(screens, np.float32).reshape(-1, 2),
        mm_per_px=np.asarray(mm, np.float32), sample_ids=np.asarray(ids, np.int64),
        session_ids=np.asarray(sessions, dtype=str), volunteer_ids=np.asarray(volunteers, dtype=str),
        version=version)


def load_snapshot(db: Session, image_size: int, cache_dir: Path | None = None) -> Snapshot:
    """All accepted samples; from the disk cache when the dataset version is unchanged."""
    version = dataset_version(db, image_size)
    path = cache_dir / f"snapshot-{version}.npz" if cache_dir else None
    if path is not None and path.exists():
        with np.load(path) as data:
            return Snapshot(images={k: data[k] for k in CROP_KINDS},
                            **{k: data[k] for k in ("angles", "targets", "screens", "mm_per_px",
                                                    "sample_ids", "session_ids", "volunteer_ids")},
                            version=version)
    snapshot = _read(db, image_size, version)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob("snapshot-*.npz"):
            old.unlink()
        tmp = path.with_suffix(".tmp.npz")
        tmp.touch(mode=0o600)   # faces: private to the user, whatever the process umask
        np.savez(tmp, **snapshot.images, angles=snapshot.angles, targets=snapshot.targets,
                 screens=snapshot.screens, mm_per_px=snapshot.mm_per_px, sample_ids=snapshot.sample_ids,
                 session_ids=snapshot.session_ids, volunteer_ids=snapshot.volunteer_ids)
        tmp.replace(path)
    return snapshot


def split(snapshot: Snapshot, validation_fraction: float, test_fraction: float, seed: int) -> dict:
    """Train/validation/test indices, whole volunteers per split (whole sessions when fewer
    than 3 volunteers), so frames of one session never appear in two splits."""
    by = "volunteer" if len(set(snapshot.volunteer_ids)) >= 3 else "session"
    keys = snapshot.volunteer_ids if by == "volunteer" else snapshot.session_ids
    groups = np.array(sorted(set(keys)))
    n_val_wanted = 1 if validation_fraction > 0 else 0
    if len(groups) < 2 + n_val_wanted:
        raise ValueError(f"need at least {2 + n_val_wanted} {by}s with accepted samples to split "
                         f"train/validation/test; have {len(groups)}")
    np.random.default_rng(seed).shuffle(groups)
    n_test = max(1, round(test_fraction * len(groups)))
    n_val = max(n_val_wanted, round(validation_fraction * len(groups)))
    n_test = min(n_test, len(groups) - 1 - n_val)
    parts = {"test": groups[:n_test], "validation": groups[n_test:n_test + n_val],
             "train": groups[n_test + n_val:]}
    indices = {name: np.flatnonzero(np.isin(keys, members)) for name, members in parts.items()}
    return {"by": by, "indices": indices,
            "groups": {name: sorted(members.tolist()) for name, members in parts.items()},
            "sizes": {name: int(len(idx)) for name, idx in indices.items()}}
