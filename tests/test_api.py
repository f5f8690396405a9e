"""Collection API: the happy path, idempotency, deletion and every kind of bad input."""
from __future__ import annotations

import io
import json
import uuid

import numpy as np
import pytest
from sqlalchemy import event, func, select

from gazelab.db import get_engine, session_scope
from gazelab.schema import (CollectionSession, Sample, SampleImages, Trial, Volunteer)
from tests.images import frame, jpeg

NOW = "2026-11-21T10:00:00.000Z"
SCREEN = {"screen_width": 1280, "screen_height": 720}


def new_session(client, **extra) -> dict:
    body = {"consent": True, "consent_version": "2026-11", "device_pixel_ratio": 1.0,
            **SCREEN, **extra}
    response = client.post("/api/v1/sessions", json=body)
    assert response.status_code == 201, response.json
    return response.json


def auth(created: dict) -> dict:
    return {"Authorization": f"Bearer {created['upload_token']}"}


def upload(client, created, jpeg: bytes, *, trial_id=None, frame_id=None, x=640.0, y=360.0,
           extra_fields: dict | None = None, meta: dict | None = None):
    meta = meta if meta is not None else {
        "client_frame_id": frame_id or uuid.uuid4().hex, "trial_id": trial_id,
        "target_x": x, "target_y": y, "captured_at": NOW}
    data = {"frame": (io.BytesIO(jpeg), "f.jpg", "image/jpeg"), "meta": json.dumps(meta),
            **(extra_fields or {})}
    return client.post(f"/api/v1/sessions/{created['session_id']}/frames", data=data,
                       headers=auth(created), content_type="multipart/form-data")


def upload_batch(client, created, jpegs: list[bytes], metas: list | None = None, *, trial_id=None,
                 x=640.0, y=360.0, extra_fields: dict | None = None, trial: dict | None = None):
    metas = metas if metas is not None else [
        {"client_frame_id": uuid.uuid4().hex, "trial_id": trial_id, "target_x": x, "target_y": y,
         "captured_at": NOW} for _ in jpegs]
    data = {"frame": [(io.BytesIO(data), f"f{i}.jpg", "image/jpeg") for i, data in enumerate(jpegs)],
            "meta": json.dumps(metas), **({"trial": json.dumps(trial)} if trial is not None else {}),
            **(extra_fields or {})}
    return client.post(f"/api/v1/sessions/{created['session_id']}/frames/batch", data=data,
                       headers=auth(created), content_type="multipart/form-data")


def count(gz, model) -> int:
    with session_scope(gz.config.database_url) as db:
        return db.scalar(select(func.count()).select_from(model))


@pytest.fixture(scope="module")
def face_jpeg() -> bytes:
    return jpeg(frame())


def test_session_records_consent_and_returns_settings(client, gz):
    created = new_session(client, mm_per_px=0.25)
    assert created["deletion_code"] == f"{created['volunteer_id']}.{created['upload_token']}"
    assert created["settings"]["target_radius"] == 15
    with session_scope(gz.config.database_url) as db:
        volunteer = db.get(Volunteer, created["volunteer_id"])
        assert volunteer.consent_version == "2026-11" and volunteer.consented_at is not None
        session = db.get(CollectionSession, created["session_id"])
        assert (session.screen_width, session.mm_per_px) == (1280, 0.25)
        assert session.token_hash != created["upload_token"]  # only a hash is stored


def test_frame_is_extracted_and_stored_with_five_crops(client, gz, face_jpeg):
    created = new_session(client)
    trial = client.post(f"/api/v1/sessions/{created['session_id']}/trials", headers=auth(created),
                        json={"kind": "collection", "target_x": 100, "target_y": 700, "shown_at": NOW})
    assert trial.status_code == 201
    response = upload(client, created, face_jpeg, trial_id=trial.json["trial_id"], x=100, y=700)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "accepted" and response.json["reasons"] == []
    assert response.json["message"]
    with session_scope(gz.config.database_url) as db:
        sample = db.get(Sample, response.json["sample_id"])
        assert (sample.target_x, sample.target_y) == (100, 700)
        assert sample.yaw is not None and sample.face_w > 0 and "sharpness" in sample.quality
        images = db.get(SampleImages, sample.id)
        assert all(len(getattr(images, k)) > 100 for k in ("face", "face_aligned", "l_eye", "r_eye", "head_pos"))


def test_same_client_frame_id_twice_stores_once(client, gz, face_jpeg):
    created = new_session(client)
    first = upload(client, created, face_jpeg, frame_id="frame-0001")
    second = upload(client, created, face_jpeg, frame_id="frame-0001")
    assert first.status_code == 201 and second.status_code == 200
    assert second.json["duplicate"] is True
    assert second.json["sample_id"] == first.json["sample_id"]
    assert count(gz, Sample) == 1


