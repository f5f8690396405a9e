"""Personal calibrations in the database: one per session and model artifact
(SessionCalibration), fitted from the session's accepted calibration frames under that
model (trainer.calibration), by the Celery task fit_calibrations — when a session's
calibration phase completes, when it finishes, and for every session when a model is
promoted. The record also keeps the session's accuracy on its validation dots under
that model (metrics["validation"]), which the admin sessions page lists and filters."""
from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from gazelab.schema import CollectionSession, Sample, SampleImages, SessionCalibration, Trial, utcnow
from trainer import calibration
from trainer.inference import Predictor, sample_inputs, session_accuracy


def calibration_frames(db: Session, session_id: str) -> list[tuple[Sample, SampleImages]]:
    """The session's accepted frames of calibration trials, with their crops."""
    query = (select(Sample, SampleImages).join(SampleImages, SampleImages.sample_id == Sample.id)
             .join(Trial, Trial.id == Sample.trial_id)
             .where(Sample.session_id == session_id, Sample.status == "accepted", Trial.kind == "calibration")
             .order_by(Sample.id))
    return [tuple(row) for row in db.execute(query)]


def fit_mapping(db: Session, predictor: Predictor, session: CollectionSession) -> tuple[calibration.Calibration, dict]:
    """The session's calibration for the predictor's model and its fit report ("kept":
    identity when too few calibration trials), not stored."""
    rows = calibration_frames(db, session.id)
    outputs, features = predictor.outputs_and_features([sample_inputs(s, images) for s, images in rows])
    screen = np.array([session.screen_width, session.screen_height], np.float64)
    targets = np.array([[s.target_x, s.target_y] for s, _ in rows], np.float64).reshape(-1, 2) / screen
    trials = np.array([s.trial_id for s, _ in rows])
    return calibration.fit(outputs, features, targets, trials, np.tile(screen, (len(rows), 1)))


def fit_session(db: Session, predictor: Predictor, session: CollectionSession, config) -> dict:
    """Fit and store (replacing) the session's calibration for the predictor's model, then
    its validation-dot accuracy through it; returns the fit report."""
    mapping, report = fit_mapping(db, predictor, session)
    record = db.scalar(select(SessionCalibration).where(SessionCalibration.session_id == session.id,
                                                        SessionCalibration.artifact_id == predictor.artifact_id))
    if record is None:
        record = SessionCalibration(session_id=session.id, artifact_id=predictor.artifact_id)
        db.add(record)
    record.mapping, record.metrics, record.created_at = mapping.as_dict(), report, utcnow()
    db.commit()
    validation = session_accuracy(db, predictor, session, config)
    if validation["available"]:
        record.metrics = {**report, "validation": validation}
        db.commit()
    return report


def fit_sessions(db: Session, predictor: Predictor, config, session_id: str | None = None) -> dict:
    """Fit one session (session_id) or every session with calibration frames."""
    if session_id is not None:
        ids = [session_id]
    else:
        ids = db.scalars(select(Trial.session_id).where(Trial.kind == "calibration").distinct()).all()
    kept = {"ridge": 0, "identity": 0}
    for sid in ids:
        session = db.get(CollectionSession, sid)
        if session is not None:
            kept[fit_session(db, predictor, session, config)["kept"]] += 1
    return {"sessions": sum(kept.values()), "kept": kept, "artifact_id": predictor.artifact_id}
