import subprocess

from sqlalchemy import inspect

from gazelab import migrate
from gazelab.db import get_engine
from tests.support import VENV_BIN


def test_migrations_match_models(gz_any):
    assert migrate.current_revision(gz_any.database_url) is not None
    assert migrate.schema_drift(gz_any.database_url) == []


def test_expected_tables_and_indexes(gz_any):
    inspector = inspect(get_engine(gz_any.database_url))
    tables = set(inspector.get_table_names())
    assert {"volunteers", "collection_sessions", "trials", "samples", "sample_images",
            "raw_frames", "training_runs", "run_figures", "model_artifacts", "admin_users"} <= tables
    sample_indexes = {ix["name"] for ix in inspector.get_indexes("samples")}
    assert {"ix_samples_status_session", "ix_samples_volunteer_status"} <= sample_indexes


def test_db_upgrade_twice_is_a_noop(gz_any):
    env = gz_any.env
    first = subprocess.run([str(VENV_BIN / "gazelab"), "db", "upgrade"], env=env,
                           capture_output=True, text=True)
    second = subprocess.run([str(VENV_BIN / "gazelab"), "db", "upgrade"], env=env,
                            capture_output=True, text=True)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "(no change)" in second.stdout


def test_db_upgrade_on_new_database_creates_schema(tmp_path):
    url = f"sqlite:///{tmp_path}/new.db"
    migrate.upgrade(url)
    migrate.upgrade(url)
    assert migrate.schema_drift(url) == []


def test_upgrade_keeps_rows_and_cascades_and_never_reuses_ids(tmp_path):
    """0003 rebuilds the integer-id tables on SQLite (AUTOINCREMENT): rows, foreign keys
    with ON DELETE CASCADE and indexes survive; a deleted sample's id is not handed out again."""
    from sqlalchemy import text

    from collection.erasure import delete_volunteer
    from gazelab.config import load_config
    from gazelab.db import session_scope
    url = f"sqlite:///{tmp_path}/old.db"
    migrate.upgrade(url, "0002")
    with get_engine(url).begin() as connection:
        connection.execute(text(
            "INSERT INTO volunteers (id, created_at, consent_version, consented_at, source) "
            "VALUES ('v1', '2026-01-01', 'c', '2026-01-01', 'browser')"))
        connection.execute(text(
            "INSERT INTO collection_sessions (id, volunteer_id, token_hash, screen_width, screen_height, "
            "device_pixel_ratio, user_agent, started_at, status) "
            "VALUES ('s1', 'v1', 'h', 800, 600, 1, '', '2026-01-01', 'finished')"))
        connection.execute(text(
            "INSERT INTO trials (id, session_id, kind, target_x, target_y, shown_at) "
            "VALUES (1, 's1', 'collection', 1, 1, '2026-01-01')"))
        for sample_id in (1, 2):
            connection.execute(text(
                "INSERT INTO samples (id, session_id, volunteer_id, trial_id, client_frame_id, captured_at, "
                "received_at, target_x, target_y, quality, status, reasons) VALUES "
                f"({sample_id}, 's1', 'v1', 1, 'f{sample_id}', '2026-01-01', '2026-01-01', 1, 1, '{{}}', "
                "'accepted', '')"))
            connection.execute(text(
                "INSERT INTO sample_images (sample_id, format, face, face_aligned, l_eye, r_eye, head_pos) "
                f"VALUES ({sample_id}, 'jpeg', x'00', x'00', x'00', x'00', x'00')"))
    migrate.upgrade(url)
    assert migrate.schema_drift(url) == []
    with get_engine(url).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM sample_images")).scalar() == 2
        assert connection.execute(text("SELECT last_activity_at FROM collection_sessions")).scalar()
        ddl = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'samples'")).scalar()
        assert "AUTOINCREMENT" in ddl and ddl.count("ON DELETE CASCADE") == 3
    config = load_config(environ={"GAZELAB_SERVER_DATA_DIR": str(tmp_path), "GAZELAB_SERVER_DATABASE_URL": url})
    with session_scope(url) as db:
        assert delete_volunteer(db, config, "v1")["images"] == 2
    with get_engine(url).begin() as connection:
        assert connection.execute(text("SELECT count(*) FROM sample_images")).scalar() == 0
        connection.execute(text(
            "INSERT INTO volunteers (id, created_at, consent_version, consented_at, source) "
            "VALUES ('v2', '2026-01-01', 'c', '2026-01-01', 'browser')"))
        connection.execute(text(
            "INSERT INTO collection_sessions (id, volunteer_id, token_hash, screen_width, screen_height, "
            "device_pixel_ratio, user_agent, started_at, last_activity_at, status) "
            "VALUES ('s2', 'v2', 'h', 800, 600, 1, '', '2026-01-01', '2026-01-01', 'active')"))
        new_id = connection.execute(text(
            "INSERT INTO samples (session_id, volunteer_id, client_frame_id, captured_at, received_at, "
            "target_x, target_y, quality, status, reasons) VALUES "
            "('s2', 'v2', 'f9', '2026-01-01', '2026-01-01', 1, 1, '{}', 'accepted', '') RETURNING id")).scalar()
    assert new_id == 3
