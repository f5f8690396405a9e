"""Admin dashboard through the Flask test client: accounts, login, CSRF, 401s, overview,
review decisions, outlier flagging, export zip, CLI. Data: real crops of skimage's astronaut."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile

import cv2
import numpy as np
import pytest
from skimage import data as skdata
from sqlalchemy import func, select

from gazelab.blobs import blob_store
from gazelab.db import session_scope
from gazelab.schema import (CollectionSession, ExportJob, Sample, SampleImages, Trial, Volunteer)
from collection.accounts import create_admin
from tests.support import GazeEnv

ADMIN, PASSWORD = "ada", "correct horse battery"


def _jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def astronaut_crops(shift: int = 0) -> dict[str, bytes]:
    """The five 64x64 crops of the astronaut photo (BGR, as OpenCV stores them)."""
    photo = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    face = photo[40 + shift:180 + shift, 155:295]
    size = (64, 64)
    head_pos = np.full((64, 64), 255, np.uint8)
    head_pos[8:32, 22:42] = 0
    return {"face": _jpeg(cv2.resize(face, size)), "face_aligned": _jpeg(cv2.resize(face, size)),
            "l_eye": _jpeg(cv2.resize(photo[84:120, 227:263], size)),
            "r_eye": _jpeg(cv2.resize(photo[84:120, 187:223], size)), "head_pos": _jpeg(head_pos)}


def seed(database_url: str, volunteers: int = 2, sessions_each: int = 1, samples_each: int = 12,
         seed_value: int = 0, with_failed_attention: bool = True) -> list[str]:
    """Volunteers with sessions of accepted samples (some rejected); returns the session ids."""
    rng = np.random.default_rng(seed_value)
    crops = astronaut_crops()
    session_ids = []
    start = dt.datetime(2026, 11, 20, 9, 0)
    with session_scope(database_url) as db:
        for v in range(volunteers):
            volunteer = Volunteer(consent_version="2026-11", source=f"demo:{v}")
            db.add(volunteer)
            db.flush()
            for s in range(sessions_each):
                session = CollectionSession(volunteer_id=volunteer.id, token_hash="x" * 64, screen_width=1600,
                                            screen_height=900, started_at=start + dt.timedelta(days=v))
                db.add(session)
                db.flush()
                trial = Trial(session_id=session.id, kind="collection", target_x=10, target_y=10,
                              shown_at=start, attention_letter="L", attention_answer="R",
                              attention_passed=False)
                db.add(trial)
                db.flush()
                for i in range(samples_each):
                    failed = with_failed_attention and i == 0
                    status, reasons = ("rejected", "attention_failed") if failed else \
                        (("rejected", "face_too_small") if i == 1 else ("accepted", ""))
                    x, y = rng.uniform(0, 1600), rng.uniform(0, 900)
                    sample = Sample(session_id=session.id, volunteer_id=volunteer.id,
                                    trial_id=trial.id if failed else None,
                                    client_frame_id=f"{v}-{s}-{i}", captured_at=start + dt.timedelta(days=v, seconds=i),
                                    target_x=x, target_y=y, yaw=float(rng.normal(0, 8)),
                                    pitch=float(rng.normal(0, 5)), roll=float(rng.normal(0, 3)),
                                    face_x=200, face_y=100, face_w=220, face_h=220,
                                    frame_width=640, frame_height=480, quality={}, status=status,
                                    reasons=reasons)
                    sample.images = SampleImages(format="jpeg", **crops)
                    db.add(sample)
                session_ids.append(session.id)
    return session_ids


def make_admin(database_url: str, name: str = ADMIN, password: str = PASSWORD) -> None:
    with session_scope(database_url) as db:
        create_admin(db, name, password)


def page_csrf(client, path: str = "/admin/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client, name: str = ADMIN, password: str = PASSWORD):
    token = page_csrf(client)
    return client.post("/admin/login", data={"name": name, "password": password, "csrf_token": token})


@pytest.fixture
def admin_client(gz, client):
    make_admin(gz.database_url)
    assert login(client).status_code == 302
    return client


def counts_by_status(database_url: str) -> dict[str, int]:
    with session_scope(database_url) as db:
        return dict(db.execute(select(Sample.status, func.count()).group_by(Sample.status)).all())


# --- accounts, login, CSRF -------------------------------------------------------------

def test_pages_redirect_and_apis_answer_401_without_login(gz, client):
    for path in ("/admin/", "/admin/review", "/admin/runs", "/admin/live", "/admin/export",
                 "/admin/exports/1.zip", "/admin/coverage.png", "/admin/samples/1/face.jpg"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/admin/login" in response.headers["Location"]
    response = client.get("/admin/api/runs/1")
    assert response.status_code == 401
    assert response.get_json()["error"] == "login_required"
    for path in ("/admin/review/session", "/admin/runs", "/admin/api/live/frame", "/admin/api/live/calibration",
                 "/admin/logout"):
        assert client.post(path, data={"csrf_token": "x"}).status_code == 401, path


def test_login_wrong_password_then_right_one(gz, client):
    make_admin(gz.database_url)
    assert login(client, password="wrong password").status_code == 401
    assert client.get("/admin/").status_code == 302
    response = login(client)
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/")
    page = client.get("/admin/")
    assert page.status_code == 200 and b"Dataset overview" in page.data


def test_login_next_only_goes_to_admin_pages(gz, client):
    make_admin(gz.database_url)
    token = page_csrf(client)
    response = client.post("/admin/login", data={"name": ADMIN, "password": PASSWORD, "csrf_token": token,
                                                  "next": "//evil.example/admin"})
    assert response.headers["Location"].endswith("/admin/")


def test_posts_without_or_with_wrong_csrf_are_refused(gz, admin_client):
    seed(gz.database_url, volunteers=1, samples_each=3)
    before = counts_by_status(gz.database_url)
    for data in ({"decision": "reject", "sample_id": "3"},
                 {"decision": "reject", "sample_id": "3", "csrf_token": "forged"}):
        response = admin_client.post("/admin/review/samples", data=data)
        assert response.status_code == 400
        assert response.get_json()["error"] == "csrf_failed"
    assert counts_by_status(gz.database_url) == before
    # login itself is CSRF-protected too (login CSRF)
    response = admin_client.post("/admin/login", data={"name": ADMIN, "password": PASSWORD})
    assert response.status_code == 400


def test_logout_ends_the_session(gz, admin_client):
    token = page_csrf(admin_client, "/admin/")
    assert admin_client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert admin_client.get("/admin/").status_code == 302


def test_cli_create_list_reset_password(gz, app):
    runner = app.test_cli_runner()
    from gazelab_cli import cli
    result = runner.invoke(cli, ["admin", "create", "bob"], input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    result = runner.invoke(cli, ["admin", "create", "bob", "--password", "another-pass"])
    assert result.exit_code != 0 and "exists already" in result.output
    result = runner.invoke(cli, ["admin", "create", "short", "--password", "abc"])
    assert result.exit_code != 0 and "at least 8" in result.output
    result = runner.invoke(cli, ["admin", "list"])
    assert result.output.startswith("bob\t") and "last login never" in result.output
    result = runner.invoke(cli, ["admin", "reset-password", "bob"], input="new-password-1\nnew-password-1\n")
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["admin", "reset-password", "nobody", "--password", "whatever-1"]).exit_code != 0
    client = app.test_client()
    assert login(client, "bob", "s3cret-pass").status_code == 401
    assert login(client, "bob", "new-password-1").status_code == 302


# --- overview, review ------------------------------------------------------------------

def test_overview_counts_reasons_and_coverage_picture(gz, admin_client):
    seed(gz.database_url, volunteers=2, samples_each=12)
    html = admin_client.get("/admin/").get_data(as_text=True)
    assert re.search(r'data-count="accepted"><div class="value">20<', html)
    assert re.search(r'data-count="rejected"><div class="value">4<', html)
    assert "attention_failed" in html and "face_too_small" in html
    assert "2026-11-20" in html and "2026-11-21" in html
    png = admin_client.get("/admin/coverage.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    image = cv2.imdecode(np.frombuffer(png.data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 10


def test_review_grid_filters_and_keyset_pages(gz, admin_client):
    session_ids = seed(gz.database_url, volunteers=2, samples_each=20)
    with session_scope(gz.database_url) as db:
        ids = db.scalars(select(Sample.id).order_by(Sample.id.desc())).all()
    html = admin_client.get("/admin/review").get_data(as_text=True)
    assert "40 match, newest first" in html and html.count('class="sample ') == 24
    assert [int(i) for i in re.findall(r'data-sample="(\d+)"', html)] == ids[:24]
    assert 'id="newer"' not in html
    older = re.search(r'href="([^"]+)" id="older"', html).group(1).replace("&amp;", "&")
    assert older == f"/admin/review?before={ids[23]}"
    html = admin_client.get(older).get_data(as_text=True)
    assert [int(i) for i in re.findall(r'data-sample="(\d+)"', html)] == ids[24:]
    assert 'id="older"' not in html
    newer = re.search(r'href="([^"]+)" id="newer"', html).group(1).replace("&amp;", "&")
    html = admin_client.get(newer).get_data(as_text=True)
    assert [int(i) for i in re.findall(r'data-sample="(\d+)"', html)] == ids[:24]
    # the cursor keeps the filters: 18 accepted in one session, 10 per page here
    html = admin_client.get(f"/admin/review?session={session_ids[1]}&status=accepted").get_data(as_text=True)
    assert html.count('class="sample accepted"') == 18 and "match" not in html.split("</h1>")[0]
    assert 'id="older"' not in html
    html = admin_client.get("/admin/review?status=accepted").get_data(as_text=True)
    assert "36 match" in html
    cursor = re.search(r'href="([^"]+)" id="older"', html).group(1).replace("&amp;", "&")
    assert "status=accepted" in cursor and "before=" in cursor
    html = admin_client.get(cursor).get_data(as_text=True)
    assert html.count('class="sample accepted"') == 12 and 'class="sample rejected"' not in html
    html = admin_client.get("/admin/review?attention_failed=1").get_data(as_text=True)
    assert html.count('class="sample ') == 2
    html = admin_client.get("/admin/review?reason=face_too_small").get_data(as_text=True)
    assert html.count('class="sample ') == 2
    assert "No samples match." in admin_client.get("/admin/review?reason=no_such_reason").get_data(as_text=True)
    assert admin_client.get("/admin/review?status=bogus").status_code == 400
    assert admin_client.get("/admin/review?before=x").status_code == 400
    assert admin_client.get("/admin/review?after=-3").status_code == 400
    sample_id = int(re.search(r'data-sample="(\d+)"', html).group(1))
    image = admin_client.get(f"/admin/samples/{sample_id}/face.jpg")
    assert image.mimetype == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR).shape == (64, 64, 3)
    assert admin_client.get(f"/admin/samples/{sample_id}/nose.jpg").status_code == 404
    assert admin_client.get("/admin/samples/99999/face.jpg").status_code == 404


def test_reject_many_then_accept_and_reject_whole_session(gz, admin_client):
    session_ids = seed(gz.database_url, volunteers=2, samples_each=6)
    token = page_csrf(admin_client, "/admin/review")
    with session_scope(gz.database_url) as db:
        ids = db.scalars(select(Sample.id).where(Sample.status == "accepted").limit(3)).all()
    response = admin_client.post("/admin/review/samples", data={
        "csrf_token": token, "decision": "reject", "reason": "Eyes closed, blurry", "sample_id": ids,
        "back": "/admin/review?status=accepted"})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/review?status=accepted"
    with session_scope(gz.database_url) as db:
        rejected = db.scalars(select(Sample).where(Sample.id.in_(ids))).all()
        assert {s.status for s in rejected} == {"rejected"}
        assert {s.reasons for s in rejected} == {"review:eyes_closed_blurry"}
        assert all(s.reviewed_at for s in rejected)
    admin_client.post("/admin/review/samples", data={"csrf_token": token, "decision": "accept", "sample_id": ids[:1]})
    with session_scope(gz.database_url) as db:
        assert db.get(Sample, ids[0]).status == "accepted" and db.get(Sample, ids[0]).reasons == ""

    response = admin_client.post("/admin/review/session", data={
        "csrf_token": token, "decision": "reject", "reason": "looked away", "session_id": session_ids[1]})
    assert response.status_code == 302
    with session_scope(gz.database_url) as db:
        statuses = db.scalars(select(Sample.status).where(Sample.session_id == session_ids[1])).all()
        assert set(statuses) == {"rejected"} and len(statuses) == 6
    assert admin_client.post("/admin/review/session", data={
        "csrf_token": token, "decision": "reject", "session_id": "nope"}).status_code == 404
    assert admin_client.post("/admin/review/session", data={
        "csrf_token": token, "decision": "explode", "session_id": session_ids[0]}).status_code == 400
    assert admin_client.post("/admin/review/samples", data={
        "csrf_token": token, "decision": "reject", "sample_id": "abc"}).status_code == 400


def test_outlier_flagging_uses_three_times_the_median(gz):
    from collection.review import flag_outliers
    seed(gz.database_url, volunteers=1, samples_each=10, with_failed_attention=False)
    with session_scope(gz.database_url) as db:
        ids = db.scalars(select(Sample.id).where(Sample.status == "accepted").order_by(Sample.id)).all()
        errors = {sample_id: 40.0 for sample_id in ids}
        errors[ids[0]], errors[ids[1]] = 121.0, 119.0  # median 40: 121 > 120 is an outlier, 119 is not
        result = flag_outliers(db, errors)
    assert result["flagged"] == 1 and result["median_px"] == 40.0
    with session_scope(gz.database_url) as db:
        first, second = db.get(Sample, ids[0]), db.get(Sample, ids[1])
        assert (first.status, first.reasons, first.model_error_px) == ("flagged", "model_outlier", 121.0)
        assert second.status == "accepted" and second.model_error_px == 119.0


def test_delete_volunteer_from_admin(gz, admin_client):
    seed(gz.database_url, volunteers=2, samples_each=3)
    with session_scope(gz.database_url) as db:
        volunteer_id = db.scalars(select(Volunteer.id)).first()
    token = page_csrf(admin_client, "/admin/review")
    assert b'id="delete-volunteer"' in admin_client.get(f"/admin/review?volunteer={volunteer_id}").data
    assert admin_client.post(f"/admin/volunteers/{volunteer_id}/delete",
                             data={"csrf_token": token}).status_code == 302
    with session_scope(gz.database_url) as db:
        assert db.scalar(select(func.count()).select_from(Sample)) == 3
        assert db.get(Volunteer, volunteer_id) is None
    assert admin_client.post(f"/admin/volunteers/{volunteer_id}/delete",
                             data={"csrf_token": token}).status_code == 404
    # the collection API's DELETE accepts this admin login with the X-CSRF-Token header
    with session_scope(gz.database_url) as db:
        other = db.scalars(select(Volunteer.id)).one()
    assert admin_client.delete(f"/api/v1/volunteers/{other}").status_code == 403
    response = admin_client.delete(f"/api/v1/volunteers/{other}", headers={"X-CSRF-Token": token})
    assert response.status_code == 200 and response.get_json()["deleted"]["samples"] == 3


# --- export ----------------------------------------------------------------------------

def _export(gz, admin_client, status: str) -> zipfile.ZipFile:
    """Ask for an export on the page, write it as the worker does, download it."""
    from collection.export import write_export
    token = page_csrf(admin_client, "/admin/export")
    assert admin_client.post("/admin/exports", data={"status": status, "csrf_token": token}).status_code == 302
    with session_scope(gz.database_url) as db:
        job = db.scalars(select(ExportJob).order_by(ExportJob.id.desc())).first()
        job_id = job.id
        write_export(db, gz.config, job_id)
    assert f"/admin/exports/{job_id}.zip" in admin_client.get("/admin/export").get_data(as_text=True)
    response = admin_client.get(f"/admin/exports/{job_id}.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert archive.testzip() is None
    return archive


def test_export_zip_reference_layout_filtered_by_status(gz, admin_client):
    seed(gz.database_url, volunteers=2, samples_each=5)
    archive = _export(gz, admin_client, "accepted")
    rows = list(csv.DictReader(io.TextIOWrapper(archive.open("positions.csv"), encoding="utf-8")))
    assert list(rows[0]) == ["id", "x", "y", "head_angle", "screen_width", "screen_height",
                             "session", "volunteer", "yaw", "pitch"]
    assert len(rows) == 6
    with session_scope(gz.database_url) as db:
        sample = db.get(Sample, int(rows[0]["id"]))
        assert sample.status == "accepted"
        assert float(rows[0]["x"]) == pytest.approx(sample.target_x, abs=1e-3)
        assert float(rows[0]["head_angle"]) == pytest.approx(sample.roll, abs=1e-3)
        assert rows[0]["session"] == sample.session_id and rows[0]["screen_width"] == "1600"
    names = set(archive.namelist())
    for kind in ("face", "face_aligned", "l_eye", "r_eye", "head_pos"):
        for row in rows:
            assert f"{kind}/{row['id']}.jpg" in names
    face = cv2.imdecode(np.frombuffer(archive.read(f"face/{rows[0]['id']}.jpg"), np.uint8), cv2.IMREAD_COLOR)
    assert face.shape == (64, 64, 3)
    assert len(names) == 1 + 5 * 6

    everything = _export(gz, admin_client, "all")
    assert len(everything.read("positions.csv").decode().strip().splitlines()) == 1 + 10
    token = page_csrf(admin_client, "/admin/export")
    assert admin_client.post("/admin/exports", data={"status": "bogus", "csrf_token": token}).status_code == 400
    assert admin_client.get("/admin/exports/999.zip").status_code == 404


def test_export_progress_in_batches_and_expiry(gz):
    """The job's progress row advances batch by batch; old zips are removed (job expired)."""
    from collection import export
    seed(gz.database_url, volunteers=1, samples_each=30)
    with session_scope(gz.database_url) as db:
        job_id = export.create_job(db, "all").id
    old_batch, export.BATCH = export.BATCH, 4
    try:
        with session_scope(gz.database_url) as db:
            job = export.write_export(db, gz.config, job_id)
            assert (job.status, job.done, job.total) == ("done", 30, 30)
            key, name, size = export.finished_export(blob_store(gz.config), job)
            path = blob_store(gz.config).local_path(key)
            assert job.parts == 1 and name == job.file_name and export.finished_export(blob_store(gz.config), job, 2) is None
            assert size == path.stat().st_size == job.size_bytes
            assert zipfile.ZipFile(path).testzip() is None and len(zipfile.ZipFile(path).namelist()) == 1 + 5 * 30
            assert oct(path.stat().st_mode & 0o777) == "0o600"
            job.finished_at = job.finished_at - dt.timedelta(hours=gz.config.server.export_keep_hours + 1)
            db.commit()
            assert export.remove_old_exports(db, gz.config) == 1
            assert not path.exists() and db.get(ExportJob, job_id).status == "expired"
    finally:
        export.BATCH = old_batch


