"""The admin summary (collection.summary) stays equal to a from-scratch recount through
every writer: ingest over the API (accepted, rejected, a failed attention check that
rejects stored frames), samples added through the ORM, review decisions one by one and by
session, outlier flagging, erasure and the retention purge; `gazelab db recount` rebuilds it."""
from __future__ import annotations

import datetime as dt
import subprocess

import numpy as np
from sqlalchemy import delete, select, update

from collection import summary
from collection.erasure import delete_volunteer, purge_expired
from collection.review import flag_outliers, set_session_status, set_status
from gazelab.db import session_scope
from gazelab.schema import Sample, SampleCellCount, SampleDayCount, SampleReasonCount, Volunteer
from tests.images import frame, jpeg
from tests.support import VENV_BIN
from tests.test_admin import seed
from tests.test_api import auth, new_session, upload


def assert_in_step(database_url: str) -> summary.Deltas:
    with session_scope(database_url) as db:
        stored, fresh = summary.stored(db), summary.from_scratch(db)
    assert stored == fresh
    return stored


def test_summary_equals_recount_through_ingest_review_and_erasure(gz_any):
    from webapp import create_app
    url = gz_any.database_url
    client = create_app(gz_any.config).test_client()
    face, grey = jpeg(frame()), jpeg(np.full((480, 640, 3), 128, np.uint8))

    first, second = new_session(client), new_session(client, screen_width=1920, screen_height=1080)
    for x, y in ((5, 5), (1275, 715), (640, 360)):
        assert upload(client, first, face, x=x, y=y).json["status"] == "accepted"
    assert "no_face" in upload(client, first, grey).json["reasons"]
    sid = second["session_id"]
    trial = client.post(f"/api/v1/sessions/{sid}/trials", headers=auth(second), json={
        "kind": "collection", "target_x": 10, "target_y": 10, "shown_at": "2026-11-21T10:00:00Z"}).json
    upload(client, second, face, trial_id=trial["trial_id"], x=1919, y=0)
    upload(client, second, face, x=100, y=1000)
    stored = assert_in_step(url)
    assert stored.cells and sum(stored.days.values()) == 6
    client.patch(f"/api/v1/sessions/{sid}/trials/{trial['trial_id']}", headers=auth(second),
                 json={"attention_letter": "L", "attention_answer": "R"})   # rejects a stored frame
    stored = assert_in_step(url)
    assert sum(n for (status, code), n in stored.reasons.items() if code == "attention_failed") == 1

    session_ids = seed(url, volunteers=2, samples_each=8)   # through the ORM, other days
    assert_in_step(url)
    with session_scope(url) as db:
        ids = db.scalars(select(Sample.id).where(Sample.status == "accepted").order_by(Sample.id)).all()
        set_status(db, ids[:3], "rejected", "looked away")
        set_status(db, ids[:1], "accepted")
        set_status(db, ids[3:5], "flagged", "odd")
        set_session_status(db, session_ids[0], "rejected", "whole session bad")
        flag_outliers(db, {i: (500.0 if i == ids[-1] else 40.0) for i in ids[5:]})
    stored = assert_in_step(url)
    assert ("rejected", "review:whole_session_bad") in stored.reasons
    assert ("flagged", "model_outlier") in stored.reasons

    config = gz_any.config
    with session_scope(url) as db:
        delete_volunteer(db, config, first["volunteer_id"])
    assert_in_step(url)
    with session_scope(url) as db:   # the retention purge: one volunteer long past it
        db.execute(update(Volunteer).where(Volunteer.id == second["volunteer_id"])
                   .values(created_at=dt.datetime(2020, 1, 1)))
    gz_any.overrides["GAZELAB_SERVER_RETENTION_DAYS"] = "30"
    with session_scope(url) as db:
        assert purge_expired(db, gz_any.config) == 1
    stored = assert_in_step(url)
    assert sum(stored.days.values()) == 16   # the two ORM-seeded volunteers are left
    with session_scope(url) as db:
        counts = summary.status_counts(db)
    assert counts["samples"] == 16 and counts["accepted"] + counts["rejected"] + counts["flagged"] == 16

    # lost (or written behind the ORM's back): the command rebuilds it from the samples
    with session_scope(url) as db:
        for table in (SampleDayCount, SampleReasonCount, SampleCellCount):
            db.execute(delete(table))
    result = subprocess.run([str(VENV_BIN / "gazelab"), "db", "recount"], env=gz_any.env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "summary rebuilt from 16 samples" in result.stdout
    assert assert_in_step(url) == stored


def test_coverage_from_the_summary_matches_a_group_by(gz):
    """All-data coverage read from the fine grid equals counting the samples one by one,
    for grid sizes that divide it and (to within the fine cells at the edges) others."""
    seed(gz.database_url, volunteers=3, samples_each=40, seed_value=4)
    with session_scope(gz.database_url) as db:
        rows = db.execute(select(Sample.target_x, Sample.target_y).where(Sample.status == "accepted")).all()
        for cols, n_rows in ((16, 9), (4, 2), (1, 1), (240, 180)):
            expected = np.zeros((n_rows, cols), np.int64)
            for x, y in rows:   # seed's screens are 1600 x 900
                expected[min(int(y / 900 * n_rows), n_rows - 1), min(int(x / 1600 * cols), cols - 1)] += 1
            assert (summary.coverage(db, cols, n_rows) == expected).all(), (cols, n_rows)
        odd = summary.coverage(db, 7, 7)
        assert odd.sum() == len(rows) and odd.shape == (7, 7)


def test_attention_failed_while_a_frame_is_extracted_rejects_it_and_counts_it_so(gz_any, monkeypatch):
    """The volunteer's wrong attention answer commits between the frame's checks and its
    write (here: during the real extraction): the frame is stored rejected, and the
    summary counts it as rejected, on both databases (SQLite reads the trial after its
    insert, PostgreSQL before it, under a row lock)."""
    from collection import extraction, ingest
    from gazelab.schema import Trial
    from webapp import create_app
    client = create_app(gz_any.config).test_client()
    created = new_session(client)
    sid = created["session_id"]
    trial_id = client.post(f"/api/v1/sessions/{sid}/trials", headers=auth(created), json={
        "kind": "collection", "target_x": 10, "target_y": 10, "shown_at": "2026-11-21T10:00:00Z"}).json["trial_id"]
    real_extract = extraction.extract

    def answer_wrongly_meanwhile(data, config):
        result = real_extract(data, config)
        with session_scope(gz_any.database_url) as other:
            session = other.get(ingest.CollectionSession, sid)
            assert ingest.record_attention(other, session, trial_id, "L", "R") is False
        return result

    monkeypatch.setattr(extraction, "extract", answer_wrongly_meanwhile)
    response = upload(client, created, jpeg(frame()), trial_id=trial_id)
    assert response.status_code == 201
    assert response.json["status"] == "rejected" and response.json["reasons"] == ["attention_failed"]
    with session_scope(gz_any.database_url) as db:
        sample = db.get(Sample, response.json["sample_id"])
        assert (sample.status, sample.reasons) == ("rejected", "attention_failed")
        assert db.get(Trial, trial_id).attention_passed is False
    stored = assert_in_step(gz_any.database_url)
    assert stored.reasons == {("rejected", "attention_failed"): 1} and not stored.cells
