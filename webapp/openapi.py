"""The OpenAPI 3 document of /api/v1 (tests keep it in sync with the routes)."""
from __future__ import annotations

from typing import Any

from collection.ingest import MAX_SCREEN_HEIGHT, MAX_SCREEN_WIDTH
from gazelab.schema import TRIAL_KINDS


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(ref: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


ERRORS = {str(code): _error(text) for code, text in (
    (400, "malformed request"), (401, "no upload token"), (403, "wrong token"),
    (404, "unknown session, trial or volunteer"), (409, "screen change after frames were stored"), (413, "body over max_upload_bytes"),
    (415, "wrong content type or not an image"), (422, "missing, unknown or invalid field"),
    (429, "rate limited (see Retry-After)"))}
SESSION_ID = {"name": "session_id", "in": "path", "required": True,
              "schema": {"type": "string", "maxLength": 32}}
BEARER = [{"uploadToken": []}]
NUMBER = {"type": "number", "minimum": 0, "maximum": max(MAX_SCREEN_WIDTH, MAX_SCREEN_HEIGHT)}
DATETIME = {"type": "string", "format": "date-time"}
CLIENT_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"}
LETTER = {"type": "string", "enum": ["L", "R"]}
# A trial as POST …/trials takes it; the batch's `trial` field adds its attention check.
TRIAL_PROPERTIES = {"kind": {"type": "string", "enum": list(TRIAL_KINDS)}, "target_x": NUMBER,
                    "target_y": NUMBER, "shown_at": DATETIME}
SUMMARY = {"type": "object", "required": ["session_id", "volunteer_id", "status", "counts"],
           "properties": {"session_id": {"type": "string"}, "volunteer_id": {"type": "string"},
                          "status": {"type": "string"}, "screen_width": {"type": "integer"},
                          "screen_height": {"type": "integer"},
                          "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                          "trials": {"type": "integer"}, "attention_failed": {"type": "integer"}}}
SAMPLE_RESULT = {"type": "object", "required": ["sample_id", "status", "reasons", "message", "duplicate"],
                 "properties": {"sample_id": {"type": "integer"},
                                "status": {"type": "string", "enum": ["accepted", "rejected", "flagged"]},
                                "reasons": {"type": "array", "items": {"type": "string"}},
                                "message": {"type": "string"}, "duplicate": {"type": "boolean"}}}


def _op(summary: str, responses: dict, body: dict | None = None, params: list | None = None,
        secured: bool = True) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {**responses, **ERRORS}}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": body}
    if params:
        operation["parameters"] = params
    if secured:
        operation["security"] = BEARER
    return operation


def openapi_document() -> dict[str, Any]:
    json_body = lambda ref: {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}
    frame_only = {"multipart/form-data": {"schema": {
        "type": "object", "required": ["frame"], "additionalProperties": False,
        "properties": {"frame": {"type": "string", "format": "binary"}}},
        "encoding": {"frame": {"contentType": "image/jpeg"}}}}
    frame_and_meta = {"multipart/form-data": {"schema": {
        "type": "object", "required": ["frame", "meta"], "additionalProperties": False,
        "properties": {"frame": {"type": "string", "format": "binary"},
                       "meta": {"$ref": "#/components/schemas/FrameMeta"}}},
        "encoding": {"frame": {"contentType": "image/jpeg"}, "meta": {"contentType": "application/json"}}}}
    frames_and_metas = {"multipart/form-data": {"schema": {
        "type": "object", "required": ["frame", "meta"], "additionalProperties": False,
        "properties": {"frame": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "binary"}},
                       "meta": {"type": "array", "items": {"$ref": "#/components/schemas/FrameMeta"}},
                       "trial": {"$ref": "#/components/schemas/CarriedTrial"}}},
        "encoding": {"frame": {"contentType": "image/jpeg"}, "meta": {"contentType": "application/json"},
                     "trial": {"contentType": "application/json"}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "GazeLab collection API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "paths": {
            "/openapi.json": {"get": _op("This document", {"200": {"description": "OpenAPI 3"}},
                                         secured=False)},
            "/sessions": {"post": _op(
                "Start a collection session (records consent)",
                {"201": _json("SessionCreated", "created")}, json_body("NewSession"), secured=False)},
            "/sessions/{session_id}": {
                "get": _op("Session summary", {"200": _json("Summary")}, params=[SESSION_ID]),
                "patch": _op("Screen set-up: fullscreen size, devicePixelRatio, mm per px",
                             {"200": _json("Summary")}, json_body("ScreenUpdate"), [SESSION_ID])},
            "/sessions/{session_id}/check-frame": {"post": _op(
                "Camera check: verdict on one frame, nothing stored",
                {"200": _json("Verdict")}, frame_only, [SESSION_ID])},
            "/sessions/{session_id}/trials": {"post": _op(
                "Record a shown target (idempotent per client_trial_id)",
                {"201": _json("TrialCreated", "created"), "200": _json("TrialCreated", "duplicate")},
                json_body("NewTrial"), [SESSION_ID])},
            "/sessions/{session_id}/trials/{trial_id}": {"patch": _op(
                "Record the attention-check outcome of a trial", {"200": _json("AttentionResult")},
                json_body("Attention"),
                [SESSION_ID, {"name": "trial_id", "in": "path", "required": True,
                              "schema": {"type": "integer", "minimum": 1}}])},
            "/sessions/{session_id}/frames": {"post": _op(
                "Upload one webcam frame; answers the extraction verdict",
                {"201": _json("SampleResult", "stored"), "200": _json("SampleResult", "duplicate")},
                frame_and_meta, [SESSION_ID])},
            "/sessions/{session_id}/frames/batch": {"post": _op(
                "Upload several webcam frames (at most [collection] upload_batch_frames), each "
                "`frame` field with the `meta` array's object of the same place, optionally with the "
                "dot's `trial` (stored with them; idempotent per client_trial_id); all are stored or none",
                {"201": _json("SampleResults", "stored"), "200": _json("SampleResults", "all duplicates")},
                frames_and_metas, [SESSION_ID])},
            "/sessions/{session_id}/next-targets": {"get": _op(
                "Next dot positions (CSS px)", {"200": _json("Targets")},
                params=[SESSION_ID,
                        {"name": "n", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                        {"name": "kind", "in": "query",
                         "schema": {"type": "string", "enum": ["collection", "calibration", "validation"]}}])},
            "/sessions/{session_id}/finish": {"post": _op(
                "Finish the session", {"200": _json("Summary")}, params=[SESSION_ID])},
            "/sessions/{session_id}/accuracy": {"get": _op(
                "Accuracy and precision of the tracker on this session's validation dots",
                {"200": _json("Accuracy")}, params=[SESSION_ID])},
            "/coverage": {"get": _op(
                "One session's accepted samples per normalised screen cell (its upload token)",
                {"200": _json("Coverage")},
                params=[{"name": "cols", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                        {"name": "rows", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                        {"name": "session_id", "in": "query", "required": True,
                         "schema": {"type": "string", "maxLength": 32}}])},
            "/volunteers/{volunteer_id}": {"delete": _op(
                "Erase every row and byte of a volunteer (upload token or admin)",
                {"200": _json("Deleted")},
                params=[{"name": "volunteer_id", "in": "path", "required": True,
                         "schema": {"type": "string", "maxLength": 32}}])},
        },
        "components": {
            "securitySchemes": {"uploadToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"],
                          "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
                "NewSession": {"type": "object", "additionalProperties": False,
                               "required": ["consent", "consent_version", "screen_width",
                                            "screen_height", "device_pixel_ratio"],
                               "properties": {
                                   "consent": {"type": "boolean", "enum": [True]},
                                   "consent_version": {"type": "string", "maxLength": 64},
                                   "screen_width": {"type": "integer", "minimum": 100, "maximum": MAX_SCREEN_WIDTH},
                                   "screen_height": {"type": "integer", "minimum": 100, "maximum": MAX_SCREEN_HEIGHT},
                                   "device_pixel_ratio": {"type": "number", "minimum": 0.25, "maximum": 10},
                                   "mm_per_px": {"type": "number", "nullable": True, "minimum": 0.01, "maximum": 5},
                                   "user_agent": {"type": "string", "nullable": True, "maxLength": 512}}},
                "ScreenUpdate": {"type": "object", "additionalProperties": False,
                                 "properties": {
                                     "screen_width": {"type": "integer", "minimum": 100, "maximum": MAX_SCREEN_WIDTH},
                                     "screen_height": {"type": "integer", "minimum": 100, "maximum": MAX_SCREEN_HEIGHT},
                                     "device_pixel_ratio": {"type": "number", "minimum": 0.25, "maximum": 10},
                                     "mm_per_px": {"type": "number", "nullable": True, "minimum": 0.01, "maximum": 5}}},
                "SessionCreated": {"type": "object",
                                   "required": ["session_id", "volunteer_id", "upload_token",
                                                "deletion_code", "settings"],
                                   "properties": {"session_id": {"type": "string"},
                                                  "volunteer_id": {"type": "string"},
                                                  "upload_token": {"type": "string"},
                                                  "deletion_code": {"type": "string"},
                                                  "settings": {"type": "object"}}},
                "Verdict": {"type": "object", "required": ["status", "reasons", "message"],
                            "properties": {"status": {"type": "string"},
                                           "reasons": {"type": "array", "items": {"type": "string"}},
                                           "message": {"type": "string"},
                                           "face_box": {"type": "array", "nullable": True,
                                                        "items": {"type": "number"}}}},
                "NewTrial": {"type": "object", "additionalProperties": False,
                             "required": ["kind", "target_x", "target_y", "shown_at"],
                             "properties": {**TRIAL_PROPERTIES,
                                            "client_trial_id": {**CLIENT_ID, "nullable": True}}},
                "CarriedTrial": {"type": "object", "additionalProperties": False,
                                 "required": ["kind", "target_x", "target_y", "shown_at", "client_trial_id"],
                                 "properties": {**TRIAL_PROPERTIES, "client_trial_id": CLIENT_ID,
                                                "attention_letter": {**LETTER, "nullable": True},
                                                "attention_answer": {**LETTER, "nullable": True}}},
                "TrialCreated": {"type": "object", "required": ["trial_id", "duplicate"],
                                 "properties": {"trial_id": {"type": "integer"},
                                                "duplicate": {"type": "boolean"}}},
                "Attention": {"type": "object", "additionalProperties": False,
                              "required": ["attention_letter", "attention_answer"],
                              "properties": {"attention_letter": {"type": "string", "enum": ["L", "R"]},
                                             "attention_answer": {"type": "string", "enum": ["L", "R"],
                                                                  "nullable": True}}},
                "AttentionResult": {"type": "object", "required": ["trial_id", "attention_passed"],
                                    "properties": {"trial_id": {"type": "integer"},
                                                   "attention_passed": {"type": "boolean"}}},
                "FrameMeta": {"type": "object", "additionalProperties": False,
                              "required": ["client_frame_id", "target_x", "target_y", "captured_at"],
                              "properties": {"client_frame_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
                                             "trial_id": {"type": "integer", "nullable": True, "minimum": 1},
                                             "target_x": NUMBER, "target_y": NUMBER,
                                             "captured_at": DATETIME}},
                "SampleResult": SAMPLE_RESULT,
                "SampleResults": {"type": "object", "required": ["results"],
                                  "properties": {"results": {"type": "array", "items": SAMPLE_RESULT},
                                                 "trial_id": {"type": "integer"},
                                                 "trial_duplicate": {"type": "boolean"},
                                                 "attention_passed": {"type": "boolean", "nullable": True}}},
                "Summary": SUMMARY,
                "Targets": {"type": "object", "required": ["targets", "sampler"],
                            "properties": {"sampler": {"type": "string"},
                                           "targets": {"type": "array", "items": {
                                               "type": "object", "required": ["x", "y"],
                                               "properties": {"x": {"type": "number"},
                                                              "y": {"type": "number"}}}}}},
                "Coverage": {"type": "object", "required": ["cols", "rows", "counts"],
                             "properties": {"cols": {"type": "integer"}, "rows": {"type": "integer"},
                                            "counts": {"type": "array", "items": {
                                                "type": "array", "items": {"type": "integer"}}}}},
                "Accuracy": {"type": "object", "required": ["available"],
                             "properties": {"available": {"type": "boolean"}, "reason": {"type": "string"},
                                            "dots": {"type": "integer"}, "frames": {"type": "integer"},
                                            "mean_px": {"type": "number"},
                                            "mean_cm": {"type": "number", "nullable": True},
                                            "mean_deg": {"type": "number", "nullable": True},
                                            "distance_cm": {"type": "number", "nullable": True},
                                            "precision_px": {"type": "number", "nullable": True},
                                            "calibrated": {"type": "boolean"}, "passed": {"type": "boolean"},
                                            "threshold_px": {"type": "number"}}},
                "Deleted": {"type": "object", "required": ["deleted"],
                            "properties": {"deleted": {"type": "object",
                                                       "additionalProperties": {"type": "integer"}}}},
            },
        },
    }
