"""Training: queue a retrain, list runs, follow a run live, compare two runs, promote."""
from __future__ import annotations

from typing import Any

from flask import Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from gazelab.celery_app import FIT_CALIBRATIONS_TASK, FLAG_OUTLIERS_TASK
from gazelab.config import SPEC
from gazelab.schema import ModelArtifact, RunFigure, TrainingRun
from trainer import runs as training_runs
from webapp import get_config, get_db
from webapp.admin import bp
from webapp.admin.review import cursor_arg
from webapp.errors import ApiError
from webapp.validation import MAX_DATABASE_ID, parse_int

RUNS_PER_PAGE = 50
FIGURES = ("error_heatmap", "coverage_heatmap", "error_histogram", "loss_curves",
           "error_heatmap_zero_shot", "error_heatmap_calibrated_9")
# The form's fields; values are checked (and defaulted) by trainer.params from the config spec.
FORM_FIELDS = ("epochs", "batch_size", "learning_rate", "architecture", "inputs", "folds")


def form_params(form) -> dict[str, Any]:
    """The run parameters given in the form (empty fields are left to the trainer's defaults)."""
    return {name: form.get(name, "").strip() for name in FORM_FIELDS if form.get(name, "").strip()}


def get_run(db: Session, run_id: int) -> TrainingRun:
    run = db.get(TrainingRun, run_id)
    if run is None:
        raise ApiError(404, "not_found", f"no training run {run_id}")
    return run


def run_artifact(db: Session, run_id: int) -> ModelArtifact | None:
    return db.scalar(select(ModelArtifact).where(ModelArtifact.run_id == run_id)
                     .order_by(ModelArtifact.id.desc()).limit(1))


def run_summary(db: Session, run: TrainingRun) -> dict[str, Any]:
    """What the run page polls: status, progress (with loss history), metrics."""
    artifact = run_artifact(db, run.id)
    return {"id": run.id, "status": run.status, "params": run.params, "progress": run.progress or {},
            "metrics": run.metrics or {}, "error": run.error,
            "figures": sorted(db.scalars(select(RunFigure.name).where(RunFigure.run_id == run.id))),
            "artifact_id": artifact.id if artifact else None,
            "active": bool(artifact and artifact.is_active)}


@bp.get("/runs")
def runs():
    """The runs, newest first, RUNS_PER_PAGE at a time (keyset: ?before=<id> / ?after=<id>)."""
    db = get_db()
    before, after = cursor_arg("before"), cursor_arg("after")
    newer = None
    if after is not None:
        rows = db.scalars(select(TrainingRun).where(TrainingRun.id > after)
                          .order_by(TrainingRun.id).limit(RUNS_PER_PAGE + 1)).all()
        if len(rows) > RUNS_PER_PAGE:
            page = list(reversed(rows[:RUNS_PER_PAGE]))
            before, newer = page[0].id + 1, page[0].id
    query = select(TrainingRun).order_by(TrainingRun.id.desc()).limit(RUNS_PER_PAGE + 1)
    if before is not None:
        query = query.where(TrainingRun.id < before)
    all_runs = db.scalars(query).all()
    older = all_runs[RUNS_PER_PAGE - 1].id if len(all_runs) > RUNS_PER_PAGE else None
    all_runs = all_runs[:RUNS_PER_PAGE]
    if before is not None and newer is None:
        newer = all_runs[0].id if all_runs else before - 1
    active_id = ModelArtifact.active_id(db)
    active_run_id = db.scalar(select(ModelArtifact.run_id).where(ModelArtifact.id == active_id))
    return render_template("admin/runs.html", runs=all_runs, defaults=get_config().training,
                           architectures=SPEC["training"]["architecture"].choices,
                           inputs=SPEC["training"]["inputs"].choices, active_run_id=active_run_id,
                           older=older, newer=newer)


@bp.post("/runs")
def queue():
    db = get_db()
    try:
        run = training_runs.queue_run(db, form_params(request.form), get_config())
    except ValueError as exc:
        raise ApiError(400, "bad_params", str(exc)) from None
    except RuntimeError as exc:  # the broker is unreachable; the run is stored as failed
        raise ApiError(503, "broker_unavailable", str(exc)) from None
    db.commit()
    flash(f"Run {run.id} queued.")
    return redirect(url_for("admin.run_page", run_id=run.id))


@bp.get("/runs/<int:run_id>")
def run_page(run_id: int):
    db = get_db()
    run = get_run(db, run_id)
    others = db.scalars(select(TrainingRun.id).where(TrainingRun.id != run_id, TrainingRun.status == "done")
                        .order_by(TrainingRun.id.desc()).limit(50)).all()
    return render_template("admin/run.html", run=run, summary=run_summary(db, run), figures=FIGURES,
                           others=others)


@bp.get("/api/runs/<int:run_id>")
def run_json(run_id: int):
    db = get_db()
    return jsonify(run_summary(db, get_run(db, run_id)))


@bp.get("/runs/<int:run_id>/figures/<name>.png")
def run_figure(run_id: int, name: str):
    figure = get_db().scalar(select(RunFigure).where(RunFigure.run_id == run_id, RunFigure.name == name))
    if figure is None:
        raise ApiError(404, "not_found", f"run {run_id} has no figure {name!r}")
    return Response(figure.png, mimetype="image/png", headers={"Cache-Control": "private, max-age=600"})


@bp.post("/runs/<int:run_id>/promote")
def promote_run(run_id: int):
    db = get_db()
    get_run(db, run_id)
    artifact = run_artifact(db, run_id)
    if artifact is None:
        raise ApiError(409, "no_model", f"run {run_id} has no model (not finished?)")
    training_runs.promote(db, artifact.id)
    flash(f"Model of run {run_id} is now active.")
    try:
        # Personal calibrations of every session under the new model first, then outlier
        # scoring through them (a chain of tasks sent by name).
        celery = current_app.extensions["celery"]
        (celery.signature(FIT_CALIBRATIONS_TASK, kwargs={"artifact_id": artifact.id}, immutable=True)
         | celery.signature(FLAG_OUTLIERS_TASK, immutable=True)).apply_async()
        flash("Fitting every session's personal calibration under it, then scoring every sample "
              "in the background; outliers (> 3 × median error) will be flagged for review.")
    except Exception:  # the broker is down: promotion stands, scoring waits for the button
        flash("Could not queue outlier scoring (broker unreachable); use 'Flag model outliers' "
              "on the review page.", "error")
    return redirect(url_for("admin.run_page", run_id=run_id))


@bp.post("/runs/<int:run_id>/cancel")
def cancel(run_id: int):
    db = get_db()
    get_run(db, run_id)
    training_runs.cancel_run(db, run_id)
    flash(f"Cancellation of run {run_id} requested.")
    return redirect(url_for("admin.run_page", run_id=run_id))


@bp.get("/runs/compare")
def compare():
    db = get_db()
    ids = [parse_int(name, request.args.get(name), 1, MAX_DATABASE_ID) for name in ("a", "b")]
    pair = [get_run(db, run_id) for run_id in ids]
    return render_template("admin/compare.html", pair=[(run, run_summary(db, run)) for run in pair],
                           figures=FIGURES)