def test_frame_without_face_is_stored_rejected_with_reason(client, gz):
    created = new_session(client)
    gray = np.full((480, 640, 3), 128, np.uint8)
    response = upload(client, created, jpeg(gray))
    assert response.status_code == 201
    assert response.json["status"] == "rejected" and "no_face" in response.json["reasons"]


def test_wrong_attention_answer_rejects_the_trials_frames(client, gz, face_jpeg):
    created = new_session(client)
    sid = created["session_id"]
    trial_id = client.post(f"/api/v1/sessions/{sid}/trials", headers=auth(created), json={
        "kind": "collection", "target_x": 10, "target_y": 10, "shown_at": NOW}).json["trial_id"]
    before = upload(client, created, face_jpeg, trial_id=trial_id)
    outcome = client.patch(f"/api/v1/sessions/{sid}/trials/{trial_id}", headers=auth(created),
                           json={"attention_letter": "L", "attention_answer": "R"})
    assert outcome.json == {"trial_id": trial_id, "attention_passed": False}
    after = upload(client, created, face_jpeg, trial_id=trial_id)
    assert after.json["status"] == "rejected" and "attention_failed" in after.json["reasons"]
    with session_scope(gz.config.database_url) as db:
        assert db.get(Sample, before.json["sample_id"]).status == "rejected"
        assert db.get(Trial, trial_id).attention_passed is False
    summary = client.get(f"/api/v1/sessions/{sid}", headers=auth(created)).json
    assert summary["attention_failed"] == 1 and summary["counts"]["rejected"] == 2


def test_targets_calibration_grid_and_edge_weighting(client):
    created = new_session(client)
    sid = created["session_id"]
    calibration = client.get(f"/api/v1/sessions/{sid}/next-targets?kind=calibration",
                             headers=auth(created)).json
    points = {(p["x"], p["y"]) for p in calibration["targets"]}
    assert points == {(x, y) for x in (128, 640, 1152) for y in (72, 360, 648)}
    collection = client.get(f"/api/v1/sessions/{sid}/next-targets?n=200", headers=auth(created)).json
    xs = np.array([p["x"] for p in collection["targets"]]) / 1280
    assert collection["sampler"] == "focus_edges" and len(xs) == 200
    assert ((xs < 0.2) | (xs > 0.8)).mean() > 0.45  # uniform would give 0.4, Beta(.4,.4) ~0.6
    assert xs.min() >= 15 / 1280 and xs.max() <= 1 - 15 / 1280


def test_coverage_counts_one_sessions_accepted_samples_with_its_token(client, face_jpeg):
    created, other = new_session(client), new_session(client)
    upload(client, created, face_jpeg, x=1270, y=5)
    upload(client, other, face_jpeg, x=5, y=5)
    url = f"/api/v1/coverage?cols=4&rows=2&session_id={created['session_id']}"
    body = client.get(url, headers=auth(created)).json
    assert body["counts"][0][3] == 1 and sum(map(sum, body["counts"])) == 1
    assert client.get(url).status_code == 401
    assert client.get(url, headers=auth(other)).status_code == 403
    assert client.get("/api/v1/coverage?cols=4&rows=2", headers=auth(created)).status_code == 422


def test_delete_volunteer_erases_everything(client, gz, face_jpeg):
    created = new_session(client)
    other = new_session(client)
    upload(client, created, face_jpeg)
    upload(client, other, face_jpeg)
    wrong = client.delete(f"/api/v1/volunteers/{created['volunteer_id']}", headers=auth(other))
    assert wrong.status_code == 404
    response = client.delete(f"/api/v1/volunteers/{created['volunteer_id']}", headers=auth(created))
    assert response.status_code == 200
    deleted = response.json["deleted"]
    assert deleted["volunteers"] == 1 and deleted["samples"] == 1 and deleted["images"] == 1
    assert deleted["bytes"] > 1000
    with session_scope(gz.config.database_url) as db:
        assert db.get(Volunteer, created["volunteer_id"]) is None
        assert db.scalar(select(func.count()).select_from(Sample).where(
            Sample.volunteer_id == created["volunteer_id"])) == 0
    assert count(gz, Sample) == 1 and count(gz, SampleImages) == 1  # the other volunteer's stay


def test_finish_marks_session_finished(client):
    created = new_session(client)
    body = client.post(f"/api/v1/sessions/{created['session_id']}/finish", headers=auth(created)).json
    assert body["status"] == "finished"


# --- bad input: 4xx JSON naming the problem, nothing written -------------------------------

