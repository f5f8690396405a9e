"""Collection API (/api/v1): sessions, trials, frame uploads, targets, coverage, deletion.

Views only parse and check the request; the work is in collection.ingest and collection.targets.
The contract is the OpenAPI document in webapp/openapi.py (served at /api/v1/openapi.json).
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from collection import ingest, targets
from collection.erasure import delete_volunteer as delete_volunteer_everywhere
from gazelab.celery_app import FIT_CALIBRATIONS_TASK
from gazelab.schema import TRIAL_KINDS, ModelArtifact, Volunteer
from webapp import get_config, get_db, ratelimit
from webapp.admin.auth import current_admin
from webapp.csrf import csrf_valid
from webapp.errors import ApiError
from webapp.openapi import openapi_document
from webapp.validation import (Field, bearer_token, json_body, parse_fields, parse_int,
                               parse_json_text)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

MAX_SCREEN = max(ingest.MAX_SCREEN_WIDTH, ingest.MAX_SCREEN_HEIGHT)
SESSION_FIELDS = {
    "consent": Field("literal_true"),
    "consent_version": Field("str", max_len=64),
    "screen_width": Field("int", lo=100, hi=ingest.MAX_SCREEN_WIDTH),
    "screen_height": Field("int", lo=100, hi=ingest.MAX_SCREEN_HEIGHT),
    "device_pixel_ratio": Field("number", lo=0.25, hi=10),
    "mm_per_px": Field("number", required=False, nullable=True, lo=0.01, hi=5),
    "user_agent": Field("str", required=False, nullable=True, max_len=512),
}
TRIAL_FIELDS = {
    "kind": Field("enum", choices=TRIAL_KINDS),
    "target_x": Field("number", lo=0, hi=MAX_SCREEN),
    "target_y": Field("number", lo=0, hi=MAX_SCREEN),
    "shown_at": Field("datetime"),
    "client_trial_id": Field("client_id", required=False, nullable=True),
}
ATTENTION_FIELDS = {
    "attention_letter": Field("enum", choices=("L", "R")),
    "attention_answer": Field("enum", choices=("L", "R"), nullable=True),
}
# A dot's trial carried in its frames' batch (one request a dot, as the page sends it): the
# client_trial_id makes a retried batch find the trial its first try stored.
CARRIED_TRIAL_FIELDS = {
    **TRIAL_FIELDS,
    "client_trial_id": Field("client_id"),
    "attention_letter": Field("enum", required=False, nullable=True, choices=("L", "R")),
    "attention_answer": Field("enum", required=False, nullable=True, choices=("L", "R")),
}
FRAME_META_FIELDS = {
    "client_frame_id": Field("client_id"),
    "trial_id": Field("int", nullable=True, required=False, lo=1, hi=2**62),
    "target_x": Field("number", lo=0, hi=MAX_SCREEN),
    "target_y": Field("number", lo=0, hi=MAX_SCREEN),
    "captured_at": Field("datetime"),
}
SETTINGS_KEYS = ("target_radius", "fixation_delay_ms", "capture_window_ms", "capture_fps", "upload_batch_frames",
                 "attention_ms", "dots_per_session", "pursuit", "pursuit_seconds", "validation_points",
                 "target_speed", "skip_frames", "record_frame_rate", "avg_window_length")


def _session(session_id: str, write: bool = False):
    """The session named in the path, for its token; `write`: only while it is active."""
    return ingest.authorize(get_db(), get_config(), session_id, bearer_token(request), write=write)


def _frame_file(allowed_fields: set[str]) -> bytes:
    files = _frame_files(allowed_fields)
    if len(files) > 1:
        raise ApiError(422, "too_many_frames", "send one multipart field 'frame' (several: POST …/frames/batch)")
    return files[0]


def _frame_files(allowed_fields: set[str]) -> list[bytes]:
    """The multipart 'frame' fields' bytes, in order (at least one, none empty)."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the frame as multipart/form-data")
    extra = sorted((set(request.form) | set(request.files)) - allowed_fields)
    if extra:
        raise ApiError(422, "unknown_field", f"unknown multipart field(s): {', '.join(extra)[:200]}")
    uploads = request.files.getlist("frame")
    if not uploads:
        raise ApiError(422, "missing_field", "multipart field 'frame' (the JPEG image) is missing")
    frames = [upload.read() for upload in uploads]
    for number, data in enumerate(frames, 1):
        if not data:
            raise ApiError(422, "empty_frame", "the frame is empty" if len(frames) == 1
                           else f"frame {number} of {len(frames)} is empty")
    return frames


def _limited(wait: int | None, what: str) -> None:
    if wait is not None:
        raise ApiError(429, "rate_limited", f"too many {what}; retry in {wait} s",
                       headers={"Retry-After": str(wait)})


def _rate_limit(session_id: str, frames: int = 1) -> None:
    _limited(ratelimit.upload_wait(get_config(), session_id, frames), "frames")


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


