"""Celery tasks of the trainer (queue `training`) and stale-run detection on worker start."""
from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from gazelab.db import session_scope

RETRY_WHEN_BUSY_S = 15


@shared_task(name="trainer.tasks.retrain", bind=True, max_retries=None)
def retrain(self, run_id: int) -> str:
    """Train the queued run `run_id` (waits, re-queued, while another training runs)."""
    from trainer.runs import TrainingBusy, execute_run
    try:
        return execute_run(self.app.gazelab_config, run_id, worker_name=self.request.hostname or "")
    except TrainingBusy as exc:
        raise self.retry(countdown=RETRY_WHEN_BUSY_S, exc=exc)


@worker_ready.connect
def fail_stale_runs(sender=None, **_) -> None:
    """A run left "running" by a dead worker (old heartbeat, or this worker's own name
    before a restart) is marked failed, never stuck."""
    from trainer.runs import mark_stale_runs
    config = sender.app.gazelab_config
    with session_scope(config.database_url) as db:
        mark_stale_runs(db, config, worker_name=sender.hostname)
