"""`gazelab bench scale`: the admin pages at a million samples.

Builds a database of `samples` samples by bulk insert (SQLite executemany, PostgreSQL COPY),
spread over many volunteers, sessions and days with a realistic status and reason mix;
then rebuilds the admin summary from scratch (collection.summary.recount, timed) and
measures, through the real Flask app (its test client, an admin logged in: the whole
request path — routing, login check, queries, templates, PNG rendering — but no HTTP
socket), p50/p95 of the overview, the review grid's first page and a page far down
(a keyset cursor near the oldest samples), the runs list (first and a deep page) and the
coverage heatmap (admin PNG over all data; the volunteer's own-session JSON).

Crops: a few frames of the virtual volunteer run once through the real extraction; their
encoded crops are stored again for every `image_every`-th sample (the others have no
sample_images row, as rejected frames without a face have none) — 1 M samples with
crops each would be ~8 GB of identical bytes.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text

from gazelab import migrate
from gazelab.config import load_config
from gazelab.db import get_engine, session_scope
from gazelab.schema import CROP_KINDS, Sample, TrainingRun

SCREENS = [(1920, 1080), (1280, 720), (1536, 864), (1440, 900), (2560, 1440), (1366, 768)]
EXTRACTION_REASONS = ["face_too_small", "no_face", "too_blurry", "eyes_closed", "face_cut_off",
                      "too_dark", "multiple_faces"]
REVIEW_REASONS = ["review:looked_away", "review:eyes_closed_blurry", "review:manual"]
SAMPLES_PER_SESSION = 100
SESSIONS_PER_VOLUNTEER = 2
DAYS = 365
CHUNK = 20_000
TOKEN = "bench-scale-token"
QUALITY = json.dumps({"ear_left": 0.28731, "ear_right": 0.29112, "sharpness": 212.4, "brightness": 121.7,
                      "face_size": 0.3125, "iris_left_x": 0.512, "iris_left_y": 0.498,
                      "iris_right_x": 0.507, "iris_right_y": 0.503})
SAMPLE_COLUMNS = ("id", "session_id", "volunteer_id", "trial_id", "client_frame_id", "captured_at",
                  "received_at", "target_x", "target_y", "yaw", "pitch", "roll", "face_x", "face_y",
                  "face_w", "face_h", "frame_width", "frame_height", "quality", "status", "reasons",
                  "reviewed_at", "model_error_px")


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return round(statistics.median(ordered), 1), round(p95, 1)


def real_crops(config) -> dict[str, bytes]:
    """The encoded crops of a virtual volunteer's frame, through the real extraction."""
    from collection.extraction import encode_features, extract
    from simulator.volunteer import VirtualVolunteer
    session = VirtualVolunteer(7).session(screen=(1280, 720))
    for index, target in enumerate([(640, 360), (300, 200), (900, 500), (200, 600), (1100, 100)]):
        extraction = extract(session.frame(target, index=index)[0], config)
        if extraction.features is not None:
            return encode_features(extraction.features, config)
    raise RuntimeError("the virtual volunteer's frames gave no face")


def _reasons(rng: np.random.Generator, status: np.ndarray) -> list[str]:
    out = [""] * len(status)
    draw = rng.random(len(status))
    codes = rng.integers(0, len(EXTRACTION_REASONS), len(status))
    second = rng.integers(0, len(EXTRACTION_REASONS), len(status))
    review = rng.integers(0, len(REVIEW_REASONS), len(status))
    for i, s in enumerate(status):
        if s == "rejected":
            if draw[i] < 0.12:
                out[i] = "attention_failed"
            elif draw[i] < 0.25:
                out[i] = REVIEW_REASONS[review[i]]
            elif draw[i] < 0.40 and codes[i] != second[i]:
                out[i] = f"{EXTRACTION_REASONS[codes[i]]},{EXTRACTION_REASONS[second[i]]}"
            else:
                out[i] = EXTRACTION_REASONS[codes[i]]
        elif s == "flagged":
            out[i] = "model_outlier" if draw[i] < 0.7 else "model_outlier," + REVIEW_REASONS[review[i]]
    return out


