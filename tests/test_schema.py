import subprocess

import pytest

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


def test_upgrade_to_0005_fills_the_admin_summary_from_stored_rows(gz_any):
    """0005 adds the summary tables and counts the samples already there into them."""
    from sqlalchemy import text

    from collection import summary
    from gazelab.db import session_scope
    url = gz_any.database_url
    command_downgrade(url, "0004")   # back to 0004, then rows, then up again
    with get_engine(url).begin() as connection:
        connection.execute(text(
            "INSERT INTO volunteers (id, created_at, consent_version, consented_at, source) "
            "VALUES ('v1', '2026-01-01', 'c', '2026-01-01', 'browser')"))
        connection.execute(text(
            "INSERT INTO collection_sessions (id, volunteer_id, token_hash, screen_width, screen_height, "
            "device_pixel_ratio, user_agent, started_at, last_activity_at, status) "
            "VALUES ('s1', 'v1', 'h', 800, 600, 1, '', '2026-01-01', '2026-01-01', 'finished')"))
        for sample_id, day, status, reasons, x in ((1, "2026-01-01 10:00:00", "accepted", "", 799.0),
                                                   (2, "2026-01-01 11:00:00", "rejected", "no_face,too_dark", 1.0),
                                                   (3, "2026-01-02 09:00:00", "flagged", "model_outlier", 400.0),
                                                   (4, "2026-01-02 09:00:01", "accepted", "", 0.0)):
            connection.execute(text(
                "INSERT INTO samples (id, session_id, volunteer_id, client_frame_id, captured_at, "
                "received_at, target_x, target_y, quality, status, reasons) VALUES "
                f"({sample_id}, 's1', 'v1', 'f{sample_id}', '{day}', '{day}', {x}, 300, '{{}}', "
                f"'{status}', '{reasons}')"))
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision() and migrate.schema_drift(url) == []
    with session_scope(url) as db:
        stored = summary.stored(db)
        assert stored == summary.from_scratch(db)
        assert summary.status_counts(db) == {"accepted": 2, "rejected": 1, "flagged": 1, "samples": 4}
        assert summary.samples_per_day(db) == [("2026-01-01", 2), ("2026-01-02", 2)]
        assert summary.rejection_reasons(db) == [("model_outlier", 1), ("no_face", 1), ("too_dark", 1)]
        assert stored.cells == {(90, 239): 1, (90, 0): 1}


def command_downgrade(url: str, revision: str) -> None:
    from alembic import command
    command.downgrade(migrate.alembic_config(url), revision)


def test_export_size_holds_more_than_two_gibibytes(gz_any):
    from gazelab.db import session_scope
    from gazelab.schema import ExportJob
    with session_scope(gz_any.database_url) as db:
        job = ExportJob(status="done", sample_status="all", total=1, done=1, size_bytes=5_000_000_000)
        db.add(job)
        db.commit()
        job_id = job.id
    with session_scope(gz_any.database_url) as db:
        assert db.get(ExportJob, job_id).size_bytes == 5_000_000_000


def test_a_deadlock_is_retryable_and_a_locked_sqlite_file_is_not(gz_any):
    """gazelab.db.is_retryable: PostgreSQL's deadlock victim may run again (ingest and erasure
    do); SQLite's 'database is locked' after its busy timeout is not a deadlock."""
    import threading

    import sqlalchemy as sa

    from gazelab.db import get_engine, is_retryable
    engine = get_engine(gz_any.database_url)
    if engine.dialect.name == "sqlite":
        other = sa.create_engine(gz_any.database_url, connect_args={"timeout": 0})
        with engine.connect() as holder:
            holder.exec_driver_sql("BEGIN IMMEDIATE")
            with pytest.raises(sa.exc.OperationalError) as locked, other.connect() as connection:
                connection.exec_driver_sql("INSERT INTO admin_users (name, password_hash) VALUES ('x', 'y')")
            holder.rollback()
        other.dispose()
        assert "locked" in str(locked.value) and not is_retryable(locked.value)
        return
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE lock_order (id int primary key, n int)")
        connection.exec_driver_sql("INSERT INTO lock_order VALUES (1, 0), (2, 0)")
    errors: list[BaseException] = []
    both_hold_one = threading.Barrier(2)

    def take(first: int, second: int) -> None:
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql(f"UPDATE lock_order SET n = n + 1 WHERE id = {first}")
                both_hold_one.wait(10)
                connection.exec_driver_sql(f"UPDATE lock_order SET n = n + 1 WHERE id = {second}")
        except sa.exc.OperationalError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=take, args=order) for order in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(errors) == 1 and is_retryable(errors[0]), errors
