"""Celery configured from config.ini: queues `default` and `training`, task names, the
periodic schedule (run by `celery beat`, which `gazelab up` starts), worker heartbeats.

Long jobs (training, exports) are acknowledged only when they finish (`acks_late`) and
handed back to the queue when the process running them dies (`reject_on_worker_lost`):
a killed worker loses no queued or running job; the job itself decides what a re-run means.
"""
from __future__ import annotations

import logging
import threading

from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from kombu import Queue

from gazelab import broker
from gazelab.config import Config
from gazelab.files import SNAPSHOT_DIR, private_data_dir
from gazelab.shardfiles import catch_up_erasures

# Task names: how the web app and the CLI reach the tasks without importing them.
RETRAIN_TASK = "trainer.tasks.retrain"
FLAG_OUTLIERS_TASK = "trainer.tasks.flag_model_outliers"
FIT_CALIBRATIONS_TASK = "trainer.tasks.fit_calibrations"
FAIL_STALE_RUNS_TASK = "trainer.tasks.fail_stale_runs"
EXPORT_TASK = "collection.tasks.write_export"
ABANDON_SESSIONS_TASK = "collection.tasks.abandon_idle_sessions"
RETENTION_TASK = "collection.tasks.purge_expired_volunteers"
REMOVE_OLD_EXPORTS_TASK = "collection.tasks.remove_old_exports"
TASK_ROUTES = {RETRAIN_TASK: {"queue": "training"}}   # everything else: queue default
LONG_JOB_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True}

BEAT_SCHEDULE = {
    "fail-stale-runs": {"task": FAIL_STALE_RUNS_TASK, "schedule": 5.0},
    "abandon-idle-sessions": {"task": ABANDON_SESSIONS_TASK, "schedule": 60.0},
    "purge-expired-volunteers": {"task": RETENTION_TASK, "schedule": 3600.0},
    "remove-old-exports": {"task": REMOVE_OLD_EXPORTS_TASK, "schedule": 3600.0},
}


def make_celery(config: Config, name: str = "gazelab") -> Celery:
    private_data_dir(config)
    url = broker.broker_url(config)
    celery = Celery(name, broker=url, backend=url, set_as_current=True)
    celery.conf.update(
        task_queues=(Queue("default"), Queue("training")),
        task_default_queue="default",
        task_routes=TASK_ROUTES,
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        beat_schedule=BEAT_SCHEDULE,
        imports=("trainer.tasks", "collection.tasks"),
    )
    celery.gazelab_config = config  # tasks read database URL etc. from here
    return celery


# ---- worker heartbeat (read by /healthz through gazelab.broker.live_workers) ----

logger = logging.getLogger(__name__)
_stop_heartbeat = threading.Event()


@worker_ready.connect
def _start_heartbeat(sender=None, **_) -> None:
    config = getattr(sender.app, "gazelab_config", None)
    if config is None:
        return
    url, name = broker.broker_url(config), sender.hostname

    def loop() -> None:
        while not _stop_heartbeat.is_set():
            try:
                broker.beat(url, name)
                erasures = broker.erasures(url)
            except Exception:  # the broker is down: health shows no worker, which is true
                erasures = None
            if erasures is not None:
                # snapshots live in each node's data dir: an erasure on any node drops them here
                try:
                    catch_up_erasures(config.data_dir / SNAPSHOT_DIR, erasures)
                except OSError:
                    logger.exception("could not drop this node's snapshots after an erasure")
            _stop_heartbeat.wait(broker.HEARTBEAT_INTERVAL_S)

    threading.Thread(target=loop, name="gazelab-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_heartbeat_thread(sender=None, **_) -> None:
    _stop_heartbeat.set()
    config = getattr(getattr(sender, "app", None), "gazelab_config", None)
    if config is not None:
        try:
            broker.redis_client(broker.broker_url(config)).delete(broker.WORKER_KEY_PREFIX + sender.hostname)
        except Exception:
            pass
