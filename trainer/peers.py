"""The peers the model is measured against, on the same frames and the same calibration
frames. Re-implementations of each method, not the projects themselves ("…-style"):

- ``centre``: always the middle of the screen;
- ``mean``: the mean target of the training volunteers;
- ``ridge_general``: one ridge on eye patches over all training volunteers (zero-shot);
- ``webgazer_style``: WebGazer's method — each eye cut out, 10×6 grey, histogram-equalised
  (120 numbers) — as a per-person ridge fitted on that session's calibration frames;
- ``eyetrax_style``: eyetrax's method — MediaPipe landmark geometry (iris position in each
  eye, eye corners relative to the head, head yaw/pitch/roll, face box in the frame) —
  as a per-person ridge fitted on the calibration frames. Reads the stored landmarks.

Targets and predictions are screen fractions (Snapshot.targets).
"""
from __future__ import annotations

import numpy as np

from collection.extraction import LEFT_EYE_CORNERS, LEFT_IRIS, RIGHT_EYE_CORNERS, RIGHT_IRIS
from trainer import ridge
from trainer.eye_patches import SIZE as PATCH_SIZE, from_crops as patches_from_crops
from trainer.snapshot import Snapshot

ZERO_SHOT = ("centre", "mean", "ridge_general")
CALIBRATED = ("webgazer_style", "eyetrax_style")


def centre(n: int) -> np.ndarray:
    return np.full((n, 2), 0.5, np.float64)


def training_mean(snapshot: Snapshot, train: np.ndarray, n: int) -> np.ndarray:
    return np.repeat(snapshot.targets[train].mean(axis=0, keepdims=True), n, axis=0)


def eye_patches(snapshot: Snapshot, indices: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(n, 120): both eyes as WebGazer's patches (trainer.eye_patches), crops read `chunk`
    rows at a time."""
    rows = [patches_from_crops(snapshot.images["l_eye"][indices[start:start + chunk]],
                               snapshot.images["r_eye"][indices[start:start + chunk]])
            for start in range(0, len(indices), chunk)]
    return np.concatenate(rows) if rows else np.zeros((0, PATCH_SIZE))


def _iris_in_eye(points: np.ndarray, corners: tuple[int, int], iris: int) -> np.ndarray:
    """(n, 2): the iris centre in the eye's own frame: along the corner line and across it,
    in eye widths from the corners' midpoint (so head distance and roll cancel)."""
    outer, inner = points[:, corners[0]], points[:, corners[1]]
    axis = inner - outer
    width = np.linalg.norm(axis, axis=1, keepdims=True) + 1e-6
    along, across = axis / width, np.stack([-axis[:, 1], axis[:, 0]], axis=1) / width
    offset = (points[:, iris] - (outer + inner) / 2) / width
    return np.stack([(offset * along).sum(axis=1), (offset * across).sum(axis=1)], axis=1)


def landmark_features(snapshot: Snapshot, indices: np.ndarray) -> np.ndarray:
    """(n, 17) eyetrax-style geometry from the stored landmarks; NaN rows where a sample
    has none. Iris in each eye (4), eye corners around the eyes' centre in inter-ocular
    distances (8), yaw/pitch/roll / 20° (3), face box centre and size in frame fractions (4)."""
    points = snapshot.landmarks[indices].astype(np.float64)
    frames = np.maximum(snapshot.frame_sizes[indices].astype(np.float64), 1.0)
    iris = [_iris_in_eye(points, RIGHT_EYE_CORNERS, RIGHT_IRIS), _iris_in_eye(points, LEFT_EYE_CORNERS, LEFT_IRIS)]
    corners = points[:, [*RIGHT_EYE_CORNERS, *LEFT_EYE_CORNERS]]
    middle = corners.mean(axis=1, keepdims=True)
    ocular = np.linalg.norm(points[:, LEFT_EYE_CORNERS[0]] - points[:, RIGHT_EYE_CORNERS[0]], axis=1) + 1e-6
    shape = ((corners - middle) / ocular[:, None, None]).reshape(len(indices), -1)
    low, high = points.min(axis=1), points.max(axis=1)
    box = np.hstack([(low + high) / 2 / frames, (high - low) / frames])
    angles = snapshot.angles[indices].astype(np.float64) / 20.0
    return np.hstack([*iris, shape, angles, box])


def ridge_general(snapshot: Snapshot, train: np.ndarray, validation: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Ridge on eye patches over the training volunteers; the penalty picked on validation."""
    x_train, y_train = eye_patches(snapshot, train), snapshot.targets[train]
    alpha = ridge.ALPHAS[3]
    if len(validation):
        x_val = eye_patches(snapshot, validation)
        scores = [np.linalg.norm((ridge.predict(x_val, ridge.fit(x_train, y_train, a)) - snapshot.targets[validation])
                                 * snapshot.screens[validation], axis=1).mean() for a in ridge.ALPHAS]
        alpha = ridge.ALPHAS[int(np.argmin(scores))]
    return ridge.predict(eye_patches(snapshot, test), ridge.fit(x_train, y_train, alpha))


def per_person_ridge(x_cal: np.ndarray, y_cal: np.ndarray, trials: np.ndarray, screens: np.ndarray,
                     x_test: np.ndarray) -> np.ndarray:
    """Fit on one person's calibration frames (standardised features, penalty by
    leave-one-trial-out), predict their other frames. NaN rows (no features) stay NaN."""
    usable = np.isfinite(x_cal).all(axis=1)
    out = np.full((len(x_test), 2), np.nan)
    if usable.sum() < 3:
        return out
    x_cal, y_cal, trials, screens = x_cal[usable], y_cal[usable], trials[usable], screens[usable]
    mean, scale = ridge.standardiser(x_cal)
    z_cal = (x_cal - mean) / scale
    alpha, _ = ridge.loto_alpha(z_cal, y_cal, trials, screens)
    weights = ridge.fit(z_cal, y_cal, alpha)
    ok = np.isfinite(x_test).all(axis=1)
    out[ok] = ridge.predict((x_test[ok] - mean) / scale, weights)
    return out


PERSONAL_FEATURES = {"webgazer_style": eye_patches, "eyetrax_style": landmark_features}
