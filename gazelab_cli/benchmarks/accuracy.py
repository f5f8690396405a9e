"""`gazelab bench accuracy`: the accuracy protocol of issue #12 on virtual volunteers.

Grouped k-fold cross-validation by volunteer (trainer.crossval): the default model and
the peers, zero-shot and calibrated on each test volunteer's own 9 calibration dots, as
means over test volunteers with 95 % bootstrap CIs, plus the per-volunteer table.
Data: the virtual volunteer through the real ingest + extraction path, cached in a bench
database (gazelab_cli.benchmarks.train). Volunteer ids derive from the seed, so the same
command gives the same folds ("split" in the output).
"""
from __future__ import annotations

import os
import time

import torch

from gazelab.config import Config
from gazelab.db import session_scope
from gazelab.files import SNAPSHOT_DIR, private_subdir
from gazelab_cli.benchmarks.train import bench_config, prepare_data
from trainer.crossval import cross_validate
from trainer.snapshot import load_snapshot
from trainer.params import TrainParams

CALIBRATION_FRAMES = 4   # synthetic source: frames per calibration dot (the page captures ~4)


def goals(report: dict) -> dict:
    """The issue's goals, each with the figures it compares."""
    zero, calibrated = report["zero_shot"], report["calibrated_9"]
    upper = (calibrated["model"]["ci95"] or [None, None])[1]
    webgazer, centre, model = calibrated["webgazer_style"]["mean_px"], zero["centre"]["mean_px"], zero["model"]["mean_px"]
    return {"calibrated_upper_ci_le_0.6_webgazer_style": None if upper is None or webgazer is None
            else bool(upper <= 0.6 * webgazer),
            "zero_shot_model_le_0.5_centre": None if model is None or centre is None else bool(model <= 0.5 * centre)}


def run(config: Config, volunteers: int, samples: int, folds: int, seed: int, epochs: int | None,
        source: str, device: str) -> dict:
    started = time.perf_counter()
    data_config = bench_config(config, source, volunteers, samples, seed, bench="accuracy")
    data = prepare_data(data_config, source, volunteers, samples, seed, CALIBRATION_FRAMES)
    with session_scope(data_config.database_url) as db:
        snapshot = load_snapshot(db, config.collection.image_size, private_subdir(data_config, SNAPSHOT_DIR),
                                 config.training.memory_budget_mb)
    data_s = time.perf_counter() - started
    params = TrainParams.from_config(config, epochs=epochs, device=device, folds=folds, seed=seed,
                                     architecture="compact", inputs="full")
    result = cross_validate(snapshot, params, progress=True)
    report = result["crossval"]
    def methods(regime: str) -> dict:
        return {m: {"mean_px": r["mean_px"], "ci95": r["ci95"], "volunteers": r["volunteers"]}
                for m, r in report[regime].items()}
    return {
        "folds": report["folds"], "volunteers": report["volunteers"], "source": source,
        "samples_per_volunteer": samples, "seed": seed, "snapshot_samples": len(snapshot),
        "zero_shot": methods("zero_shot"), "calibrated_9": methods("calibrated_9"),
        "goals": goals(report),
        "split": [fold["groups"]["test"] for fold in result["folds"]], "split_by": report["by"],
        "epochs": params.epochs, "epochs_run": report["epochs_run"],
        "calibration": report["calibration"],
        "per_volunteer": result["per_volunteer"],
        "device": device, "cpu_threads": torch.get_num_threads() if device == "cpu" else os.cpu_count(),
        "data_s": round(data_s, 1), "data": data,
        "wall_s": round(time.perf_counter() - started, 1),
    }