def test_a_large_export_comes_in_parts_that_unzip_into_the_same_layout(gz, admin_client):
    """[server] export_part_samples bounds each zip; positions.csv (all samples) is in part 1,
    every sample's crops in exactly one part; each part downloads on its own."""
    from collection import export
    seed(gz.database_url, volunteers=2, samples_each=11)
    config = GazeEnv(gz.data_dir, gz.database_url, overrides={"GAZELAB_SERVER_EXPORT_PART_SAMPLES": "8"}).config
    old_batch, export.BATCH = export.BATCH, 3     # batches straddle the part boundaries
    try:
        with session_scope(gz.database_url) as db:
            job = export.write_export(db, config, export.create_job(db, "all").id)
            assert (job.status, job.done, job.total, job.parts) == ("done", 22, 22, 3)
            job_id = job.id
    finally:
        export.BATCH = old_batch
    parts = []
    for part in (1, 2, 3):
        response = admin_client.get(f"/admin/exports/{job_id}/part{part}.zip" if part > 1 else f"/admin/exports/{job_id}.zip")
        assert response.status_code == 200 and f"-part{part}.zip" in response.headers["Content-Disposition"]
        parts.append(zipfile.ZipFile(io.BytesIO(response.data)))
    for bad in ("part4.zip", "part0.zip"):      # no such part: the view says so
        response = admin_client.get(f"/admin/exports/{job_id}/{bad}")
        assert response.status_code == 404 and response.get_json()["error"] == "not_found", bad
    for bad in ("part-1.zip", "part99999999999999999999999.zip", "partx.zip"):   # no such route
        assert admin_client.get(f"/admin/exports/{job_id}/{bad}").status_code == 404, bad
    assert [len([n for n in p.namelist() if n.startswith("face/")]) for p in parts] == [8, 8, 6]
    assert ["positions.csv" in p.namelist() for p in parts] == [True, False, False]
    positions = list(csv.DictReader(io.StringIO(parts[0].read("positions.csv").decode())))
    faces = sorted(n for p in parts for n in p.namelist() if n.startswith("face/"))
    assert faces == sorted(f"face/{row['id']}.jpg" for row in positions) and len(faces) == 22
    page = admin_client.get("/admin/export").get_data(as_text=True)
    assert f"/admin/exports/{job_id}/part3.zip" in page and "unzip them into one folder" in page


