"""Inference from a stored model artifact: predict (x, y) screen fractions from features,
through a session's personal calibration when it has one; and a session's accuracy on
its validation dots.

The web app's one door into the trainer (besides Celery task names): live tracking and
anything else that needs a prediction goes through `Predictor`."""
from __future__ import annotations

import math

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from collection.codec import decode_crop, decode_landmarks
from gazelab.schema import (CROP_KINDS, CollectionSession, ModelArtifact, Sample, SampleImages,
                            SessionCalibration, Trial)
from trainer.artifacts import load_model
from trainer import calibration as calibrations
from trainer.calibration import Calibration, CalibrationMismatch, fit as fit_calibration
from trainer.eye_patches import from_crops as eye_patches
from trainer.geometry import geometry_inputs, viewing_distance_mm
from trainer.models import outputs_and_features, tensors_needed
from trainer.transforms import make_batch, to_tensor


ANGLES = ("yaw", "pitch", "roll")


def sample_inputs(sample: Sample, images: SampleImages, session: CollectionSession | None = None) -> dict:
    """A stored sample as Predictor.predict takes it: RGB crops, grey head_pos, angles, and
    what the geometry input is made of (landmarks, frame size, its session's screen;
    `session` default: the sample's, loaded)."""
    crops = {kind: decode_crop(getattr(images, kind), grey=kind == "head_pos") for kind in CROP_KINDS}
    session = session or sample.session
    return {**crops, **{angle: getattr(sample, angle) or 0.0 for angle in ANGLES},
            "landmarks": decode_landmarks(images.landmarks) if images.landmarks else None,
            "frame_size": (sample.frame_width or 0, sample.frame_height or 0),
            "screen": (session.screen_width, session.screen_height), "mm_per_px": session.mm_per_px}


def snapshot_inputs(snapshot, row: int) -> dict:
    """Row `row` of a training snapshot (trainer.snapshot) as Predictor.predict takes it."""
    return {**{kind: snapshot.images[kind][row] for kind in snapshot.images},
            **{angle: float(snapshot.angles[row, i]) for i, angle in enumerate(ANGLES)},
            "landmarks": snapshot.landmarks[row], "frame_size": tuple(snapshot.frame_sizes[row]),
            "screen": tuple(snapshot.screens[row]), "mm_per_px": float(snapshot.mm_per_px[row])}


def features_inputs(features, screen: tuple[int, int], mm_per_px: float | None = None) -> dict:
    """collection.extraction.Features, seen on a `screen` (CSS px), as Predictor.predict takes them."""
    return {**{name: getattr(features, name) for name in (*CROP_KINDS, *ANGLES)},
            "landmarks": features.landmarks, "frame_size": features.frame_size, "screen": screen,
            "mm_per_px": mm_per_px}


