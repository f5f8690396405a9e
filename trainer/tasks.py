"""Celery tasks of the trainer: plain functions over the schema, no web app involved.
Their names are the constants in gazelab.celery_app; the web app sends them by name."""
from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from gazelab.celery_app import (FAIL_STALE_RUNS_TASK, FIT_CALIBRATIONS_TASK, FLAG_OUTLIERS_TASK,
                                LONG_JOB_OPTIONS, RETRAIN_TASK)
from gazelab.db import session_scope

RETRY_WHEN_BUSY_S = 15


@shared_task(name=RETRAIN_TASK, bind=True, max_retries=None, **LONG_JOB_OPTIONS)
def retrain(self, run_id: int) -> str:
    """Train the queued run `run_id` (waits, re-queued, while another training runs)."""
    from trainer.runs import TrainingBusy, execute_run
    try:
        return execute_run(self.app.gazelab_config, run_id, worker_name=self.request.hostname or "")
    except TrainingBusy as exc:
        raise self.retry(countdown=RETRY_WHEN_BUSY_S, exc=exc)


@shared_task(name=FLAG_OUTLIERS_TASK, bind=True)
def flag_model_outliers(self) -> dict:
    """Score accepted and flagged samples under the active model and flag those whose
    error is above 3 x the median (queued when a model is promoted, or from the review page)."""
    from collection.review import flag_outliers
    from trainer.inference import load_predictor
    from trainer.outliers import model_errors

    with session_scope(self.app.gazelab_config.database_url) as db:
        predictor = load_predictor(db)
        if predictor is None:
            return {"scored": 0, "flagged": 0}
        return flag_outliers(db, model_errors(db, predictor))


@shared_task(name=FIT_CALIBRATIONS_TASK, bind=True)
def fit_calibrations(self, session_id: str | None = None, artifact_id: int | None = None) -> dict:
    """Fit the personal calibration of one session (sent when its calibration phase
    completes) or of every session (sent when a model is promoted), for `artifact_id`
    (default: the active model)."""
    from trainer.inference import load_predictor
    from trainer.personal import fit_sessions

    config = self.app.gazelab_config
    with session_scope(config.database_url) as db:
        predictor = load_predictor(db, artifact_id)
        if predictor is None:
            return {"sessions": 0, "kept": {}, "artifact_id": None}
        return fit_sessions(db, predictor, config, session_id)


@shared_task(name=FAIL_STALE_RUNS_TASK, bind=True)
def fail_stale_runs(self) -> int:
    """Runs "running" without a heartbeat for stale_after_seconds become failed (beat schedule)."""
    from trainer.runs import mark_stale_runs
    config = self.app.gazelab_config
    with session_scope(config.database_url) as db:
        return mark_stale_runs(db, config)


@worker_ready.connect
def recover_runs(sender=None, **_) -> None:
    """On start: a run left "running" by a dead worker (old heartbeat, or this worker's own
    name before a restart) is marked failed, never stuck; queued runs are sent again in
    case the broker lost their messages."""
    from trainer.runs import mark_stale_runs, requeue_orphans
    config = sender.app.gazelab_config
    with session_scope(config.database_url) as db:
        mark_stale_runs(db, config, worker_name=sender.hostname)
        requeue_orphans(db, config)