def test_an_erasure_cancels_a_running_export_and_its_parts_go(gz):
    """A deletion while an export is being written: the job ends failed and no zip stays."""
    from collection import export
    from collection.erasure import delete_volunteer
    seed(gz.database_url, volunteers=2, samples_each=6)
    with session_scope(gz.database_url) as db:
        job_id = export.create_job(db, "all").id
        victim = db.scalar(select(Volunteer.id))
    original = export._write_crops
    def erase_midway(archive, rows):
        original(archive, rows)
        with session_scope(gz.database_url) as other:
            delete_volunteer(other, gz.config, victim)
        export._write_crops = original
    export._write_crops = erase_midway
    try:
        with session_scope(gz.database_url) as db:
            job = export.write_export(db, gz.config, job_id)
    finally:
        export._write_crops = original
    assert job.status == "failed" and "cancelled" in job.error
    assert blob_store(gz.config).keys("exports/") == []


# --- training pages (runs inserted directly; queueing through the trainer is in the browser test) ---

def insert_finished_run(database_url: str, mean_px: float = 80.0) -> int:
    from gazelab.schema import ModelArtifact, RunFigure, TrainingRun
    from webapp.admin.overview import heatmap_png
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "val_error_px": 200.0 / e}
               for e in range(1, 4)]
    stats = {"mean_px": mean_px, "rmse_px": mean_px * 1.2, "median_px": mean_px * 0.9, "p90_px": mean_px * 1.8}
    with session_scope(database_url) as db:
        run = TrainingRun(status="done", params={"epochs": 3, "batch_size": 16},
                          progress={"epoch": 3, "epochs": 3, "history": history},
                          metrics={"test": {"model": stats, "ridge": {k: v * 2 for k, v in stats.items()},
                                            "mean": {k: v * 3 for k, v in stats.items()}},
                                   "ratio_to_ridge": 0.5, "ratio_to_mean": 0.33})
        db.add(run)
        db.flush()
        png = heatmap_png(np.arange(16 * 9).reshape(9, 16), "error", "px")
        for name in ("error_heatmap", "coverage_heatmap", "error_histogram", "loss_curves"):
            db.add(RunFigure(run_id=run.id, name=name, png=png))
        db.add(ModelArtifact(run_id=run.id, weights=b"", architecture={}, is_active=False))
        return run.id


