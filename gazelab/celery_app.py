"""Celery configured from config.ini: queues `default` and `training`."""
from __future__ import annotations

from celery import Celery
from kombu import Queue

from gazelab.broker import broker_url
from gazelab.config import Config

# Task names: how the web app and the CLI reach the trainer's tasks without importing them.
RETRAIN_TASK = "trainer.tasks.retrain"
FLAG_OUTLIERS_TASK = "trainer.tasks.flag_model_outliers"
FIT_CALIBRATIONS_TASK = "trainer.tasks.fit_calibrations"
TASK_ROUTES = {RETRAIN_TASK: {"queue": "training"}, FLAG_OUTLIERS_TASK: {"queue": "default"},
               FIT_CALIBRATIONS_TASK: {"queue": "default"}}


def make_celery(config: Config, name: str = "gazelab") -> Celery:
    url = broker_url(config)
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
        imports=("trainer.tasks",),
    )
    celery.gazelab_config = config  # tasks read database URL etc. from here
    return celery
