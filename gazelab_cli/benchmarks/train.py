"""`gazelab bench train`: virtual-volunteer data (cached), the default model and the
reference trained on CPU, baselines, throughput and batch-1 inference latency.

Data comes from the virtual volunteer through the real ingest + extraction path
(simulator.demo.run_demo) into a bench database under data_dir, reused by later runs;
``--source synthetic`` uses the fast procedural crops of trainer.synthetic instead.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from sqlalchemy import func, select

from gazelab import migrate
from gazelab.config import Config, load_config
from gazelab.db import session_scope
from gazelab.files import SNAPSHOT_DIR, private_subdir
from gazelab.schema import ModelArtifact, Sample
from trainer.artifacts import weights_bytes
from trainer.evaluate import evaluate
from trainer.inference import Predictor, snapshot_inputs
from trainer.models.reference import HYPERPARAMETERS as REFERENCE_HYPERPARAMETERS
from trainer.snapshot import load_snapshot
from trainer.synthetic import insert_dataset
from trainer.train import TrainParams, train


def bench_config(config: Config, source: str, volunteers: int, samples: int, seed: int,
                 bench: str = "train") -> Config:
    """The same configuration, pointed at a bench database of its own (the cache)."""
    if source == "simulator":   # frames change with the simulator's version: so does the cache
        from simulator import SIMULATOR_VERSION
        source = f"{source}{SIMULATOR_VERSION}"
    folder = config.data_dir / f"bench-{bench}" / f"{source}-v{volunteers}-s{samples}-seed{seed}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAZELAB_SERVER_")}
    env.update({"GAZELAB_CONFIG": str(config.path), "GAZELAB_SERVER_DATA_DIR": str(folder),
                "GAZELAB_SERVER_DATABASE_URL": f"sqlite:///{folder}/bench.db"})
    return load_config(environ=env)


def prepare_data(config: Config, source: str, volunteers: int, samples: int, seed: int,
                 calibration_frames: int = 0) -> dict:
    """Fill the bench database unless it is filled already (`calibration_frames`: synthetic
    source only; the simulator always runs the 9-dot calibration)."""
    migrate.upgrade(config.database_url)
    if source == "simulator":
        from simulator.demo import run_demo
        # one process: parallel workers ingest at the same time, so sample ids (hence the
        # snapshot's row order, the batches and the figures) would differ on every render
        return run_demo(config, volunteers, samples, seed=seed, workers=1)
    with session_scope(config.database_url) as db:
        cached = db.scalar(select(func.count(Sample.id)))
        created = 0 if cached else insert_dataset(db, volunteers, samples, seed=seed,
                                                  calibration_frames=calibration_frames)
    return {"samples_created": created, "samples_cached": cached}


def cpu_kind() -> dict:
    """The CPU a training figure was measured on: the same command gives the same models to
    the last digit on one kind of CPU, not across kinds (README, "Reproducible from scratch")."""
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), None)
    return {"cpu_model": model, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_threads": torch.get_num_threads()}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def infer_ms_per_sample(model, spec, stats, snapshot, repeats: int = 200, rounds: int = 5) -> float:
    """Batch-1 CPU latency through the public inference API, as a calibrated session's
    Predictor.predict pays it: the model and the eye patches its calibration reads
    (outputs_and_features; the ridge product after it is a few microseconds). The median of
    `rounds` passes over `repeats` samples: one pass on this shared machine varies by ±40 %."""
    artifact = ModelArtifact(id=0, weights=weights_bytes(model), architecture=spec, normalisation=stats,
                             error_grid={})
    predictor = Predictor(artifact)
    samples = [snapshot_inputs(snapshot, i) for i in range(min(repeats, len(snapshot)))]
    for sample in samples[:10]:
        predictor.outputs_and_features([sample])
    passes = []
    for _ in range(rounds):
        started = time.perf_counter()
        for sample in samples:
            predictor.outputs_and_features([sample])
        passes.append((time.perf_counter() - started) / len(samples) * 1000)
    return float(np.median(passes))


def run_bench(config: Config, volunteers: int, samples: int, epochs: int | None, seed: int,
              source: str, device: str) -> dict:
    started = time.perf_counter()
    data_config = bench_config(config, source, volunteers, samples, seed)
    data = prepare_data(data_config, source, volunteers, samples, seed)
    with session_scope(data_config.database_url) as db:
        snapshot = load_snapshot(db, config.collection.image_size, private_subdir(data_config, SNAPSHOT_DIR),
                                 config.training.memory_budget_mb)
    data_s = time.perf_counter() - started

    results = {}
    # the model: [training] architecture and inputs, as a run would train it
    for name, overrides in (("model", {}),
                            ("reference", {"architecture": "reference", "inputs": "full", **REFERENCE_HYPERPARAMETERS})):
        params = TrainParams.from_config(config, epochs=epochs, device=device, **overrides)
        result = train(snapshot, params, progress=True)
        metrics, _ = evaluate(snapshot, result.split, result.test_pred, params.error_grid)
        results[name] = (result, metrics, params)

    model, metrics, params = results["model"]
    test = metrics["test"]
    torch.set_num_threads(os.cpu_count() or 1)
    return {
        "model": {"architecture": model.spec["name"], "inputs": model.spec["inputs"]},
        "source": source, "volunteers": volunteers, "samples_per_volunteer": samples,
        "snapshot_samples": len(snapshot), "split": model.split["sizes"], "split_by": model.split["by"],
        "test_error_px": {"model": test["model"]["mean_px"],
                          "reference": results["reference"][1]["test"]["model"]["mean_px"],
                          "ridge": test["ridge"]["mean_px"], "mean": test["mean"]["mean_px"]},
        "test_rmse_px": {"model": test["model"]["rmse_px"],
                         "reference": results["reference"][1]["test"]["model"]["rmse_px"]},
        "ratio_to_ridge": metrics["ratio_to_ridge"],
        "params": {name: r[0].spec["parameters"] for name, r in results.items()},
        "epochs_run": {name: len(r[0].history) for name, r in results.items()},
        "best_epoch": {name: r[0].best_epoch for name, r in results.items()},
        "train_samples_per_s": model.samples_per_s,
        "reference_train_samples_per_s": results["reference"][0].samples_per_s,
        "device": model.device, **cpu_kind(),
        "infer_ms_per_sample_cpu": infer_ms_per_sample(model.model.cpu(), model.spec, model.normalisation, snapshot),
        "data_s": round(data_s, 1), "data": data,
        "wall_s": round(time.perf_counter() - started, 1),
    }