def test_runs_list_run_page_json_figures_and_compare(gz, admin_client):
    first, second = insert_finished_run(gz.database_url, 80.0), insert_finished_run(gz.database_url, 60.0)
    html = admin_client.get("/admin/runs").get_data(as_text=True)
    assert f'data-run="{first}"' in html and "80.0" in html and "60.0" in html
    learning_rate = gz.config.training.learning_rate
    assert 'name="csrf_token"' in html and f'name="learning_rate" value="{learning_rate}"' in html
    html = admin_client.get(f"/admin/runs/{first}").get_data(as_text=True)
    assert "ridge baseline" in html and "0.50" in html and 'id="fig-error_heatmap"' in html
    assert 'id="promote"' in html
    summary = admin_client.get(f"/admin/api/runs/{first}").get_json()
    assert summary["status"] == "done" and len(summary["progress"]["history"]) == 3
    assert summary["figures"] == ["coverage_heatmap", "error_heatmap", "error_histogram", "loss_curves"]
    figure = admin_client.get(f"/admin/runs/{first}/figures/error_heatmap.png")
    assert figure.mimetype == "image/png" and figure.data.startswith(b"\x89PNG")
    assert admin_client.get(f"/admin/runs/{first}/figures/nope.png").status_code == 404
    html = admin_client.get(f"/admin/runs/compare?a={first}&b={second}").get_data(as_text=True)
    assert f"Run #{first}" in html and f"Run #{second}" in html and html.count('class="figure"') == 8
    assert admin_client.get("/admin/runs/compare?a=1").status_code == 400
    assert admin_client.get("/admin/runs/999").status_code == 404
    assert admin_client.get("/admin/api/runs/999").get_json()["error"] == "not_found"


