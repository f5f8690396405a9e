"""Test support: real services (SQLite/PostgreSQL, embedded or external Redis, a Celery
worker and a gunicorn server as subprocesses) configured through GAZELAB_* variables."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from gazelab import broker, migrate
from gazelab.config import Config, load_config
from gazelab_cli.benchmarks.waiting import wait_until  # noqa: F401  (the tests import it from here)
from gazelab_cli.supervisor import web_command, worker_command

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def short_tmpdir(prefix: str = "gz") -> Path:
    # unix socket paths must stay under ~100 characters
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def create_postgres_database(server_url: str) -> tuple[str, callable]:
    """A fresh database on the server of `server_url`; returns its URL and a dropper."""
    name = f"gazelab_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = server_url.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        from gazelab.db import get_engine
        get_engine(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
    return url, drop


@dataclass
class GazeEnv:
    """One isolated GazeLab installation: data dir, database, broker, config."""
    data_dir: Path
    database_url: str
    broker_url: str = "embedded"
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAZELAB_")}
        env.update({
            "GAZELAB_SERVER_DATA_DIR": str(self.data_dir),
            "GAZELAB_SERVER_DATABASE_URL": self.database_url,
            "GAZELAB_SERVER_BROKER_URL": self.broker_url,
            "GAZELAB_SERVER_SECRET_KEY": "test-secret-not-for-production",
            # every test shares one Redis and one client address: limits that a whole
            # suite does not reach (the throttling tests set their own)
            "GAZELAB_SERVER_LOGIN_ATTEMPTS": "1000",
            "GAZELAB_SERVER_SESSIONS_PER_IP_PER_HOUR": "1000000",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.overrides)
        return env

    @property
    def config(self) -> Config:
        return load_config(environ=self.env)

    def migrate(self) -> None:
        migrate.upgrade(self.config.database_url)


class Service:
    """A subprocess in its own process group, logging to a file in the data dir."""

    def __init__(self, name: str, command: list[str], gz: GazeEnv):
        self.name, self.command, self.gz = name, command, gz
        self.log_path = gz.data_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Service":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command, env=self.gz.env, cwd=REPO,
                                        stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def stop(self) -> None:
        if self.process is not None:
            broker.stop_process(self.process)
            self.process = None

    def kill(self) -> None:
        """SIGKILL the whole group, as a crash would."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, 9)
            except ProcessLookupError:
                pass
            self.process.wait(10)
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Worker(Service):
    """The Celery worker `gazelab up` starts, under a unique node name."""

    def __init__(self, gz: GazeEnv):
        name = f"worker-{uuid.uuid4().hex[:6]}"
        super().__init__(name, worker_command(gz.config, name), gz)

    def start(self, timeout: float = 60) -> "Worker":
        super().start()
        from gazelab.celery_app import make_celery
        celery = make_celery(self.gz.config, "probe")
        try:
            wait_until(lambda: any(self.name in n for r in (celery.control.ping(timeout=0.5) or [])
                                   for n in r), timeout, what=f"worker {self.name}\n{self.log()}")
        finally:
            celery.close()
        return self


class WebServer(Service):
    """The gunicorn server `gazelab up` starts, on a free port."""

    def __init__(self, gz: GazeEnv, port: int | None = None):
        self.port = port or free_port()
        super().__init__("web", web_command(gz.config, self.port), gz)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "WebServer":
        super().start()
        wait_until(lambda: requests.get(self.url + "/healthz", timeout=2).status_code < 600,
                   timeout, what=f"web server\n{self.log()}")
        return self
