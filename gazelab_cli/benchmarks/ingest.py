"""`gazelab bench ingest`: simulated volunteers upload real JPEG frames over loopback.

Each volunteer is a thread with its own collection session that shows a dot per second
(a trial) and captures frames on a fixed schedule (`fps` each) — open loop, so a slow server
shows up as latency, not as a slower schedule; the volunteers' dots start spread over one
second, as people who started at different times. As the page does, a dot's frames go together
once its last is captured, at most `batch` in a request, with the dot's trial (POST …/frames/batch;
default [collection] upload_batch_frames, as the page; `batch` 1: the trial on its own, POST
…/trials, and each frame on its own as soon as it is captured, POST …/frames). Latencies are per request. Failed uploads are retried (as the
page does); a frame that never gets a 2xx is lost. Without --url, a server is started on a
fresh data folder: gunicorn as in `gazelab up`, plus the embedded Redis for rate limits.

The floor: before the load starts and again once it has ended, the same frames are decoded
and run through Face Mesh alone in this process (one thread); `floor_fps` = cores x 1000 /
the mean of the two CPU ms (on a shared machine the floor drifts by tens of per cent within
minutes, and one measurement moved `efficiency` more than the code did), and
`efficiency` = stored frames per second / floor_fps. The CPU seconds the server's processes
and this client spent are reported per stored frame: this client shares the machine's
cores with the server, as a volunteer's browser would not. So is everything else the machine
ran meanwhile (`other_cpu_ms_per_frame`: the database server, Redis, the system), and
`machine_idle_fraction` is the share of all cores' time nothing ran — capacity the server
left unused while it had requests waiting.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import requests

from gazelab.config import load_config

SCREEN = (1280, 720)


@dataclass
class VolunteerStats:
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0
    stored: int = 0
    lost: int = 0
    errors: int = 0
    rate_limited: int = 0
    volunteer_id: str | None = None   # erased afterwards from an external database


def render_frames(volunteers: int, per_volunteer: int, seed: int = 0) -> list[list[tuple[bytes, tuple]]]:
    """(jpeg, target) lists per volunteer from the virtual volunteer, rendered up front."""
    from simulator.volunteer import VirtualVolunteer
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(volunteers):
        session = VirtualVolunteer(seed * 1000 + index).session(screen=SCREEN)
        targets = rng.uniform((20, 20), (SCREEN[0] - 20, SCREEN[1] - 20), (per_volunteer, 2))
        frames.append([(session.frame(tuple(t))[0], tuple(map(float, t))) for t in targets])
    return frames


def _post(http: requests.Session, url: str, **kwargs) -> requests.Response:
    return http.post(url, timeout=30, **kwargs)


def run_volunteer(base: str, consent_version: str, frames: list[tuple[bytes, tuple]], fps: float,
                  seconds: float, start_at: float, stats: VolunteerStats, batch: int = 1) -> None:
    http = requests.Session()
    created = _post(http, f"{base}/api/v1/sessions", json={
        "consent": True, "consent_version": consent_version, "screen_width": SCREEN[0],
        "screen_height": SCREEN[1], "device_pixel_ratio": 1.0}).json()
    stats.volunteer_id = created["volunteer_id"]
    api = f"{base}/api/v1/sessions/{created['session_id']}"
    http.headers["Authorization"] = f"Bearer {created['upload_token']}"
    uploader = FrameUploader(f"{api}/frames", created["upload_token"])
    total = int(seconds * fps)
    per_dot = max(1, int(fps))
    trial_id, trial = None, None
    captured: list[tuple[bytes, dict]] = []
    for i in range(total):
        due = start_at + i / fps
        time.sleep(max(0.0, due - time.time()))
        jpeg, (x, y) = frames[i % len(frames)]
        if i % per_dot == 0:
            trial = {"kind": "collection", "target_x": x, "target_y": y, "shown_at": _iso_now(),
                     "client_trial_id": uuid.uuid4().hex}
            if batch == 1:
                trial_id = _post(http, f"{api}/trials", json=trial).json()["trial_id"]
        captured.append((jpeg, {"client_frame_id": uuid.uuid4().hex, "trial_id": trial_id, "target_x": x,
                                "target_y": y, "captured_at": _iso_now()}))
        stats.sent += 1
        if len(captured) == batch or (i + 1) % per_dot == 0 or i + 1 == total:
            _upload_with_retries(uploader, captured, stats, None if batch == 1 else trial)
            captured = []
    uploader.close()


class FrameUploader:
    """Frame uploads as the page sends them (multipart: meta, frame; several at once to
    …/frames/batch) over one keep-alive connection, the body joined from bytes: the client
    shares this machine's cores with the server, so it should cost as little as a browser
    elsewhere would cost them (nothing). `url`: the session's …/frames."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port or 80, parts.path
        self.boundary = uuid.uuid4().hex
        self.headers = {"Authorization": f"Bearer {token}",
                        "Content-Type": f"multipart/form-data; boundary={self.boundary}"}
        self.connection: http.client.HTTPConnection | None = None

    def body(self, jpegs: list[bytes], meta: dict | list[dict], trial: dict | None = None) -> bytes:
        b = self.boundary.encode()
        frames = b"".join(b'\r\nContent-Disposition: form-data; name="frame"; filename="f.jpg"\r\n'
                          + b"Content-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n--" + b for jpeg in jpegs)
        fields = [("meta", meta)] + ([("trial", trial)] if trial is not None else [])
        texts = b"".join(b"--" + b + b'\r\nContent-Disposition: form-data; name="' + name.encode()
                         + b'"\r\n\r\n' + json.dumps(value).encode() + b"\r\n" for name, value in fields)
        return texts + b"--" + b + frames + b"--\r\n"

    def post(self, frames: list[tuple[bytes, dict]], trial: dict | None = None) -> tuple[int, str | None]:
        """(status, Retry-After) of one request carrying `frames` ((jpeg, meta) each) and, to
        …/frames/batch, their `trial`; raises OSError / HTTPException when the connection fails."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        jpegs, metas = [jpeg for jpeg, _ in frames], [meta for _, meta in frames]
        one = len(frames) == 1 and trial is None
        path, meta = (self.path, metas[0]) if one else (self.path + "/batch", metas)
        try:
            self.connection.request("POST", path, self.body(jpegs, meta, trial), self.headers)
            response = self.connection.getresponse()
            response.read()
            return response.status, response.getheader("Retry-After")
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _upload_with_retries(uploader: FrameUploader, frames: list[tuple[bytes, dict]], stats: VolunteerStats,
                         trial: dict | None = None, attempts: int = 5) -> None:
    for attempt in range(attempts):
        started = time.perf_counter()
        try:
            status, retry_after = uploader.post(frames, trial)
        except (OSError, http.client.HTTPException):
            stats.errors += 1
            time.sleep(0.2 * (attempt + 1))
            continue
        if status in (200, 201):
            stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            stats.stored += len(frames)
            return
        if status == 429:
            stats.rate_limited += 1
            time.sleep(float(retry_after or 1))
            continue
        stats.errors += 1
        return
    stats.lost += len(frames)


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"


def start_server(database_url: str | None, web_workers: int | None):
    """Start gunicorn (and the embedded Redis) on a fresh data folder; returns (url, stop)."""
    import socket

    from gazelab import broker, migrate
    from gazelab_cli.supervisor import web_command

    data_dir = Path(tempfile.mkdtemp(prefix="gzbench", dir="/tmp"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAZELAB_SERVER_")
           or k in ("GAZELAB_SERVER_WEB_WORKERS", "GAZELAB_SERVER_WEB_THREADS")}
    env.update({"GAZELAB_SERVER_DATA_DIR": str(data_dir), "GAZELAB_SERVER_PORT": str(port),
                "GAZELAB_SERVER_SESSIONS_PER_IP_PER_HOUR": "100000",
                "GAZELAB_SERVER_BROKER_URL": "embedded", "GAZELAB_SERVER_SECRET_KEY": "bench-secret-" + uuid.uuid4().hex,
                "GAZELAB_SERVER_DATABASE_URL": database_url or f"sqlite:///{data_dir}/bench.db"})
    if web_workers:
        env["GAZELAB_SERVER_WEB_WORKERS"] = str(web_workers)
    config = load_config(environ=env)
    migrate.upgrade(config.database_url)
    redis_process = broker.start_embedded_redis(config)
    web = subprocess.Popen(web_command(config), env={**env, "GAZELAB_CONFIG": str(config.path)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            requests.get(base + "/healthz", timeout=2)
            break
        except requests.RequestException:
            time.sleep(0.2)

    def stop(volunteer_ids: list[str]) -> None:
        broker.stop_process(web)
        if database_url:   # while the broker still answers: each erasure tells it (note_erasure)
            _delete_bench_volunteers(config, volunteer_ids)
        broker.stop_process(redis_process)
        shutil.rmtree(data_dir, ignore_errors=True)
    return base, stop, config.server.web_workers, web.pid


def _delete_bench_volunteers(config, volunteer_ids: list[str]) -> None:
    """Leave an external database as it was: erase the volunteers this bench made."""
    from collection.erasure import delete_volunteer
    from gazelab.db import session_scope
    with session_scope(config.database_url) as db:
        for volunteer_id in volunteer_ids:
            delete_volunteer(db, config, volunteer_id)


def floor_ms(frames: list[bytes]) -> float:
    """Median CPU ms of decode + Face Mesh alone on these frames, one thread."""
    from gazelab_cli.benchmarks.extract import _single_thread, _timed, decode_and_face_mesh
    _single_thread()
    for data in frames[:3]:
        decode_and_face_mesh(data)
    return float(np.median([_timed(decode_and_face_mesh, data)[1] for data in frames]))


def _cpu_seconds(processes) -> float:
    import psutil
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return total


def _busy_and_idle(before, after) -> tuple[float, float]:
    """CPU seconds all cores spent busy and idle between two psutil.cpu_times() (Linux counts a
    guest's time in user; time stolen by a hypervisor is neither)."""
    def spent(*names: str) -> float:
        return sum(getattr(after, name, 0.0) - getattr(before, name, 0.0) for name in names)
    return spent("user", "nice", "system", "irq", "softirq"), spent("idle", "iowait")


def _server_processes(pid: int | None) -> list:
    """The gunicorn master and its workers (psutil handles, alive through the run)."""
    import psutil
    if pid is None:
        return []
    master = psutil.Process(pid)
    return [master, *master.children(recursive=True)]


def warm_up(url: str, consent_version: str, frames: list[tuple[bytes, tuple]], processes: int) -> list[VolunteerStats]:
    """A few seconds of uploads before the clock runs, so that every web process has loaded
    MediaPipe and made the Face Mesh graphs its threads use at once (a second of CPU each),
    and the database connections are open."""
    stats = [VolunteerStats() for _ in range(2 * processes)]
    start_at = time.time() + 0.2
    threads = [threading.Thread(target=run_volunteer, args=(url, consent_version, frames, 4.0, 2.0, start_at, s))
               for s in stats]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return stats


def bench_ingest(volunteers: int, seconds: float, fps: float, url: str | None,
                 database_url: str | None, web_workers: int | None, batch: int | None = None) -> dict:
    import psutil
    frames = render_frames(volunteers, per_volunteer=25)
    floor_frames = [jpeg for per in frames for jpeg, _ in per][:100]
    floor_before = floor_ms(floor_frames)
    cores = os.cpu_count() or 1
    batch = batch or load_config().collection.upload_batch_frames
    stop = None
    workers = None
    server_pid = None
    if url is None:
        url, stop, workers, server_pid = start_server(database_url, web_workers)
    stats = [VolunteerStats() for _ in range(volunteers)]
    server = _server_processes(server_pid)
    client = psutil.Process()
    consent_version = load_config().server.consent_version
    warm = warm_up(url, consent_version, frames[0], workers or 2)
    try:
        server_cpu, client_cpu = _cpu_seconds(server), sum(client.cpu_times()[:2])
        machine = psutil.cpu_times()
        start_at = time.time() + 1.0
        threads = [threading.Thread(target=run_volunteer,
                                    args=(url, consent_version, frames[i], fps, seconds,
                                          start_at + i / volunteers, stats[i], batch))
                   for i in range(volunteers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 120)
        wall = time.time() - start_at - (volunteers - 1) / volunteers
        server_cpu = _cpu_seconds(server) - server_cpu
        client_cpu = sum(client.cpu_times()[:2]) - client_cpu
        machine_busy, machine_idle = _busy_and_idle(machine, psutil.cpu_times())
        floor_after = floor_ms(floor_frames)
    finally:
        if stop is not None:
            stop([s.volunteer_id for s in stats + warm if s.volunteer_id])
    latencies = np.array([v for s in stats for v in s.latencies_ms] or [np.nan])
    stored = sum(s.stored for s in stats)
    floor = (floor_before + floor_after) / 2
    floor_fps = cores * 1000 / floor
    per_frame = 1000 / max(stored, 1)
    return {
        "volunteers": volunteers, "seconds": seconds, "fps_per_volunteer": fps,
        "offered_frames_per_second": volunteers * fps, "frames_per_request": batch,
        "database": "external" if database_url else "sqlite", "web_workers": workers,
        "frames_sent": sum(s.sent for s in stats), "frames_stored": stored,
        "frames_per_second": round(stored / wall, 2),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 1),
        "lost_frames": sum(s.lost for s in stats), "errors": sum(s.errors for s in stats),
        "rate_limited": sum(s.rate_limited for s in stats),
        "floor_cpu_ms_per_frame": round(floor, 3), "floor_cpu_ms_before": round(floor_before, 3),
        "floor_cpu_ms_after": round(floor_after, 3), "floor_fps": round(floor_fps, 1),
        "efficiency": round(stored / wall / floor_fps, 3),
        "server_cpu_ms_per_frame": round(server_cpu * per_frame, 2) if server else None,
        "client_cpu_ms_per_frame": round(client_cpu * per_frame, 2),
        "other_cpu_ms_per_frame": round((machine_busy - server_cpu - client_cpu) * per_frame, 2) if server else None,
        "machine_idle_fraction": round(machine_idle / (machine_busy + machine_idle), 3),
        "cpu_count": cores, "load_average_1min": round(os.getloadavg()[0], 2),
    }
