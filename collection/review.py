"""Review decisions on samples: filters, accept/reject/flag one, many or a whole session,
and flagging model outliers from per-sample errors (computed by trainer.outliers)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from collection import reasons
from collection.errors import Invalid, NotFound
from gazelab.schema import SAMPLE_STATUSES, CollectionSession, Sample, Trial, utcnow

CHUNK = 500
OUTLIER_FACTOR = 3.0


@dataclass(frozen=True)
class Filters:
    """What the review grid shows; empty fields do not filter."""
    volunteer: str = ""
    session: str = ""
    status: str = ""
    reason: str = ""
    attention_failed: bool = False

    def __post_init__(self) -> None:
        if self.status and self.status not in SAMPLE_STATUSES:
            raise Invalid("bad_filter", f"status must be one of {', '.join(SAMPLE_STATUSES)}")

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
            query = query.where(or_(Sample.reasons.contains(reasons.ATTENTION_FAILED),
                                    Sample.trial_id.in_(failed_trials)))
        return query

    def as_args(self) -> dict[str, str]:
        args = {k: v for k, v in vars(self).items() if v and k != "attention_failed"}
        if self.attention_failed:
            args["attention_failed"] = "1"
        return args


def set_status(db: Session, sample_ids: Iterable[int], status: str, reason: str = "") -> int:
    """Set the status of samples (a review reason code is added unless accepting); commits."""
    if status not in SAMPLE_STATUSES:
        raise Invalid("bad_status", f"status must be one of {', '.join(SAMPLE_STATUSES)}")
    code = None if status == "accepted" else reasons.review_code(reason)
    ids = sorted(set(sample_ids))
    now = utcnow()
    for start in range(0, len(ids), CHUNK):
        for sample in db.scalars(select(Sample).where(Sample.id.in_(ids[start:start + CHUNK]))):
            sample.status = status
            sample.reasons = reasons.with_review(sample.reasons, code)
            sample.reviewed_at = now
        db.flush()
    db.commit()
    return len(ids)


def set_session_status(db: Session, session_id: str, status: str, reason: str = "") -> int:
    if db.get(CollectionSession, session_id) is None:
        raise NotFound("not_found", f"no session {session_id!r}")
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
                sample.reasons = reasons.add(sample.reasons, reasons.MODEL_OUTLIER)
                flagged += 1
        db.flush()
    db.commit()
    return {"scored": len(errors), "flagged": flagged, "median_px": round(median, 2),
            "threshold_px": round(threshold, 2)}