@bp.post("/sessions")
def create_session():
    config = get_config()
    fields = parse_fields(json_body(request), SESSION_FIELDS)
    _limited(ratelimit.new_session_wait(config, request.remote_addr or "unknown"), "new sessions from this address")
    session, token = ingest.create_session(
        get_db(), config, consent_version=fields["consent_version"],
        screen_width=fields["screen_width"], screen_height=fields["screen_height"],
        device_pixel_ratio=fields["device_pixel_ratio"], mm_per_px=fields["mm_per_px"],
        user_agent=fields["user_agent"] or request.headers.get("User-Agent", ""))
    settings = {key: getattr(config.collection, key) for key in SETTINGS_KEYS}
    settings["max_upload_bytes"] = config.server.max_upload_bytes
    return jsonify(session_id=session.id, volunteer_id=session.volunteer_id, upload_token=token,
                   deletion_code=f"{session.volunteer_id}.{token}", settings=settings), 201


@bp.get("/sessions/<session_id>")
def get_session(session_id: str):
    return jsonify(ingest.session_summary(get_db(), _session(session_id)))


SCREEN_UPDATE_FIELDS = {name: Field(f.kind, required=False, nullable=name == "mm_per_px",
                                   lo=f.lo, hi=f.hi)
                        for name, f in SESSION_FIELDS.items()
                        if name in ("screen_width", "screen_height", "device_pixel_ratio", "mm_per_px")}


@bp.patch("/sessions/<session_id>")
def update_session(session_id: str):
    """Screen set-up after the camera check: the fullscreen size and the card calibration."""
    session = _session(session_id, write=True)
    body = json_body(request)
    fields = parse_fields(body, SCREEN_UPDATE_FIELDS)
    db = get_db()
    ingest.update_screen(db, session, **{k: v for k, v in fields.items() if k in body})
    return jsonify(ingest.session_summary(db, session))


@bp.post("/sessions/<session_id>/check-frame")
def check_frame(session_id: str):
    from collection.extraction import extract
    _session(session_id, write=True)
    data = _frame_file({"frame"})
    _rate_limit(session_id)
    result = extract(data, get_config())
    if result.reasons == ["bad_image"]:
        raise ApiError(415, "not_an_image", result.message)
    box = [round(float(v), 1) for v in result.features.face_box] if result.features else None
    return jsonify(status=result.status, reasons=result.reasons, message=result.message,
                   face_box=box)


@bp.post("/sessions/<session_id>/trials")
def create_trial(session_id: str):
    session = _session(session_id, write=True)
    fields = parse_fields(json_body(request), TRIAL_FIELDS)
    trial, duplicate = ingest.add_trial(get_db(), session, **fields)
    if not duplicate and ingest.ends_calibration(get_db(), session.id, trial.id, trial.kind):
        _queue_calibration_fit(session.id)
    return jsonify(trial_id=trial.id, duplicate=duplicate), 200 if duplicate else 201


def _queue_calibration_fit(session_id: str) -> None:
    """Fit the session's personal calibration under the active model on a worker. A
    broker outage must not fail the volunteer's request (promoting a model refits all)."""
    if ModelArtifact.active_id(get_db()) is None:
        return
    try:
        current_app.extensions["celery"].send_task(FIT_CALIBRATIONS_TASK, kwargs={"session_id": session_id})
    except Exception:
        log.warning("could not queue the calibration fit of session %s", session_id, exc_info=True)


@bp.patch("/sessions/<session_id>/trials/<int:trial_id>")
def update_trial(session_id: str, trial_id: int):
    session = _session(session_id, write=True)
    fields = parse_fields(json_body(request), ATTENTION_FIELDS)
    passed = ingest.record_attention(get_db(), session, trial_id, fields["attention_letter"],
                                     fields["attention_answer"])
    return jsonify(trial_id=trial_id, attention_passed=passed)


@bp.post("/sessions/<session_id>/frames")
def upload_frame(session_id: str):
    session = _session(session_id, write=True)
    data = _frame_file({"frame", "meta"})
    if "meta" not in request.form:
        raise ApiError(422, "missing_field", "multipart field 'meta' (JSON) is missing")
    meta = parse_fields(parse_json_text("meta", request.form["meta"]), FRAME_META_FIELDS, "meta")
    _rate_limit(session_id)
    result = ingest.ingest_frame(get_db(), get_config(), session, frame=data, **meta)
    return jsonify(result), 200 if result["duplicate"] else 201


