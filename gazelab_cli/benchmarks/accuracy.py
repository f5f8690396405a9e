"""`gazelab bench accuracy`: the accuracy protocol of issue #12 on virtual volunteers, with a
held-out rendering style (issue #13).

Grouped k-fold cross-validation by volunteer (trainer.crossval): each model variant and the
peers, zero-shot and calibrated on each test volunteer's own 9 calibration dots, as means
over test volunteers with 95 % bootstrap CIs, plus the per-volunteer table. Data: the
virtual volunteer through the real ingest + extraction path, cached in a bench database
(gazelab_cli.benchmarks.train). Volunteer `i` is rendered in style
`simulator.styles.style_for_volunteer(i)`; the volunteers of the held-out style are spread
over the folds' test parts and never trained on in any fold, and get a block of their own
("held_out_style"). Volunteer ids derive from the seed, so the same command gives the same
folds ("split" in the output).

Every variant in `--models` is cross-validated on the same folds in the same run; the first
is "model" in the regime blocks, each has its own row under "variants".
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch
from sqlalchemy import select

from gazelab.config import Config
from gazelab.db import session_scope
from gazelab.files import SNAPSHOT_DIR, private_subdir
from gazelab.schema import Volunteer
from gazelab_cli.benchmarks.train import bench_config, cpu_kind, infer_ms_per_sample, prepare_data
from simulator.demo import style_of_source
from simulator.styles import HELD_OUT_STYLE
from trainer.crossval import cross_validate
from trainer.models import build_model
from trainer.params import TrainParams
from trainer.snapshot import attach_geometry, load_snapshot

CALIBRATION_FRAMES = 4   # synthetic source: frames per calibration dot (the page captures ~4)
# Model variants: (architecture, inputs). gaze_ray: the gaze direction, intersected with the
# screen plane; direct_geometry: screen fractions regressed directly, geometry as an input;
# direct: the compact model as before issue #13 (no geometry).
VARIANTS = {"gaze_ray": ("gaze_ray", "full_geometry"), "direct_geometry": ("compact", "full_geometry"),
            "direct": ("compact", "full")}
GOAL_METHODS = ("centre", "webgazer_style")


def goals(block: dict) -> dict:
    """The issue's goals on one block (training styles or the held-out style)."""
    zero, calibrated = block["zero_shot"], block["calibrated_9"]
    upper = (calibrated["model"]["ci95"] or [None, None])[1]
    webgazer, centre, model = calibrated["webgazer_style"]["mean_px"], zero["centre"]["mean_px"], zero["model"]["mean_px"]
    return {"calibrated_upper_ci_le_0.6_webgazer_style": None if upper is None or webgazer is None
            else bool(upper <= 0.6 * webgazer),
            "zero_shot_model_le_0.5_centre": None if model is None or centre is None else bool(model <= 0.5 * centre)}


def _methods(regimes: dict) -> dict:
    """Per regime and method the figures, and where the model's calibrated error comes from."""
    return {**{regime: {m: {"mean_px": r["mean_px"], "ci95": r["ci95"], "volunteers": r["volunteers"]}
                        for m, r in regimes[regime].items()} for regime in ("zero_shot", "calibrated_9")},
            "calibration_limits": {key: None if value is None else round(value, 1)
                                   for key, value in regimes["calibration_limits"].items()}}


def _model_only(block: dict) -> dict:
    return {**{regime: block[regime]["model"] for regime in ("zero_shot", "calibrated_9")},
            "calibration_limits": block["calibration_limits"]}


def held_out_volunteers(database_url: str) -> tuple[frozenset[str], dict[str, str]]:
    """Ids of the volunteers rendered in the held-out style, and every volunteer's style."""
    with session_scope(database_url) as db:
        styles = {vid: style_of_source(source) or "unknown"
                  for vid, source in db.execute(select(Volunteer.id, Volunteer.source))}
    return frozenset(v for v, style in styles.items() if style == HELD_OUT_STYLE), styles


