"""Celery tasks of the trainer (queue `training`)."""