@bp.post("/sessions/<session_id>/frames/batch")
def upload_frames(session_id: str):
    """Several frames in one request: `meta` a JSON array with one object per `frame` field,
    in the same order; optionally `trial`, the dot they belong to, stored with them. Answers
    {"results": [...]}, one per frame, as /frames answers one (with `trial`: and its trial_id)."""
    session = _session(session_id, write=True)
    frames = _frame_files({"frame", "meta", "trial"})
    limit = get_config().collection.upload_batch_frames
    if len(frames) > limit:
        raise ApiError(422, "too_many_frames", f"{len(frames)} frames in one request; at most {limit}")
    if "meta" not in request.form:
        raise ApiError(422, "missing_field", "multipart field 'meta' (a JSON array) is missing")
    metas = parse_json_text("meta", request.form["meta"])
    if not isinstance(metas, list) or len(metas) != len(frames):
        raise ApiError(400, "invalid_body", f"'meta' must be a JSON array of {len(frames)} objects, one per frame")
    metas = [parse_fields(meta, FRAME_META_FIELDS, f"meta[{index}]") for index, meta in enumerate(metas)]
    if len({meta["client_frame_id"] for meta in metas}) < len(metas):
        raise ApiError(422, "duplicate_frame_id", "two frames of the batch share a client_frame_id")
    trial = _carried_trial(metas)
    _rate_limit(session_id, len(frames))
    uploads = [ingest.FrameUpload(frame, **meta) for frame, meta in zip(frames, metas)]
    db, config = get_db(), get_config()
    if trial is None:
        answer = {"results": ingest.ingest_frames(db, config, session, uploads)}
    else:
        answer, ends_calibration = ingest.ingest_dot(db, config, session, trial, uploads)
        if ends_calibration:
            _queue_calibration_fit(session.id)
    return jsonify(answer), 200 if all(result["duplicate"] for result in answer["results"]) else 201


def _carried_trial(metas: list[dict]) -> ingest.TrialUpload | None:
    """The batch's multipart 'trial' field (a JSON object), if sent; its frames name no trial_id."""
    if "trial" not in request.form:
        return None
    fields = parse_fields(parse_json_text("trial", request.form["trial"]), CARRIED_TRIAL_FIELDS, "trial")
    if any(meta["trial_id"] is not None for meta in metas):
        raise ApiError(422, "trial_given_twice", "frames sent with a 'trial' belong to it: leave out their trial_id")
    if fields["attention_letter"] is None and fields["attention_answer"] is not None:
        raise ApiError(422, "missing_field", "trial: attention_answer without attention_letter")
    return ingest.TrialUpload(**fields)


@bp.get("/sessions/<session_id>/next-targets")
def next_targets(session_id: str):
    session = _session(session_id)
    args = parse_fields(request.args.to_dict(), {
        "n": Field("str", required=False, max_len=4),
        "kind": Field("enum", required=False, choices=("collection", "calibration", "validation")),
    }, "query")
    n = parse_int("n", args["n"], 1, 200, default=10)
    points, sampler = targets.next_targets(get_db(), get_config(), session, n,
                                           args["kind"] or "collection")
    return jsonify(targets=[{"x": x, "y": y} for x, y in points], sampler=sampler)


@bp.get("/coverage")
def coverage():
    """One session's coverage (its token required): accepted samples per screen cell."""
    args = parse_fields(request.args.to_dict(), {
        "cols": Field("str", required=False, max_len=4),
        "rows": Field("str", required=False, max_len=4),
        "session_id": Field("str", max_len=32),
    }, "query")
    cols = parse_int("cols", args["cols"], 1, 200, default=16)
    rows = parse_int("rows", args["rows"], 1, 200, default=9)
    session = _session(args["session_id"])
    counts = targets.coverage_counts(get_db(), cols, rows, session.id)
    return jsonify(cols=cols, rows=rows, counts=counts.tolist())


@bp.post("/sessions/<session_id>/finish")
def finish(session_id: str):
    session = _session(session_id)
    was_active = session.status == "active"
    summary = ingest.finish_session(get_db(), session)
    if was_active:  # refit with every calibration frame in (late uploads included)
        _queue_calibration_fit(session.id)
    return jsonify(summary)


@bp.get("/sessions/<session_id>/accuracy")
def accuracy(session_id: str):
    """How well the tracker followed this volunteer on their validation dots (finish page)."""
    from trainer.inference import load_predictor, session_accuracy
    session = _session(session_id)
    db = get_db()
    return jsonify(session_accuracy(db, load_predictor(db), session, get_config()))


@bp.delete("/volunteers/<volunteer_id>")
def delete_volunteer(volunteer_id: str):
    db = get_db()
    token = bearer_token(request)
    if current_admin() is not None and not token:
        if not csrf_valid():
            raise ApiError(403, "csrf_failed", "admin deletion needs the X-CSRF-Token header")
        allowed = len(volunteer_id) <= 32 and db.get(Volunteer, volunteer_id) is not None
    elif token:
        allowed = len(volunteer_id) <= 32 and ingest.volunteer_of_token(db, volunteer_id, token) is not None
    else:
        raise ApiError(401, "missing_token", "send the upload token as 'Authorization: Bearer <token>'")
    if not allowed:
        raise ApiError(404, "unknown_volunteer", "no such volunteer for this token")
    return jsonify(deleted=delete_volunteer_everywhere(db, get_config(), volunteer_id))
