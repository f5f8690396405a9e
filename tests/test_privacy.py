"""Privacy and abuse hardening: erasure of every copy, private files, one secret key,
login throttling and revocation, security headers, limits for anonymous callers."""
from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from sqlalchemy import func, select

from collection.erasure import abandon_idle_sessions, delete_volunteer, purge_expired
from gazelab.config import ConfigError
from gazelab.db import session_scope
from gazelab.files import SNAPSHOT_DIR, private_subdir, secret_key
from gazelab.schema import (CollectionSession, ModelArtifact, Sample, SampleImages, TrainingRun, Volunteer,
                            utcnow)
from tests.support import REPO, GazeEnv, short_tmpdir
from tests.test_admin import ADMIN, PASSWORD, admin_client, login, make_admin, page_csrf  # noqa: F401
from tests.test_api import auth, face_jpeg, new_session, upload  # noqa: F401 (face_jpeg: fixture)
from trainer.snapshot import load_snapshot
from trainer.synthetic import insert_dataset


def _volunteer_ids(gz) -> list[str]:
    with session_scope(gz.database_url) as db:
        return db.scalars(select(Volunteer.id).order_by(Volunteer.source)).all()


# --- erasure ------------------------------------------------------------------------------

def test_delete_then_train_finds_none_of_the_deleted_crops(gz):
    with session_scope(gz.database_url) as db:
        insert_dataset(db, volunteers=4, samples_per_volunteer=12, seed=5, fmt="jpeg")
    gone = _volunteer_ids(gz)[0]
    cache = private_subdir(gz.config, SNAPSHOT_DIR)
    with session_scope(gz.database_url) as db:
        before = load_snapshot(db, 64, cache)
        crops = db.execute(select(SampleImages.face, SampleImages.l_eye).join(Sample)
                           .where(Sample.volunteer_id == gone)).all()
        per_volunteer = {"per_volunteer": [{"volunteer": gone, "mean_px": 1.0},
                                           {"volunteer": "someone-else", "mean_px": 2.0}]}
        run = TrainingRun(status="done", params={}, split={"by": "volunteer", "groups": {
            "train": _volunteer_ids(gz)[1:], "test": [gone]}}, metrics=per_volunteer)
        db.add(run)
        db.flush()
        db.add(ModelArtifact(run_id=run.id, weights=b"w", metrics=per_volunteer))
    files = [p for p in cache.rglob("*") if p.is_file() and p.name != ".lock"]
    assert files and {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}
    assert {oct(p.stat().st_mode & 0o777) for p in cache.rglob("*") if p.is_dir()} == {"0o700"}
    deleted_rows = before.images["face"][before.volunteer_ids == gone]
    max_id = int(before.sample_ids.max())

    with session_scope(gz.database_url) as db:
        removed = delete_volunteer(db, gz.config, gone)
    assert removed["samples"] == 12 and removed["files"] >= 1 and removed["runs_scrubbed"] == 1
    # the shard that held their crops is gone; no file of the store holds their pixels
    stored_files = b"".join(p.read_bytes() for p in cache.rglob("*") if p.is_file())
    assert not any(row.tobytes() in stored_files for row in deleted_rows)
    # the database file (and its WAL) keep no byte of the deleted crops (secure_delete)
    db_path = gz.database_url.split("///", 1)[1]
    stored = open(db_path, "rb").read()
    wal = f"{db_path}-wal"
    stored += open(wal, "rb").read() if __import__("os").path.exists(wal) else b""
    for face, l_eye in crops:
        # the last bytes before the end marker: entropy-coded pixels, unique to each crop
        assert face[-80:-16] not in stored and l_eye[-80:-16] not in stored

    with session_scope(gz.database_url) as db:   # ids are never handed out again
        insert_dataset(db, volunteers=1, samples_per_volunteer=12, seed=6, fmt="jpeg")
        after = load_snapshot(db, 64, cache)
        run = db.scalars(select(TrainingRun)).one()
        artifact_metrics = db.scalars(select(ModelArtifact)).one().metrics
    assert gone not in str(artifact_metrics) and len(artifact_metrics["per_volunteer"]) == 1
    assert len(after) == 48 and gone not in set(after.volunteer_ids)
    assert set(after.sample_ids) & set(before.sample_ids[before.volunteer_ids == gone]) == set()
    assert (after.sample_ids[-12:] > max_id).all()
    assert not any((after.images["face"][:] == row).all(axis=(1, 2, 3)).any() for row in deleted_rows)
    stored_files = b"".join(p.read_bytes() for p in cache.rglob("*") if p.is_file())
    assert not any(row.tobytes() in stored_files for row in deleted_rows)
    assert gone not in str(run.split) and gone not in str(run.metrics)
    assert run.split["erased_ids"] == 1 and run.data_deleted_at is not None
    assert len(run.metrics["per_volunteer"]) == 1



