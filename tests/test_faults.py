"""Crash and abuse scenarios with real processes (gazelab_cli.benchmarks.faults, the same
code as `gazelab bench faults`): nothing is lost, duplicated, stuck or left behind."""
from __future__ import annotations

import pytest

from gazelab_cli.benchmarks import faults

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack():
    started = faults.Stack.create().start("redis", "web", "worker", "beat")
    yield started
    started.close()


def test_killing_a_web_worker_mid_upload_loses_nothing(stack):
    report = faults.kill_web_worker_mid_upload(stack)
    assert report["frames_lost"] == 0 and report["duplicates"] == 0, report


def test_restarting_redis_mid_upload_loses_no_frame_and_no_queued_task(stack):
    report = faults.restart_redis_during_upload(stack)
    assert report["frames_lost"] == 0 and report["duplicates"] == 0, report
    assert report["task_survived_restart"], report


def test_deleting_a_volunteer_while_their_frames_upload(stack):
    report = faults.delete_during_upload(stack)
    assert report["delete_status"] == 200 and report["server_errors"] == 0 and report["rows_left"] == 0, report


def test_delete_then_train_keeps_no_deleted_crop(stack):
    report = faults.delete_then_train(stack)
    assert report["deleted_crops_checked"] == 30 and report["deleted_bytes_found"] == 0, report


def test_killing_the_worker_mid_training_fails_the_run_and_the_next_one_runs(stack):
    report = faults.kill_worker_mid_training(stack)
    assert report["killed_run"] == "failed" and report["seconds_to_failed"] <= 60, report
    assert report["next_run"] == "done" and report["runs_stuck"] == 0, report
