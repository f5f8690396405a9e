"""Trainer: snapshot + split, a real short training on generated crops, evaluation,
figures, artifacts, inference, run bookkeeping."""
from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
from PIL import Image

from gazelab.db import session_scope
from gazelab.schema import ModelArtifact, RunFigure, Sample, TrainingRun, utcnow
from tests.trainer_data import add_samples, fast_params
from trainer import runs
from trainer.inference import load_predictor, snapshot_inputs
from trainer.plots import DPI, FIGSIZE
from gazelab.schema import PHOTO_KINDS
from trainer.snapshot import load_snapshot, split


@pytest.mark.parametrize("volunteers,sessions", [(1, 6), (2, 3), (7, 2)])
def test_split_never_shares_a_session_or_volunteer(gz, volunteers, sessions):
    add_samples(gz, volunteers, 6 * sessions, sessions)
    with session_scope(gz.config.database_url) as db:
        snapshot = load_snapshot(db, 64)
    for seed in range(5):
        parts = split(snapshot, 0.2, 0.2, seed)
        assert parts["by"] == ("volunteer" if volunteers >= 3 else "session")
        assert sum(parts["sizes"].values()) == len(snapshot)
        assert all(size > 0 for size in parts["sizes"].values())
        sessions_in = {k: set(snapshot.session_ids[i]) for k, i in parts["indices"].items()}
        assert not sessions_in["train"] & sessions_in["test"]
        assert not sessions_in["train"] & sessions_in["validation"]
        assert not sessions_in["validation"] & sessions_in["test"]
        if parts["by"] == "volunteer":
            people = {k: set(snapshot.volunteer_ids[i]) for k, i in parts["indices"].items()}
            assert not people["train"] & (people["test"] | people["validation"])


def test_snapshot_is_cached_by_dataset_version(gz, tmp_path):
    add_samples(gz, 2, 5)
    with session_scope(gz.config.database_url) as db:
        first = load_snapshot(db, 64, tmp_path)
        again = load_snapshot(db, 64, tmp_path)
        assert first.build["decoded"] == 10 and again.build == {"decoded": 0, "shards_added": 0, "shards_dropped": 0}
        assert again.version == first.version
        assert np.array_equal(again.images["l_eye"], first.images["l_eye"])
        assert first.images["face"].shape == (10, 64, 64, 3) and first.images["head_pos"].shape == (10, 64, 64)
        assert set(PHOTO_KINDS) <= set(first.images) and first.images["face"].dtype == np.uint8
        db.get(Sample, int(first.sample_ids[0])).status = "rejected"
        db.flush()
        changed = load_snapshot(db, 64, tmp_path)
    assert changed.version != first.version and len(changed) == 9


