"""Celery tasks of the web app (queue `default`); they run inside an app context."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="webapp.tasks.flag_model_outliers")
def flag_model_outliers() -> dict:
    """Score accepted and flagged samples under the active model and flag those whose
    error is above 3 x the median (queued when a model is promoted)."""
    from trainer.inference import load_predictor
    from webapp import get_db
    from webapp.admin.review import flag_outliers, model_errors

    db = get_db()
    predictor = load_predictor(db)
    if predictor is None:
        return {"scored": 0, "flagged": 0}
    return flag_outliers(db, model_errors(db, predictor))