def geometry_of(samples: list[dict], hfov_deg: float) -> np.ndarray:
    """(n, 5) trainer.geometry inputs of Predictor.predict's sample dicts."""
    nan_landmarks = np.full((478, 2), np.nan, np.float32)
    landmarks = np.stack([nan_landmarks if s.get("landmarks") is None else np.asarray(s["landmarks"], np.float32)
                          for s in samples])
    frames = np.array([s.get("frame_size") or (0, 0) for s in samples], np.float64)
    screens = np.array([s.get("screen") or (0, 0) for s in samples], np.float64)
    pitch = np.array([np.nan if s.get("mm_per_px") is None else s["mm_per_px"] for s in samples], np.float64)
    return geometry_inputs(landmarks, frames, screens, pitch, hfov_deg)


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
        uint8, yaw, pitch, roll (degrees), and for models with the geometry input landmarks
        ((478, 2) frame px or None), frame_size, screen (CSS px) and mm_per_px (None: unknown)
        — sample_inputs / features_inputs make them. Returns (n, 2) screen fractions (x, y), through
        the session's personal `calibration` when given (Predictor.calibration)."""
        if not samples:
            return np.zeros((0, 2), np.float32)
        if calibration is None:  # the eye patches are for a calibration only
            return self._run_model(samples)[0].numpy().astype(np.float32)
        outputs, features = self.outputs_and_features(samples)
        return calibration.apply(outputs, features).astype(np.float32)

    def calibration(self, db: Session, session_id: str) -> Calibration | None:
        """The session's personal calibration for this model, None when not fitted."""
        mapping = db.scalar(select(SessionCalibration.mapping).where(
            SessionCalibration.session_id == session_id, SessionCalibration.artifact_id == self.artifact_id))
        return Calibration.from_dict(mapping) if mapping else None

    def fit_calibration(self, samples: list[dict], targets: np.ndarray, trials: np.ndarray,
                        screen: tuple[int, int]) -> tuple[Calibration | None, dict]:
        """A personal calibration from `samples` looking at `targets` (screen fractions),
        grouped by dot in `trials` — for the live page, which has no collection session.
        None when the identity is kept."""
        outputs, features = self.outputs_and_features(samples)
        screens = np.tile(np.asarray(screen, np.float64), (len(samples), 1))
        mapping, report = fit_calibration(outputs, features, np.asarray(targets, np.float64), trials, screens)
        return (mapping if report["kept"] == "ridge" else None), report

    def outputs_and_features(self, samples: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(n, 2) outputs and (n, F) what a calibration reads beside them: the penultimate
        features and the eye patches (trainer.calibration.inputs)."""
        if not samples:
            return np.zeros((0, 2), np.float32), np.zeros((0, 0), np.float32)
        outputs, features = self._run_model(samples)
        patches = eye_patches([s["l_eye"] for s in samples], [s["r_eye"] for s in samples])
        return outputs.numpy().astype(np.float32), calibrations.inputs(features.numpy(), patches).astype(np.float32)

    @torch.inference_mode()
    def _run_model(self, samples: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's (n, 2) outputs and (n, F) penultimate features for `samples`."""
        tensors = {}
        for kind in self.kinds:
            if kind == "angles":
                angles = [[float(s.get(k) or 0.0) for k in ANGLES] for s in samples]
                tensors[kind] = torch.tensor(angles, dtype=torch.float32)
            elif kind == "geometry":
                tensors[kind] = torch.from_numpy(geometry_of(samples, self.spec["hfov_deg"]))
            else:
                tensors[kind] = to_tensor(np.stack([np.asarray(s[kind], np.uint8) for s in samples]))
        batch = make_batch(tensors, torch.arange(len(samples)), self.stats)
        return outputs_and_features(self.model, batch)

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


# ---- per-session accuracy on the validation dots ----

def _validation_frames(db: Session, session_id: str) -> list[tuple[Sample, SampleImages]]:
    query = (select(Sample, SampleImages).join(SampleImages, SampleImages.sample_id == Sample.id)
             .join(Trial, Trial.id == Sample.trial_id)
             .where(Sample.session_id == session_id, Sample.status == "accepted", Trial.kind == "validation")
             .order_by(Sample.trial_id, Sample.captured_at))
    return [tuple(row) for row in db.execute(query)]


def session_accuracy(db: Session, predictor: Predictor | None, session: CollectionSession,
                     config) -> dict:
    """Accuracy (mean error: px; cm when mm/px is known; degrees when the viewing distance
    is estimated too) and precision (RMS of sample-to-sample differences while fixating)
    of the tracker on the session's validation dots, through its personal calibration
    when one is fitted; "passed" against [collection] validation_pass_px."""
    if predictor is None:
        return {"available": False, "reason": "no model yet"}
    rows = _validation_frames(db, session.id)
    if not rows:
        return {"available": False, "reason": "no validation frames"}
    calibration = predictor.calibration(db, session.id)
    if calibration is None:  # the worker has not fitted it yet: fit it here (not stored)
        from trainer.personal import fit_mapping
        mapping, fit = fit_mapping(db, predictor, session)
        calibration = mapping if fit["kept"] == "ridge" else None
    screen = np.array([session.screen_width, session.screen_height], np.float64)
    predicted = predictor.predict([sample_inputs(s, images) for s, images in rows], calibration) * screen
    targets = np.array([[s.target_x, s.target_y] for s, _ in rows])
    errors = np.linalg.norm(predicted - targets, axis=1)
    trials = np.array([s.trial_id for s, _ in rows])
    steps = [np.linalg.norm(np.diff(predicted[trials == t], axis=0), axis=1) for t in np.unique(trials)]
    steps = np.concatenate(steps) if steps else np.zeros(0)
    mean_px = float(errors.mean())
    report = {"available": True, "dots": int(len(np.unique(trials))), "frames": len(rows),
              "mean_px": round(mean_px, 1), "precision_px": round(float(np.sqrt((steps ** 2).mean())), 1)
              if len(steps) else None, "calibrated": calibration is not None, "mean_cm": None, "mean_deg": None,
              "distance_cm": None, "threshold_px": config.collection.validation_pass_px,
              "passed": mean_px <= config.collection.validation_pass_px}
    if session.mm_per_px:
        error_mm = errors * session.mm_per_px
        report["mean_cm"] = round(float(error_mm.mean()) / 10, 2)
        distances = [viewing_distance_mm(decode_landmarks(images.landmarks), s.frame_width or 0,
                                         config.collection.camera_hfov_deg)
                     for s, images in rows if images.landmarks]
        distances = [d for d in distances if d]
        if distances:
            distance = float(np.median(distances))
            report["distance_cm"] = round(distance / 10, 1)
            report["mean_deg"] = round(float(np.degrees(np.arctan(error_mm / distance)).mean()), 2)
    return report
