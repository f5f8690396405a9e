"""The training-data shard store (trainer.shards) and streamed training (trainer.datasets):
incremental builds, masking, erasure of exactly the shards that held a volunteer, the
same model from RAM and from the shards, the memory budget, `gazelab bench snapshot`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from collection.erasure import delete_volunteer
from gazelab.db import session_scope
from gazelab.files import SNAPSHOT_DIR, private_subdir
from gazelab.schema import CROP_KINDS, PHOTO_KINDS, Sample, Volunteer
from gazelab.shardfiles import read_manifest
from tests.trainer_data import add_samples, fast_params
from trainer import shards
from trainer.params import TrainParams
from trainer.snapshot import load_snapshot
from trainer.train import train


def _load(gz, **kwargs):
    with session_scope(gz.database_url) as db:
        return load_snapshot(db, 64, private_subdir(gz.config, SNAPSHOT_DIR), **kwargs)


def _in_ram(gz):
    with session_scope(gz.database_url) as db:
        return load_snapshot(db, 64)


def _assert_same(snapshot, reference):
    assert np.array_equal(snapshot.sample_ids, reference.sample_ids)
    for kind in CROP_KINDS:
        assert np.array_equal(np.asarray(snapshot.images[kind]), reference.images[kind]), kind
    assert np.array_equal(np.asarray(snapshot.landmarks), reference.landmarks, equal_nan=True)
    for name in ("angles", "targets", "screens", "session_ids", "volunteer_ids", "trial_kinds", "frame_sizes"):
        assert np.array_equal(getattr(snapshot, name), getattr(reference, name)), name
    assert snapshot.version == reference.version


def _store(gz):
    return shards.store_path(private_subdir(gz.config, SNAPSHOT_DIR), 64)


def _mtimes(gz) -> dict:
    return {str(p.relative_to(_store(gz))): p.stat().st_mtime_ns for p in _store(gz).rglob("*.npy")}


def test_incremental_build_decodes_only_new_samples_and_rewrites_nothing(gz):
    add_samples(gz, volunteers=3, samples_per_volunteer=10, seed=1)
    first = _load(gz)
    assert first.build == {"decoded": 30, "shards_added": 1, "shards_dropped": 0}
    before = _mtimes(gz)
    add_samples(gz, volunteers=1, samples_per_volunteer=7, seed=2)
    second = _load(gz)
    assert second.build == {"decoded": 7, "shards_added": 1, "shards_dropped": 0}
    after = _mtimes(gz)
    assert {k: after[k] for k in before} == before    # old shard files untouched
    assert len(read_manifest(_store(gz))["shards"]) == 2 and len(second) == 37
    _assert_same(second, _in_ram(gz))                  # same rows, same order as a full decode
    assert _load(gz).build["decoded"] == 0


def test_rejected_sample_is_masked_without_rewriting(gz):
    add_samples(gz, volunteers=3, samples_per_volunteer=8)
    first = _load(gz)
    files = _mtimes(gz)
    victim = int(first.sample_ids[5])
    with session_scope(gz.database_url) as db:
        db.get(Sample, victim).status = "rejected"
    masked = _load(gz)
    assert masked.build["decoded"] == 0 and _mtimes(gz) == files
    assert len(masked) == len(first) - 1 and victim not in set(masked.sample_ids)
    _assert_same(masked, _in_ram(gz))
    with session_scope(gz.database_url) as db:
        db.get(Sample, victim).status = "accepted"
    back = _load(gz)
    assert back.build["decoded"] == 0 and back.version == first.version


def test_erasure_removes_exactly_the_shards_holding_the_volunteer_and_the_rest_still_trains(gz):
    add_samples(gz, volunteers=3, samples_per_volunteer=12, seed=1)     # shard 1
    _load(gz)
    add_samples(gz, volunteers=3, samples_per_volunteer=12, seed=2)     # shard 2
    before = _load(gz)
    with session_scope(gz.database_url) as db:
        gone = db.scalar(select(Volunteer.id).where(Volunteer.source == "synthetic:1:0"))
    first, second = read_manifest(_store(gz))["shards"]
    kept_files = {k: v for k, v in _mtimes(gz).items() if k.startswith(second)}
    rows = before.volunteer_ids == gone
    erased = {kind: before.images[kind][rows] for kind in CROP_KINDS}

    with session_scope(gz.database_url) as db:
        removed = delete_volunteer(db, gz.config, gone)
    assert removed["samples"] == 12 and removed["files"] >= 1
    assert read_manifest(_store(gz))["shards"] == [second] and not (_store(gz) / first).exists()
    on_disk = b"".join(p.read_bytes() for p in private_subdir(gz.config, SNAPSHOT_DIR).rglob("*") if p.is_file())
    # (photos only: a head_pos mask is runs of 0 and 255 that other masks' bytes contain too)
    assert not any(row.tobytes() in on_disk for kind in PHOTO_KINDS for row in erased[kind])

    after = _load(gz)   # the other 24 samples of the dropped shard are decoded again
    assert after.build == {"decoded": 24, "shards_added": 1, "shards_dropped": 0}
    assert {k: v for k, v in _mtimes(gz).items() if k.startswith(second)} == kept_files
    assert gone not in set(after.volunteer_ids) and len(after) == 60
    _assert_same(after, _in_ram(gz))
    params = TrainParams.from_config(gz.config, **{**fast_params(epochs=1), "error_grid": (4, 3)})
    result = train(after, params)
    assert result.history and np.isfinite(result.test_pred).all()


def test_a_shard_holding_a_sample_deleted_behind_the_stores_back_is_dropped(gz):
    add_samples(gz, volunteers=3, samples_per_volunteer=5)
    first = _load(gz)
    with session_scope(gz.database_url) as db:   # not through erasure: e.g. a manual delete
        db.delete(db.get(Sample, int(first.sample_ids[0])))
    again = _load(gz)
    assert again.build == {"decoded": 14, "shards_added": 1, "shards_dropped": 1}
    _assert_same(again, _in_ram(gz))


def test_a_build_that_still_sees_erased_rows_skips_them(gz):
    """An erasure records the ids it erased; a build whose transaction began before that
    erasure committed (and so still sees the rows) must not copy them back onto disk."""
    add_samples(gz, volunteers=3, samples_per_volunteer=6)
    with session_scope(gz.database_url) as db:
        victim = db.scalar(select(Volunteer.id).where(Volunteer.source == "synthetic:0:1"))
        ids = db.scalars(select(Sample.id).where(Sample.volunteer_id == victim)).all()
    root = private_subdir(gz.config, SNAPSHOT_DIR)
    from gazelab.shardfiles import drop_shards_holding, store_lock
    with store_lock(root):           # what erasure records, the rows still readable
        drop_shards_holding(root, ids)
    snapshot = _load(gz)
    assert snapshot.build["decoded"] == 12 and len(snapshot) == 12 and victim not in set(snapshot.volunteer_ids)
    assert not np.isin(np.load(_store(gz) / read_manifest(_store(gz))["shards"][0] / "sample_ids.npy"), ids).any()


def test_streamed_training_gives_the_same_model_as_in_ram(gz):
    add_samples(gz, volunteers=5, samples_per_volunteer=24)
    snapshot = _load(gz)
    overrides = {**fast_params(epochs=2), "error_grid": (4, 3)}
    in_ram = train(snapshot, TrainParams.from_config(gz.config, **overrides))
    # a budget too small for the arrays: batches are read from the shard files
    streamed = train(snapshot, TrainParams.from_config(gz.config, **overrides, memory_budget_mb=1))
    assert (in_ram.data, streamed.data) == ("in_ram", "streamed")
    assert [h["train_loss"] for h in streamed.history] == [h["train_loss"] for h in in_ram.history]
    assert np.array_equal(streamed.test_pred, in_ram.test_pred)
    assert np.array_equal(streamed.test_features, in_ram.test_features)


def test_memory_budget_decides_the_path():
    from trainer.datasets import fits_in_memory, needed_bytes
    from trainer.models import tensors_needed
    from trainer.snapshot import Snapshot
    n = 1000
    images = {k: np.zeros((n, 64, 64, 3) if k != "head_pos" else (n, 64, 64), np.uint8) for k in CROP_KINDS}
    snapshot = Snapshot(images=images, angles=np.zeros((n, 3), np.float32), targets=None, screens=None,
                        mm_per_px=None, sample_ids=np.arange(n), session_ids=None, volunteer_ids=None,
                        trial_ids=None, trial_kinds=None, landmarks=None, frame_sizes=None, version="x")
    kinds = tensors_needed("full")
    needed = needed_bytes(snapshot, kinds)
    assert needed == sum(images[k].nbytes for k in kinds if k != "angles") + 12 * n * ("angles" in kinds)
    enough_mb = -(-2 * needed // 2**20)           # the arrays may take half the budget
    assert fits_in_memory(snapshot, kinds, enough_mb) and not fits_in_memory(snapshot, kinds, enough_mb - 1)


def test_sharded_array_indexes_like_an_ndarray(gz):
    add_samples(gz, volunteers=3, samples_per_volunteer=6, seed=1)
    _load(gz)
    add_samples(gz, volunteers=3, samples_per_volunteer=6, seed=2)
    mapped, plain = _load(gz).images["l_eye"], _in_ram(gz).images["l_eye"]
    assert isinstance(mapped, shards.ShardedArray) and mapped.shape == plain.shape and len(mapped) == 36
    assert mapped.nbytes == plain.nbytes and mapped.dtype == plain.dtype and mapped.ndim == 4
    mask = np.arange(36) % 3 == 0
    for key in (0, -1, 17, slice(None), slice(3, 30, 4), np.array([35, 0, 20, 20, 1]), mask, [2, 1]):
        assert np.array_equal(mapped[key], plain[key]), key
    assert np.array_equal(mapped[[4, 30], 10:12, 5], plain[[4, 30], 10:12, 5])
    assert np.array_equal(mapped[7, 3], plain[7, 3])
    mapped.release()
    assert np.array_equal(np.asarray(mapped), plain)


def test_shard_files_are_private(gz):
    add_samples(gz, volunteers=3, samples_per_volunteer=4)
    _load(gz)
    root = private_subdir(gz.config, SNAPSHOT_DIR)
    assert {oct(p.stat().st_mode & 0o777) for p in root.rglob("*") if p.is_file() and p.name != ".lock"} == {"0o600"}
    assert {oct(p.stat().st_mode & 0o777) for p in root.rglob("*") if p.is_dir()} == {"0o700"}


def test_bench_snapshot_prints_its_figures(gz):
    from gazelab_cli import cli
    outcome = CliRunner().invoke(cli, ["bench", "snapshot", "--samples", "400", "--subset", "200",
                                       "--train-batches", "3", "--subset-batches", "2", "--json"], env=gz.env)
    assert outcome.exit_code == 0, outcome.output
    figures = json.loads(outcome.output.strip().splitlines()[-1])
    for key in ("build_peak_rss_mb", "train_peak_rss_mb", "build_s", "train_samples_per_s",
                "in_ram_train_samples_per_s", "incremental_build_s", "crops"):
        assert key in figures, key
    assert figures["built_rows"] == 400 and figures["incremental_decoded"] == 4 and figures["masked_decoded"] == 0
    assert figures["masked_rows"] == 200 and figures["train_data"] == "in_ram"
    assert (figures["in_ram_data"], figures["streamed_subset_data"]) == ("in_ram", "streamed")
    assert figures["same_predictions"] is True and 0 < figures["build_peak_rss_mb"] < 2048