def test_runs_page_marks_models_trained_on_deleted_data(gz, admin_client):  # noqa: F811
    with session_scope(gz.database_url) as db:
        db.add(TrainingRun(status="done", params={}, data_deleted_at=utcnow()))
    assert "since deleted" in admin_client.get("/admin/runs").get_data(as_text=True)


def test_data_dir_and_files_are_private(gz, app):
    assert oct(gz.data_dir.stat().st_mode & 0o777) == "0o700"
    db_file = gz.data_dir / "gazelab.db"
    assert oct(db_file.stat().st_mode & 0o777) == "0o600"


def test_admin_images_are_not_cached(gz, admin_client):  # noqa: F811
    from tests.test_admin import seed
    seed(gz.database_url, volunteers=1, samples_each=1)
    with session_scope(gz.database_url) as db:
        sample_id = db.scalar(select(Sample.id))
    response = admin_client.get(f"/admin/samples/{sample_id}/face.jpg")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"


def test_delete_with_extra_characters_is_not_found_and_deletes_nothing(client, gz, face_jpeg):
    created = new_session(client)
    upload(client, created, face_jpeg)
    response = client.delete(f"/api/v1/volunteers/{created['volunteer_id']}x", headers=auth(created))
    assert response.status_code == 404
    with session_scope(gz.database_url) as db:
        assert db.scalar(select(func.count()).select_from(Sample)) == 1


def test_upload_racing_a_deletion_never_answers_500(app, gz, face_jpeg):
    """Frames keep arriving while the volunteer is erased: every answer is 2xx or 4xx, and
    no row of that volunteer is left afterwards."""
    import threading
    client = app.test_client()
    created = new_session(client)
    statuses: list[int] = []

    def uploader() -> None:
        own = app.test_client()
        for i in range(12):
            statuses.append(upload(own, created, face_jpeg, frame_id=f"race-frame-{i:04d}").status_code)

    thread = threading.Thread(target=uploader)
    thread.start()
    time.sleep(0.15)
    assert client.delete(f"/api/v1/volunteers/{created['volunteer_id']}", headers=auth(created)).status_code == 200
    thread.join(60)
    assert statuses and all(code < 500 for code in statuses), statuses
    assert any(code in (401, 404, 409) for code in statuses) or all(code in (200, 201) for code in statuses)
    with session_scope(gz.database_url) as db:
        assert db.scalar(select(func.count()).select_from(Sample).where(
            Sample.volunteer_id == created["volunteer_id"])) == 0


def test_retention_purge_and_abandoned_sessions(gz):
    with session_scope(gz.database_url) as db:
        insert_dataset(db, volunteers=2, samples_per_volunteer=3, seed=1)
        old, young = db.scalars(select(Volunteer).order_by(Volunteer.source)).all()
        old.created_at = utcnow() - dt.timedelta(days=40)
        sessions = db.scalars(select(CollectionSession)).all()
        for session in sessions:
            session.status, session.last_activity_at = "active", utcnow() - dt.timedelta(hours=2)
        old_id = old.id
    keep = GazeEnv(gz.data_dir, gz.database_url, gz.broker_url, {"GAZELAB_SERVER_RETENTION_DAYS": "0"}).config
    purge = GazeEnv(gz.data_dir, gz.database_url, gz.broker_url, {"GAZELAB_SERVER_RETENTION_DAYS": "30"}).config
    with session_scope(gz.database_url) as db:
        assert purge_expired(db, keep) == 0
        assert purge_expired(db, purge) == 1
        assert db.get(Volunteer, old_id) is None
        assert abandon_idle_sessions(db, gz.config) == 1
        assert db.scalars(select(CollectionSession.status)).all() == ["abandoned"]


# --- secrets ------------------------------------------------------------------------------

