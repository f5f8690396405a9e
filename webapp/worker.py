"""Celery entry point: `celery -A webapp.worker:celery worker -Q default,training`."""
from webapp import create_app

app = create_app()
celery = app.extensions["celery"]
