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
