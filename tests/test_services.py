"""The embedded services and `gazelab up`."""
import os
import signal
import subprocess
import time

import requests

from gazelab import broker
from gazelab.celery_app import make_celery
from tests.support import VENV_BIN, GazeEnv, free_port, short_tmpdir, wait_until


def test_broker_answers(broker_url):
    broker.ping(broker_url)


def test_healthz_reports_database_broker_and_worker(gz, worker, web):
    # a busy worker may miss one ping; a healthy stack answers ok within a few tries
    body = wait_until(lambda: (b := requests.get(web.url + "/healthz", timeout=10).json())["worker"]["ok"] and b,
                      30, 0.5, "healthz to see the worker")
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert body["worker"]["ok"] and any(worker.name in n for n in body["worker"]["workers"])
    assert body["status"] == "ok"


def test_healthz_without_worker_is_degraded(gz, client):
    redis = broker.redis_client(broker.broker_url(gz.config))  # the test session's shared Redis:
    for key in redis.scan_iter(broker.WORKER_KEY_PREFIX + "*"):  # forget other tests' workers
        redis.delete(key)
    started = time.perf_counter()
    response = client.get("/healthz")
    assert time.perf_counter() - started < 0.5  # no waiting for worker pings
    assert response.status_code == 200
    assert response.json["database"]["ok"] is True
    assert response.json["worker"]["ok"] is False
    assert response.json["status"] == "degraded"


def test_celery_routes_training_to_its_queue_and_scoring_to_default(gz):
    from gazelab.celery_app import FIT_CALIBRATIONS_TASK, FLAG_OUTLIERS_TASK, RETRAIN_TASK
    celery = make_celery(gz.config)
    assert celery.conf.task_routes[RETRAIN_TASK]["queue"] == "training"
    assert FLAG_OUTLIERS_TASK not in celery.conf.task_routes and FIT_CALIBRATIONS_TASK not in celery.conf.task_routes
    assert celery.conf.task_default_queue == "default"
    assert {q.name for q in celery.conf.task_queues} == {"default", "training"}


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmd = handle.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as handle:
                env = handle.read().decode(errors="replace")
        except OSError:
            continue
        if text in cmd or text in env:
            found.append(f"{pid}: {cmd}")
    return found


def test_up_starts_everything_and_stops_cleanly_on_sigterm():
    data_dir = short_tmpdir("gzup")
    port = free_port()
    gz = GazeEnv(data_dir, f"sqlite:///{data_dir}/gazelab.db", "embedded",
                 {"GAZELAB_SERVER_PORT": str(port), "GAZELAB_SERVER_WEB_WORKERS": "1"})
    log = open(data_dir / "up.log", "wb")
    process = subprocess.Popen([str(VENV_BIN / "gazelab"), "up"], env=gz.env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started = time.monotonic()
        def healthy():
            body = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=3).json()
            return body if body["status"] == "ok" else None
        body = wait_until(healthy, 120, 0.5, "gazelab up healthy")
        assert time.monotonic() - started < 120
        assert body["worker"]["ok"] and body["broker"]["ok"]
        assert (data_dir / "redis.sock").exists()
        output = (data_dir / "up.log").read_text()
        assert "First admin account created" in output
        assert len(_processes_mentioning(str(data_dir))) >= 3  # up, redis, web, worker
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    time.sleep(1)
    assert _processes_mentioning(str(data_dir)) == []
    assert process.returncode == 0


def test_up_only_starts_the_parts_named():
    """`gazelab up --only web`: a web node of a larger installation (no worker, no beat)."""
    data_dir = short_tmpdir("gzup")
    port = free_port()
    gz = GazeEnv(data_dir, f"sqlite:///{data_dir}/gazelab.db", "embedded",
                 {"GAZELAB_SERVER_PORT": str(port), "GAZELAB_SERVER_WEB_WORKERS": "1"})
    bad = subprocess.run([str(VENV_BIN / "gazelab"), "up", "--only", "web,bogus"], env=gz.env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "choose from web, worker, beat" in bad.stderr
    log = open(data_dir / "up.log", "wb")
    process = subprocess.Popen([str(VENV_BIN / "gazelab"), "up", "--only", "web"], env=gz.env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        body = wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=3).json(),
                          120, 0.5, "gazelab up --only web answering")
        assert body["broker"]["ok"] and not body["worker"]["ok"]   # no worker on this node
        commands = " ".join(_processes_mentioning(str(data_dir)))
        assert "gunicorn" in commands and "celery" not in commands
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    assert process.returncode == 0
