"""Training runs: queue, execute (foreground or on a Celery worker), cancel, promote,
and stale-run detection. Import-light: torch is loaded only when a run executes.

One training at a time: a Redis key (value = run id, expiring after
[training] stale_after_seconds) plus a database check for a "running" run with a fresh
heartbeat (which also covers a foreground run without Redis). While a run executes, a
thread refreshes both its heartbeat and the key every HEARTBEAT_S seconds, so a run whose
process died is found by the age of its heartbeat alone (fail_stale_runs, every 5 s on
the beat schedule), whatever its worker was called. Claiming a queued run is one
conditional UPDATE, so a task delivered twice trains once.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gazelab.celery_app import RETRAIN_TASK
from gazelab.config import Config
from gazelab.db import session_scope
from gazelab.files import SNAPSHOT_DIR, private_subdir
from gazelab.schema import ModelArtifact, TrainingRun, utcnow
from trainer.params import TrainParams, validate_params

log = logging.getLogger(__name__)
LOCK_KEY = "gazelab:training-lock"
HEARTBEAT_S = 3


class TrainingBusy(RuntimeError):
    """Another training run holds the lock."""


def create_run(db: Session, params: dict, config: Config) -> TrainingRun:
    run = TrainingRun(status="queued", params=validate_params(params, config), progress={}, metrics={})
    db.add(run)
    db.commit()
    return run


def queue_run(db: Session, params: dict, config: Config) -> TrainingRun:
    """Validate, create the run (queued), commit, and send the Celery task by name (queue
    training) through the process's current Celery app."""
    from celery import current_app
    run = create_run(db, params, config)
    try:
        result = current_app.send_task(RETRAIN_TASK, args=[run.id], queue="training")
    except Exception as exc:
        run.status, run.error, run.finished_at = "failed", f"could not reach the broker: {exc}", utcnow()
        db.commit()
        raise RuntimeError(run.error) from exc
    run.celery_task_id = result.id
    db.commit()
    return run


def cancel_run(db: Session, run_id: int) -> TrainingRun:
    run = db.get(TrainingRun, run_id)
    if run is None:
        raise ValueError(f"no training run {run_id}")
    if run.status in ("queued", "running"):
        run.cancel_requested = True
        if run.status == "queued":
            run.status, run.finished_at = "cancelled", utcnow()
        db.commit()
    return run


def promote(db: Session, artifact_id: int) -> ModelArtifact:
    """Make this artifact the one active model."""
    artifact = db.get(ModelArtifact, artifact_id)
    if artifact is None:
        raise ValueError(f"no model artifact {artifact_id}")
    db.execute(update(ModelArtifact).where(ModelArtifact.id != artifact_id).values(is_active=False))
    artifact.is_active, artifact.promoted_at = True, utcnow()
    db.commit()
    return artifact


# ---- the lock ----

def _redis(config: Config):
    from gazelab.broker import broker_url, redis_client
    client = redis_client(broker_url(config))
    try:
        client.ping()
        return client
    except Exception:
        return None  # no broker (a foreground run without `gazelab up`): database check only


def _release_lock(client, run_id: int) -> None:
    if client is not None and client.get(LOCK_KEY) == str(run_id).encode():
        client.delete(LOCK_KEY)


def mark_stale_runs(db: Session, config: Config, worker_name: str | None = None) -> int:
    """Runs marked running whose heartbeat is older than stale_after_seconds, or that this
    (restarted) worker was running, become failed. Returns how many."""
    cutoff = utcnow() - dt.timedelta(seconds=config.training.stale_after_seconds)
    running = db.scalars(select(TrainingRun).where(TrainingRun.status == "running")).all()
    client, count = None, 0
    for run in running:
        last_sign = run.heartbeat_at or run.started_at or run.created_at
        mine = worker_name is not None and run.worker == worker_name
        if mine or last_sign < cutoff:
            run.status, run.finished_at = "failed", utcnow()
            run.error = ("the worker running it restarted (it was killed or crashed)" if mine else
                         f"no heartbeat since {last_sign:%Y-%m-%d %H:%M:%S} UTC: the worker died")
            client = client or _redis(config)
            _release_lock(client, run.id)
            count += 1
    db.commit()
    return count


