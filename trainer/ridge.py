"""Ridge regression with an unpenalised intercept, and its penalty picked by
leave-one-trial-out: the one regression behind the ridge peers and the personal calibration.

Frames of one calibration trial look at the same dot a few hundred ms apart, so they are
not independent: holding out one frame at a time would reward memorising the dot.
Holding out whole trials measures what matters, the error on a dot not fitted.
"""
from __future__ import annotations

import numpy as np

ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def fit(x: np.ndarray, y: np.ndarray, alpha: float, penalty: np.ndarray | None = None) -> np.ndarray:
    """Weights (features + 1, outputs); `penalty` scales alpha per feature (default 1)."""
    x1 = np.hstack([x, np.ones((len(x), 1))])
    scale = np.ones(x.shape[1]) if penalty is None else penalty
    reg = np.diag(np.append(alpha * scale, 0.0))  # the intercept is not shrunk
    return np.linalg.solve(x1.T @ x1 + reg + 1e-9 * np.eye(x1.shape[1]), x1.T @ y)


def predict(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((len(x), 1))]) @ weights


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale per feature (scale 1 where a feature does not vary)."""
    std = x.std(axis=0)
    return x.mean(axis=0), np.where(std > 1e-8, std, 1.0)


def loto_alpha(x: np.ndarray, y: np.ndarray, trials: np.ndarray, screens: np.ndarray,
               alphas: tuple[float, ...] = ALPHAS, penalty: np.ndarray | None = None) -> tuple[float, float]:
    """The penalty with the lowest leave-one-trial-out mean error (px of each sample's
    screen; y in screen fractions), and that error."""
    groups = np.unique(trials)
    if len(groups) < 2:
        return alphas[-1], float("nan")
    scores = []
    for alpha in alphas:
        errors = np.empty(len(x))
        for g in groups:
            held = trials == g
            weights = fit(x[~held], y[~held], alpha, penalty)
            errors[held] = np.linalg.norm((predict(x[held], weights) - y[held]) * screens[held], axis=1)
        scores.append(errors.mean())
    best = int(np.argmin(scores))
    return alphas[best], float(scores[best])
