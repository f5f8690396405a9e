"""Sessions: each collection session's accuracy on its validation dots under the active
model (through its personal calibration), pass/fail against [collection]
validation_pass_px, filterable. The figures are computed by the worker when it fits the
session's calibration (trainer.personal) and read here from SessionCalibration.metrics."""
from __future__ import annotations

from flask import render_template, request
from sqlalchemy import and_, func, select

from gazelab.schema import CollectionSession, ModelArtifact, Sample, SessionCalibration
from webapp import get_config, get_db
from webapp.admin import bp
from webapp.errors import ApiError

VALIDATION_FILTERS = ("", "passed", "failed", "none")
LIMIT = 500


def _verdict(metrics: dict | None) -> str:
    validation = (metrics or {}).get("validation")
    return "none" if not validation else ("passed" if validation["passed"] else "failed")


@bp.get("/sessions")
def sessions():
    wanted = request.args.get("validation", "")
    if wanted not in VALIDATION_FILTERS:
        raise ApiError(400, "bad_filter", "validation must be one of passed, failed, none")
    db = get_db()
    artifact_id = ModelArtifact.active_id(db)
    accepted = (select(func.count()).select_from(Sample)
                .where(Sample.session_id == CollectionSession.id, Sample.status == "accepted").scalar_subquery())
    query = (select(CollectionSession, accepted, SessionCalibration.metrics)
             .outerjoin(SessionCalibration, and_(SessionCalibration.session_id == CollectionSession.id,
                                                 SessionCalibration.artifact_id == artifact_id))
             .order_by(CollectionSession.started_at.desc()).limit(LIMIT))
    rows = [(session, count, (metrics or {}).get("validation"), _verdict(metrics))
            for session, count, metrics in db.execute(query)]
    if wanted:
        rows = [row for row in rows if row[3] == wanted]
    return render_template("admin/sessions.html", rows=rows, wanted=wanted, filters=VALIDATION_FILTERS,
                           has_model=artifact_id is not None,
                           threshold=get_config().collection.validation_pass_px)
