"""Grouped k-fold cross-validation of a training configuration: one model per fold,
each scored on volunteers it never saw, in both regimes (trainer.evaluate). This is the
accuracy figure of a run and of `gazelab bench accuracy`; the model that gets promoted
is still trained on the single split (trainer.train)."""
from __future__ import annotations

from typing import Callable

from trainer import evaluate, snapshot as snapshots
from trainer.params import TrainParams
from trainer.train import train


def fold_record(folds: list[dict]) -> list[dict]:
    """The folds' groups (who was tested, validated, trained on) for the run's split record."""
    return [{"groups": fold["groups"], "sizes": fold["sizes"]} for fold in folds]


def cross_validate(snapshot: snapshots.Snapshot, params: TrainParams, *,
                   on_fold: Callable[[int, int], None] | None = None,
                   on_epoch: Callable[[dict], None] | None = None,
                   should_stop: Callable[[], bool] | None = None, progress: bool = False,
                   held_out: frozenset[str] = frozenset()) -> dict | None:
    """{"crossval": …, "per_volunteer": […], "folds": [groups per fold], "epochs_run": […],
    "samples_per_s": […]}; None when cancelled. `held_out` volunteers are tested, never
    trained on, and reported apart (snapshot.kfold, evaluate.crossval_report)."""
    folds = snapshots.kfold(snapshot, params.folds, params.validation_fraction, params.seed, held_out)
    results, epochs_run, speeds = [], [], []
    for number, fold in enumerate(folds):
        if on_fold:
            on_fold(number, len(folds))
        result = train(snapshot, params, split=fold, on_epoch=on_epoch, should_stop=should_stop,
                       progress=progress)
        if result.stopped == "cancelled":
            return None
        epochs_run.append(len(result.history))
        speeds.append(result.samples_per_s)
        results.append(evaluate.fold_errors(snapshot, fold, result.test_pred, result.test_features))
    report = evaluate.crossval_report(snapshot, results, params.error_grid, params.seed, held_out)
    report["crossval"]["by"] = folds[0]["by"]
    report["crossval"]["epochs_run"] = epochs_run
    return {**report, "folds": fold_record(folds), "samples_per_s": speeds, "spec": result.spec}
