"""Review: a filterable grid of samples, newest first, in keyset pages (?before=<id> /
?after=<id>, filters kept; no OFFSET, no COUNT per request); accept/reject/flag one, many or a whole
session; queue model-outlier scoring (error under the active model > 3 x median). The
decisions themselves are collection.review's."""
from __future__ import annotations

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from collection.erasure import delete_volunteer as delete_volunteer_everywhere
from collection.review import Filters, page as review_page, set_session_status, set_status
from gazelab.celery_app import FLAG_OUTLIERS_TASK
from gazelab.schema import CROP_KINDS, SAMPLE_STATUSES, CollectionSession, ModelArtifact, SampleImages
from webapp import get_config, get_db
from webapp.admin import bp
from webapp.errors import ApiError
from webapp.validation import MAX_DATABASE_ID, parse_int

PER_PAGE = 24
DECISIONS = {"accept": "accepted", "reject": "rejected", "flag": "flagged"}


def filters_from_args(args) -> Filters:
    """The grid's filters from the query string (a bad one is a 400 naming it)."""
    status = args.get("status", "")
    if status and status not in SAMPLE_STATUSES:
        raise ApiError(400, "bad_filter", f"status must be one of {', '.join(SAMPLE_STATUSES)}")
    return Filters(volunteer=args.get("volunteer", "").strip(), session=args.get("session", "").strip(),
                   status=args.get("status", ""), reason=args.get("reason", "").strip(),
                   attention_failed=args.get("attention_failed") in ("1", "on", "true"))


def cursor_arg(name: str) -> int | None:
    """A keyset cursor (?before= / ?after=, a row id) from the query string; None if absent."""
    raw = request.args.get(name, "")
    return parse_int(name, raw, 0, MAX_DATABASE_ID) if raw else None


@bp.get("/review")
def review():
    db = get_db()
    filters = filters_from_args(request.args)
    before, after = cursor_arg("before"), cursor_arg("after")
    grid = review_page(db, filters, before=before, after=after, per_page=PER_PAGE)
    sessions = db.execute(select(CollectionSession.id, CollectionSession.volunteer_id)
                          .order_by(CollectionSession.started_at.desc()).limit(200)).all()
    if filters.session and filters.session not in {sid for sid, _ in sessions}:
        # an older session being filtered must be the one "whole session" acts on
        sessions = db.execute(select(CollectionSession.id, CollectionSession.volunteer_id).where(
            CollectionSession.id == filters.session)).all() + list(sessions)
    return render_template("admin/review.html", rows=grid.rows, filters=filters, grid=grid,
                           statuses=SAMPLE_STATUSES, sessions=sessions,
                           has_model=ModelArtifact.active_id(db) is not None)


def _back_to_review():
    target = request.form.get("back", "")
    return redirect(target if target.startswith("/admin/review") else url_for("admin.review"))


def _decision() -> str:
    decision = request.form.get("decision", "")
    if decision not in DECISIONS:
        raise ApiError(400, "bad_decision", f"decision must be one of {', '.join(DECISIONS)}")
    return DECISIONS[decision]


@bp.post("/review/samples")
def review_samples():
    ids = [parse_int("sample_id", value, 1, MAX_DATABASE_ID) for value in request.form.getlist("sample_id")]
    status = _decision()
    if not ids:
        flash("Select at least one sample.", "error")
        return _back_to_review()
    count = set_status(get_db(), ids, status, request.form.get("reason", ""))
    flash(f"{count} sample(s) set to {status}.")
    return _back_to_review()


@bp.post("/review/session")
def review_session():
    session_id = request.form.get("session_id", "").strip()
    if not session_id:
        raise ApiError(400, "missing_session", "choose a session")
    status = _decision()
    count = set_session_status(get_db(), session_id, status, request.form.get("reason", ""))
    flash(f"Session {session_id[:8]}: {count} sample(s) set to {status}.")
    return _back_to_review()


@bp.post("/review/outliers")
def review_outliers():
    if ModelArtifact.active_id(get_db()) is None:
        raise ApiError(409, "no_active_model", "promote a model first")
    try:
        current_app.extensions["celery"].send_task(FLAG_OUTLIERS_TASK)
    except Exception:
        raise ApiError(503, "broker_unavailable", "could not queue outlier scoring: the broker is unreachable") from None
    flash("Scoring every sample under the active model in the background; outliers "
          "(> 3 × median error) will be flagged for review.")
    return _back_to_review()


@bp.post("/volunteers/<volunteer_id>/delete")
def delete_volunteer(volunteer_id: str):
    removed = delete_volunteer_everywhere(get_db(), get_config(), volunteer_id)
    if not removed.get("volunteers"):
        raise ApiError(404, "not_found", f"no volunteer {volunteer_id!r}")
    flash(f"Volunteer {volunteer_id[:8]} deleted: {removed['samples']} samples, {removed['sessions']} sessions.")
    return redirect(url_for("admin.review"))


@bp.get("/samples/<int:sample_id>/<kind>.jpg")
def sample_image(sample_id: int, kind: str):
    if kind not in CROP_KINDS:
        abort(404)
    images = get_db().get(SampleImages, sample_id)
    if images is None:
        raise ApiError(404, "not_found", f"sample {sample_id} has no images")
    mimetype = "image/png" if images.format == "png" else "image/jpeg"
    return Response(getattr(images, kind), mimetype=mimetype,
                    headers={"Cache-Control": "no-store"})  # faces: never kept in a cache
