"""Personal calibration: a small per-session mapping on top of a model, fitted on that
session's calibration trials (9 dots), as GazeCapture's per-person SVR and WebEyeTrack's
adapted output layer do.

Design: the model's output is kept and a *correction* is learned — ridge regression of
the residual (target − output) on the model's output, its penultimate features and the
two eyes as WebGazer's 10×6 equalised patches (trainer.eye_patches), all standardised on
the calibration frames. Ridge shrinks the correction toward zero, i.e. the mapping toward
the identity; its penalty is picked by leave-one-trial-out on the calibration trials, and
when no penalty beats the uncorrected model on held-out trials the identity is kept. A
personal offset (kappa angle, a habit of looking a bit off the dot) is what it removes
first: the intercept is never shrunk.

Two guards against what 9 dots cannot tell: the features and patches are shrunk
FEATURE_PENALTY times harder than the output (an affine correction of the output is the
safe part), and they are clipped to ±FEATURE_CLIP standard deviations of the calibration
frames — a linear map fitted on 9 dots must not extrapolate along a feature that barely
varied during calibration. Measured on virtual volunteers (6 epochs, 2 folds, 12 people):
zero-shot 335 px, offset only 260 px, affine on the output 179 px, + penultimate features
167 px; without the clip a few people reached thousands of px.

Why the eye patches: the model's features are what a network trained on other people
kept, and on a new person or set-up they miss what makes that person's eyes look
different (on photographed faces they calibrated worse than raw eye patches do). The
patches carry the person's own eye appearance, and the model's output the general gaze
estimate; `gazelab bench accuracy` (same folds, same frames) measured the calibrated model
at 168.6 px with the features alone and 161.7 px with the patches added on the training
styles, 166.6 → 136.9 px on the held-out style (README, "Accuracy").

A stored mapping records what it reads (INPUTS); one fitted on other inputs (before the
patches were added) is stale and reads as no calibration until it is fitted again.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer import ridge

MIN_TRIALS = 3
INPUTS = "output+features+eye_patches"
FEATURE_PENALTY = 10.0
FEATURE_CLIP = 2.5


class CalibrationMismatch(ValueError):
    """A mapping applied to inputs of another width: fitted under another model."""


@dataclass
class Calibration:
    mean: np.ndarray        # (d,) means of the design (output, then `inputs`)
    scale: np.ndarray       # (d,) its scales
    weights: np.ndarray     # (d + 1, 2) residual ridge weights; all zero = identity

    def apply(self, outputs: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Calibrated predictions (screen fractions) from the model's outputs and the
        calibration `inputs` (features and eye patches)."""
        if outputs.shape[1] + features.shape[1] != len(self.mean):
            raise CalibrationMismatch("this calibration was fitted under another model; calibrate again")
        return outputs + ridge.predict(_standardised(outputs, features, self.mean, self.scale), self.weights)

    def as_dict(self) -> dict:
        return {"inputs": INPUTS, "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "weights": self.weights.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration | None:
        """The stored mapping; None when it was fitted on other inputs (stale: fit it again).
        Raises ValueError, KeyError or TypeError on a malformed one."""
        if data.get("inputs") != INPUTS:
            return None
        mapping = cls(*(np.asarray(data[k], np.float64) for k in ("mean", "scale", "weights")))
        if mapping.mean.ndim != 1 or mapping.scale.shape != mapping.mean.shape \
                or mapping.weights.shape != (len(mapping.mean) + 1, 2):
            raise ValueError("calibration arrays do not fit together")
        return mapping


def inputs(features: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """What a calibration reads besides the output: the model's penultimate features and
    the eye patches (trainer.eye_patches), side by side."""
    return np.hstack([np.asarray(features, np.float64).reshape(len(patches), -1), np.asarray(patches, np.float64)])


def _design(outputs: np.ndarray, features: np.ndarray) -> np.ndarray:
    return np.hstack([np.asarray(outputs, np.float64), np.asarray(features, np.float64)])


def _standardised(outputs: np.ndarray, features: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Output columns standardised; feature columns standardised and clipped (see above)."""
    z = (_design(outputs, features) - mean) / scale
    z[:, 2:] = np.clip(z[:, 2:], -FEATURE_CLIP, FEATURE_CLIP)
    return z


def fit(outputs: np.ndarray, features: np.ndarray, targets: np.ndarray, trials: np.ndarray,
        screens: np.ndarray) -> tuple[Calibration, dict]:
    """The calibration of one session from its calibration frames, and a report
    (frames, trials, alpha, leave-one-trial-out error px, uncorrected error px, kept)."""
    x = _design(outputs, features)
    mean, scale = ridge.standardiser(x)
    identity = Calibration(mean, scale, np.zeros((x.shape[1] + 1, 2)))
    uncorrected = float(np.linalg.norm((outputs - targets) * screens, axis=1).mean()) if len(x) else None
    report = {"frames": int(len(x)), "trials": int(len(np.unique(trials))), "alpha": None,
              "loto_px": None, "uncorrected_px": uncorrected, "kept": "identity"}
    if report["trials"] < MIN_TRIALS:
        return identity, report
    z = _standardised(outputs, features, mean, scale)
    penalty = np.r_[np.ones(2), np.full(x.shape[1] - 2, FEATURE_PENALTY)]
    residual = targets - outputs
    alpha, loto = ridge.loto_alpha(z, residual, trials, screens, penalty=penalty)  # error of r̂ - r = calibrated error
    report.update(alpha=alpha, loto_px=loto)
    if not loto < uncorrected:
        return identity, report
    report["kept"] = "ridge"
    return Calibration(mean, scale, ridge.fit(z, residual, alpha, penalty)), report