def build(database_url: str, samples: int, runs: int, image_every: int, crops: dict[str, bytes],
          seed: int = 0) -> dict:
    """Fill an empty, migrated database; returns what was made."""
    rng = np.random.default_rng(seed)
    engine = get_engine(database_url)
    postgres = engine.dialect.name == "postgresql"
    n_sessions = max(1, samples // SAMPLES_PER_SESSION)
    n_volunteers = max(1, n_sessions // SESSIONS_PER_VOLUNTEER)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).replace(microsecond=0)
    first_day = now - dt.timedelta(days=DAYS)
    token_hash = hashlib.sha256(TOKEN.encode()).hexdigest()
    # sessions in time order; the last one started a minute ago (its token still valid)
    starts = np.sort(rng.uniform(0, DAYS * 86400 - 3600, n_sessions))
    starts[-1] = DAYS * 86400 - 60
    volunteer_ids = [hashlib.sha256(f"bench-v{v}".encode()).hexdigest()[:32] for v in range(n_volunteers)]
    session_ids = [hashlib.sha256(f"bench-s{s}".encode()).hexdigest()[:32] for s in range(n_sessions)]
    owner = rng.integers(0, n_volunteers, n_sessions)
    owner[:n_volunteers] = np.arange(n_volunteers)[:n_sessions]
    screens = [SCREENS[i] for i in rng.integers(0, len(SCREENS), n_sessions)]
    volunteers = [(vid, first_day, "2026-11", first_day, "browser") for vid in volunteer_ids]
    sessions = [(session_ids[s], volunteer_ids[owner[s]], token_hash, screens[s][0], screens[s][1], 1.0, "bench",
                 first_day + dt.timedelta(seconds=float(starts[s])),
                 first_day + dt.timedelta(seconds=float(starts[s]) + 600),
                 first_day + dt.timedelta(seconds=float(starts[s]) + 600), "finished")
                for s in range(n_sessions)]
    with engine.begin() as connection:
        _insert(connection, postgres, "volunteers",
                ("id", "created_at", "consent_version", "consented_at", "source"), volunteers)
        _insert(connection, postgres, "collection_sessions",
                ("id", "volunteer_id", "token_hash", "screen_width", "screen_height", "device_pixel_ratio",
                 "user_agent", "started_at", "last_activity_at", "finished_at", "status"), sessions)
    image_row = tuple(crops[kind] for kind in CROP_KINDS) + (crops.get("landmarks"),)
    made_images = 0
    for start in range(0, samples, CHUNK):
        n = min(CHUNK, samples - start)
        ids = np.arange(start + 1, start + n + 1)
        session_index = np.minimum((ids - 1) // SAMPLES_PER_SESSION, n_sessions - 1)
        offset = (ids - 1) - session_index * SAMPLES_PER_SESSION
        status = rng.choice(np.array(["accepted", "rejected", "flagged"]), n, p=[0.80, 0.16, 0.04])
        reasons = _reasons(rng, status)
        width = np.array([screens[s][0] for s in session_index], float)
        height = np.array([screens[s][1] for s in session_index], float)
        x, y = np.round(rng.beta(0.4, 0.4, n) * width, 1), np.round(rng.beta(0.4, 0.4, n) * height, 1)
        angles = rng.normal(0, (8, 5, 3), (n, 3)).round(2)
        error = rng.gamma(2.0, 40.0, n).round(1)
        rows = []
        for i in range(n):
            s = int(session_index[i])
            captured = first_day + dt.timedelta(seconds=float(starts[s]) + 0.2 * float(offset[i]))
            reviewed = captured + dt.timedelta(days=1) if reasons[i].startswith("review:") else None
            rows.append((int(ids[i]), session_ids[s], volunteer_ids[owner[s]], None, f"f{int(offset[i])}",
                         captured, captured, float(x[i]), float(y[i]), float(angles[i, 0]),
                         float(angles[i, 1]), float(angles[i, 2]), 200.0, 120.0, 220.0, 220.0, 640, 480,
                         QUALITY, str(status[i]), reasons[i], reviewed, float(error[i])))
        images = [(int(i),) + ("jpeg",) + image_row for i in ids if i % image_every == 0 or i > samples - 200]
        made_images += len(images)
        with engine.begin() as connection:
            _insert(connection, postgres, "samples", SAMPLE_COLUMNS, rows)
            _insert(connection, postgres, "sample_images",
                    ("sample_id", "format", *CROP_KINDS, "landmarks"), images)
    run_rows = []
    for r in range(runs):
        created = first_day + dt.timedelta(seconds=float(r) / max(1, runs) * DAYS * 86400)
        history = [{"epoch": e, "train_loss": round(1.0 / (e + 1), 4), "val_error_px": round(200 - 4 * e, 1)}
                   for e in range(1, 26)]
        mean_px = round(float(rng.uniform(120, 220)), 1)
        run_rows.append((r + 1, created, created, created + dt.timedelta(hours=1), "done",
                         json.dumps({"epochs": 25, "batch_size": 64, "learning_rate": 0.001,
                                     "architecture": "multi_input", "inputs": "all", "folds": 1}),
                         json.dumps({"epoch": 25, "epochs": 25, "history": history}),
                         json.dumps({"test": {"model": {"mean_px": mean_px, "median_px": mean_px * 0.8}},
                                     "ratio_to_ridge": round(float(rng.uniform(0.7, 1.1)), 2)}),
                         json.dumps({"train": 80, "test": 20}), False))
    with engine.begin() as connection:
        _insert(connection, postgres, "training_runs",
                ("id", "created_at", "started_at", "finished_at", "status", "params", "progress", "metrics",
                 "split", "cancel_requested"), run_rows)
        if postgres:
            for table in ("samples", "training_runs"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
    return {"volunteers": n_volunteers, "sessions": n_sessions, "images": made_images,
            "last_session": session_ids[-1]}


def _insert(connection, postgres: bool, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    if not rows:
        return
    if postgres:
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    connection.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def _analyze(database_url: str) -> None:
    engine = get_engine(database_url)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")


def db_bytes(database_url: str) -> int:
    engine = get_engine(database_url)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar())
    path = Path(database_url.split(":///", 1)[1])
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def _timed(client, path: str, repeat: int, before=None, **kwargs) -> list[float]:
    times = []
    for i in range(repeat + 2):
        if before is not None:
            before()
        started = time.perf_counter()
        response = client.get(path, **kwargs)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.get_data(as_text=True)[:300]}")
        if i >= 2:   # two warm-up requests
            times.append(elapsed)
    return times


def measure(config, repeat: int, samples: int, runs: int, last_session: str) -> dict:
    from collection.accounts import create_admin
    from webapp import create_app
    with session_scope(config.database_url) as db:
        create_admin(db, "bench", "bench-password-123")
        oldest = db.scalar(select(func.min(Sample.id))) or 1
        newest = db.scalar(select(func.max(Sample.id))) or 1
        oldest_run = db.scalar(select(func.min(TrainingRun.id))) or 1
    app = create_app(config)
    client = app.test_client()
    html = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    response = client.post("/admin/login", data={"name": "bench", "password": "bench-password-123",
                                                 "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    deep = oldest + (newest - oldest) // 20           # 95 % of the way down
    deep_run = oldest_run + max(1, runs // 20)
    pages = {
        "overview": "/admin/",
        "review_first": "/admin/review",
        "review_deep": f"/admin/review?before={deep}",
        "review_deep_filtered": f"/admin/review?status=flagged&before={deep}",
        "runs": "/admin/runs",
        "runs_deep": f"/admin/runs?before={deep_run}",
        "coverage": "/admin/coverage.png",
    }
    result = {}
    for name, path in pages.items():
        p50, p95 = percentiles(_timed(client, path, repeat))
        result[f"{name}_p50_ms"], result[f"{name}_p95_ms"] = p50, p95
    # the heatmap is rendered once per distinct grid; new accepted samples change the grid,
    # so also time it rendered afresh on every request
    from webapp.admin.overview import _cached_heatmap
    p50, p95 = percentiles(_timed(client, "/admin/coverage.png", repeat, before=_cached_heatmap.cache_clear))
    result["coverage_uncached_p50_ms"], result["coverage_uncached_p95_ms"] = p50, p95
    # a volunteer's own coverage (the collection API, their upload token)
    volunteer = app.test_client()
    p50, p95 = percentiles(_timed(volunteer, f"/api/v1/coverage?session_id={last_session}", repeat,
                                  headers={"Authorization": f"Bearer {TOKEN}"}))
    result["coverage_session_p50_ms"], result["coverage_session_p95_ms"] = p50, p95
    return result


def run(samples: int, runs: int, database_url: str | None, repeat: int, image_every: int,
        keep: bool = False) -> dict:
    from collection.summary import recount
    data_dir = Path(tempfile.mkdtemp(prefix="gazelab-scale-"))
    try:
        url = database_url or f"sqlite:///{data_dir}/scale.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAZELAB_SERVER_")}
        env.update({"GAZELAB_SERVER_DATA_DIR": str(data_dir), "GAZELAB_SERVER_DATABASE_URL": url,
                    # rate limits fail open without a broker; nothing is queued here
                    "GAZELAB_SERVER_BROKER_URL": "redis://127.0.0.1:9/0",
                    "GAZELAB_SERVER_SECRET_KEY": "bench-scale-secret"})
        config = load_config(environ=env)
        migrate.upgrade(url)
        with session_scope(url) as db:
            if db.scalar(select(func.count()).select_from(Sample)):
                raise SystemExit(f"{url} already holds samples: give an empty database")
        crops = real_crops(config)
        started = time.perf_counter()
        made = build(url, samples, runs, image_every, crops)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        with session_scope(url) as db:
            recount(db)
        recount_s = time.perf_counter() - started
        started = time.perf_counter()
        _analyze(url)
        analyze_s = time.perf_counter() - started
        timings = measure(config, repeat, samples, runs, made["last_session"])
        engine = get_engine(url)
        return {
            "database": engine.dialect.name, "samples": samples, "volunteers": made["volunteers"],
            "sessions": made["sessions"], "runs": runs, "days": DAYS,
            "status_mix": {"accepted": 0.80, "rejected": 0.16, "flagged": 0.04},
            "crops": (f"one real frame of the virtual volunteer through the real extraction; its encoded crops "
                      f"stored for every {image_every}th sample and the newest 200 ({made['images']} rows)"),
            "client": "Flask test client, admin logged in (full app, no HTTP socket)",
            "repeat": repeat, **timings,
            "db_bytes": db_bytes(url), "build_s": round(build_s, 1), "recount_s": round(recount_s, 1),
            "analyze_s": round(analyze_s, 1),
            "database_kept": url if keep else None,
        }
    finally:
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
