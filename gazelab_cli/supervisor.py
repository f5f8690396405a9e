"""`gazelab up`: migrate, first admin, then Redis (embedded), gunicorn, one Celery worker
and Celery beat (the periodic upkeep) as child processes, each in its own process group;
all are stopped on Ctrl-C / SIGTERM. Run beat once per installation, not once per worker."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from gazelab import broker, migrate
from gazelab.config import Config, ConfigError
from gazelab.files import private_data_dir, secret_key
from gazelab.db import session_scope


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def _child_env(config: Config) -> dict[str, str]:
    env = dict(os.environ)
    env["GAZELAB_CONFIG"] = str(config.path)
    return env


def web_command(config: Config, port: int | None = None) -> list[str]:
    """gunicorn serving the app factory (on `port` instead of the configured one if given)."""
    # gthread: a long download streams in a thread; the worker keeps answering the arbiter,
    # so no timeout cuts it off.
    return [_bin("gunicorn"), "--workers", str(config.server.web_workers),
            "--worker-class", "gthread", "--threads", str(config.server.web_threads),
            "--bind", f"{config.server.host}:{port or config.server.port}",
            # keep-alive 5 s, not 2: the page sends a dot's frames every ~3 s, and a request
            # written into a connection the server just closed as idle fails (a broken pipe)
            "--timeout", "60", "--graceful-timeout", "5", "--keep-alive", "5", "--access-logfile", "-",
            "--access-logformat", '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
            "webapp:create_app()"]


def worker_command(config: Config, name: str | None = None) -> list[str]:
    """One Celery worker on both queues; `name` makes its node name `name@host`."""
    return [_bin("celery"), "-A", "gazelab_cli.worker:celery", "worker", "--queues", "default,training",
            "--concurrency", str(config.server.worker_concurrency), "--loglevel", "INFO",
            "--without-gossip", "--without-mingle",
            "--hostname", f"{name or f'gazelab-{os.getpid()}'}@%h"]


def beat_command(config: Config) -> list[str]:
    """Celery beat: sends the periodic tasks of gazelab.celery_app.BEAT_SCHEDULE."""
    return [_bin("celery"), "-A", "gazelab_cli.worker:celery", "beat", "--loglevel", "WARNING",
            "--schedule", str(config.data_dir / "celerybeat-schedule")]


PARTS = ("web", "worker", "beat")


def run_all(config: Config, parts: tuple[str, ...] = PARTS) -> int:
    """Start `parts` (and the embedded Redis, when configured); on several machines, beat
    runs on one of them only."""
    from collection.accounts import ensure_first_admin

    try:
        private_data_dir(config)
        secret_key(config)   # created now, once; a bad one stops here with one line
    except ConfigError as exc:
        print(f"gazelab up: {exc}", file=sys.stderr, flush=True)
        return 2
    migrate.upgrade(config.database_url)
    with session_scope(config.database_url) as db:
        password = ensure_first_admin(db)
    if password:
        print(f"First admin account created: name 'admin', password '{password}' "
              "(shown once; change it with `gazelab admin reset-password admin`).", flush=True)

    stopping = False

    def _stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)

    children: list[tuple[str, subprocess.Popen]] = []
    env = _child_env(config)
    try:
        if config.server.broker_url == "embedded":
            children.append(("redis", broker.start_embedded_redis(config)))
        commands = {"web": web_command(config), "worker": worker_command(config), "beat": beat_command(config)}
        for name in parts:
            command = commands[name]
            children.append((name, subprocess.Popen(command, env=env, start_new_session=True,
                                                    stdin=subprocess.DEVNULL)))
        base = f"http://{config.server.host}:{config.server.port}"
        print(f"GazeLab is starting ({', '.join(parts)}): volunteer page {base}/  admin {base}/admin  "
              f"health {base}/healthz  (Ctrl-C stops everything)", flush=True)
        while not stopping:
            for name, process in children:
                if process.poll() is not None:
                    print(f"gazelab up: {name} exited with {process.returncode}; stopping",
                          file=sys.stderr, flush=True)
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for _name, process in reversed(children):
            broker.stop_process(process)
        print("gazelab up: all processes stopped", flush=True)
