"""Live tracking: the admin's webcam frames → extraction → the active model → a gaze point.

The page starts with a 9-dot calibration: its frames fit a personal calibration of the
active model (trainer.inference.Predictor.fit_calibration), which the page keeps and
sends back with every frame (web workers share no memory), so tracking runs through the
calibrated model. It smooths the points over [collection] avg_window_length frames (the
reference's track mode) and draws a dot whose radius is the model's expected error there.
"""
from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
from flask import jsonify, render_template, request
from sqlalchemy.orm import Session

from gazelab.schema import ModelArtifact
from webapp import get_config, get_db
from webapp.admin import bp
from webapp.errors import ApiError

_cache_lock = threading.Lock()
_cached: dict[str, Any] = {"artifact_id": None, "predictor": None}


def active_predictor(db: Session):
    """The active model's predictor, loaded once per process and reloaded after a promotion."""
    active_id = ModelArtifact.active_id(db)
    if active_id is None:
        return None
    with _cache_lock:
        if _cached["artifact_id"] != active_id:
            from trainer.inference import load_predictor  # torch: loaded on first use only
            _cached.update(artifact_id=active_id, predictor=load_predictor(db, artifact_id=active_id))
        return _cached["predictor"]


def _screen_size() -> tuple[int, int]:
    try:
        width, height = int(request.form["screen_width"]), int(request.form["screen_height"])
    except (KeyError, ValueError):
        raise ApiError(400, "bad_screen", "screen_width and screen_height (integers) are required") from None
    if not (100 <= width <= 20000 and 100 <= height <= 20000):
        raise ApiError(400, "bad_screen", "screen size must be 100–20000 px")
    return width, height


@bp.get("/live")
def live():
    db = get_db()
    return render_template("admin/live.html", has_model=ModelArtifact.active_id(db) is not None,
                           window=get_config().collection.avg_window_length)


@bp.post("/api/live/frame")
def live_frame():
    from collection.extraction import extract
    from trainer.inference import CalibrationMismatch, features_inputs

    frame = request.files.get("frame")
    if frame is None:
        raise ApiError(400, "missing_frame", "send the webcam frame as the multipart field 'frame'")
    width, height = _screen_size()
    predictor = active_predictor(get_db())
    if predictor is None:
        raise ApiError(409, "no_active_model", "promote a model first")
    result = extract(frame.read(), get_config())
    if not result.features:
        return jsonify(found=False, message=result.message, reasons=list(result.reasons))
    calibration = _calibration_field()
    try:
        prediction = predictor.predict([features_inputs(result.features, (width, height))], calibration)[0]
    except CalibrationMismatch as error:
        raise ApiError(409, "stale_calibration", str(error)) from None
    x_norm, y_norm = (float(v) for v in prediction)
    x_norm, y_norm = min(max(x_norm, 0.0), 1.0), min(max(y_norm, 0.0), 1.0)
    radius = float(predictor.expected_error_px(x_norm, y_norm, (width, height)))
    return jsonify(found=True, message=result.message, x=x_norm * width, y=y_norm * height,
                   radius=radius)


def _calibration_field():
    """The calibration the page got from live_calibration, sent back as JSON (or none)."""
    from trainer.inference import Calibration
    raw = request.form.get("calibration")
    if not raw:
        return None
    try:
        mapping = Calibration.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ApiError(400, "bad_calibration", "calibration must be the object live/calibration returned") from None
    if mapping is None:
        raise ApiError(409, "stale_calibration", "this calibration was made by an older version; calibrate again")
    return mapping


@bp.post("/api/live/calibration")
def live_calibration():
    """Frames taken while the admin looked at the 9 dots (multipart 'frame', repeated, and
    'targets': JSON [[x, y, dot], ...] in CSS px) → the calibration to send with each frame."""
    from collection.extraction import extract
    from trainer.inference import features_inputs

    width, height = _screen_size()
    predictor = active_predictor(get_db())
    if predictor is None:
        raise ApiError(409, "no_active_model", "promote a model first")
    frames = request.files.getlist("frame")
    try:
        targets = [(float(x), float(y), int(dot)) for x, y, dot in json.loads(request.form.get("targets", ""))]
    except (ValueError, TypeError, OverflowError):
        raise ApiError(400, "bad_targets", "targets must be JSON [[x, y, dot], ...]") from None
    if not frames or len(frames) != len(targets) or len(frames) > 200:
        raise ApiError(400, "bad_frames", "send 1-200 frames, one target each")
    found = [(extract(f.read(), get_config()).features, t) for f, t in zip(frames, targets)]
    found = [(features, t) for features, t in found if features is not None]
    if not found:
        return jsonify(calibration=None, report={"frames": 0, "kept": "identity"})
    fractions = np.array([[x / width, y / height] for _, (x, y, _) in found])
    mapping, report = predictor.fit_calibration([features_inputs(f, (width, height)) for f, _ in found], fractions,
                                                np.array([dot for _, (_, _, dot) in found]), (width, height))
    return jsonify(calibration=mapping.as_dict() if mapping else None, report=report)
