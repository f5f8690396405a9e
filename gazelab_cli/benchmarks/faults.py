"""`gazelab bench faults`: crash and abuse scenarios against a started product (its own
data dir, embedded Redis, gunicorn, one Celery worker and beat, as `gazelab up` starts
them), each reporting what was lost. The suite (tests/test_faults.py) runs the same
scenarios and asserts on their reports.

- kill_worker_mid_training: SIGKILL the worker while a run trains and another waits; a
  new worker starts. The killed run must be failed (heartbeat age) within 60 s, the waiting
  run must finish; runs_stuck counts runs in neither state by then.
- kill_web_worker_mid_upload: SIGKILL one gunicorn worker while volunteers upload (with
  the page's retries); every frame must be stored once.
- restart_redis_during_upload: stop and restart the embedded Redis while volunteers upload,
  and a task queued before the restart must still run (append-only file).
- delete_during_upload: erase a volunteer while their frames arrive: no 500, no row left.
- delete_then_train: erase a volunteer, then train: no byte of their crops in any snapshot.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

from gazelab import broker, migrate
from gazelab.config import Config, load_config
from gazelab.db import session_scope
from gazelab_cli.benchmarks.waiting import wait_until
from gazelab_cli.supervisor import beat_command, web_command, worker_command

SCREEN = (1280, 720)


@dataclass
class Stack:
    """One started product on a fresh data dir; `env` reaches every child process."""
    data_dir: Path
    env: dict[str, str]
    config: Config
    port: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @classmethod
    def create(cls, overrides: dict[str, str] | None = None, database_url: str | None = None) -> Stack:
        import socket
        data_dir = Path(tempfile.mkdtemp(prefix="gzfault", dir="/tmp"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAZELAB_SERVER_")}
        env.update({"GAZELAB_SERVER_DATA_DIR": str(data_dir), "GAZELAB_SERVER_PORT": str(port),
                    "GAZELAB_SERVER_BROKER_URL": "embedded",
                    "GAZELAB_SERVER_DATABASE_URL": database_url or f"sqlite:///{data_dir}/gazelab.db",
                    "GAZELAB_SERVER_SESSIONS_PER_IP_PER_HOUR": "100000",
                    **(overrides or {})})
        config = load_config(environ=env)
        env["GAZELAB_CONFIG"] = str(config.path)
        migrate.upgrade(config.database_url)
        return cls(data_dir, env, config, port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *names: str) -> Stack:
        commands = {"web": web_command(self.config, self.port),
                    "worker": worker_command(self.config, f"fault-{uuid.uuid4().hex[:6]}"),
                    "beat": beat_command(self.config)}
        for name in names:
            if name == "redis":
                self.processes[name] = broker.start_embedded_redis(self.config)
                continue
            log = open(self.data_dir / f"{name}.log", "ab")
            self.processes[name] = subprocess.Popen(commands[name], env=self.env, stdout=log,
                                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                    start_new_session=True)
        if "web" in names:
            wait_until(lambda: requests.get(self.url + "/healthz", timeout=2).ok, 60, 0.2, "web server")
        if "worker" in names:
            url = broker.broker_url(self.config)
            wait_until(lambda: broker.live_workers(url), 60, 0.2, "worker heartbeat")
        return self

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            broker.stop_process(process)

    def kill(self, name: str) -> None:
        """SIGKILL the whole process group, as a crash would."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def close(self) -> None:
        for name in list(self.processes)[::-1]:
            self.stop(name)
        shutil.rmtree(self.data_dir, ignore_errors=True)


# ---- uploads, as the volunteer page sends them ----

@dataclass
class Uploads:
    sent: int = 0
    acknowledged: set = field(default_factory=set)
    server_errors: int = 0
    answers: list = field(default_factory=list)


def _frames(count: int, seed: int) -> list[bytes]:
    from simulator.volunteer import VirtualVolunteer
    session = VirtualVolunteer(seed).session(screen=SCREEN)
    return [session.frame((640.0, 360.0))[0] for _ in range(count)]


def start_volunteer(stack: Stack) -> dict:
    return requests.post(stack.url + "/api/v1/sessions", timeout=30, json={
        "consent": True, "consent_version": stack.config.server.consent_version,
        "screen_width": SCREEN[0], "screen_height": SCREEN[1], "device_pixel_ratio": 1}).json()


