"""Review: a paginated, filterable grid of samples; accept/reject/flag one, many or a whole
session; flag model outliers (error under the active model > 3 x median)."""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from typing import Iterable

from flask import Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from gazelab.schema import IMAGE_KINDS, SAMPLE_STATUSES, CollectionSession, Sample, SampleImages, Trial, utcnow
from webapp import get_db
from webapp.admin import bp
from webapp.errors import ApiError
from webapp.validation import MAX_DATABASE_ID, parse_int

PER_PAGE = 24
CHUNK = 500
REVIEW_PREFIX = "review:"
OUTLIER_REASON = "model_outlier"
OUTLIER_FACTOR = 3.0
DECISIONS = {"accept": "accepted", "reject": "rejected", "flag": "flagged"}


@dataclass(frozen=True)
class Filters:
    volunteer: str = ""
    session: str = ""
    status: str = ""
    reason: str = ""
    attention_failed: bool = False

    @classmethod
    def from_args(cls, args) -> "Filters":
        status = args.get("status", "")
        if status and status not in SAMPLE_STATUSES:
            raise ApiError(400, "bad_filter", f"status must be one of {', '.join(SAMPLE_STATUSES)}")
        return cls(volunteer=args.get("volunteer", "").strip(), session=args.get("session", "").strip(),
                   status=status, reason=args.get("reason", "").strip(),
                   attention_failed=args.get("attention_failed") in ("1", "on", "true"))

    def apply(self, query: Select) -> Select:
        if self.volunteer:
            query = query.where(Sample.volunteer_id == self.volunteer)
        if self.session:
            query = query.where(Sample.session_id == self.session)
        if self.status:
            query = query.where(Sample.status == self.status)
        if self.reason:
            query = query.where(Sample.reasons.contains(self.reason))
        if self.attention_failed:
            failed_trials = select(Trial.id).where(Trial.attention_passed.is_(False))
            query = query.where(or_(Sample.reasons.contains("attention_failed"),
                                    Sample.trial_id.in_(failed_trials)))
        return query

    def as_args(self) -> dict[str, str]:
        args = {k: v for k, v in vars(self).items() if v and k != "attention_failed"}
        if self.attention_failed:
            args["attention_failed"] = "1"
        return args


def review_code(reason: str) -> str:
    """A free-text review reason as one reason code (no commas, short)."""
    slug = re.sub(r"[^a-z0-9_]+", "_", reason.strip().lower()).strip("_")[:40]
    return REVIEW_PREFIX + (slug or "manual")


def _add_code(reasons: str, code: str) -> str:
    codes = [c for c in reasons.split(",") if c and c != code]
    return ",".join(codes + [code])[-256:].lstrip(",")


def _with_reason(reasons: str, code: str | None) -> str:
    """Replace any earlier review code by `code` (None: just drop them)."""
    kept = ",".join(c for c in reasons.split(",") if c and not c.startswith(REVIEW_PREFIX))
    return _add_code(kept, code) if code else kept


def set_status(db: Session, sample_ids: Iterable[int], status: str, reason: str = "") -> int:
    """Set the status of samples (a review reason code is added unless accepting); commits."""
    if status not in SAMPLE_STATUSES:
        raise ApiError(400, "bad_status", f"status must be one of {', '.join(SAMPLE_STATUSES)}")
    code = None if status == "accepted" else review_code(reason)
    ids = sorted(set(sample_ids))
    now = utcnow()
    for start in range(0, len(ids), CHUNK):
        for sample in db.scalars(select(Sample).where(Sample.id.in_(ids[start:start + CHUNK]))):
            sample.status = status
            sample.reasons = _with_reason(sample.reasons, code)
            sample.reviewed_at = now
        db.flush()
    db.commit()
    return len(ids)


def set_session_status(db: Session, session_id: str, status: str, reason: str = "") -> int:
    if db.get(CollectionSession, session_id) is None:
        raise ApiError(404, "not_found", f"no session {session_id!r}")
    ids = db.scalars(select(Sample.id).where(Sample.session_id == session_id)).all()
    return set_status(db, ids, status, reason)