@pytest.mark.parametrize("body,status,code", [
    ({"consent": False}, 422, "invalid_field"),
    ({"consent_version": None}, 422, "invalid_field"),
    ({"screen_width": "wide"}, 422, "invalid_field"),
    ({"screen_width": 10**9}, 422, "invalid_field"),
    ({"screen_height": True}, 422, "invalid_field"),
    ({"device_pixel_ratio": -1}, 422, "invalid_field"),
    ({"hacker": "<script>"}, 422, "unknown_field"),
])
def test_bad_session_bodies(client, gz, body, status, code):
    full = {"consent": True, "consent_version": "2026-11", "screen_width": 800, "screen_height": 600,
            "device_pixel_ratio": 1, **body}
    response = client.post("/api/v1/sessions", json=full)
    assert (response.status_code, response.json["error"]) == (status, code)
    assert response.json["message"]
    assert count(gz, Volunteer) == 0


@pytest.mark.parametrize("raw,content_type,status", [
    (b"{not json", "application/json", 400),
    (b'{"consent": NaN}', "application/json", 400),
    (b"[1,2]", "application/json", 400),
    (b"consent=true", "application/x-www-form-urlencoded", 415),
    (b"", "application/json", 400),
])
def test_malformed_session_requests(client, gz, raw, content_type, status):
    response = client.post("/api/v1/sessions", data=raw, content_type=content_type)
    assert response.status_code == status and "error" in response.json
    assert count(gz, Volunteer) == 0


def test_missing_field_is_named(client):
    response = client.post("/api/v1/sessions", json={"consent": True})
    assert response.status_code == 422 and "consent_version" in response.json["message"]


def test_token_checks(client, face_jpeg):
    created = new_session(client)
    other = new_session(client)
    path = f"/api/v1/sessions/{created['session_id']}"
    assert client.get(path).status_code == 401
    assert client.get(path, headers=auth(other)).json["error"] == "wrong_token"
    assert client.get("/api/v1/sessions/nope", headers=auth(created)).status_code == 404
    assert client.get("/api/v1/sessions/" + "x" * 500, headers=auth(created)).status_code == 404