def upload_frames(stack: Stack, created: dict, frames: list[bytes], uploads: Uploads,
                  fps: float = 8, retries: int = 40) -> None:
    """Send every frame at `fps`, retrying (like the page) until it is acknowledged or the
    server says it can never be stored (4xx other than 429)."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {created['upload_token']}"
    url = f"{stack.url}/api/v1/sessions/{created['session_id']}/frames"
    for frame in frames:
        frame_id = uuid.uuid4().hex
        meta = json.dumps({"client_frame_id": frame_id, "trial_id": None, "target_x": 640.0,
                           "target_y": 360.0, "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        uploads.sent += 1
        for _ in range(retries):
            try:
                response = http.post(url, files={"frame": ("f.jpg", frame, "image/jpeg")},
                                     data={"meta": meta}, timeout=10)
            except requests.RequestException:
                time.sleep(0.25)
                continue
            uploads.answers.append(response.status_code)
            if response.status_code >= 500:
                uploads.server_errors += 1
            if response.status_code in (200, 201):
                uploads.acknowledged.add(frame_id)
                break
            if response.status_code < 500 and response.status_code != 429:
                break
            time.sleep(0.25)
        time.sleep(1 / fps)


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (gunicorn's workers under its master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def _stored_frame_ids(stack: Stack, session_id: str) -> list[str]:
    from sqlalchemy import select

    from gazelab.schema import Sample
    with session_scope(stack.config.database_url) as db:
        return db.scalars(select(Sample.client_frame_id).where(Sample.session_id == session_id)).all()


def _loss_report(stack: Stack, created: dict, uploads: Uploads) -> dict:
    stored = _stored_frame_ids(stack, created["session_id"])
    return {"frames_sent": uploads.sent, "frames_lost": uploads.sent - len(set(stored) & uploads.acknowledged)
            + len(uploads.acknowledged - set(stored)), "duplicates": len(stored) - len(set(stored)),
            "server_errors": uploads.server_errors}


# ---- the scenarios ----

def kill_web_worker_mid_upload(stack: Stack, frames: int = 24) -> dict:
    created, uploads = start_volunteer(stack), Uploads()
    thread = threading.Thread(target=upload_frames, args=(stack, created, _frames(frames, 1), uploads))
    thread.start()
    wait_until(lambda: len(uploads.acknowledged) >= 4, 60, 0.2, "first uploads")
    os.kill(_children(stack.processes["web"].pid)[0], signal.SIGKILL)   # the master starts another
    thread.join(180)
    return {"scenario": "kill_web_worker_mid_upload", **_loss_report(stack, created, uploads)}


def restart_redis_during_upload(stack: Stack, frames: int = 24) -> dict:
    from collection.export import create_job
    from gazelab.celery_app import EXPORT_TASK, make_celery
    created, uploads = start_volunteer(stack), Uploads()
    thread = threading.Thread(target=upload_frames, args=(stack, created, _frames(frames, 2), uploads))
    thread.start()
    wait_until(lambda: len(uploads.acknowledged) >= 4, 60, 0.2, "first uploads")
    stack.stop("worker")                       # nobody takes the task before the restart
    with session_scope(stack.config.database_url) as db:
        job_id = create_job(db, "all").id
    celery = make_celery(stack.config, "fault-client")
    celery.send_task(EXPORT_TASK, args=[job_id])
    celery.close()
    stack.stop("redis")
    time.sleep(2)
    stack.start("redis")
    thread.join(180)
    stack.start("worker")
    status = wait_until(lambda: _export_status(stack, job_id) in ("done", "failed") and _export_status(stack, job_id),
                        120, 0.2, "the export queued before the restart")
    return {"scenario": "restart_redis_during_upload", **_loss_report(stack, created, uploads),
            "task_survived_restart": status == "done"}


def _export_status(stack: Stack, job_id: int) -> str:
    from gazelab.schema import ExportJob
    with session_scope(stack.config.database_url) as db:
        return db.get(ExportJob, job_id).status


def delete_during_upload(stack: Stack, frames: int = 16) -> dict:
    created, uploads = start_volunteer(stack), Uploads()
    thread = threading.Thread(target=upload_frames, args=(stack, created, _frames(frames, 3), uploads))
    thread.start()
    wait_until(lambda: len(uploads.acknowledged) >= 3, 60, 0.2, "first uploads")
    answer = requests.delete(f"{stack.url}/api/v1/volunteers/{created['volunteer_id']}", timeout=30,
                             headers={"Authorization": f"Bearer {created['upload_token']}"})
    thread.join(180)
    left = len(_stored_frame_ids(stack, created["session_id"]))
    return {"scenario": "delete_during_upload", "delete_status": answer.status_code,
            "server_errors": uploads.server_errors, "rows_left": left}


def kill_worker_mid_training(stack: Stack) -> dict:
    from sqlalchemy import select

    from gazelab.celery_app import make_celery
    from gazelab.schema import TrainingRun
    from trainer import runs
    from trainer.synthetic import insert_dataset
    with session_scope(stack.config.database_url) as db:
        if not db.scalar(select(TrainingRun.id).limit(1)):
            insert_dataset(db, volunteers=6, samples_per_volunteer=60, seed=11)
    celery = make_celery(stack.config, "fault-client")
    params = {"batch_size": 16, "device": "cpu", "error_grid": "4x3", "validation_fraction": 0.2,
              "test_fraction": 0.2}
    with session_scope(stack.config.database_url) as db:
        long_run = runs.queue_run(db, {**params, "epochs": 400, "early_stopping_patience": 400}, stack.config).id
        next_run = runs.queue_run(db, {**params, "epochs": 2}, stack.config).id
    celery.close()

    def status(run_id: int) -> str:
        with session_scope(stack.config.database_url) as db:
            return db.get(TrainingRun, run_id).status
    wait_until(lambda: status(long_run) == "running", 120, 0.2, "the long run to start")
    time.sleep(3)
    stack.kill("worker")
    killed_at = time.monotonic()
    stack.start("worker")
    wait_until(lambda: status(long_run) == "failed", 90, 0.2, "the killed run to be failed")
    failed_after = time.monotonic() - killed_at
    wait_until(lambda: status(next_run) in ("done", "failed"), 240, 0.2, "the next run")
    final = {run_id: status(run_id) for run_id in (long_run, next_run)}
    return {"scenario": "kill_worker_mid_training", "seconds_to_failed": round(failed_after, 1),
            "killed_run": final[long_run], "next_run": final[next_run],
            "runs_stuck": sum(s in ("queued", "running") for s in final.values())}


def delete_then_train(stack: Stack) -> dict:
    from sqlalchemy import select

    from collection.erasure import delete_volunteer
    from gazelab.files import SNAPSHOT_DIR, private_subdir
    from gazelab.schema import Sample, SampleImages, Volunteer
    from trainer.snapshot import load_snapshot
    from trainer.synthetic import insert_dataset
    cache = private_subdir(stack.config, SNAPSHOT_DIR)
    with session_scope(stack.config.database_url) as db:
        insert_dataset(db, volunteers=3, samples_per_volunteer=10, seed=21, fmt="jpeg")
        load_snapshot(db, stack.config.collection.image_size, cache)
        victim = db.scalars(select(Volunteer.id).order_by(Volunteer.created_at.desc())).first()
        crops = db.execute(select(SampleImages.face, SampleImages.l_eye, SampleImages.r_eye).join(Sample)
                           .where(Sample.volunteer_id == victim)).all()
        delete_volunteer(db, stack.config, victim)
        snapshot = load_snapshot(db, stack.config.collection.image_size, cache)
    import numpy as np

    from collection.codec import decode_crop
    found = 0
    faces = np.asarray(snapshot.images["face"])
    stored = b"".join(path.read_bytes() for path in cache.rglob("*") if path.is_file())
    for face, *_ in crops:
        pixels = decode_crop(face, grey=False, size=stack.config.collection.image_size)
        found += int((faces == pixels).all(axis=(1, 2, 3)).any())
        found += int(pixels.tobytes() in stored)   # the decoded crop in a shard file
    if stack.config.database_url.startswith("sqlite"):
        stored += Path(stack.config.database_url.split("///", 1)[1]).read_bytes()
    # the last bytes of each JPEG crop: entropy-coded pixels, unique to it
    found += sum(crop[-80:-16] in stored for row in crops for crop in row)
    return {"scenario": "delete_then_train", "deleted_crops_checked": 3 * len(crops), "deleted_bytes_found": found}


SCENARIOS = ("kill_web_worker_mid_upload", "restart_redis_during_upload", "delete_during_upload",
             "delete_then_train", "kill_worker_mid_training")


def run(database_url: str | None = None) -> dict:
    started = time.perf_counter()
    stack = Stack.create(database_url=database_url).start("redis", "web", "worker", "beat")
    reports = []
    try:
        for name in SCENARIOS:
            reports.append(globals()[name](stack))
    finally:
        stack.close()
    total = lambda key: sum(int(r.get(key, 0)) for r in reports)
    return {"scenarios": len(reports), "frames_lost": total("frames_lost"), "duplicates": total("duplicates"),
            "server_errors": total("server_errors"), "runs_stuck": total("runs_stuck"),
            "deleted_bytes_found": total("deleted_bytes_found"), "rows_left_after_delete": total("rows_left"),
            "details": reports, "wall_s": round(time.perf_counter() - started, 1)}
