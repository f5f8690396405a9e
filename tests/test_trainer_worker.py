"""Training on a real Celery worker over the embedded Redis: progress, completion, and a
killed worker leaving its run failed (never stuck "running")."""
from __future__ import annotations

from gazelab.celery_app import make_celery
from gazelab.db import session_scope
from gazelab.schema import ModelArtifact, TrainingRun
from tests.support import Worker, wait_until
from tests.trainer_data import add_samples, fast_params
from trainer import runs


def _queue(gz, params: dict) -> int:
    celery = make_celery(gz.config, "test-client")
    try:
        with session_scope(gz.config.database_url) as db:
            run = runs.queue_run(db, params, gz.config)
            assert run.status == "queued" and run.celery_task_id
            return run.id
    finally:
        celery.close()


def _run(gz, run_id: int) -> TrainingRun:
    with session_scope(gz.config.database_url) as db:
        return db.get(TrainingRun, run_id)


def test_worker_trains_a_queued_run_and_progress_advances(gz, worker):
    add_samples(gz, volunteers=6, samples_per_volunteer=30)
    run_id = _queue(gz, fast_params(epochs=5, early_stopping_patience=10))
    seen_epochs = set()

    def finished():
        run = _run(gz, run_id)
        seen_epochs.add(run.progress.get("epoch"))
        return run.status in ("done", "failed")
    wait_until(finished, 180, interval=0.05, what=f"run to finish\n{worker.log()}")
    run = _run(gz, run_id)
    assert run.status == "done", (run.error, worker.log())
    assert run.worker.startswith(worker.name)
    assert [h["epoch"] for h in run.progress["history"]] == [1, 2, 3, 4, 5]
    assert len(seen_epochs - {None, 0}) >= 2, seen_epochs  # progress was written while it ran
    assert run.progress["eta_s"] == 0 and run.metrics["test"]["model"]["mean_px"] > 0
    with session_scope(gz.config.database_url) as db:
        assert db.query(ModelArtifact).filter_by(run_id=run_id).count() == 1


def test_killed_worker_leaves_the_run_failed_after_restart(gz, worker):
    add_samples(gz, volunteers=6, samples_per_volunteer=30)
    run_id = _queue(gz, fast_params(epochs=500, early_stopping_patience=500))
    wait_until(lambda: (_run(gz, run_id).progress or {}).get("epoch", 0) >= 1, 120,
               what=f"first epoch\n{worker.log()}")
    worker.kill()
    assert _run(gz, run_id).status == "running"

    restarted = Worker(gz)
    restarted.name, restarted.command = worker.name, worker.command  # the same node coming back
    restarted.start()
    try:
        wait_until(lambda: _run(gz, run_id).status == "failed", 30, what="stale run marked failed")
        assert "restarted" in _run(gz, run_id).error
        # the lock went with it: the next run trains
        next_id = _queue(gz, fast_params(epochs=1))
        wait_until(lambda: _run(gz, next_id).status == "done", 120, what=f"next run\n{restarted.log()}")
    finally:
        restarted.stop()


def test_cancelling_a_running_run_stops_it(gz, worker):
    add_samples(gz, volunteers=6, samples_per_volunteer=30)
    run_id = _queue(gz, fast_params(epochs=500, early_stopping_patience=500))
    wait_until(lambda: (_run(gz, run_id).progress or {}).get("epoch", 0) >= 1, 120,
               what=f"first epoch\n{worker.log()}")
    with session_scope(gz.config.database_url) as db:
        assert runs.cancel_run(db, run_id).cancel_requested
    wait_until(lambda: _run(gz, run_id).status == "cancelled", 60, what=f"cancel\n{worker.log()}")
    assert _run(gz, run_id).progress["epoch"] < 500