def test_bad_frame_uploads_write_nothing(client, gz, face_jpeg):
    created = new_session(client)
    sid = created["session_id"]
    cases = [
        upload(client, created, b"this is not an image at all"),                 # not an image
        upload(client, created, face_jpeg[: len(face_jpeg) // 3]),               # truncated JPEG
        upload(client, created, face_jpeg, x=5000),                              # off screen
        upload(client, created, face_jpeg, meta={"client_frame_id": "abcdefgh1"}),  # missing fields
        upload(client, created, face_jpeg, meta={"client_frame_id": "bad id!", "target_x": 1,
                                                 "target_y": 1, "captured_at": NOW}),
        upload(client, created, face_jpeg, extra_fields={"evil": "1"}),          # extra field
        upload(client, created, face_jpeg, trial_id=999999),                    # unknown trial
        upload(client, created, face_jpeg, meta={"client_frame_id": "abcdefgh2", "target_x": 1,
                                                 "target_y": 1, "captured_at": "yesterday"}),
        client.post(f"/api/v1/sessions/{sid}/frames", headers=auth(created), json={"frame": "x"}),
        client.post(f"/api/v1/sessions/{sid}/frames", headers=auth(created),
                    data={"meta": "{}"}, content_type="multipart/form-data"),
        client.post(f"/api/v1/sessions/{sid}/frames", headers=auth(created), content_type="multipart/form-data",
                    data={"frame": (io.BytesIO(face_jpeg), "f.jpg"), "meta": "{oops"}),
    ]
    statuses = [r.status_code for r in cases]
    assert all(400 <= s < 500 for s in statuses), statuses
    assert all(r.json["error"] and r.json["message"] for r in cases)
    assert cases[0].json["error"] == "not_an_image"
    assert count(gz, Sample) == 0 and count(gz, SampleImages) == 0


def test_a_batch_of_frames_is_stored_together_and_idempotent_per_frame(client, gz, face_jpeg):
    created = new_session(client)
    sid = created["session_id"]
    trial_id = client.post(f"/api/v1/sessions/{sid}/trials", headers=auth(created), json={
        "kind": "collection", "target_x": 100, "target_y": 700, "shown_at": NOW}).json["trial_id"]
    dark = jpeg(np.full((480, 640, 3), 90, np.uint8))
    metas = [{"client_frame_id": f"batch-frame-{i}", "trial_id": trial_id, "target_x": 100,
              "target_y": 700, "captured_at": NOW} for i in range(3)]
    response = upload_batch(client, created, [face_jpeg, dark, face_jpeg], metas)
    assert response.status_code == 201, response.json
    results = response.json["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted"]
    assert "no_face" in results[1]["reasons"] and not any(r["duplicate"] for r in results)
    with session_scope(gz.config.database_url) as db:
        stored = db.scalars(select(Sample).where(Sample.session_id == sid).order_by(Sample.id)).all()
        assert [s.client_frame_id for s in stored] == [m["client_frame_id"] for m in metas]
        assert [s.id for s in stored] == [r["sample_id"] for r in results]
        assert all(s.trial_id == trial_id and s.target_y == 700 for s in stored)
        assert db.scalar(select(func.count()).select_from(SampleImages)
                         .where(SampleImages.sample_id.in_([s.id for s in stored]))) == 2   # no face, no crops
    # the same batch again: every frame a duplicate, answered as first stored; one new frame among old ones
    again = upload_batch(client, created, [face_jpeg, dark, face_jpeg], metas)
    assert again.status_code == 200 and again.json["results"] == [{**r, "message": "already received",
                                                                  "duplicate": True} for r in results]
    mixed = upload_batch(client, created, [face_jpeg, face_jpeg], [metas[0], {**metas[0], "client_frame_id": "batch-frame-9"}])
    assert mixed.status_code == 201
    assert [r["duplicate"] for r in mixed.json["results"]] == [True, False]
    summary = client.get(f"/api/v1/sessions/{sid}", headers=auth(created)).json
    assert summary["counts"] == {"accepted": 3, "rejected": 1, "flagged": 0}


def test_a_failed_attention_check_rejects_a_batch_of_its_frames(client, gz, face_jpeg):
    created = new_session(client)
    sid = created["session_id"]
    trial_id = client.post(f"/api/v1/sessions/{sid}/trials", headers=auth(created), json={
        "kind": "collection", "target_x": 10, "target_y": 10, "shown_at": NOW}).json["trial_id"]
    client.patch(f"/api/v1/sessions/{sid}/trials/{trial_id}", headers=auth(created),
                 json={"attention_letter": "L", "attention_answer": None})
    response = upload_batch(client, created, [face_jpeg] * 4, trial_id=trial_id)
    assert response.status_code == 201
    assert all(r["status"] == "rejected" and "attention_failed" in r["reasons"] for r in response.json["results"])
    summary = client.get(f"/api/v1/sessions/{sid}", headers=auth(created)).json
    assert summary["counts"]["rejected"] == 4 and summary["attention_failed"] == 1


def carried_trial(**changes) -> dict:
    return {"kind": "collection", "target_x": 100, "target_y": 700, "shown_at": NOW,
            "client_trial_id": uuid.uuid4().hex, **changes}


def frame_metas(n: int, prefix: str | None = None) -> list[dict]:
    prefix = prefix or uuid.uuid4().hex[:12]
    return [{"client_frame_id": f"{prefix}-{i}", "target_x": 100, "target_y": 700, "captured_at": NOW}
            for i in range(n)]


def test_a_dot_comes_in_one_request_its_trial_with_its_frames(client, gz, face_jpeg):
    """The page sends a dot's trial, attention answer and frames together; a retry, or the
    dot's next part, finds the trial its first request stored."""
    created = new_session(client)
    sid = created["session_id"]
    trial = carried_trial(attention_letter="R", attention_answer="R")
    metas = frame_metas(3)
    first = upload_batch(client, created, [face_jpeg] * 2, metas[:2], trial=trial)
    assert first.status_code == 201, first.json
    assert first.json["trial_duplicate"] is False and first.json["attention_passed"] is True
    trial_id = first.json["trial_id"]
    assert [r["status"] for r in first.json["results"]] == ["accepted", "accepted"]
    retried = upload_batch(client, created, [face_jpeg] * 2, metas[:2], trial=trial)
    assert retried.status_code == 200 and retried.json["trial_id"] == trial_id
    assert retried.json["trial_duplicate"] is True and all(r["duplicate"] for r in retried.json["results"])
    rest = upload_batch(client, created, [face_jpeg], metas[2:], trial=trial)
    assert rest.status_code == 201 and rest.json["trial_id"] == trial_id and rest.json["trial_duplicate"] is True
    with session_scope(gz.config.database_url) as db:
        trials = db.scalars(select(Trial).where(Trial.session_id == sid)).all()
        assert [(t.id, t.kind, t.target_y, t.client_trial_id, t.attention_letter, t.attention_passed)
                for t in trials] == [(trial_id, "collection", 700, trial["client_trial_id"], "R", True)]
        samples = db.scalars(select(Sample).where(Sample.session_id == sid)).all()
        assert len(samples) == 3 and {s.trial_id for s in samples} == {trial_id}
    # a pursuit segment: no attention check
    glide = upload_batch(client, created, [face_jpeg], frame_metas(1), trial=carried_trial(kind="pursuit"))
    assert glide.status_code == 201 and glide.json["attention_passed"] is None
    summary = client.get(f"/api/v1/sessions/{sid}", headers=auth(created)).json
    assert summary["trials"] == 2 and summary["counts"]["accepted"] == 4 and summary["attention_failed"] == 0


@pytest.mark.parametrize("answer", ["L", None])
def test_a_dot_carrying_a_failed_attention_check_stores_its_frames_rejected(client, gz, face_jpeg, answer):
    created = new_session(client)
    response = upload_batch(client, created, [face_jpeg] * 3, frame_metas(3),
                            trial=carried_trial(attention_letter="R", attention_answer=answer))
    assert response.status_code == 201 and response.json["attention_passed"] is False
    assert all(r["status"] == "rejected" and "attention_failed" in r["reasons"] for r in response.json["results"])
    summary = client.get(f"/api/v1/sessions/{created['session_id']}", headers=auth(created)).json
    assert summary["counts"]["rejected"] == 3 and summary["attention_failed"] == 1


def test_bad_dots_write_neither_trial_nor_frames(client, gz, face_jpeg):
    created = new_session(client)
    sid = created["session_id"]
    good = [face_jpeg, face_jpeg]
    without_id = {k: v for k, v in carried_trial().items() if k != "client_trial_id"}
    cases = {
        "not_an_image": upload_batch(client, created, [face_jpeg, b"not an image"], frame_metas(2),
                                     trial=carried_trial()),
        "target_off_screen": upload_batch(client, created, good, frame_metas(2), trial=carried_trial(target_x=5000)),
        "trial_given_twice": upload_batch(client, created, good,
                                          [{**m, "trial_id": 1} for m in frame_metas(2)], trial=carried_trial()),
        "missing_field": upload_batch(client, created, good, frame_metas(2), trial=without_id),
        "answer_without_letter": upload_batch(client, created, good, frame_metas(2),
                                              trial=carried_trial(attention_answer="L")),
        "invalid_field": upload_batch(client, created, good, frame_metas(2), trial=carried_trial(kind="nap")),
        "unknown_field": upload_batch(client, created, good, frame_metas(2), trial=carried_trial(evil=1)),
        "invalid_body": upload_batch(client, created, good, frame_metas(2), trial=[carried_trial()]),
        "invalid_json": upload_batch(client, created, good, frame_metas(2), extra_fields={"trial": "{oops"}),
    }
    for case, response in cases.items():
        code = "missing_field" if case == "answer_without_letter" else case
        assert 400 <= response.status_code < 500 and response.json["error"] == code, (case, response.json)
    assert "frame 2 of 2" in cases["not_an_image"].json["message"]
    assert "trial" in cases["missing_field"].json["message"] and "trial" in cases["invalid_body"].json["message"]
    assert count(gz, Trial) == 0 and count(gz, Sample) == 0 and count(gz, SampleImages) == 0
    assert client.get(f"/api/v1/sessions/{sid}", headers=auth(created)).json["trials"] == 0


def test_the_same_dot_sent_twice_at_once_is_stored_once(gz_any, face_jpeg):
    """Two tries of one request racing (a retry while the first is still being extracted):
    one trial and one sample per frame, both answered 2xx, on every database."""
    import threading

    from webapp import create_app
    app = create_app(gz_any.config)
    created = new_session(app.test_client())
    for round_ in range(4):
        trial, metas = carried_trial(), frame_metas(3, f"race-{round_}")
        barrier, answers = threading.Barrier(2), []

        def send():
            client = app.test_client()
            barrier.wait()
            answers.append(upload_batch(client, created, [face_jpeg] * 3, metas, trial=trial))
        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(a.status_code for a in answers) == [200, 201], [a.json for a in answers]
        assert answers[0].json["trial_id"] == answers[1].json["trial_id"]
        assert [r["sample_id"] for r in answers[0].json["results"]] == [r["sample_id"] for r in answers[1].json["results"]]
    with session_scope(gz_any.config.database_url) as db:
        assert db.scalar(select(func.count()).select_from(Trial).where(Trial.session_id == created["session_id"])) == 4
        assert db.scalar(select(func.count()).select_from(Sample).where(Sample.session_id == created["session_id"])) == 12


def test_a_batch_costs_the_same_statements_whatever_its_size(gz_any, face_jpeg):
    """One statement per table for a whole batch (its checks, its samples, their crops), not
    one per frame: the database work of a request must not grow with the frames it carries."""
    from webapp import create_app
    client = create_app(gz_any.config).test_client()
    created = new_session(client)
    trial_id = client.post(f"/api/v1/sessions/{created['session_id']}/trials", headers=auth(created), json={
        "kind": "collection", "target_x": 10, "target_y": 10, "shown_at": NOW}).json["trial_id"]
    statements = []
    engine = get_engine(gz_any.config.database_url)
    listener = lambda *args: statements.append(args[2])  # noqa: E731  (conn, cursor, statement, …)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        counts = {}
        for size in (2, gz_any.config.collection.upload_batch_frames):
            for carried in (False, True):   # the trial's id, or the trial itself
                statements.clear()
                response = upload_batch(client, created, [face_jpeg] * size, trial_id=None if carried else trial_id,
                                        trial=carried_trial(target_y=10) if carried else None)
                assert response.status_code == 201 and len(response.json["results"]) == size
                counts[size, carried] = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    sizes = sorted({size for size, _ in counts})
    assert counts[sizes[0], False] == counts[sizes[1], False], counts
    # a carried trial adds its insert and saves the re-read of its attention answer (it has
    # none but the one it came with); whether it ends the calibration dots is read with the
    # batch's checks
    assert counts[sizes[0], True] == counts[sizes[1], True] == counts[sizes[0], False], counts
    assert count(gz_any, SampleImages) == 2 * sum(sizes)


def test_bad_batches_write_nothing_and_name_the_frame(client, gz, face_jpeg):
    created = new_session(client)
    sid = created["session_id"]
    limit = gz.config.collection.upload_batch_frames

    def meta(i, **changes):
        return {"client_frame_id": f"bad-batch-{i}", "trial_id": None, "target_x": 10, "target_y": 10,
                "captured_at": NOW, **changes}
    good = [face_jpeg, face_jpeg, face_jpeg]
    other = new_session(client)
    others_trial = client.post(f"/api/v1/sessions/{other['session_id']}/trials", headers=auth(other), json={
        "kind": "collection", "target_x": 10, "target_y": 10, "shown_at": NOW}).json["trial_id"]
    cases = {
        "not_an_image": upload_batch(client, created, [face_jpeg, b"not an image", face_jpeg],
                                     [meta(0), meta(1), meta(2)]),
        "target_off_screen": upload_batch(client, created, good, [meta(0), meta(1), meta(2, target_x=5000)]),
        "unknown_trial": upload_batch(client, created, good, [meta(0), meta(1, trial_id=999999), meta(2)]),
        "another_sessions_trial": upload_batch(client, created, good,
                                               [meta(0), meta(1), meta(2, trial_id=others_trial)]),
        "duplicate_frame_id": upload_batch(client, created, good, [meta(0), meta(1), meta(0)]),
        "invalid_body": upload_batch(client, created, good, [meta(0), meta(1)]),               # 2 metas, 3 frames
        "missing_field": upload_batch(client, created, good, [meta(0), meta(1), {"client_frame_id": "x2345678"}]),
        "too_many_frames": upload_batch(client, created, [face_jpeg] * (limit + 1)),
        "empty_frame": upload_batch(client, created, [face_jpeg, b""], [meta(0), meta(1)]),
        "unknown_field": upload_batch(client, created, good, extra_fields={"evil": "1"}),
        "invalid_json": client.post(f"/api/v1/sessions/{sid}/frames/batch", headers=auth(created),
                                    content_type="multipart/form-data",
                                    data={"frame": (io.BytesIO(face_jpeg), "f.jpg"), "meta": "[{oops"}),
    }
    for case, response in cases.items():
        code = "unknown_trial" if case == "another_sessions_trial" else case
        assert 400 <= response.status_code < 500 and response.json["error"] == code, (case, response.json)
    assert "frame 2 of 3" in cases["not_an_image"].json["message"]
    assert "frame 3 of 3" in cases["target_off_screen"].json["message"]
    assert "meta[2]" in cases["missing_field"].json["message"]
    # two frames sent to the one-frame endpoint
    two = client.post(f"/api/v1/sessions/{sid}/frames", headers=auth(created), content_type="multipart/form-data",
                      data={"frame": [(io.BytesIO(face_jpeg), "a.jpg"), (io.BytesIO(face_jpeg), "b.jpg")],
                            "meta": json.dumps(meta(5))})
    assert two.status_code == 422 and two.json["error"] == "too_many_frames"
    assert count(gz, Sample) == 0 and count(gz, SampleImages) == 0


def test_oversized_body_is_refused(client, gz):
    created = new_session(client)
    big = b"\xff\xd8" + b"0" * (gz.config.server.max_upload_bytes + 10)
    response = upload(client, created, big)
    assert response.status_code == 413 and response.json["error"] == "too_large"
    assert count(gz, Sample) == 0


def test_rate_limit_answers_429_with_retry_after(gz, face_jpeg):
    from webapp import create_app
    gz.overrides.update({"GAZELAB_SERVER_RATE_LIMIT_PER_SECOND": "0.2",
                         "GAZELAB_SERVER_RATE_LIMIT_BURST": "2"})
    client = create_app(gz.config).test_client()
    created = new_session(client)
    statuses = [upload(client, created, face_jpeg) for _ in range(3)]
    assert [r.status_code for r in statuses[:2]] == [201, 201]
    assert statuses[2].status_code == 429 and int(statuses[2].headers["Retry-After"]) >= 1
    # a batch takes one token per frame: two frames wait for two tokens (10 s at 0.2/s)
    other = new_session(client)
    assert upload_batch(client, other, [face_jpeg, face_jpeg]).status_code == 201
    limited = upload_batch(client, other, [face_jpeg])
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 4
    assert count(gz, Sample) == 4


def test_rate_limits_fail_open_at_once_while_the_broker_is_down(gz, face_jpeg):
    """A broker that accepts connections and drops them: uploads go ahead, and the limiter
    neither retries nor asks again on every request (one attempt, then a pause)."""
    import socket
    import threading

    from webapp import create_app
    listener = socket.create_server(("127.0.0.1", 0))
    attempts = []

    def drop_connections():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            attempts.append(1)
            connection.close()

    threading.Thread(target=drop_connections, daemon=True).start()
    gz.overrides["GAZELAB_SERVER_BROKER_URL"] = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    client = create_app(gz.config).test_client()
    created = new_session(client)
    statuses = [upload(client, created, face_jpeg).status_code for _ in range(4)]
    listener.close()
    assert statuses == [201] * 4 and count(gz, Sample) == 4
    assert len(attempts) == 1


def test_main_flow_on_every_database(gz_any, face_jpeg):
    from webapp import create_app
    client = create_app(gz_any.config).test_client()
    created = new_session(client)
    assert upload(client, created, face_jpeg, frame_id="same-frame-1").status_code == 201
    assert upload(client, created, face_jpeg, frame_id="same-frame-1").json["duplicate"] is True
    assert upload(client, created, b"garbage").status_code == 415
    trial_id = client.post(f"/api/v1/sessions/{created['session_id']}/trials", headers=auth(created), json={
        "kind": "collection", "target_x": 640, "target_y": 360, "shown_at": NOW}).json["trial_id"]
    batch = upload_batch(client, created, [face_jpeg] * 3, trial_id=trial_id)
    assert batch.status_code == 201 and [r["status"] for r in batch.json["results"]] == ["accepted"] * 3
    deleted = client.delete(f"/api/v1/volunteers/{created['volunteer_id']}", headers=auth(created))
    assert deleted.json["deleted"]["samples"] == 4
    assert count(gz_any, Sample) == 0 and count(gz_any, Volunteer) == 0


def test_screen_set_up_updates_the_session_until_frames_arrive(client, gz, face_jpeg):
    created = new_session(client)
    path = f"/api/v1/sessions/{created['session_id']}"
    response = client.patch(path, headers=auth(created),
                            json={"screen_width": 1920, "screen_height": 1080, "mm_per_px": 0.28})
    assert response.status_code == 200 and response.json["screen_width"] == 1920
    with session_scope(gz.config.database_url) as db:
        assert db.get(CollectionSession, created["session_id"]).mm_per_px == 0.28
    assert client.patch(path, headers=auth(created), json={"screen_width": 5}).status_code == 422
    assert client.patch(path, headers=auth(created), json={"colour": "red"}).status_code == 422
    upload(client, created, face_jpeg)
    late = client.patch(path, headers=auth(created), json={"screen_width": 1280})
    assert late.status_code == 409 and late.json["error"] == "session_has_samples"


def test_ids_beyond_64_bits_are_not_found(client):
    created = new_session(client)
    response = client.patch(f"/api/v1/sessions/{created['session_id']}/trials/9223372036854775808",
                            headers=auth(created), json={"attention_letter": "L", "attention_answer": "L"})
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_retried_trial_with_the_same_client_id_is_stored_once(client, gz):
    created = new_session(client)
    body = {"kind": "calibration", "target_x": 10, "target_y": 10, "shown_at": NOW,
            "client_trial_id": "trial-0001"}
    path = f"/api/v1/sessions/{created['session_id']}/trials"
    first = client.post(path, headers=auth(created), json=body)
    again = client.post(path, headers=auth(created), json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == {"trial_id": first.json["trial_id"], "duplicate": True}
    assert count(gz, Trial) == 1


def test_model_error_sampler_aims_at_the_worst_cells(gz):
    from gazelab.schema import ModelArtifact
    from webapp import create_app
    # bottom-right is worst; the top cell without test samples counts as worst too (unknown)
    mean_px = [[10.0, None, 10.0, 10.0], [10.0, 10.0, 10.0, 5000.0]]
    with session_scope(gz.config.database_url) as db:
        db.add(ModelArtifact(weights=b"", is_active=True,
                             error_grid={"cols": 4, "rows": 2, "mean_px": mean_px}))
    gz.overrides["GAZELAB_COLLECTION_SAMPLER"] = "model_error"
    client = create_app(gz.config).test_client()
    created = new_session(client)
    body = client.get(f"/api/v1/sessions/{created['session_id']}/next-targets?n=100",
                      headers=auth(created)).json
    assert body["sampler"] == "model_error"
    in_worst = [p for p in body["targets"] if p["x"] >= 960 and p["y"] >= 360]
    in_unknown = [p for p in body["targets"] if 320 <= p["x"] < 640 and p["y"] < 360]
    assert len(in_worst) >= 25 and len(in_unknown) >= 25
    assert len(in_worst) + len(in_unknown) >= 95


@pytest.mark.parametrize("carried", [False, True], ids=["trials", "carried_in_batch"])
def test_calibration_fit_is_queued_when_the_calibration_dots_end_and_at_finish(gz, redis_url, carried):
    import json as jsonlib

    from gazelab.broker import redis_client
    from gazelab.celery_app import FIT_CALIBRATIONS_TASK
    from gazelab.schema import ModelArtifact
    from webapp import create_app
    with session_scope(gz.config.database_url) as db:
        db.add(ModelArtifact(weights=b"", is_active=True))
    client = create_app(gz.config).test_client()
    created = new_session(client)
    sid = created["session_id"]
    redis = redis_client(redis_url)

    def queued() -> list[dict]:
        messages = [jsonlib.loads(m) for m in redis.lrange("default", 0, -1)]
        return [m for m in messages if m["headers"]["task"] == FIT_CALIBRATIONS_TASK
                and sid in m["headers"].get("kwargsrepr", "")]
    dark = jpeg(np.full((120, 160, 3), 90, np.uint8))
    for kind, expected in [("calibration", 0), ("calibration", 0), ("collection", 1), ("collection", 1)]:
        trial = carried_trial(kind=kind, target_y=10)
        if carried:   # twice: a dot in two requests queues one fit
            for part in range(2):
                assert upload_batch(client, created, [dark], frame_metas(1), trial=trial).status_code == 201
        else:
            assert client.post(f"/api/v1/sessions/{sid}/trials", headers=auth(created), json=trial).status_code == 201
        assert len(queued()) == expected, kind
    assert client.post(f"/api/v1/sessions/{sid}/finish", headers=auth(created)).status_code == 200
    assert len(queued()) == 2  # refit once every calibration frame is in


def test_accuracy_needs_the_token_and_says_when_there_is_no_model(client):
    created = new_session(client)
    path = f"/api/v1/sessions/{created['session_id']}/accuracy"
    assert client.get(path).status_code == 401
    assert client.get(path, headers=auth(created)).json == {"available": False, "reason": "no model yet"}


def test_an_upload_survives_a_writer_that_locks_against_it(gz_any, face_jpeg):
    """Another transaction holds the admin summary's row for today and then asks for the
    trial this upload is writing to. PostgreSQL breaks the deadlock by rolling one back: if
    that is the upload's, it is written again (the extraction stands); on SQLite the upload
    waits for the other writer. Either way: 201, one sample, no 500."""
    import threading
    import time

    import sqlalchemy as sa

    from gazelab.db import get_engine
    from webapp import create_app
    client = create_app(gz_any.config).test_client()
    created = new_session(client)
    trial_id = client.post(f"/api/v1/sessions/{created['session_id']}/trials", headers=auth(created),
                           json={"kind": "collection", "target_x": 100, "target_y": 100,
                                 "shown_at": NOW}).json["trial_id"]
    assert upload(client, created, face_jpeg, trial_id=trial_id).status_code == 201   # today's row exists
    engine = get_engine(gz_any.database_url)
    postgres = engine.dialect.name == "postgresql"
    responses = []
    with engine.connect() as other:
        if postgres:
            other.exec_driver_sql("BEGIN")
            other.exec_driver_sql("UPDATE sample_day_counts SET n = n + 0")
        else:
            other.exec_driver_sql("BEGIN IMMEDIATE")
        uploading = threading.Thread(target=lambda: responses.append(
            upload(client, created, face_jpeg, trial_id=trial_id)))
        uploading.start()
        time.sleep(1.0)                      # the upload holds the trial and waits on the summary
        if postgres:
            try:
                other.exec_driver_sql(f"SELECT id FROM trials WHERE id = {trial_id} FOR UPDATE")
            except sa.exc.OperationalError:
                pass                         # this side was chosen as the deadlock's victim
        other.rollback()
        uploading.join(60)
    assert [r.status_code for r in responses] == [201], [r.json for r in responses]
    assert count(gz_any, Sample) == 2
