"""Celery entry point: `celery -A gazelab_cli.worker:celery worker -Q default,training`.

The worker needs no web app: its tasks (trainer.tasks) are plain functions over the schema.
"""
from gazelab.celery_app import make_celery
from gazelab.config import load_config

celery = make_celery(load_config())
