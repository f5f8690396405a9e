"""`gazelab bench snapshot`: the training-data shard store and training at scale.

A bench database of `samples` accepted samples is filled by bulk insert (SQLite in a temp
dir, or `--database-url`); its crops are a handful of real ones (virtual-volunteer frames
through the real extraction) reused with varied targets, screens and ids — decoding costs
what real crops cost, the pixels repeat. Then, each step in a subprocess of its own whose
peak RSS (ru_maxrss: resident pages, memory-mapped file pages included) it reports:

1. build the shard store from scratch (`build_s`, `build_peak_rss_mb`);
2. add `new_fraction` more samples and build again (`incremental_build_s`; only those decoded);
3. train the default model, streamed from the shards, on a random training split of
   `train_batches` batches drawn from all rows (`train_samples_per_s`, `train_peak_rss_mb`);
4. reject every sample but the first `subset` (masked, nothing rewritten) and train the same
   split of that subset in RAM and streamed, alternately, `rounds` times each (best of
   each: the machine may be shared; `in_ram_train_samples_per_s` beside
   `streamed_subset_train_samples_per_s`, and whether both gave the same predictions).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from sqlalchemy import func, insert, select, text, update

from gazelab import migrate
from gazelab.config import Config, load_config
from gazelab.db import session_scope
from gazelab.files import SNAPSHOT_DIR, private_subdir
from gazelab.schema import CollectionSession, Sample, SampleImages, Volunteer

CROP_FRAMES = 8                  # real crops: this many virtual-volunteer frames, reused
SAMPLES_PER_VOLUNTEER = 500
INSERT_CHUNK = 2000
SCREENS = ((1920, 1080), (1536, 864), (2560, 1440), (1366, 768))


def real_crops(config: Config, count: int = CROP_FRAMES) -> list[dict]:
    """`count` samples' encoded crops and landmarks: virtual-volunteer frames through the real
    extraction and the stored encoding."""
    from collection.codec import encode_crops, encode_landmarks
    from collection.extraction import extract
    from gazelab.schema import CROP_KINDS
    from simulator.volunteer import VirtualVolunteer
    crops, attempt = [], 0
    sessions = [VirtualVolunteer(seed).session() for seed in (1, 2)]
    while len(crops) < count and attempt < 20 * count:
        session = sessions[attempt % 2]
        frame, _ = session.frame((200 + 190 * (attempt % 9), 150 + 100 * (attempt % 8)), inattentive=False)
        attempt += 1
        features = extract(frame, config).features
        if features is None:
            continue
        encoded = encode_crops({k: getattr(features, k) for k in CROP_KINDS}, config.extraction.crop_format,
                               config.extraction.crop_jpeg_quality)
        crops.append({**encoded, "format": config.extraction.crop_format,
                      "landmarks": encode_landmarks(features.landmarks), "angles": (features.yaw, features.pitch,
                                                                                     features.roll)})
    if not crops:
        raise RuntimeError("the extraction found no face in the virtual volunteer's frames")
    return crops


def insert_samples(url: str, count: int, crops: list[dict], seed: int) -> int:
    """`count` more accepted samples (new volunteers of SAMPLES_PER_VOLUNTEER each) by bulk insert."""
    rng = np.random.default_rng(seed)
    now = dt.datetime(2026, 1, 1)
    with session_scope(url) as db:
        next_id = (db.scalar(select(func.max(Sample.id))) or 0) + 1
        volunteers = -(-count // SAMPLES_PER_VOLUNTEER)
        sessions = []
        for v in range(volunteers):
            volunteer = Volunteer(consent_version="bench", source=f"bench-snapshot:{seed}:{v}")
            screen = SCREENS[int(rng.integers(len(SCREENS)))]
            session = CollectionSession(volunteer=volunteer, token_hash="x" * 64, screen_width=screen[0],
                                        screen_height=screen[1], mm_per_px=0.25, status="finished")
            db.add(session)
            sessions.append(session)
        db.flush()
        for start in range(0, count, INSERT_CHUNK):
            rows, images = [], []
            for i in range(start, min(count, start + INSERT_CHUNK)):
                session = sessions[i // SAMPLES_PER_VOLUNTEER]
                crop = crops[i % len(crops)]
                sample_id = next_id + i
                rows.append({"id": sample_id, "session_id": session.id, "volunteer_id": session.volunteer_id,
                             "client_frame_id": str(i), "captured_at": now, "received_at": now,
                             "target_x": float(rng.uniform(0, session.screen_width)),
                             "target_y": float(rng.uniform(0, session.screen_height)),
                             "yaw": crop["angles"][0], "pitch": crop["angles"][1], "roll": crop["angles"][2],
                             "frame_width": 640, "frame_height": 480, "quality": {}, "status": "accepted",
                             "reasons": ""})
                images.append({"sample_id": sample_id, **{k: v for k, v in crop.items() if k != "angles"}})
            db.execute(insert(Sample), rows)
            db.execute(insert(SampleImages), images)
        if db.get_bind().dialect.name == "postgresql":   # explicit ids: move the sequence past them
            db.execute(text("SELECT setval(pg_get_serial_sequence('samples', 'id'), (SELECT max(id) FROM samples))"))
    return count


# ---- the steps, each in a subprocess of its own ------------------------------------------

def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _step_build(config: Config, args: dict) -> dict:
    from trainer.snapshot import load_snapshot
    started = time.perf_counter()
    with session_scope(config.database_url) as db:
        snapshot = load_snapshot(db, config.collection.image_size, private_subdir(config, SNAPSHOT_DIR),
                                 config.training.memory_budget_mb)
    return {"seconds": round(time.perf_counter() - started, 1), "rows": len(snapshot), **snapshot.build}


def _step_train(config: Config, args: dict) -> dict:
    import torch

    from trainer.params import TrainParams
    from trainer.snapshot import load_snapshot
    from trainer.train import train
    with session_scope(config.database_url) as db:
        snapshot = load_snapshot(db, config.collection.image_size, private_subdir(config, SNAPSHOT_DIR),
                                 config.training.memory_budget_mb)
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(snapshot))
    n_train = min(len(snapshot) - 2 * args["holdout"], args["batches"] * args["batch_size"])
    split = {"by": "sample", "indices": {"train": np.sort(rows[:n_train]),
                                         "validation": np.sort(rows[n_train:n_train + args["holdout"]]),
                                         "test": np.sort(rows[n_train + args["holdout"]:n_train + 2 * args["holdout"]])},
             "groups": {}, "sizes": {}}
    results = {}
    for _ in range(args.get("rounds", 1)):     # alternating rounds; the best of each (a shared machine)
        for budget in args["budgets"]:
            params = TrainParams.from_config(config, epochs=1, warmup_epochs=0, device="cpu", seed=0,
                                             batch_size=args["batch_size"], memory_budget_mb=budget)
            result = train(snapshot, params, split=split)
            best = results.setdefault(str(budget), {"data": result.data, "samples_per_s": 0.0,
                                                    "all": [], "test_pred": result.test_pred.tolist()})
            best["all"].append(round(result.samples_per_s, 1))
            best["samples_per_s"] = max(best["all"])
    return {"rows": len(snapshot), "train_samples": int(n_train), "threads": torch.get_num_threads(),
            "runs": results}


STEPS = {"build": _step_build, "train": _step_train}


def _in_subprocess(config: Config, step: str, args: dict | None = None) -> dict:
    env = {**os.environ, "GAZELAB_CONFIG": str(config.path), "GAZELAB_SERVER_DATA_DIR": str(config.data_dir),
           "GAZELAB_SERVER_DATABASE_URL": config.database_url}
    done = subprocess.run([sys.executable, "-m", "gazelab_cli.benchmarks.snapshot", step, json.dumps(args or {})],
                          env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _bench_config(config: Config, folder: str, database_url: str | None) -> Config:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAZELAB_SERVER_")}
    env.update({"GAZELAB_CONFIG": str(config.path), "GAZELAB_SERVER_DATA_DIR": f"{folder}/data",
                "GAZELAB_SERVER_DATABASE_URL": database_url or f"sqlite:///{folder}/bench.db"})
    return load_config(environ=env)


def run(config: Config, samples: int, database_url: str | None = None, subset: int = 20_000,
        train_batches: int = 300, subset_batches: int = 150, new_fraction: float = 0.01,
        batch_size: int | None = None, rounds: int = 3) -> dict:
    folder = tempfile.mkdtemp(prefix="gazelab-bench-snapshot-")
    try:
        bench = _bench_config(config, folder, database_url)
        migrate.upgrade(bench.database_url)
        crops = real_crops(bench)
        started = time.perf_counter()
        insert_samples(bench.database_url, samples, crops, seed=0)
        insert_s = time.perf_counter() - started

        build = _in_subprocess(bench, "build")
        new = max(1, round(new_fraction * samples))
        insert_samples(bench.database_url, new, crops, seed=1)
        incremental = _in_subprocess(bench, "build")
        batch_size = batch_size or bench.training.batch_size
        holdout = max(2, min(2000, samples // 20))
        budget = bench.training.memory_budget_mb
        streamed = _in_subprocess(bench, "train", {"batches": train_batches, "batch_size": batch_size,
                                                   "holdout": holdout, "budgets": [budget]})
        subset = min(subset, samples)
        with session_scope(bench.database_url) as db:    # masked: rejected, nothing on disk rewritten
            last = db.scalar(select(Sample.id).order_by(Sample.id).offset(subset - 1).limit(1))
            db.execute(update(Sample).where(Sample.id > last).values(status="rejected"))
        masked = _in_subprocess(bench, "build")
        compare = _in_subprocess(bench, "train", {"batches": subset_batches, "batch_size": batch_size,
                                                  "holdout": min(holdout, subset // 20), "budgets": [budget, 0],
                                                  "rounds": rounds})
        in_ram, streamed_subset = compare["runs"][str(budget)], compare["runs"]["0"]
        shard_bytes = sum(p.stat().st_size for p in (bench.data_dir / SNAPSHOT_DIR).rglob("*.npy"))
        return {
            "samples": samples, "database": bench.database_url.split(":", 1)[0],
            "crops": f"{len(crops)} virtual-volunteer frames through the real extraction "
                     f"({bench.extraction.crop_format}), reused with varied targets, screens and ids",
            "image_size": bench.collection.image_size, "memory_budget_mb": budget,
            "insert_s": round(insert_s, 1), "shard_store_mb": round(shard_bytes / 2**20),
            "build_s": build["seconds"], "build_peak_rss_mb": build["peak_rss_mb"], "built_rows": build["decoded"],
            "incremental_samples": new, "incremental_build_s": incremental["seconds"],
            "incremental_decoded": incremental["decoded"], "incremental_peak_rss_mb": incremental["peak_rss_mb"],
            "masked_build_s": masked["seconds"], "masked_decoded": masked["decoded"], "masked_rows": masked["rows"],
            "train_data": streamed["runs"][str(budget)]["data"],
            "train_samples_per_s": streamed["runs"][str(budget)]["samples_per_s"],
            "train_peak_rss_mb": streamed["peak_rss_mb"],
            "train": f"1 epoch of a random {streamed['train_samples']}-sample training split ({train_batches} "
                     f"batches of {batch_size}) drawn from all {streamed['rows']} rows, default architecture, "
                     f"CPU, {streamed['threads']} threads; validation and test {holdout} samples each",
            "subset_rows": compare["rows"], "subset_train_samples": compare["train_samples"],
            "in_ram_train_samples_per_s": in_ram["samples_per_s"], "in_ram_data": in_ram["data"],
            "streamed_subset_train_samples_per_s": streamed_subset["samples_per_s"],
            "subset_rounds": f"best of {rounds} alternating runs each (in RAM: {in_ram['all']}, "
                             f"streamed: {streamed_subset['all']} samples/s)",
            "streamed_subset_data": streamed_subset["data"],
            "subset_peak_rss_mb": compare["peak_rss_mb"],
            "streamed_vs_in_ram": round(streamed_subset["samples_per_s"] / in_ram["samples_per_s"], 3),
            "same_predictions": in_ram["test_pred"] == streamed_subset["test_pred"],
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    step, arguments = sys.argv[1], json.loads(sys.argv[2])
    output = STEPS[step](load_config(), arguments)
    print(json.dumps({**output, "peak_rss_mb": _peak_rss_mb()}))
