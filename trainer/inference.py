"""Inference from a stored model artifact: predict (x, y) screen fractions from features.

The web app's one door into the trainer (besides Celery task names): live tracking and
anything else that needs a prediction goes through `Predictor`."""
from __future__ import annotations

import math

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from collection.codec import decode_crop
from gazelab.schema import CROP_KINDS, ModelArtifact, Sample, SampleImages, SessionCalibration
from trainer.artifacts import load_model
from trainer.calibration import Calibration
from trainer.models import outputs_and_features, tensors_needed
from trainer.transforms import make_batch, to_tensor


ANGLES = ("yaw", "pitch", "roll")


def sample_inputs(sample: Sample, images: SampleImages) -> dict:
    """A stored sample as Predictor.predict takes it: RGB crops, grey head_pos, angles."""
    crops = {kind: decode_crop(getattr(images, kind), grey=kind == "head_pos") for kind in CROP_KINDS}
    return {**crops, **{angle: getattr(sample, angle) or 0.0 for angle in ANGLES}}


def features_inputs(features) -> dict:
    """collection.extraction.Features as Predictor.predict takes them."""
    return {name: getattr(features, name) for name in (*CROP_KINDS, *ANGLES)}


class Predictor:
    def __init__(self, artifact: ModelArtifact):
        self.artifact_id = artifact.id
        self.spec = dict(artifact.architecture)
        self.stats = artifact.normalisation
        self.grid = artifact.error_grid or {}
        self.kinds = tensors_needed(self.spec["inputs"])
        self.model = load_model(artifact)

    def predict(self, samples: list[dict], calibration: Calibration | None = None) -> np.ndarray:
        """samples: dicts with face, face_aligned, l_eye, r_eye (S,S,3) uint8, head_pos (S,S)
        uint8, yaw, pitch, roll (degrees). Returns (n, 2) screen fractions (x, y), through
        the session's personal `calibration` when given (Predictor.calibration)."""
        outputs, features = self.outputs_and_features(samples)
        if calibration is None or not len(outputs):
            return outputs
        return calibration.apply(outputs, features).astype(np.float32)

    def calibration(self, db: Session, session_id: str) -> Calibration | None:
        """The session's personal calibration for this model, None when not fitted."""
        mapping = db.scalar(select(SessionCalibration.mapping).where(
            SessionCalibration.session_id == session_id, SessionCalibration.artifact_id == self.artifact_id))
        return Calibration.from_dict(mapping) if mapping else None

    @torch.no_grad()
    def outputs_and_features(self, samples: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(n, 2) outputs and (n, F) penultimate features (what a calibration maps)."""
        if not samples:
            return np.zeros((0, 2), np.float32), np.zeros((0, 0), np.float32)
        tensors = {}
        for kind in self.kinds:
            if kind == "angles":
                angles = [[float(s.get(k) or 0.0) for k in ANGLES] for s in samples]
                tensors[kind] = torch.tensor(angles, dtype=torch.float32)
            else:
                tensors[kind] = to_tensor(np.stack([np.asarray(s[kind], np.uint8) for s in samples]))
        batch = make_batch(tensors, torch.arange(len(samples)), self.stats)
        outputs, features = outputs_and_features(self.model, batch)
        return outputs.numpy().astype(np.float32), features.numpy().astype(np.float32)

    def expected_error_px(self, x_norm: float, y_norm: float, screen: tuple[int, int]) -> float:
        """The test error of the screen region around (x, y), scaled to this screen's size
        (the grid stores errors as fractions of each sample's screen diagonal)."""
        diagonal = math.hypot(*screen)
        cells = self.grid.get("mean_diag_fraction")
        overall = self.grid.get("overall_diag_fraction") or 0.0
        if not cells:
            return overall * diagonal
        rows, cols = self.grid["rows"], self.grid["cols"]
        col = min(max(int(x_norm * cols), 0), cols - 1)
        row = min(max(int(y_norm * rows), 0), rows - 1)
        value = cells[row][col]
        return (value if value is not None else overall) * diagonal


def load_predictor(db: Session, artifact_id: int | None = None) -> Predictor | None:
    """The artifact's predictor; artifact_id None → the active model; None if there is none."""
    artifact = ModelArtifact.active(db) if artifact_id is None else db.get(ModelArtifact, artifact_id)
    return Predictor(artifact) if artifact is not None else None
