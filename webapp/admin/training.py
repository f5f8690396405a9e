"""Training: queue a retrain, list runs, follow a run live, compare two runs, promote."""
from __future__ import annotations

from typing import Any

from flask import Response, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from gazelab.schema import ModelArtifact, RunFigure, TrainingRun
from webapp import get_config, get_db
from webapp.admin import bp
from webapp.errors import ApiError
from webapp.validation import MAX_DATABASE_ID, parse_int

FIGURES = ("error_heatmap", "coverage_heatmap", "error_histogram", "loss_curves")
ARCHITECTURES = ("compact", "reference")
INPUTS = ("full", "face", "eyes")
FORM_FIELDS = {"epochs": int, "batch_size": int, "learning_rate": float,
               "architecture": str, "inputs": str}


def form_params(form) -> dict[str, Any]:
    """The run parameters given in the form (empty fields are left to the trainer's defaults)."""
    params: dict[str, Any] = {}
    for name, parse in FORM_FIELDS.items():
        raw = form.get(name, "").strip()
        if raw:
            try:
                params[name] = parse(raw)
            except ValueError:
                raise ValueError(f"{name} must be a {parse.__name__}, not {raw!r}") from None
    return params


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
    db = get_db()
    all_runs = db.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(200)).all()
    active = db.scalar(select(ModelArtifact).where(ModelArtifact.is_active.is_(True)))
    return render_template("admin/runs.html", runs=all_runs, defaults=get_config().training,
                           architectures=ARCHITECTURES, inputs=INPUTS,
                           active_run_id=active.run_id if active else None)


@bp.post("/runs")
def queue():
    db = get_db()
    try:
        params = form_params(request.form)
        from trainer.runs import queue_run
        run = queue_run(db, params)
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
    from trainer.runs import promote

    db = get_db()
    get_run(db, run_id)
    artifact = run_artifact(db, run_id)
    if artifact is None:
        raise ApiError(409, "no_model", f"run {run_id} has no model (not finished?)")
    promote(db, artifact.id)
    flash(f"Model of run {run_id} is now active.")
    try:
        from webapp.tasks import flag_model_outliers
        flag_model_outliers.delay()
        flash("Scoring every sample under it in the background; outliers (> 3 × median error) "
              "will be flagged for review.")
    except Exception:  # the broker is down: promotion stands, scoring waits for the button
        flash("Could not queue outlier scoring (broker unreachable); use 'Flag model outliers' "
              "on the review page.", "error")
    return redirect(url_for("admin.run_page", run_id=run_id))


@bp.post("/runs/<int:run_id>/cancel")
def cancel(run_id: int):
    from trainer.runs import cancel_run

    db = get_db()
    get_run(db, run_id)
    cancel_run(db, run_id)
    flash(f"Cancellation of run {run_id} requested.")
    return redirect(url_for("admin.run_page", run_id=run_id))


@bp.get("/runs/compare")
def compare():
    db = get_db()
    ids = [parse_int(name, request.args.get(name), 1, MAX_DATABASE_ID) for name in ("a", "b")]
    pair = [get_run(db, run_id) for run_id in ids]
    return render_template("admin/compare.html", pair=[(run, run_summary(db, run)) for run in pair],
                           figures=FIGURES)