def flag_outliers(db: Session, errors: dict[int, float]) -> dict[str, float | int]:
    """Store each sample's error under the active model; flag those above 3 x the median."""
    if not errors:
        return {"scored": 0, "flagged": 0, "median_px": 0.0}
    median = statistics.median(errors.values())
    threshold = OUTLIER_FACTOR * median
    flagged = 0
    ids = sorted(errors)
    for start in range(0, len(ids), CHUNK):
        for sample in db.scalars(select(Sample).where(Sample.id.in_(ids[start:start + CHUNK]))):
            sample.model_error_px = errors[sample.id]
            if errors[sample.id] > threshold and sample.status == "accepted":
                sample.status = "flagged"
                sample.reasons = _add_code(sample.reasons, OUTLIER_REASON)
                flagged += 1
        db.flush()
    db.commit()
    return {"scored": len(errors), "flagged": flagged, "median_px": round(median, 2),
            "threshold_px": round(threshold, 2)}


def model_errors(db: Session, predictor, batch: int = 256) -> dict[int, float]:
    """Error in px of `predictor` on every accepted or flagged sample with images."""
    from webapp.admin.live import predictor_inputs

    query = (select(Sample, SampleImages, CollectionSession.screen_width, CollectionSession.screen_height)
             .join(SampleImages, SampleImages.sample_id == Sample.id)
             .join(CollectionSession, CollectionSession.id == Sample.session_id)
             .where(Sample.status.in_(("accepted", "flagged"))).order_by(Sample.id))
    errors: dict[int, float] = {}
    for rows in db.execute(query.execution_options(yield_per=batch)).partitions():
        predictions = predictor.predict([predictor_inputs(sample, images) for sample, images, _, _ in rows])
        for (sample, _, width, height), (x_norm, y_norm) in zip(rows, predictions):
            errors[sample.id] = math.hypot(float(x_norm) * width - sample.target_x,
                                           float(y_norm) * height - sample.target_y)
    return errors


def _page_query(filters: Filters) -> Select:
    # the images' key only (not their bytes) tells the grid whether crops exist
    return filters.apply(select(Sample, CollectionSession.screen_width, CollectionSession.screen_height,
                                SampleImages.sample_id.label("has_images"))
                         .join(CollectionSession, CollectionSession.id == Sample.session_id)
                         .outerjoin(SampleImages, SampleImages.sample_id == Sample.id))


@bp.get("/review")
def review():
    db = get_db()
    filters = Filters.from_args(request.args)
    page = parse_int("page", request.args.get("page"), 1, 10**6, default=1)
    total = db.scalar(filters.apply(select(func.count()).select_from(Sample))) or 0
    pages = max(1, math.ceil(total / PER_PAGE))
    rows = db.execute(_page_query(filters).order_by(Sample.id)
                      .limit(PER_PAGE).offset((page - 1) * PER_PAGE)).all()
    sessions = db.execute(select(CollectionSession.id, CollectionSession.volunteer_id)
                          .order_by(CollectionSession.started_at.desc()).limit(200)).all()
    return render_template("admin/review.html", rows=rows, filters=filters, page=page, pages=pages,
                           total=total, statuses=SAMPLE_STATUSES, sessions=sessions,
                           has_model=_active_model_exists(db))


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
    from trainer.inference import load_predictor

    db = get_db()
    predictor = load_predictor(db)
    if predictor is None:
        raise ApiError(409, "no_active_model", "promote a model first")
    result = flag_outliers(db, model_errors(db, predictor))
    flash(f"Scored {result['scored']} samples under the active model (median {result['median_px']} px); "
          f"flagged {result['flagged']} outliers.")
    return _back_to_review()


@bp.post("/volunteers/<volunteer_id>/delete")
def delete_volunteer(volunteer_id: str):
    from webapp.ingest import delete_volunteer as erase

    removed = erase(get_db(), volunteer_id)
    if not removed.get("volunteers"):
        raise ApiError(404, "not_found", f"no volunteer {volunteer_id!r}")
    flash(f"Volunteer {volunteer_id[:8]} deleted: {removed['samples']} samples, {removed['sessions']} sessions.")
    return redirect(url_for("admin.review"))


@bp.get("/samples/<int:sample_id>/<kind>.jpg")
def sample_image(sample_id: int, kind: str):
    if kind not in IMAGE_KINDS:
        abort(404)
    images = get_db().get(SampleImages, sample_id)
    if images is None:
        raise ApiError(404, "not_found", f"sample {sample_id} has no images")
    mimetype = "image/png" if images.format == "png" else "image/jpeg"
    return Response(getattr(images, kind), mimetype=mimetype,
                    headers={"Cache-Control": "private, max-age=3600"})


def _active_model_exists(db: Session) -> bool:
    from gazelab.schema import ModelArtifact
    return db.scalar(select(ModelArtifact.id).where(ModelArtifact.is_active.is_(True)).limit(1)) is not None