RACE_SCRIPT = """
import sys
from gazelab.config import load_config
from gazelab.files import secret_key
config = load_config(environ={"GAZELAB_SERVER_DATA_DIR": sys.argv[1]})
print(secret_key(config))
"""


def test_three_processes_starting_together_share_one_key():
    for attempt in range(8):
        data_dir = short_tmpdir("gzkey")
        processes = [subprocess.Popen([sys.executable, "-c", RACE_SCRIPT, str(data_dir)], cwd=REPO,
                                      stdout=subprocess.PIPE, text=True) for _ in range(3)]
        keys = {p.communicate(timeout=60)[0].strip() for p in processes}
        assert len(keys) == 1 and len(keys.pop()) == 64, attempt
        assert oct((data_dir / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_empty_or_short_secret_refuses_to_start(tmp_path):
    from gazelab.config import load_config
    (tmp_path / "secret_key").write_text("")
    config = load_config(environ={"GAZELAB_SERVER_DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="empty or shorter"):
        secret_key(config)
    short = load_config(environ={"GAZELAB_SERVER_DATA_DIR": str(tmp_path), "GAZELAB_SERVER_SECRET_KEY": "abc"})
    with pytest.raises(ConfigError, match=r"\[server\] secret_key"):
        secret_key(short)


# --- admin login -------------------------------------------------------------------------

def test_login_is_throttled_per_name_with_retry_after(gz, client):
    throttled = GazeEnv(gz.data_dir, gz.database_url, gz.broker_url,
                        {"GAZELAB_SERVER_LOGIN_ATTEMPTS": "3"})
    from webapp import create_app
    app = create_app(throttled.config)
    name = "thrott-" + gz.data_dir.name
    make_admin(gz.database_url, name)
    # an address of its own: the suite's other logins come from 127.0.0.1
    web = app.test_client()
    web.environ_base["REMOTE_ADDR"] = f"10.8.{int(time.time()) % 250}.{len(name) % 250}"

    def attempt(password: str):
        token = page_csrf(web)
        return web.post("/admin/login", data={"name": name, "password": password, "csrf_token": token})
    codes = [attempt("wrong-password").status_code for _ in range(4)]
    assert codes[:3] == [401, 401, 401] and codes[3] == 429
    response = attempt(PASSWORD)   # even the right password waits
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1


def test_unknown_name_takes_as_long_as_a_wrong_password(gz, client):
    make_admin(gz.database_url)

    def median_ms(name: str) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            assert login(client, name, "wrong-password").status_code == 401
            times.append((time.perf_counter() - started) * 1000)
        return float(np.median(times))
    known, unknown = median_ms(ADMIN), median_ms("nobody-" + gz.data_dir.name)
    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_logout_and_password_reset_revoke_copied_cookies(gz, app):
    from collection.accounts import set_password
    make_admin(gz.database_url)
    first, copy = app.test_client(), app.test_client()
    assert login(first).status_code == 302
    cookie = first.get_cookie("session")
    copy.set_cookie("session", cookie.value)
    assert copy.get("/admin/").status_code == 200
    token = page_csrf(first, "/admin/")
    first.post("/admin/logout", data={"csrf_token": token})
    assert copy.get("/admin/").status_code == 302           # the copy stopped working too

    assert login(first).status_code == 302
    copy.set_cookie("session", first.get_cookie("session").value)
    assert copy.get("/admin/").status_code == 200
    with session_scope(gz.database_url) as db:
        set_password(db, ADMIN, "a-new-password")
    assert copy.get("/admin/").status_code == 302 and first.get("/admin/").status_code == 302


def test_cookie_lifetime_and_secure_flag_follow_config(gz):
    from webapp import create_app
    secure = GazeEnv(gz.data_dir, gz.database_url, gz.broker_url,
                     {"GAZELAB_SERVER_SECURE_COOKIES": "True", "GAZELAB_SERVER_SESSION_HOURS": "2"})
    app = create_app(secure.config)
    make_admin(gz.database_url)
    response = login(app.test_client())
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    expires = dt.datetime.strptime(re.search(r"Expires=([^;]+)", cookie).group(1), "%a, %d %b %Y %H:%M:%S GMT")
    assert abs((expires - dt.datetime.utcnow()).total_seconds() - 7200) < 120


# --- headers -------------------------------------------------------------------------------

def test_every_route_sends_the_security_headers(app, client):
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(path, method=method)
            headers = response.headers
            assert "script-src 'self'" in headers["Content-Security-Policy"], (path, method)
            assert "unsafe-inline" not in headers["Content-Security-Policy"]
            assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Referrer-Policy"] == "no-referrer"
            camera = "camera=(self)" if path in ("/", "/admin/live") else "camera=()"
            assert camera in headers["Permissions-Policy"], (path, method)


def test_no_template_has_inline_script_or_style():
    for template in (REPO / "webapp" / "templates").rglob("*.html"):
        html = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), template
        assert not re.search(r"\s(style|on[a-z]+)=", html), template


# --- anonymous limits ----------------------------------------------------------------------

SESSION = {"consent": True, "consent_version": "2026-11", "screen_width": 1280, "screen_height": 720,
           "device_pixel_ratio": 1}


def test_session_creation_is_limited_per_ip(gz):
    from webapp import create_app
    limited = GazeEnv(gz.data_dir, gz.database_url, gz.broker_url,
                      {"GAZELAB_SERVER_SESSIONS_PER_IP_PER_HOUR": "2"})
    client = create_app(limited.config).test_client()
    address = {"REMOTE_ADDR": f"10.9.{len(gz.data_dir.name)}.{int(time.time()) % 250}"}
    codes = [client.post("/api/v1/sessions", json=SESSION, environ_base=address).status_code for _ in range(3)]
    assert codes == [201, 201, 429]


def test_screens_beyond_real_ones_and_old_consent_are_refused(client, gz):
    too_big = client.post("/api/v1/sessions", json={**SESSION, "screen_width": 20000})
    assert too_big.status_code == 422 and "screen_width" in too_big.json["message"]
    old = client.post("/api/v1/sessions", json={**SESSION, "consent_version": "2020-01"})
    assert old.status_code == 422 and old.json["error"] == "wrong_consent_version"
    with session_scope(gz.database_url) as db:
        assert db.scalar(select(func.count()).select_from(Volunteer)) == 0


def test_finished_sessions_take_no_more_data_and_tokens_expire(client, gz, face_jpeg):
    created = new_session(client)
    sid = created["session_id"]
    assert client.post(f"/api/v1/sessions/{sid}/finish", headers=auth(created)).status_code == 200
    response = upload(client, created, face_jpeg)
    assert response.status_code == 409 and response.json["error"] == "session_closed"
    trial = client.post(f"/api/v1/sessions/{sid}/trials", headers=auth(created), json={
        "kind": "collection", "target_x": 1, "target_y": 1, "shown_at": "2026-11-21T10:00:00Z"})
    assert trial.status_code == 409

    fresh = new_session(client)
    with session_scope(gz.database_url) as db:
        db.get(CollectionSession, fresh["session_id"]).started_at = utcnow() - dt.timedelta(
            hours=gz.config.server.session_ttl_hours + 1)
    expired = client.get(f"/api/v1/sessions/{fresh['session_id']}", headers=auth(fresh))
    assert expired.status_code == 401 and expired.json["error"] == "token_expired"
    with session_scope(gz.database_url) as db:
        assert db.scalar(select(func.count()).select_from(Sample)) == 0


def test_healthz_answers_in_a_few_ms(client):
    client.get("/healthz")
    started = time.perf_counter()
    for _ in range(10):
        client.get("/healthz")
    assert (time.perf_counter() - started) / 10 < 0.05


def test_whole_session_form_acts_on_the_filtered_session_even_an_old_one(gz, admin_client):  # noqa: F811
    from tests.test_admin import seed
    session_ids = seed(gz.database_url, volunteers=2, samples_each=2)
    with session_scope(gz.database_url) as db:   # the filtered session is older than 200 others
        volunteer = db.scalars(select(Volunteer)).first()
        for i in range(201):
            db.add(CollectionSession(volunteer_id=volunteer.id, token_hash="x" * 64, screen_width=800,
                                     screen_height=600, started_at=utcnow() + dt.timedelta(seconds=i)))
    html = admin_client.get(f"/admin/review?session={session_ids[0]}").get_data(as_text=True)
    selected = re.search(r'<option value="([0-9a-f]+)" selected', html)
    assert selected and selected.group(1) == session_ids[0]
