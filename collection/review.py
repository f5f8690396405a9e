"""Review decisions on samples: filters, the grid's keyset pages, accept/reject/flag one,
many or a whole session, and flagging model outliers from per-sample errors (computed by
trainer.outliers)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import Row, Select, or_, select
from sqlalchemy.orm import Session

from collection import reasons
from collection.errors import Invalid, NotFound
from collection import summary
from gazelab.schema import SAMPLE_STATUSES, CollectionSession, Sample, SampleImages, Trial, utcnow

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

    def is_empty(self) -> bool:
        return not (self.volunteer or self.session or self.status or self.reason or self.attention_failed)


@dataclass(frozen=True)
class Page:
    """One page of the grid, newest first: rows of (Sample, screen_width, screen_height,
    has_images); `older` / `newer`: the cursors of the next pages (None at either end)."""
    rows: list[Row]
    older: int | None       # ?before=older
    newer: int | None       # ?after=newer
    total: int | None       # matching samples, when the summary knows (no filter or status only)


def _grid_query(filters: Filters) -> Select:
    # the images' key only (not their bytes) tells the grid whether crops exist
    return filters.apply(select(Sample, CollectionSession.screen_width, CollectionSession.screen_height,
                                SampleImages.sample_id.label("has_images"))
                         .join(CollectionSession, CollectionSession.id == Sample.session_id)
                         .outerjoin(SampleImages, SampleImages.sample_id == Sample.id))


def page(db: Session, filters: Filters, before: int | None = None, after: int | None = None,
         per_page: int = 24) -> Page:
    """The samples matching `filters` newest first (by id), `per_page` of them: those with
    ids below `before`, or the ones just above `after` (the page before). Keyset pages: no
    OFFSET and no COUNT, so page 40 000 costs what page 1 does. (A filter that matches
    few samples costs a walk back to the nearest matches; a reason that no sample carries
    is answered from the summary without walking.)"""
    if filters.reason and not summary.reason_in_use(db, filters.reason):
        return Page([], older=None, newer=None, total=0)
    if after is not None:
        newer_rows = db.execute(_grid_query(filters).where(Sample.id > after)
                                .order_by(Sample.id).limit(per_page + 1)).all()
        if len(newer_rows) > per_page:
            rows = list(reversed(newer_rows[:per_page]))
            return Page(rows, older=rows[-1][0].id, newer=rows[0][0].id, total=_total(db, filters))
        before = None   # reached the newest: that is the first page
    query = _grid_query(filters)
    if before is not None:
        query = query.where(Sample.id < before)
    rows = db.execute(query.order_by(Sample.id.desc()).limit(per_page + 1)).all()
    older = rows[per_page - 1][0].id if len(rows) > per_page else None
    rows = rows[:per_page]
    newer = rows[0][0].id if before is not None and rows else (before - 1 if before is not None else None)
    return Page(rows, older=older, newer=newer, total=_total(db, filters))


def _total(db: Session, filters: Filters) -> int | None:
    if filters.is_empty():
        return summary.status_counts(db)["samples"]
    if filters.status and filters == Filters(status=filters.status):
        return summary.status_counts(db)[filters.status]
    return None


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
