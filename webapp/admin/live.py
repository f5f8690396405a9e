"""Live tracking: the admin's webcam frames → extraction → the active model → a gaze point.

The page smooths the points over [collection] avg_window_length frames (the reference's
track mode) and draws a dot whose radius is the model's expected error in that region.
"""
from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np
from flask import jsonify, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from gazelab.schema import IMAGE_KINDS, ModelArtifact, Sample, SampleImages
from webapp import get_config, get_db
from webapp.admin import bp
from webapp.errors import ApiError

_cache_lock = threading.Lock()
_cached: dict[str, Any] = {"artifact_id": None, "predictor": None}


ANGLES = ("yaw", "pitch", "roll")


def _decode(data: bytes, grey: bool) -> np.ndarray:
    if grey:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def predictor_inputs(sample: Sample, images: SampleImages) -> dict[str, Any]:
    """A stored sample as Predictor.predict takes it: RGB crops, grey head_pos, angles."""
    crops = {kind: _decode(getattr(images, kind), grey=kind == "head_pos") for kind in IMAGE_KINDS}
    return {**crops, **{angle: getattr(sample, angle) or 0.0 for angle in ANGLES}}


def features_inputs(features) -> dict[str, Any]:
    """webapp.extraction.Features as Predictor.predict takes them."""
    return {name: getattr(features, name) for name in (*IMAGE_KINDS, *ANGLES)}


def active_predictor(db: Session):
    """The active model's predictor, loaded once per process and reloaded after a promotion."""
    active_id = db.scalar(select(ModelArtifact.id).where(ModelArtifact.is_active.is_(True)))
    if active_id is None:
        return None
    with _cache_lock:
        if _cached["artifact_id"] != active_id:
            from trainer.inference import load_predictor

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
    has_model = db.scalar(select(ModelArtifact.id).where(ModelArtifact.is_active.is_(True))) is not None
    return render_template("admin/live.html", has_model=has_model,
                           window=get_config().collection.avg_window_length)


@bp.post("/api/live/frame")
def live_frame():
    from webapp.extraction import extract

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
    x_norm, y_norm = (float(v) for v in predictor.predict([features_inputs(result.features)])[0])
    x_norm, y_norm = min(max(x_norm, 0.0), 1.0), min(max(y_norm, 0.0), 1.0)
    radius = float(predictor.expected_error_px(x_norm, y_norm, (width, height)))
    return jsonify(found=True, message=result.message, x=x_norm * width, y=y_norm * height,
                   radius=radius)