def test_runs_list_pages_by_keyset(gz, admin_client):
    from gazelab.schema import TrainingRun
    with session_scope(gz.database_url) as db:
        db.add_all([TrainingRun(status="done", params={"epochs": i}) for i in range(55)])
    with session_scope(gz.database_url) as db:
        ids = db.scalars(select(TrainingRun.id).order_by(TrainingRun.id.desc())).all()
    html = admin_client.get("/admin/runs").get_data(as_text=True)
    assert [int(i) for i in re.findall(r'data-run="(\d+)"', html)] == ids[:50] and 'id="newer-runs"' not in html
    older = re.search(r'href="([^"]+)" id="older-runs"', html).group(1)
    assert older == f"/admin/runs?before={ids[49]}"
    html = admin_client.get(older).get_data(as_text=True)
    assert [int(i) for i in re.findall(r'data-run="(\d+)"', html)] == ids[50:] and 'id="older-runs"' not in html
    newer = re.search(r'href="([^"]+)" id="newer-runs"', html).group(1)
    html = admin_client.get(newer).get_data(as_text=True)
    assert [int(i) for i in re.findall(r'data-run="(\d+)"', html)] == ids[:50]
    assert admin_client.get("/admin/runs?before=abc").status_code == 400


def test_queue_form_rejects_malformed_numbers(gz, admin_client):
    token = page_csrf(admin_client, "/admin/runs")
    response = admin_client.post("/admin/runs", data={"csrf_token": token, "epochs": "many"})
    assert response.status_code == 400 and "epochs" in response.get_json()["message"]