def test_training_beats_the_mean_baseline_and_stores_everything(gz, artifacts):
    add_samples(gz, volunteers=8, samples_per_volunteer=50)
    config = gz.config
    with session_scope(config.database_url) as db:
        run_id = runs.create_run(db, fast_params(epochs=8), config).id
    assert runs.execute_run(config, run_id, worker_name="test") == "done"

    with session_scope(config.database_url) as db:
        run = db.get(TrainingRun, run_id)
        test = run.metrics["test"]
        assert test["model"]["mean_px"] < 0.8 * test["mean"]["mean_px"], test
        assert test["model"]["rmse_px"] >= test["model"]["mean_px"] and test["model"]["mean_mm"] > 0
        assert run.metrics["ratio_to_mean"] < 0.8 and run.metrics["ratio_to_ridge"] > 0
        assert 0 < run.metrics["params"] <= 2_000_000
        grid = run.metrics["error_grid"]
        assert (grid["cols"], grid["rows"]) == (4, 3) and sum(map(sum, grid["counts"])) == test["model"]["n"]
        assert run.split["sizes"]["test"] == test["model"]["n"] and run.split["by"] == "volunteer"
        assert run.progress["epoch"] == len(run.progress["history"]) >= 1
        assert run.dataset_version and run.heartbeat_at is not None

        figures = {f.name: f.png for f in db.query(RunFigure).filter_by(run_id=run_id)}
        assert set(figures) == {"error_heatmap", "coverage_heatmap", "error_histogram", "loss_curves"}
        for name, png in figures.items():
            image = Image.open(io.BytesIO(png))
            image.load()
            assert image.format == "PNG" and image.size == (FIGSIZE[0] * DPI, FIGSIZE[1] * DPI)
            assert np.asarray(image.convert("L")).std() > 10  # not blank
            (artifacts / f"trainer_{name}.png").write_bytes(png)

        artifact = db.query(ModelArtifact).filter_by(run_id=run_id).one()
        assert load_predictor(db) is None  # nothing promoted yet
        runs.promote(db, artifact.id)
        predictor = load_predictor(db)
        snapshot = load_snapshot(db, 64)
    test_idx = np.isin(snapshot.volunteer_ids, run.split["groups"]["test"])
    samples = [snapshot_inputs(snapshot, i) for i in np.flatnonzero(test_idx)]
    predictions = predictor.predict(samples)
    errors = np.linalg.norm((predictions - snapshot.targets[test_idx]) * snapshot.screens[test_idx], axis=1)
    assert errors.mean() == pytest.approx(test["model"]["mean_px"], rel=1e-3)
    assert predictor.predict(samples[:1]).shape == (1, 2)
    assert 0 < predictor.expected_error_px(0.5, 0.5, (1920, 1080)) < 3000


def test_queue_run_validates_parameters(gz):
    config = gz.config
    with session_scope(config.database_url) as db:
        for bad, words in [({"epochs": 0}, "epochs"), ({"epochs": "many"}, "epochs"),
                           ({"architecture": "vgg"}, "compact, reference"), ({"inputs": True}, "inputs"),
                           ({"colour": 1}, "unknown training parameter"), ({"learning_rate": [1]}, "learning_rate")]:
            with pytest.raises(ValueError, match=words):
                runs.create_run(db, bad, config)
        run = runs.create_run(db, {"epochs": 3, "architecture": "reference", "error_grid": [8, 4]}, config)
        assert run.params["epochs"] == 3 and run.params["error_grid"] == [8, 4]
        assert run.params["batch_size"] == config.training.batch_size
        assert runs.cancel_run(db, run.id).status == "cancelled"
    assert runs.execute_run(config, run.id) == "cancelled"


def test_stale_runs_are_marked_failed(gz):
    config = gz.config
    old = utcnow() - dt.timedelta(seconds=config.training.stale_after_seconds + 5)
    with session_scope(config.database_url) as db:
        dead = TrainingRun(status="running", params={}, started_at=old, heartbeat_at=old, worker="w1@h")
        mine = TrainingRun(status="running", params={}, started_at=utcnow(), heartbeat_at=utcnow(), worker="w2@h")
        alive = TrainingRun(status="running", params={}, started_at=utcnow(), heartbeat_at=utcnow(), worker="w3@h")
        db.add_all([dead, mine, alive])
        db.commit()
        assert runs.mark_stale_runs(db, config, worker_name="w2@h") == 2
        assert [dead.status, mine.status, alive.status] == ["failed", "failed", "running"]
        assert "heartbeat" in dead.error and "restarted" in mine.error
        # the alive run blocks a second training
        queued = runs.create_run(db, fast_params(), config)
        with pytest.raises(runs.TrainingBusy):
            runs.execute_run(config, queued.id)


def test_training_is_deterministic_with_a_seed(gz):
    from trainer.train import TrainParams, train
    add_samples(gz, volunteers=4, samples_per_volunteer=20)
    with session_scope(gz.config.database_url) as db:
        snapshot = load_snapshot(db, 64)
    params = TrainParams.from_config(gz.config, epochs=2, batch_size=16, device="cpu")
    first, second = train(snapshot, params), train(snapshot, params)
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in second.history]
    assert np.array_equal(first.test_pred, second.test_pred)


