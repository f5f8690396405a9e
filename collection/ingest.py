"""Ingest: collection sessions, trials and frames into the database.

The one path every frame takes into the database — the HTTP API and `gazelab demo-data`
both call these functions. Failures raise collection.errors (no HTTP here). Each write is one transaction: a frame's sample row, its crops
and (optionally) its raw frame land together or not at all.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

from sqlalchemy import (Boolean, String, bindparam, cast, func, insert, literal_column, null, select, union_all,
                        update)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm import Session

from gazelab.config import Config
from gazelab.db import retrying_deadlocks
from gazelab.schema import (CollectionSession, RawFrame, Sample, SampleImages, Trial,
                            Volunteer, new_id, utcnow)
from collection import reasons as reason_codes
from collection import summary
from collection.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unauthorized, Unsupported
from collection.reasons import ATTENTION_FAILED

# The largest screens that exist (8K, in CSS px): bigger ones are refused, not sampled.
MAX_SCREEN_WIDTH, MAX_SCREEN_HEIGHT = 7680, 4320
SAMPLES, TRIALS = Sample.__table__, Trial.__table__
# Built once: building a statement costs more than running it (see _store).
# Rows come back in no set order (asking SQLite for the parameters' order makes SQLAlchemy insert
# row by row): each is matched by its client_frame_id, unique within a batch.
INSERT_SAMPLES = insert(SAMPLES).returning(SAMPLES.c.client_frame_id, SAMPLES.c.id)
# A sample row's columns that come from the extraction (NULL where no face was measured):
# every row of one insert must name the same columns.
FEATURE_COLUMNS = ("yaw", "pitch", "roll", "frame_width", "frame_height", "face_x", "face_y", "face_w", "face_h")
RESTATUS = (update(SAMPLES).where(SAMPLES.c.id == bindparam("sample_id"))
            .values(status=bindparam("new_status"), reasons=bindparam("new_reasons")))
INSERT_IMAGES, INSERT_RAW_FRAME = insert(SampleImages.__table__), insert(RawFrame.__table__)
INSERT_TRIAL = insert(TRIALS).returning(TRIALS.c.id)
ATTENTION_FOR_UPDATE = (select(TRIALS.c.attention_passed).where(TRIALS.c.id == bindparam("trial_id"))
                        .with_for_update())
# What a batch's checks need, in one round trip: the samples already stored under its
# client_frame_ids, its trials' sessions and attention outcomes, and the trial it carries
# if an earlier try of the request stored it.
FRAME_CONTEXT = union_all(
    select(literal_column("'sample'").label("kind"), SAMPLES.c.client_frame_id.label("frame_id"),
           SAMPLES.c.id.label("id"), SAMPLES.c.status.label("status"), SAMPLES.c.reasons.label("reasons"),
           cast(null(), String).label("session_id"), cast(null(), Boolean).label("passed"))
    .where(SAMPLES.c.session_id == bindparam("session_id"),
           SAMPLES.c.client_frame_id.in_(bindparam("frame_ids", expanding=True))),
    select(literal_column("'trial'"), cast(null(), String), TRIALS.c.id, cast(null(), String), cast(null(), String),
           TRIALS.c.session_id, TRIALS.c.attention_passed)
    .where(TRIALS.c.id.in_(bindparam("trial_ids", expanding=True))),
    select(literal_column("'carried'"), TRIALS.c.client_trial_id, TRIALS.c.id, cast(null(), String),
           cast(null(), String), TRIALS.c.session_id, TRIALS.c.attention_passed)
    .where(TRIALS.c.session_id == bindparam("session_id"),
           TRIALS.c.client_trial_id == bindparam("client_trial_id")),
    # the session's calibration dots (id: how many) and other trials, for ends_calibration
    *(select(literal_column(f"'{kind}'"), cast(null(), String), func.count(), cast(null(), String),
             cast(null(), String), cast(null(), String), cast(null(), Boolean))
      .where(TRIALS.c.session_id == bindparam("session_id"), condition)
      for kind, condition in (("calibration_dots", TRIALS.c.kind == "calibration"),
                              ("other_trials", TRIALS.c.kind != "calibration"))))
# last_activity_at is written at most this often (seconds), not on every frame.
ACTIVITY_RESOLUTION_S = 30


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(db: Session, config: Config, *, consent_version: str, screen_width: int,
                   screen_height: int, device_pixel_ratio: float = 1.0,
                   mm_per_px: float | None = None, user_agent: str = "",
                   source: str = "browser", volunteer_id: str | None = None) -> tuple[CollectionSession, str]:
    """A new anonymous volunteer with one collection session; returns it and its upload token.
    The volunteer must have agreed to the current consent text ([server] consent_version).
    `volunteer_id` (virtual volunteers only) replaces the random id."""
    if consent_version != config.server.consent_version:
        raise Invalid("wrong_consent_version",
                      f"consent was given to version {consent_version[:64]!r}, but the current text is "
                      f"version {config.server.consent_version!r}; reload the page and read it again")
    if screen_width > MAX_SCREEN_WIDTH or screen_height > MAX_SCREEN_HEIGHT:
        raise Invalid("screen_too_large", f"a {screen_width}x{screen_height} screen is larger than any real "
                      f"one ({MAX_SCREEN_WIDTH}x{MAX_SCREEN_HEIGHT} at most)")
    token = secrets.token_urlsafe(24)
    volunteer = Volunteer(id=volunteer_id or new_id(), consent_version=consent_version,
                          consented_at=utcnow(), source=source)
    session = CollectionSession(volunteer=volunteer, token_hash=hash_token(token),
                                screen_width=screen_width, screen_height=screen_height,
                                device_pixel_ratio=device_pixel_ratio, mm_per_px=mm_per_px,
                                user_agent=user_agent[:512])
    db.add_all([volunteer, session])
    db.commit()
    return session, token


def authorize(db: Session, config: Config, session_id: str, token: str | None, *,
              write: bool = False) -> CollectionSession:
    """The collection session, if `token` is its upload token and has not expired
    ([server] session_ttl_hours); with `write`, only while the session is active.
    Raises NotFound, Unauthorized, Forbidden or Conflict otherwise."""
    session = db.get(CollectionSession, session_id) if len(session_id) <= 32 else None
    if session is None:
        raise NotFound("unknown_session", f"no collection session {session_id!r}")
    if not token:
        raise Unauthorized("missing_token", "send the upload token as 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(session.token_hash, hash_token(token)):
        raise Forbidden("wrong_token", "the upload token does not belong to this session")
    if utcnow() - session.started_at > dt.timedelta(hours=config.server.session_ttl_hours):
        raise Unauthorized("token_expired", "this session's upload token has expired; start a new session "
                           "(your deletion code still works)")
    if write:
        if session.status != "active":
            raise Conflict("session_closed", f"this session is {session.status}; it takes no more data")
        touch(session)
    return session


def touch(session: CollectionSession) -> None:
    """Note activity (committed with the caller's write), at most every ACTIVITY_RESOLUTION_S."""
    now = utcnow()
    if now - session.last_activity_at > dt.timedelta(seconds=ACTIVITY_RESOLUTION_S):
        session.last_activity_at = now


def update_screen(db: Session, session: CollectionSession, **screen: Any) -> None:
    """Change the screen geometry of a session that has no samples yet (set-up step)."""
    if screen and db.scalar(select(func.count()).select_from(Sample).where(
            Sample.session_id == session.id)):
        raise Conflict("session_has_samples",
                       "the screen of a session cannot change once frames were stored")
    for name, value in screen.items():
        setattr(session, name, value)
    db.commit()


def check_target(session: CollectionSession, x: float, y: float) -> None:
    if not (0 <= x <= session.screen_width and 0 <= y <= session.screen_height):
        raise Invalid("target_off_screen",
                       f"target ({x}, {y}) lies outside the {session.screen_width}x"
                       f"{session.screen_height} screen")


def add_trial(db: Session, session: CollectionSession, *, kind: str, target_x: float,
              target_y: float, shown_at: dt.datetime, client_trial_id: str | None = None,
              attention_letter: str | None = None, attention_answer: str | None = None) -> tuple[Trial, bool]:
    """Record a shown target (with its attention check's outcome, if given); returns the
    trial and whether it existed already (the same client_trial_id again: a retried request)."""
    previous = _existing_trial(db, session, client_trial_id)
    if previous is not None:
        return previous, True
    check_target(session, target_x, target_y)
    trial = Trial(session_id=session.id, kind=kind, target_x=target_x, target_y=target_y,
                  shown_at=shown_at, client_trial_id=client_trial_id, attention_letter=attention_letter,
                  attention_answer=attention_answer,
                  attention_passed=attention_outcome(attention_letter, attention_answer))
    db.add(trial)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()  # the same trial arrived twice at once
        previous = _existing_trial(db, session, client_trial_id)
        if previous is None:
            raise
        return previous, True
    return trial, False


def attention_outcome(letter: str | None, answer: str | None) -> bool | None:
    """None: no check was made; otherwise whether the answer (None: none given) was right."""
    return None if letter is None else answer == letter


def ends_calibration(db: Session, session_id: str, trial_id: int, kind: str) -> bool:
    """True when trial `trial_id` (of `kind`) is the session's first trial after its
    calibration dots: the moment its personal calibration can be fitted."""
    if kind == "calibration":
        return False
    is_calibration = Trial.kind == "calibration"
    calibration, others = db.execute(select(func.count().filter(is_calibration), func.count().filter(~is_calibration))
                                     .where(Trial.session_id == session_id, Trial.id < trial_id)).one()
    return first_after_calibration(kind, calibration, others)


def first_after_calibration(kind: str, calibration_dots: int, other_trials: int) -> bool:
    """Whether a new trial of `kind` ends the calibration, given the session's trials before it."""
    return kind != "calibration" and calibration_dots > 0 and other_trials == 0


def _existing_trial(db: Session, session: CollectionSession, client_trial_id: str | None) -> Trial | None:
    if client_trial_id is None:
        return None
    return db.scalar(select(Trial).where(Trial.session_id == session.id,
                                         Trial.client_trial_id == client_trial_id))


def session_trial(db: Session, session: CollectionSession, trial_id: int) -> Trial:
    trial = db.get(Trial, trial_id)
    if trial is None or trial.session_id != session.id:
        raise NotFound("unknown_trial", f"no trial {trial_id} in this session")
    return trial


def record_attention(db: Session, session: CollectionSession, trial_id: int, letter: str,
                     answer: str | None) -> bool:
    """Store the attention-check outcome; a wrong or missing answer rejects the trial's frames."""
    trial = session_trial(db, session, trial_id)
    trial.attention_letter, trial.attention_answer = letter, answer
    trial.attention_passed = attention_outcome(letter, answer)
    if not trial.attention_passed:
        for sample in db.scalars(select(Sample).where(Sample.trial_id == trial.id)):
            reject(sample, ATTENTION_FAILED)
    db.commit()
    return trial.attention_passed


def reject(sample: Sample, reason: str) -> None:
    """Mark a sample rejected, adding `reason` to its reason codes."""
    sample.status, sample.reasons = "rejected", reason_codes.add(sample.reasons, reason)


def _result(sample_id: int, status: str, reasons: str, message: str, duplicate: bool) -> dict[str, Any]:
    return {"sample_id": sample_id, "status": status, "reasons": reason_codes.parse(reasons),
            "message": message, "duplicate": duplicate}


def _already_received(sample_id: int, status: str, reasons: str) -> dict[str, Any]:
    return _result(sample_id, status, reasons, "already received", duplicate=True)


def _existing(db: Session, session_id: str, client_frame_id: str) -> Sample | None:
    return db.scalar(select(Sample).where(Sample.session_id == session_id,
                                          Sample.client_frame_id == client_frame_id))


@dataclass(frozen=True)
class FrameUpload:
    """One webcam frame as the page sends it: the encoded picture and what it shows."""
    frame: bytes
    client_frame_id: str
    trial_id: int | None
    target_x: float
    target_y: float
    captured_at: dt.datetime


@dataclass(frozen=True)
class TrialUpload:
    """The trial a batch's frames belong to, sent with them (one request a dot): the shown
    target and, for a fixed dot, its attention check. Idempotent on client_trial_id."""
    kind: str
    target_x: float
    target_y: float
    shown_at: dt.datetime
    client_trial_id: str
    attention_letter: str | None = None
    attention_answer: str | None = None

    @property
    def attention_passed(self) -> bool | None:
        return attention_outcome(self.attention_letter, self.attention_answer)


@dataclass(frozen=True)
class FrameContext:
    """What the checks of a batch's frames read from the database (_frame_context)."""
    stored: dict[str, dict[str, Any]]               # client_frame_id → the answer given when it was stored
    # trial id → (its session, its attention outcome); the batch's carried trial under None
    # while it is not stored yet (its frames get its id when it is written with them)
    trials: dict[int | None, tuple[str, bool | None]]
    carried_id: int | None = None                   # the carried trial, if an earlier try stored it
    calibration_dots: int = 0                       # the session's trials before this batch's
    other_trials: int = 0


def _frame_context(db: Session, session_id: str, uploads: list[FrameUpload],
                   trial: TrialUpload | None = None) -> FrameContext:
    """The frames' earlier samples and their trials in one round trip for the whole batch:
    frames are the requests the server answers most, and each statement costs more in
    SQLAlchemy than in the database."""
    rows = db.connection().execute(FRAME_CONTEXT, {
        "session_id": session_id, "frame_ids": [u.client_frame_id for u in uploads],
        "trial_ids": sorted({u.trial_id for u in uploads if u.trial_id is not None}),
        "client_trial_id": trial.client_trial_id if trial else None}).all()
    trials = {r.id: (r.session_id, r.passed) for r in rows if r.kind in ("trial", "carried")}
    carried_id = next((r.id for r in rows if r.kind == "carried"), None)
    if trial is not None and carried_id is None:
        trials[None] = (session_id, trial.attention_passed)
    counts = {r.kind: r.id for r in rows if r.kind in ("calibration_dots", "other_trials")}
    return FrameContext(stored={r.frame_id: _already_received(r.id, r.status, r.reasons)
                                for r in rows if r.kind == "sample"},
                        trials=trials, carried_id=carried_id, **counts)


def ingest_frame(db: Session, config: Config, session: CollectionSession, *, frame: bytes,
                 client_frame_id: str, trial_id: int | None, target_x: float, target_y: float,
                 captured_at: dt.datetime) -> dict[str, Any]:
    """Extract features from one webcam frame and store the sample in one transaction.

    Idempotent on (session, client_frame_id): a repeat returns the first result.
    A frame that is not a decodable image raises Unsupported and stores nothing.
    """
    upload = FrameUpload(frame, client_frame_id, trial_id, target_x, target_y, captured_at)
    return ingest_frames(db, config, session, [upload])[0]


def ingest_frames(db: Session, config: Config, session: CollectionSession,
                  uploads: list[FrameUpload]) -> list[dict[str, Any]]:
    """`ingest_frame` for several frames of one session (a dot's, as the page sends them),
    written in one transaction: a request, its token check and its commit cost about as much
    as a frame's own write, so a batch pays them once. All or nothing: a frame that fails its
    checks (off screen, another session's trial, not an image) raises, naming it, and none is
    stored. Each frame is idempotent on its client_frame_id; repeats answer as duplicates."""
    return _ingest(db, config, session, uploads, None).results


def ingest_dot(db: Session, config: Config, session: CollectionSession, trial: TrialUpload,
               uploads: list[FrameUpload]) -> tuple[dict[str, Any], bool]:
    """`ingest_frames` for a dot's frames with the dot's trial, stored together in the same
    transaction (the frames' trial_id must be None: they belong to `trial`). A retry finds
    the trial stored by the first try (its client_trial_id). Answers ({trial_id,
    trial_duplicate, attention_passed, results}, whether this trial ends the session's
    calibration — see ends_calibration; counted before it was stored, so two dots stored at
    once may both say so, never neither)."""
    check_target(session, trial.target_x, trial.target_y)
    stored = _ingest(db, config, session, uploads, trial)
    answer = {"trial_id": stored.trial_id, "trial_duplicate": not stored.trial_created,
              "attention_passed": trial.attention_passed, "results": stored.results}
    return answer, stored.trial_created and stored.ends_calibration


class StoredBatch(NamedTuple):
    results: list[dict[str, Any]]
    trial_id: int | None = None       # the batch's carried trial
    trial_created: bool = False       # stored by this request (not by an earlier try)
    ends_calibration: bool = False    # the carried trial is the first after the calibration dots


def _ingest(db: Session, config: Config, session: CollectionSession, uploads: list[FrameUpload],
            trial: TrialUpload | None) -> StoredBatch:
    """A batch's frames checked, extracted and stored (with its carried `trial`, if any)."""
    session_id = session.id   # kept: the row may be erased while the frames are extracted
    screen = (session.screen_width, session.screen_height)
    results: list[dict[str, Any] | None] = [None] * len(uploads)
    pending: list[tuple[int, dict[str, Any], Any, bytes]] = []
    context = _frame_context(db, session_id, uploads, trial)
    if context.carried_id is not None:
        uploads = [replace(upload, trial_id=context.carried_id) for upload in uploads]
    for index, upload in enumerate(uploads):
        try:
            done, item = _extract_upload(db, config, session, upload, context)
        except DomainError as error:
            if len(uploads) == 1:
                raise
            raise type(error)(error.code, f"frame {index + 1} of {len(uploads)}: {error.message}") from None
        if done is not None:
            results[index] = done
        else:
            pending.append((index, *item))
    new_trial = (session_id, trial) if trial is not None and context.carried_id is None else None
    # PostgreSQL may break a deadlock with an erasure or a review by rolling this write back:
    # the extractions stand, the write runs again.
    stored = retrying_deadlocks(db, lambda: _store(db, config, [(row, e, f) for _, row, e, f in pending],
                                                   screen, new_trial))
    for (index, *_), result in zip(pending, stored.results):
        results[index] = result
    return stored._replace(results=results, trial_id=stored.trial_id or context.carried_id,
                           ends_calibration=trial is not None and first_after_calibration(
                               trial.kind, context.calibration_dots, context.other_trials))


def _extract_upload(db: Session, config: Config, session: CollectionSession, upload: FrameUpload,
                    context: FrameContext):
    """(the earlier result of a repeated frame, None) or (None, (row, extraction, frame))."""
    from collection.extraction import extract

    session_id = session.id
    previous = context.stored.get(upload.client_frame_id)
    trial_session, attention_passed = context.trials.get(upload.trial_id, (None, None))
    if previous is not None:
        return previous, None
    check_target(session, upload.target_x, upload.target_y)
    if upload.trial_id is not None and trial_session != session_id:
        raise NotFound("unknown_trial", f"no trial {upload.trial_id} in this session")

    extraction = extract(upload.frame, config)
    if extraction.reasons == ["bad_image"]:
        raise Unsupported("not_an_image", extraction.message)
    reasons = list(extraction.reasons)
    status = extraction.status
    if attention_passed is False:
        status, reasons = "rejected", reasons + [ATTENTION_FAILED]
    row = dict(session_id=session_id, volunteer_id=session.volunteer_id, trial_id=upload.trial_id,
               client_frame_id=upload.client_frame_id, captured_at=upload.captured_at,
               target_x=upload.target_x, target_y=upload.target_y, status=status,
               reasons=reason_codes.join(reasons))
    return None, (row, extraction, upload.frame)


def _store(db: Session, config: Config, items: list[tuple[dict[str, Any], Any, bytes]],
           screen: tuple[int, int], new_trial: tuple[str, TrialUpload] | None = None
           ) -> StoredBatch:
    """Write extracted frames' samples (and crops), the trial they came with (`new_trial`:
    its session's id and it; its id goes into the samples) and their admin-summary counts in one
    transaction, as Core statements: the ORM's unit of work cost more than the rest of the
    write together. (Everything else writes samples through the ORM, whose flush hook keeps
    the summary; here collection.summary.count_new is called instead.) `items`: (sample
    row, extraction, encoded frame) each."""
    from collection.extraction import encode_features

    # The trial's attention outcome, read once where it is final: on PostgreSQL before the
    # insert, locking the trial's row before any admin-summary row (record_attention takes
    # them in the same order, so the two cannot deadlock); on SQLite after the insert, when
    # our write holds the whole database.
    locks_rows = db.get_bind().dialect.name != "sqlite"
    rows = [_sample_row(row, extraction) for row, extraction, _ in items]
    # The trials whose attention is read again (below). Not a trial this transaction stores:
    # no answer but the one it came with, already applied, can reach it before this commits.
    trial_ids = sorted({row["trial_id"] for row in rows if row["trial_id"] is not None})
    trial_id = None
    try:
        db.flush()   # the session's last activity (authorize's touch), written first as before
        connection = db.connection()
        if new_trial is not None:
            session_id, trial = new_trial
            trial_id = connection.execute(INSERT_TRIAL, {"session_id": session_id, **asdict(trial),
                                                         "attention_passed": trial.attention_passed}).scalar_one()
            for row in rows:
                row["trial_id"] = trial_id
        if locks_rows:
            _reject_failed_attention(db, rows, trial_ids)
        # one statement each for the samples, their crops and raw frames, however many
        ids = dict(connection.execute(INSERT_SAMPLES, rows).all()) if rows else {}
        sample_ids = [ids[row["client_frame_id"]] for row in rows]
        if not locks_rows:
            rejected = _reject_failed_attention(db, rows, trial_ids)
            if rejected:
                connection.execute(RESTATUS, [{"sample_id": sample_ids[i], "new_status": rows[i]["status"],
                                               "new_reasons": rows[i]["reasons"]} for i in rejected])
        images = [{"sample_id": sample_id, "format": config.extraction.crop_format,
                   **encode_features(extraction.features, config)}
                  for sample_id, (_, extraction, _) in zip(sample_ids, items) if extraction.features is not None]
        if images:
            connection.execute(INSERT_IMAGES, images)
        if config.server.store_raw_frames and items:
            connection.execute(INSERT_RAW_FRAME, [{"sample_id": sample_id, "jpeg": frame}
                                                  for sample_id, (_, _, frame) in zip(sample_ids, items)])
        summary.count_new(db, rows, screen)
        db.commit()
    except (IntegrityError, StaleDataError):
        # The same frame or trial arrived twice at once (the other request stored it first),
        # or the volunteer was erased while these frames were being extracted.
        db.rollback()
        if new_trial is not None:   # the trial first, on its own (or the one stored meanwhile)
            trial_id, created = _add_carried_trial(db, *new_trial)
            items = [({**row, "trial_id": trial_id}, extraction, frame) for row, extraction, frame in items]
            return StoredBatch(_store(db, config, items, screen).results, trial_id, created)
        if len(items) > 1:   # sort out which: each on its own
            return StoredBatch([_store(db, config, [item], screen).results[0] for item in items])
        row = items[0][0]
        previous = _existing(db, row["session_id"], row["client_frame_id"])
        if previous is not None:
            return StoredBatch([_already_received(previous.id, previous.status, previous.reasons)])
        if db.get(CollectionSession, row["session_id"]) is None:
            raise NotFound("unknown_session", "this session was deleted; the frame was not stored") from None
        raise
    return StoredBatch([_result(sample_id, row["status"], row["reasons"], extraction.message, duplicate=False)
                        for sample_id, row, (_, extraction, _) in zip(sample_ids, rows, items)],
                       trial_id, trial_id is not None)


def _add_carried_trial(db: Session, session_id: str, trial: TrialUpload) -> tuple[int, bool]:
    """(the id of a batch's trial, whether this call stored it): stored on its own
    (add_trial) unless a concurrent try of the same request stored it first."""
    session = db.get(CollectionSession, session_id)
    if session is None:
        raise NotFound("unknown_session", "this session was deleted; the frames were not stored")
    stored, duplicate = add_trial(db, session, **asdict(trial))
    return stored.id, not duplicate


def _sample_row(row: dict[str, Any], extraction) -> dict[str, Any]:
    """The sample's row with what the extraction measured (the same columns for every row)."""
    features = extraction.features
    if features is None:
        return {**row, **dict.fromkeys(FEATURE_COLUMNS), "quality": {}}
    measured = (features.yaw, features.pitch, features.roll, *features.frame_size, *map(float, features.face_box))
    return {**row, **dict(zip(FEATURE_COLUMNS, measured)),
            "quality": {k: round(float(v), 5) for k, v in features.measures.items()}}


def _reject_failed_attention(db: Session, rows: list[dict[str, Any]], trial_ids: list[int]) -> list[int]:
    """Reject the rows whose trial's attention check has failed (read once per trial, in id
    order); returns their positions."""
    failed = {trial_id for trial_id in trial_ids if _attention_failed_since(db, trial_id)}
    rejected = [i for i, row in enumerate(rows) if row["trial_id"] in failed]
    for i in rejected:
        rows[i]["status"] = "rejected"
        rows[i]["reasons"] = reason_codes.add(rows[i]["reasons"], ATTENTION_FAILED)
    return rejected


def _attention_failed_since(db: Session, trial_id: int) -> bool:
    """Re-read the trial's attention outcome while this sample's write holds the trial.

    A failed attention answer may commit while the frame was being extracted. Reading the
    trial again under a lock — its row on PostgreSQL; on SQLite, the database our write
    holds — means either we see that answer, or record_attention's sweep sees this sample.
    """
    return db.connection().execute(ATTENTION_FOR_UPDATE, {"trial_id": trial_id}).scalar() is False


def session_summary(db: Session, session: CollectionSession) -> dict[str, Any]:
    counts = dict(db.execute(select(Sample.status, func.count()).where(
        Sample.session_id == session.id).group_by(Sample.status)).all())
    trials = db.scalar(select(func.count()).select_from(Trial).where(
        Trial.session_id == session.id)) or 0
    failed = db.scalar(select(func.count()).select_from(Trial).where(
        Trial.session_id == session.id, Trial.attention_passed.is_(False))) or 0
    return {"session_id": session.id, "volunteer_id": session.volunteer_id,
            "status": session.status, "screen_width": session.screen_width,
            "screen_height": session.screen_height,
            "counts": {s: counts.get(s, 0) for s in ("accepted", "rejected", "flagged")},
            "trials": trials, "attention_failed": failed}


def finish_session(db: Session, session: CollectionSession) -> dict[str, Any]:
    if session.status == "active":
        session.status, session.finished_at = "finished", utcnow()
        db.commit()
    return session_summary(db, session)


def volunteer_of_token(db: Session, volunteer_id: str, token: str) -> Volunteer | None:
    """The volunteer, if `token` is the upload token of one of its sessions."""
    hashed = hash_token(token)
    match = db.scalar(select(CollectionSession.id).where(
        CollectionSession.volunteer_id == volunteer_id,
        CollectionSession.token_hash == hashed))
    return db.get(Volunteer, volunteer_id) if match else None