def _claim(db: Session, run_id: int, config: Config, client, worker_name: str) -> bool:
    """Take the lock and turn the run from queued to running; False if it is not queued
    (any more). Raises TrainingBusy while another run trains."""
    cutoff = utcnow() - dt.timedelta(seconds=config.training.stale_after_seconds)
    other = db.scalars(select(TrainingRun.id).where(TrainingRun.status == "running", TrainingRun.id != run_id,
                                                    TrainingRun.heartbeat_at >= cutoff)).first()
    if other is not None:
        raise TrainingBusy(f"training run {other} is running")
    if client is not None and not client.set(LOCK_KEY, str(run_id), nx=True,
                                             ex=config.training.stale_after_seconds):
        holder = client.get(LOCK_KEY)
        if holder != str(run_id).encode():
            raise TrainingBusy(f"training run {holder.decode() if holder else '?'} holds the lock")
    now = utcnow()
    claimed = db.execute(update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status == "queued")
                         .values(status="running", started_at=now, heartbeat_at=now, worker=worker_name)).rowcount
    db.commit()
    if not claimed:
        _release_lock(client, run_id)
    return bool(claimed)


class _Heartbeat:
    """Refreshes the run's heartbeat (and the lock) every HEARTBEAT_S s while it trains."""

    def __init__(self, config: Config, run_id: int, client):
        self.config, self.run_id, self.client = config, run_id, client
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"run-{run_id}-heartbeat", daemon=True)

    def __enter__(self) -> "_Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        self.thread.join(10)

    def _loop(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                with session_scope(self.config.database_url) as db:
                    db.execute(update(TrainingRun).where(TrainingRun.id == self.run_id,
                                                         TrainingRun.status == "running")
                               .values(heartbeat_at=utcnow()))
                if self.client is not None and self.client.get(LOCK_KEY) == str(self.run_id).encode():
                    self.client.expire(LOCK_KEY, self.config.training.stale_after_seconds)
            except Exception:  # a missed beat is retried; a dead database fails the run anyway
                log.warning("heartbeat of run %s missed", self.run_id, exc_info=True)


def requeue_orphans(db: Session, config: Config) -> list[int]:
    """Send the task again for every queued run: after a broker restart without persistence
    its message may be gone. A run whose message did survive is trained once all the same
    (claiming is atomic; the second delivery finds it no longer queued)."""
    from celery import current_app
    ids = db.scalars(select(TrainingRun.id).where(TrainingRun.status == "queued").order_by(TrainingRun.id)).all()
    for run_id in ids:
        current_app.send_task(RETRAIN_TASK, args=[run_id], queue="training")
    return list(ids)


# ---- execution ----

def execute_run(config: Config, run_id: int, worker_name: str = "", progress: bool = False) -> str:
    """Train, evaluate and store one queued run; returns its final status."""
    url = config.database_url
    client = _redis(config)
    with session_scope(url) as db:
        run = db.get(TrainingRun, run_id)
        if run is None:
            raise ValueError(f"no training run {run_id}")
        if run.status != "queued" or not _claim(db, run_id, config, client, worker_name):
            return db.scalar(select(TrainingRun.status).where(TrainingRun.id == run_id))
    try:
        with _Heartbeat(config, run_id, client):
            status = _train_and_store(config, run_id, client, progress)
    except Exception as exc:
        log.exception("training run %s failed", run_id)
        with session_scope(url) as db:
            run = db.get(TrainingRun, run_id)
            run.status, run.finished_at = "failed", utcnow()
            run.error = f"{type(exc).__name__}: {exc}"[:2000]
        status = "failed"
    finally:
        _release_lock(client, run_id)
    return status


def _cancelled(url: str, run_id: int, split_record: dict) -> str:
    with session_scope(url) as db:
        run = db.get(TrainingRun, run_id)
        run.status, run.finished_at, run.split = "cancelled", utcnow(), split_record
    return "cancelled"


def _train_and_store(config: Config, run_id: int, client, progress: bool) -> str:
    from trainer.artifacts import save_artifact, save_figures
    from trainer.crossval import cross_validate
    from trainer.evaluate import evaluate
    from trainer.plots import run_figures
    from trainer.snapshot import load_snapshot
    from trainer.train import train

    url = config.database_url
    with session_scope(url) as db:
        params = TrainParams.from_config(config, **db.get(TrainingRun, run_id).params)
        snapshot = load_snapshot(db, params.image_size, private_subdir(config, SNAPSHOT_DIR), params.memory_budget_mb)
    started, history, cancel = time.monotonic(), [], {"requested": False}
    # Cross-validation trains one model per fold before the final one: the progress says which.
    phase = {"name": "final model", "started": started}

    def on_fold(number: int, folds: int) -> None:
        history.clear()
        phase.update(name=f"fold {number + 1}/{folds}", started=time.monotonic())

    def on_epoch(entry: dict) -> None:
        history.append({k: entry[k] for k in ("epoch", "train_loss", "val_loss", "val_error_px")})
        eta = (time.monotonic() - phase["started"]) / entry["epoch"] * (params.epochs - entry["epoch"])
        with session_scope(url) as db:
            run = db.get(TrainingRun, run_id)
            run.progress = {"epoch": entry["epoch"], "epochs": params.epochs, "train_loss": entry["train_loss"],
                            "val_error_px": entry["val_error_px"], "eta_s": round(eta, 1), "history": list(history),
                            "phase": phase["name"]}
            run.heartbeat_at = utcnow()
            cancel["requested"] = run.cancel_requested
        if client is not None and client.get(LOCK_KEY) == str(run_id).encode():
            client.expire(LOCK_KEY, config.training.stale_after_seconds)

    with session_scope(url) as db:
        run = db.get(TrainingRun, run_id)
        run.dataset_version, run.heartbeat_at = snapshot.version, utcnow()
        run.progress = {"epoch": 0, "epochs": params.epochs, "train_loss": None, "val_error_px": None,
                        "eta_s": None, "history": []}
    crossval = None
    if params.folds > 1:
        crossval = cross_validate(snapshot, params, on_fold=on_fold, on_epoch=on_epoch,
                                  should_stop=lambda: cancel["requested"], progress=progress)
        if crossval is None:
            return _cancelled(url, run_id, {})
        history.clear()
        phase.update(name="final model", started=time.monotonic())
    result = train(snapshot, params, on_epoch=on_epoch, should_stop=lambda: cancel["requested"], progress=progress)
    split_record = {"by": result.split["by"], "sizes": result.split["sizes"], "groups": result.split["groups"]}
    if result.stopped == "cancelled":
        return _cancelled(url, run_id, split_record)

    metrics, test_errors = evaluate(snapshot, result.split, result.test_pred, params.error_grid)
    if crossval is not None:
        metrics.update(crossval=crossval["crossval"], per_volunteer=crossval["per_volunteer"])
        split_record["folds"] = crossval["folds"]
    metrics["params"] = result.spec["parameters"]
    metrics["training"] = {"samples_per_s": result.samples_per_s, "best_epoch": result.best_epoch,
                           "stopped": result.stopped, "device": result.device, "data": result.data,
                           "seconds": round(time.monotonic() - started, 1)}
    figures = run_figures(metrics, test_errors, result.history)
    with session_scope(url) as db:
        run = db.get(TrainingRun, run_id)
        save_figures(db, run, figures)
        # the per-volunteer table stays with the run only (one place to scrub on erasure)
        save_artifact(db, run, result.model, result.spec, result.normalisation,
                      {k: v for k, v in metrics.items() if k != "per_volunteer"})
        run.metrics, run.split = metrics, split_record
        run.progress = {**run.progress, "eta_s": 0}
        run.status, run.finished_at, run.heartbeat_at = "done", utcnow(), utcnow()
    return "done"