def run(config: Config, volunteers: int, samples: int, folds: int, seed: int, epochs: int | None,
        source: str, device: str, models: tuple[str, ...] = tuple(VARIANTS)) -> dict:
    started = time.perf_counter()
    data_config = bench_config(config, source, volunteers, samples, seed, bench="accuracy")
    data = prepare_data(data_config, source, volunteers, samples, seed, CALIBRATION_FRAMES)
    held_out, styles = held_out_volunteers(data_config.database_url)
    with session_scope(data_config.database_url) as db:
        snapshot = load_snapshot(db, config.collection.image_size, private_subdir(data_config, SNAPSHOT_DIR),
                                 config.training.memory_budget_mb)
    attach_geometry(snapshot, config.collection.camera_hfov_deg)
    data_s = time.perf_counter() - started

    variants, first = {}, None
    for name in models:
        architecture, inputs = VARIANTS[name]
        params = TrainParams.from_config(config, epochs=epochs, device=device, folds=folds, seed=seed,
                                         architecture=architecture, inputs=inputs)
        result = cross_validate(snapshot, params, progress=True, held_out=held_out)
        report = result["crossval"]
        block = _methods(report)
        held = _methods(report["held_out"]) if "held_out" in report else None
        variants[name] = {"architecture": architecture, "inputs": inputs, **_model_only(block),
                          "held_out_style": _model_only(held) if held else None,
                          "parameters": result["spec"]["parameters"],
                          "train_samples_per_s": round(float(np.mean(result["samples_per_s"])), 1),
                          "epochs_run": report["epochs_run"]}
        if first is None:
            first = (name, params, result, block, held)
    name, params, result, block, held = first
    report = result["crossval"]
    return {
        "model": name, "folds": report["folds"], "volunteers": report["volunteers"], "source": source,
        "samples_per_volunteer": samples, "seed": seed, "snapshot_samples": len(snapshot),
        "zero_shot": block["zero_shot"], "calibrated_9": block["calibrated_9"], "goals": goals(block),
        "calibration_limits": block["calibration_limits"],
        "held_out_style": None if held is None else {
            "style": HELD_OUT_STYLE, "volunteers": report["held_out"]["volunteers"], **held, "goals": goals(held)},
        "styles": {style: sum(1 for s in styles.values() if s == style) for style in sorted(set(styles.values()))},
        "variants": variants,
        "parameters": result["spec"]["parameters"],
        "infer_ms_batch1_cpu": round(_inference_ms(params, result["spec"], snapshot), 3),
        "train_samples_per_s": variants[name]["train_samples_per_s"],
        "split": [fold["groups"]["test"] for fold in result["folds"]], "split_by": report["by"],
        "trained_on": [fold["groups"]["train"] + fold["groups"]["validation"] for fold in result["folds"]],
        "epochs": params.epochs, "epochs_run": report["epochs_run"],
        "calibration": report["calibration"],
        "per_volunteer": [{**row, "style": styles.get(row["volunteer_id"])} for row in result["per_volunteer"]],
        "device": device, **cpu_kind(),
        "data_s": round(data_s, 1), "data": data,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _inference_ms(params: TrainParams, spec: dict, snapshot) -> float:
    """Batch-1 CPU latency of the model variant through trainer.inference.Predictor (weights
    as initialised: the latency does not depend on their values)."""
    from trainer.transforms import normalisation_stats
    from trainer.models import tensors_needed
    model = build_model({k: v for k, v in spec.items() if k != "parameters"})
    stats = normalisation_stats(snapshot.images, np.arange(min(len(snapshot), 500)), tensors_needed(params.inputs))
    torch.set_num_threads(1)
    try:
        return infer_ms_per_sample(model.eval(), spec, stats, snapshot)
    finally:
        torch.set_num_threads(os.cpu_count() or 1)