def test_live_endpoint_needs_frame_screen_and_model(gz, admin_client):
    token = page_csrf(admin_client, "/admin/live")
    headers = {"X-CSRF-Token": token}
    assert admin_client.post("/admin/api/live/frame", headers=headers).status_code == 400
    def frame():
        return io.BytesIO(astronaut_crops()["face"]), "f.jpg"
    response = admin_client.post("/admin/api/live/frame", headers=headers,
                                 data={"frame": frame(), "screen_width": "wide", "screen_height": "900"})
    assert response.status_code == 400 and response.get_json()["error"] == "bad_screen"
    assert b"No active model yet" in admin_client.get("/admin/live").data
    response = admin_client.post("/admin/api/live/frame", headers=headers,
                                 data={"frame": frame(), "screen_width": "1600", "screen_height": "900"})
    assert response.status_code == 409 and response.get_json()["error"] == "no_active_model"
    response = admin_client.post("/admin/api/live/frame", data={"frame": frame()})
    assert response.status_code == 400 and response.get_json()["error"] == "csrf_failed"
    response = admin_client.post("/admin/api/live/calibration", headers=headers,
                                 data={"frame": frame(), "screen_width": "1600", "screen_height": "900"})
    assert response.status_code == 409 and response.get_json()["error"] == "no_active_model"
