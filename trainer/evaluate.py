"""Metrics on held-out samples, the per-region error grid, and the two baselines.

Errors are Euclidean distances in px of each sample's own screen (targets and
predictions are screen fractions); mm where the session's physical scale is known.
Baselines on the same split: predict-the-mean, and ridge regression on eye-patch pixels
(WebGazer-style: small grey, histogram-equalised eye patches).
"""
from __future__ import annotations

import cv2
import numpy as np

from trainer.snapshot import Snapshot

RIDGE_PATCH = (10, 6)               # WebGazer's eye patch, width × height
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def errors_px(pred: np.ndarray, target: np.ndarray, screens: np.ndarray) -> np.ndarray:
    return np.linalg.norm((pred - target) * screens, axis=1)


def summary(errors: np.ndarray, mm_per_px: np.ndarray | None = None) -> dict:
    if len(errors) == 0:
        return {"mean_px": None, "rmse_px": None, "median_px": None, "p90_px": None, "n": 0}
    result = {"mean_px": float(errors.mean()), "rmse_px": float(np.sqrt((errors ** 2).mean())),
              "median_px": float(np.median(errors)), "p90_px": float(np.percentile(errors, 90)),
              "n": int(len(errors))}
    if mm_per_px is not None and np.isfinite(mm_per_px).any():
        known = np.isfinite(mm_per_px)
        result["mean_mm"] = float((errors[known] * mm_per_px[known]).mean())
    return result


def error_grid(errors: np.ndarray, targets: np.ndarray, screens: np.ndarray, cols: int, rows: int) -> dict:
    """Mean error (px, and as a fraction of the screen diagonal) per screen region, with counts."""
    col = np.clip((targets[:, 0] * cols).astype(int), 0, cols - 1)
    row = np.clip((targets[:, 1] * rows).astype(int), 0, rows - 1)
    counts = np.zeros((rows, cols), int)
    sums = np.zeros((rows, cols))
    sums_norm = np.zeros((rows, cols))
    np.add.at(counts, (row, col), 1)
    np.add.at(sums, (row, col), errors)
    np.add.at(sums_norm, (row, col), errors / np.linalg.norm(screens, axis=1))
    def cells(total):
        return [[float(total[r, c] / counts[r, c]) if counts[r, c] else None for c in range(cols)]
                for r in range(rows)]
    return {"cols": cols, "rows": rows, "mean_px": cells(sums), "mean_diag_fraction": cells(sums_norm),
            "counts": counts.tolist(),
            "overall_diag_fraction": float((errors / np.linalg.norm(screens, axis=1)).mean()) if len(errors) else None}


def mean_baseline(snapshot: Snapshot, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    return np.repeat(snapshot.targets[train].mean(axis=0, keepdims=True), len(test), axis=0)


def eye_features(snapshot: Snapshot, indices: np.ndarray) -> np.ndarray:
    rows = []
    for i in indices:
        patches = []
        for kind in ("l_eye", "r_eye"):
            grey = cv2.cvtColor(snapshot.images[kind][i], cv2.COLOR_RGB2GRAY)
            patches.append(cv2.equalizeHist(cv2.resize(grey, RIDGE_PATCH, interpolation=cv2.INTER_AREA)))
        rows.append(np.concatenate([p.ravel() for p in patches]))
    return np.asarray(rows, np.float64) / 255.0


def _ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    x1 = np.hstack([x, np.ones((len(x), 1))])
    penalty = alpha * np.eye(x1.shape[1])
    penalty[-1, -1] = 0  # do not shrink the intercept
    return np.linalg.solve(x1.T @ x1 + penalty, x1.T @ y)


def _ridge_predict(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((len(x), 1))]) @ weights


def ridge_baseline(snapshot: Snapshot, train: np.ndarray, validation: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Ridge regression on eye patches; the penalty picked on the validation split."""
    x_train, y_train = eye_features(snapshot, train), snapshot.targets[train]
    alpha = RIDGE_ALPHAS[2]
    if len(validation):
        x_val = eye_features(snapshot, validation)
        scores = [errors_px(_ridge_predict(x_val, _ridge_fit(x_train, y_train, a)), snapshot.targets[validation],
                            snapshot.screens[validation]).mean() for a in RIDGE_ALPHAS]
        alpha = RIDGE_ALPHAS[int(np.argmin(scores))]
    return _ridge_predict(eye_features(snapshot, test), _ridge_fit(x_train, y_train, alpha))


def evaluate(snapshot: Snapshot, split: dict, model_pred: np.ndarray, grid: tuple[int, int]) -> tuple[dict, np.ndarray]:
    """Run metrics (the TrainingRun.metrics layout) and the model's per-sample test errors."""
    train, val, test = (split["indices"][k] for k in ("train", "validation", "test"))
    targets, screens, mm = snapshot.targets[test], snapshot.screens[test], snapshot.mm_per_px[test]
    model_errors = errors_px(model_pred, targets, screens)
    results = {"model": summary(model_errors, mm),
               "mean": summary(errors_px(mean_baseline(snapshot, train, test), targets, screens), mm),
               "ridge": summary(errors_px(ridge_baseline(snapshot, train, val, test), targets, screens), mm)}
    model_mean = results["model"]["mean_px"]
    def ratio(name):
        base = results[name]["mean_px"]
        return float(model_mean / base) if model_mean is not None and base else None
    metrics = {"test": results, "ratio_to_ridge": ratio("ridge"), "ratio_to_mean": ratio("mean"),
               "error_grid": error_grid(model_errors, targets, screens, *grid)}
    return metrics, model_errors
