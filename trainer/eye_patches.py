"""WebGazer's eye patches: each eye crop as 10×6 grey, histogram-equalised, 120 numbers in
0..1 for the two eyes. The WebGazer-style peer regresses on them alone; the personal
calibration reads them beside the model's output (trainer.calibration)."""
from __future__ import annotations

import cv2
import numpy as np

EYE_PATCH = (10, 6)               # width × height
SIZE = 2 * EYE_PATCH[0] * EYE_PATCH[1]


def from_crops(l_eyes: np.ndarray, r_eyes: np.ndarray) -> np.ndarray:
    """(n, 120) patches of `l_eyes` and `r_eyes`, each (n, S, S, 3) uint8 RGB."""
    rows = np.empty((len(l_eyes), SIZE), np.float64)
    for i, eyes in enumerate(zip(l_eyes, r_eyes)):
        rows[i] = np.concatenate([_patch(eye) for eye in eyes])
    return rows / 255.0


def _patch(eye: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(np.asarray(eye, np.uint8), cv2.COLOR_RGB2GRAY)
    return cv2.equalizeHist(cv2.resize(grey, EYE_PATCH, interpolation=cv2.INTER_AREA)).ravel()