def test_gazelab_train_runs_in_the_foreground(gz):
    import json
    import subprocess

    from tests.support import VENV_BIN
    add_samples(gz, volunteers=4, samples_per_volunteer=20)
    done = subprocess.run([str(VENV_BIN / "gazelab"), "train", "--epochs", "2", "--device", "cpu", "--folds", "1"],
                          env=gz.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "done" and summary["test"]["model"]["mean_px"] > 0
    assert "epoch" in done.stderr  # the progress bar
    bad = subprocess.run([str(VENV_BIN / "gazelab"), "train", "--epochs", "0"], env=gz.env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "epochs" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("quality", [30, 60, 90])
def test_jpeg_augmentation_compresses_as_libjpeg_does(monkeypatch, quality):
    """On a photographed face crop, the batched JPEG step lands within ~1.5 grey levels of
    libjpeg at the same quality (the original is 3-8 levels away); unchosen samples stay."""
    import cv2
    import torch
    from skimage import data
    from trainer import transforms
    crop = cv2.resize(data.astronaut()[0:256, 97:353], (64, 64), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    libjpeg = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32)
    monkeypatch.setattr(transforms, "JPEG_QUALITY", (quality, quality))
    images = torch.from_numpy(crop).permute(2, 0, 1).float().expand(2, 3, 64, 64).contiguous()
    ours = transforms.jpeg_artifacts(images, torch.Generator().manual_seed(0), rate=1.0)
    ours = ours[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - libjpeg).mean() < 2.0 < np.abs(crop - libjpeg).mean()
    assert np.abs(ours - crop).mean() > 0.6 * np.abs(crop - libjpeg).mean()   # it does compress
    untouched = transforms.jpeg_artifacts(images, torch.Generator().manual_seed(0), rate=0.0)
    assert torch.equal(untouched, images)
    grey = transforms.jpeg_artifacts(images[:, :1, :60, :60], torch.Generator().manual_seed(0), rate=1.0)
    assert grey.shape == (2, 1, 60, 60) and not torch.equal(grey, images[:, :1, :60, :60])


def test_mirror_augmentation_flips_pictures_swaps_eyes_and_mirrors_the_target(gz):
    import torch
    from trainer.transforms import mirror_inputs, mirror_targets, to_tensor
    add_samples(gz, volunteers=1, samples_per_volunteer=4)
    with session_scope(gz.config.database_url) as db:
        snapshot = load_snapshot(db, 64)
    inputs = {k: to_tensor(snapshot.images[k]).float() for k in ("face", "l_eye", "r_eye", "head_pos")}
    inputs["angles"] = torch.from_numpy(snapshot.angles).float()
    targets = torch.from_numpy(snapshot.targets)
    mirror = torch.tensor([True, False, True, False])

    mirrored = mirror_inputs(inputs, mirror)
    assert torch.equal(mirrored["l_eye"][0], torch.flip(inputs["r_eye"][0], dims=[2]))
    assert torch.equal(mirrored["r_eye"][2], torch.flip(inputs["l_eye"][2], dims=[2]))
    assert torch.equal(mirrored["face"][0], torch.flip(inputs["face"][0], dims=[2]))
    assert torch.equal(mirrored["head_pos"][2], torch.flip(inputs["head_pos"][2], dims=[2]))
    assert torch.equal(mirrored["angles"][0], inputs["angles"][0] * torch.tensor([-1.0, 1.0, -1.0]))
    for kind in inputs:  # unmarked samples untouched, and a mirror twice is no mirror
        assert torch.equal(mirrored[kind][1::2], inputs[kind][1::2])
        assert torch.equal(mirror_inputs(mirrored, mirror)[kind], inputs[kind])
    flipped = mirror_targets(targets, mirror)
    assert torch.allclose(flipped[0], torch.stack([1 - targets[0, 0], targets[0, 1]]))
    assert torch.equal(flipped[1], targets[1])
