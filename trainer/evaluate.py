"""Evaluation, separate from training: metrics on held-out frames, the per-region error
grid, the two regimes (zero-shot and calibrated) with the peers beside the model, and the
cross-validation report (means over test volunteers with bootstrap CIs, per-volunteer table).

Where the calibrated error comes from (each dot's bias, the frames' scatter, the mapping
fitted on all of a person's frames) is reported beside it (calibration_limits).

Errors are Euclidean distances in px of each sample's own screen (targets and predictions
are screen fractions); mm where the session's physical scale is known. Calibration frames
(trial kind "calibration") are never scored: they are what the calibrated regime fits on.
"""
from __future__ import annotations

import numpy as np

from trainer import calibration, peers
from trainer.snapshot import Snapshot

BOOTSTRAP_REPS = 2000
ALL_FRAMES_GROUPS = 9
CALIBRATION_LIMITS = ("trial_bias_px", "within_trial_scatter_px", "all_frames_fit_px")
REGIMES = {"zero_shot": ("model", *peers.ZERO_SHOT), "calibrated_9": ("model", *peers.CALIBRATED)}


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


def bootstrap_ci(values: np.ndarray, seed: int, reps: int = BOOTSTRAP_REPS) -> list[float] | None:
    """95 % interval of the mean of `values` (one per volunteer), resampling volunteers."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return None
    draws = np.random.default_rng(seed).integers(0, len(values), (reps, len(values)))
    means = values[draws].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def scored(snapshot: Snapshot, indices: np.ndarray) -> np.ndarray:
    """The positions in `indices` whose frames may be scored (not calibration frames)."""
    return np.flatnonzero(snapshot.trial_kinds[indices] != "calibration")


def evaluate(snapshot: Snapshot, split: dict, model_pred: np.ndarray, grid: tuple[int, int]) -> tuple[dict, np.ndarray]:
    """Single-split run metrics (the TrainingRun.metrics layout) and the model's per-frame
    errors on the scored test frames."""
    train, val, test = (split["indices"][k] for k in ("train", "validation", "test"))
    keep = scored(snapshot, test)
    test, model_pred = test[keep], model_pred[keep]
    targets, screens, mm = snapshot.targets[test], snapshot.screens[test], snapshot.mm_per_px[test]
    model_errors = errors_px(model_pred, targets, screens)
    results = {"model": summary(model_errors, mm),
               "mean": summary(errors_px(peers.training_mean(snapshot, train, len(test)), targets, screens), mm),
               "ridge": summary(errors_px(peers.ridge_general(snapshot, train, val, test), targets, screens), mm)}
    model_mean = results["model"]["mean_px"]
    def ratio(name):
        base = results[name]["mean_px"]
        return float(model_mean / base) if model_mean is not None and base else None
    metrics = {"test": results, "ratio_to_ridge": ratio("ridge"), "ratio_to_mean": ratio("mean"),
               "error_grid": error_grid(model_errors, targets, screens, *grid)}
    return metrics, model_errors


# ---- the two regimes on one fold ----

def fold_errors(snapshot: Snapshot, split: dict, model_pred: np.ndarray, model_features: np.ndarray) -> dict:
    """Per scored test frame, the error (px) of every method in both regimes (NaN where a
    method cannot apply, e.g. a session without calibration frames), and the calibrated
    model's predictions. Each test session's calibration frames fit its personal mappings
    (the model's: from its outputs, its penultimate `model_features` and the eye patches)."""
    train, val, test = (split["indices"][k] for k in ("train", "validation", "test"))
    keep = scored(snapshot, test)
    idx = test[keep]
    targets, screens = snapshot.targets[idx], snapshot.screens[idx]
    zero = {"model": errors_px(model_pred[keep], targets, screens),
            "centre": errors_px(peers.centre(len(idx)), targets, screens),
            "mean": errors_px(peers.training_mean(snapshot, train, len(idx)), targets, screens),
            "ridge_general": errors_px(peers.ridge_general(snapshot, train, val, idx), targets, screens)}
    calibrated_pred = {m: np.full((len(idx), 2), np.nan) for m in REGIMES["calibrated_9"]}
    all_frames_pred = np.full((len(idx), 2), np.nan)
    features = {name: make(snapshot, test) for name, make in peers.PERSONAL_FEATURES.items()}
    model_features = calibration.inputs(model_features, features["webgazer_style"])  # the same eye patches
    reports = []
    for session in np.unique(snapshot.session_ids[idx]):
        in_session = snapshot.session_ids[test] == session
        cal = np.flatnonzero(in_session & (snapshot.trial_kinds[test] == "calibration"))
        out = np.flatnonzero(in_session[keep])          # positions in idx
        out_test = keep[out]                            # the same frames, positions in test
        if len(cal) == 0:
            continue
        y, trials, cal_screens = snapshot.targets[test[cal]], snapshot.trial_ids[test[cal]], snapshot.screens[test[cal]]
        mapping, report = calibration.fit(model_pred[cal], model_features[cal], y, trials, cal_screens)
        reports.append({"session_id": str(session), **report})
        calibrated_pred["model"][out] = mapping.apply(model_pred[out_test], model_features[out_test])
        all_frames_pred[out] = _fit_on_all_frames(snapshot, test, np.r_[cal, out_test], model_pred, model_features,
                                                  out_test)
        for name, x in features.items():
            calibrated_pred[name][out] = peers.per_person_ridge(x[cal], y, trials, cal_screens, x[out_test])
    calibrated = {m: errors_px(p, targets, screens) for m, p in calibrated_pred.items()}
    return {"indices": idx, "zero_shot": zero, "calibrated_9": calibrated,
            "calibrated_model_pred": calibrated_pred["model"], "calibration_reports": reports,
            "all_frames_fit": errors_px(all_frames_pred, targets, screens)}


def _fit_on_all_frames(snapshot: Snapshot, test: np.ndarray, fit_on: np.ndarray, model_pred: np.ndarray,
                       model_features: np.ndarray, apply_to: np.ndarray) -> np.ndarray:
    """The personal calibration fitted on every frame of the session (its scored frames
    included) and applied to the scored ones: not a result, the floor of what this mapping
    could reach with unlimited calibration data (calibration_limits). Its penalty is picked
    over the trials dealt into ALL_FRAMES_GROUPS groups, so a long session costs no more
    fits than 9 dots do."""
    rows = test[fit_on]
    _, trial_rank = np.unique(snapshot.trial_ids[rows], return_inverse=True)
    mapping, _ = calibration.fit(model_pred[fit_on], model_features[fit_on], snapshot.targets[rows],
                                 trial_rank % ALL_FRAMES_GROUPS, snapshot.screens[rows])
    return mapping.apply(model_pred[apply_to], model_features[apply_to])


def calibration_limits(snapshot: Snapshot, indices: np.ndarray, pred: np.ndarray, all_frames_fit: np.ndarray) -> dict:
    """Where one volunteer's calibrated error comes from (px): `trial_bias`, the error of the
    mean prediction over each trial's frames (what a per-dot correction would have to fix);
    `within_trial_scatter`, the frames' distance from their trial's mean prediction (what
    the model's frame-to-frame steadiness costs); `all_frames_fit`, the same mapping fitted
    on all of the volunteer's frames instead of 9 dots (in-sample: a floor, not a result)."""
    known = np.isfinite(pred).all(axis=1)
    indices, pred = indices[known], pred[known]
    if not len(indices):
        return dict.fromkeys(CALIBRATION_LIMITS)
    trials, screens, targets = snapshot.trial_ids[indices], snapshot.screens[indices], snapshot.targets[indices]
    bias, scatter = [], []
    for trial in np.unique(trials):
        mine = trials == trial
        centre = pred[mine].mean(axis=0)
        bias.append(np.linalg.norm((centre - targets[mine][0]) * screens[mine][0]))
        scatter.extend(np.linalg.norm((pred[mine] - centre) * screens[mine], axis=1))
    return {"trial_bias_px": float(np.mean(bias)), "within_trial_scatter_px": float(np.mean(scatter)),
            "all_frames_fit_px": float(np.nanmean(all_frames_fit[known]))}


# ---- the cross-validation report ----

def _per_volunteer(snapshot: Snapshot, folds: list[dict]) -> list[dict]:
    rows = []
    for number, fold in enumerate(folds):
        volunteers = snapshot.volunteer_ids[fold["indices"]]
        for volunteer in np.unique(volunteers):
            mine = volunteers == volunteer
            row = {"volunteer_id": str(volunteer), "fold": number, "frames_scored": int(mine.sum()),
                   "calibration_limits": calibration_limits(snapshot, fold["indices"][mine],
                                                            fold["calibrated_model_pred"][mine],
                                                            fold["all_frames_fit"][mine])}
            for regime, methods in REGIMES.items():
                means = {m: fold[regime][m][mine] for m in methods}
                row[regime] = {m: float(np.nanmean(e)) if np.isfinite(e).any() else None for m, e in means.items()}
            rows.append(row)
    return rows


def _regimes(table: list[dict], seed: int) -> dict:
    """Per regime and method: the mean over `table`'s volunteers of their mean errors, its
    95 % bootstrap CI and how many volunteers it covers."""
    out = {}
    for regime, methods in REGIMES.items():
        out[regime] = {}
        for method in methods:
            values = np.array([row[regime][method] for row in table if row[regime][method] is not None])
            out[regime][method] = {"mean_px": float(values.mean()) if len(values) else None,
                                   "ci95": bootstrap_ci(values, seed), "volunteers": int(len(values))}
    limits = [row["calibration_limits"] for row in table]
    out["calibration_limits"] = {key: _mean_known([limit[key] for limit in limits]) for key in CALIBRATION_LIMITS}
    return out


def _mean_known(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def crossval_report(snapshot: Snapshot, folds: list[dict], grid: tuple[int, int], seed: int,
                    held_out: frozenset[str] = frozenset()) -> dict:
    """Both regimes: per method the mean over test volunteers of each volunteer's mean error,
    its 95 % bootstrap CI over volunteers and how many volunteers it covers; the per-volunteer
    table (its own key, "per_volunteer", easy to scrub); error grids of the model in both regimes.
    Volunteers in `held_out` (never trained on in any fold: a held-out rendering style) are
    reported apart, under "held_out", with the same methods; the rest of the report leaves
    them out."""
    table = _per_volunteer(snapshot, folds)
    for row in table:
        row["held_out"] = row["volunteer_id"] in held_out
    inside = [row for row in table if not row["held_out"]]
    report = {"folds": len(folds), "volunteers": len(inside), **_regimes(inside, seed)}
    if held_out:
        outside = [row for row in table if row["held_out"]]
        report["held_out"] = {"volunteers": len(outside), **_regimes(outside, seed)}
    idx = np.concatenate([fold["indices"] for fold in folds])
    keep = ~np.isin(snapshot.volunteer_ids[idx], list(held_out))
    targets, screens = snapshot.targets[idx][keep], snapshot.screens[idx][keep]
    zero = np.concatenate([fold["zero_shot"]["model"] for fold in folds])[keep]
    calibrated = np.concatenate([fold["calibrated_9"]["model"] for fold in folds])[keep]
    known = np.isfinite(calibrated)
    report["error_grid"] = {
        "zero_shot": error_grid(zero, targets, screens, *grid),
        "calibrated_9": error_grid(calibrated[known], targets[known], screens[known], *grid)}
    reports = [r for fold in folds for r in fold["calibration_reports"]]
    report["calibration"] = {"sessions": len(reports), "kept_ridge": sum(r["kept"] == "ridge" for r in reports)}
    return {"crossval": report, "per_volunteer": table}
