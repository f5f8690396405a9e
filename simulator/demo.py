"""`gazelab demo-data`: fill the database with virtual volunteers through the real ingest path.

Each virtual volunteer does what the volunteer page does: one session with consent, then
trials (9 calibration dots, then dots from the configured sampler), a few frames per dot
uploaded through `collection.ingest.ingest_frame` (so extraction and quality checks are the real
ones), and the attention letter answered -- wrongly when the volunteer looked elsewhere.
Volunteer i sits in style `style_for_volunteer(i)` (simulator.styles: round-robin, the held-out
style included), which draws the screen (13-32"), the viewing distance, webcam and light.
Volunteers are tagged `demo:<seed>:<i>:<style>` in Volunteer.source, so a second run skips
them, and their ids derive from that tag, so the same seed always gives the same train/test split.
"""
from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import os
import string
import time
from collections import Counter

import numpy as np
from sqlalchemy import select

from gazelab.config import Config
from gazelab.db import session_scope
from gazelab.schema import CollectionSession, Volunteer, stable_id
from collection import reasons as reason_codes
from simulator.styles import STYLES, style_for_volunteer
from simulator.volunteer import VirtualVolunteer

USER_AGENT = "GazeLab virtual volunteer"
TRIAL_INATTENTION = 0.025  # trials where the volunteer looks away and misses the letter
# Per-frame rates: a cooperative volunteer (the simulator's defaults are harsher).
FRAME_RATES = {"blink_rate": 0.025, "inattentive_rate": 0.02, "no_face_rate": 0.01}


def source_tag(seed: int, index: int) -> str:
    return f"demo:{seed}:{index}:{style_for_volunteer(index)}"


def style_of_source(source: str) -> str | None:
    """The rendering style in a volunteer's source tag (`demo:<seed>:<i>:<style>`), else None."""
    parts = (source or "").split(":")
    if len(parts) == 4 and parts[0] == "demo" and parts[3] in STYLES:
        return parts[3]
    return None


def frames_per_trial(config: Config) -> int:
    c = config.collection
    return max(1, round(c.capture_window_ms / 1000 * c.capture_fps))


def run_demo(config: Config, volunteers: int, samples: int, seed: int = 0,
             workers: int | None = None) -> dict:
    """Create `volunteers` virtual volunteers with `samples` frames each; returns a summary."""
    started = time.perf_counter()
    todo = [i for i in range(volunteers) if not _already_done(config, seed, i)]
    jobs = [(config, seed, i, samples) for i in todo]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    if workers == 1:
        results = [_volunteer_job(job) for job in jobs]
    else:
        # spawn: MediaPipe graphs and database connections must not cross a fork
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_volunteer_job, jobs, chunksize=1)
    statuses, reasons = Counter(), Counter()
    for result in results:
        statuses.update(result["statuses"])
        reasons.update(result["reasons"])
    seconds = time.perf_counter() - started
    frames = sum(statuses.values())
    return {"volunteers_created": len(jobs), "volunteers_skipped": volunteers - len(jobs),
            "frames": frames, "samples": {s: statuses.get(s, 0) for s in ("accepted", "rejected", "flagged")},
            "reasons": dict(reasons.most_common()),
            "attention_failed_trials": sum(r["attention_failed"] for r in results),
            "seconds": round(seconds, 1), "frames_per_second": round(frames / seconds, 1) if seconds else None,
            "workers": workers, "seed": seed}


def _already_done(config: Config, seed: int, index: int) -> bool:
    """True if this volunteer exists with a finished session; a half-made one is removed."""
    from collection.erasure import delete_volunteer
    with session_scope(config.database_url) as db:
        volunteer = db.scalar(select(Volunteer).where(Volunteer.source == source_tag(seed, index)))
        if volunteer is None:
            return False
        finished = db.scalar(select(CollectionSession.id).where(
            CollectionSession.volunteer_id == volunteer.id, CollectionSession.status == "finished"))
        if finished:
            return True
        delete_volunteer(db, config, volunteer.id)
        return False


def _volunteer_job(job: tuple) -> dict:
    import cv2
    cv2.setNumThreads(1)
    config, seed, index, samples = job
    with session_scope(config.database_url) as db:
        return simulate_volunteer(db, config, seed, index, samples)


def simulate_volunteer(db, config: Config, seed: int, index: int, samples: int) -> dict:
    """One virtual volunteer's whole visit, written through collection.ingest."""
    from collection import ingest, targets

    rng = np.random.default_rng([seed, index, 99])
    volunteer = VirtualVolunteer(seed * 100_003 + index, style=style_for_volunteer(index))
    sim = volunteer.session(fps=config.collection.capture_fps, **FRAME_RATES)
    (width, height), mm_per_px = sim.screen, sim.mm_per_px
    session, _token = ingest.create_session(
        db, config, consent_version=config.server.consent_version, screen_width=width,
        screen_height=height, device_pixel_ratio=1.0, mm_per_px=mm_per_px, user_agent=USER_AGENT,
        source=source_tag(seed, index), volunteer_id=stable_id(source_tag(seed, index)))

    per_trial = frames_per_trial(config)
    trials = math.ceil(samples / per_trial)
    calibration, _ = targets.next_targets(db, config, session, 9, kind="calibration", rng=rng)
    collection, _ = targets.next_targets(db, config, session, max(0, trials - len(calibration)),
                                         kind="collection", rng=rng)
    dots = [("calibration", p) for p in calibration] + [("collection", p) for p in collection]

    c = config.collection
    clock = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    statuses, reasons, failed, frame_index = Counter(), Counter(), 0, 0
    for kind, (x, y) in dots[:trials]:
        trial, _ = ingest.add_trial(db, session, kind=kind, target_x=x, target_y=y, shown_at=clock)
        looks_away = rng.random() < TRIAL_INATTENTION
        for k in range(min(per_trial, samples - frame_index)):
            jpeg, _truth = sim.frame((x, y), index=frame_index, inattentive=True if looks_away else None)
            captured = clock + dt.timedelta(milliseconds=c.fixation_delay_ms + k * 1000 / c.capture_fps)
            ingest.ingest_frame(db, config, session, frame=jpeg, client_frame_id=f"f{frame_index}",
                                trial_id=trial.id, target_x=x, target_y=y, captured_at=captured)
            frame_index += 1
        letter = string.ascii_uppercase[int(rng.integers(26))]
        answer = None if looks_away else letter
        failed += not ingest.record_attention(db, session, trial.id, letter, answer)
        clock += dt.timedelta(milliseconds=c.fixation_delay_ms + c.capture_window_ms + c.attention_ms)
    summary = ingest.finish_session(db, session)
    statuses.update(summary["counts"])
    from gazelab.schema import Sample
    for (codes,) in db.execute(select(Sample.reasons).where(Sample.session_id == session.id)):
        reasons.update(reason_codes.parse(codes))
    return {"statuses": dict(statuses), "reasons": dict(reasons), "attention_failed": failed}
