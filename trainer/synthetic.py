"""Procedural gaze data: crops whose content depends on the gaze target and head pose.

A stand-in for the virtual volunteer + extraction until they are available, and a fast
fixture for tests. Each volunteer has their own skin/iris colours, eye shape and a small
personal gaze offset (like the kappa angle); each sample's iris position in the eye crops
(and in its face-mesh landmarks) follows the target and the head yaw/pitch, so neither the
eyes nor the head pose alone tell the target exactly. Optionally each session starts with
9 calibration trials (a 3×3 grid), as the volunteer page does. Rows are written with the
real schema, so the trainer reads them through its normal snapshot path.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import cv2
import numpy as np
from sqlalchemy.orm import Session

from collection.codec import encode_landmarks
from collection.extraction import LEFT_EYE_CORNERS, LEFT_IRIS, RIGHT_EYE_CORNERS, RIGHT_IRIS
from gazelab.schema import CollectionSession, Sample, SampleImages, Trial, Volunteer, stable_id

SCREENS = [(1920, 1080), (1440, 900), (1366, 768), (2560, 1440), (1280, 800)]
FRAME = (640, 480)
CALIBRATION_GRID = [(u, v) for v in (0.1, 0.5, 0.9) for u in (0.1, 0.5, 0.9)]


@dataclass
class SyntheticSample:
    target: tuple[float, float]          # CSS px
    angles: tuple[float, float, float]   # yaw, pitch, roll (degrees)
    images: dict[str, np.ndarray]        # face, face_aligned, l_eye, r_eye (S,S,3); head_pos (S,S)
    landmarks: np.ndarray                # (478, 2) frame px


def _disc(size: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return (((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2) <= 1.0


def _eye(size: int, look_x: float, look_y: float, person: dict, rng: np.random.Generator) -> np.ndarray:
    """An eye crop: skin, sclera ellipse, iris and pupil displaced by the gaze (-1..1)."""
    s = size / 64.0
    img = np.empty((size, size, 3), np.float32)
    img[:] = person["skin"]
    c = size / 2 + rng.normal(0, 1.5 * s, 2)  # crop jitter from the landmark detector
    img[_disc(size, c[0], c[1], 22 * s, person["eye_open"] * s)] = (235, 235, 230)
    ix, iy = c[0] + look_x * 11 * s, c[1] + look_y * 6 * s
    img[_disc(size, ix, iy, 8 * s, 8 * s) & _disc(size, c[0], c[1], 22 * s, person["eye_open"] * s)] = person["iris"]
    img[_disc(size, ix, iy, 3.5 * s, 3.5 * s)] = (20, 20, 20)
    return _finish(img, rng)


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = img * rng.uniform(0.75, 1.2) + rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _face(size: int, yaw: float, pitch: float, look_x: float, look_y: float, person: dict,
          rng: np.random.Generator) -> np.ndarray:
    s = size / 64.0
    img = np.empty((size, size, 3), np.float32)
    img[:] = person["background"]
    cx, cy = size / 2 + yaw * 0.4 * s, size / 2 + pitch * 0.4 * s
    img[_disc(size, cx, cy, 22 * s, 28 * s)] = person["skin"]
    for side in (-1, 1):
        ex, ey = cx + side * 10 * s, cy - 6 * s
        img[_disc(size, ex, ey, 5 * s, 2.5 * s)] = (235, 235, 230)
        img[_disc(size, ex + look_x * 2.5 * s, ey + look_y * 1.2 * s, 1.8 * s, 1.8 * s)] = person["iris"]
    img[_disc(size, cx, cy + 14 * s, 8 * s, 2.5 * s)] = (150, 60, 60)
    return _finish(img, rng)


def _head_pos(size: int, box: tuple[float, float, float, float]) -> np.ndarray:
    img = np.full((size, size), 255, np.uint8)
    x, y, w, h = (int(round(v * size)) for v in box)
    img[max(y, 0):y + h, max(x, 0):x + w] = 0
    return img


def _landmarks(person: dict, box: tuple, look_x: float, look_y: float, rng: np.random.Generator) -> np.ndarray:
    """Face-mesh-like points: the person's fixed pattern inside the face box, eye corners,
    and irises displaced by the gaze like the iris in the eye crops."""
    x, y, w, h = box[0] * FRAME[0], box[1] * FRAME[1], box[2] * FRAME[0], box[3] * FRAME[1]
    points = np.array([x, y]) + person["mesh"] * np.array([w, h])
    for corners, iris, side in ((RIGHT_EYE_CORNERS, RIGHT_IRIS, -1), (LEFT_EYE_CORNERS, LEFT_IRIS, 1)):
        outer = np.array([x + w * (0.5 + side * 0.38), y + h * 0.38])
        inner = np.array([x + w * (0.5 + side * 0.12), y + h * 0.38])
        points[corners[0]], points[corners[1]] = outer, inner
        eye_w = abs(outer[0] - inner[0])
        points[iris] = (outer + inner) / 2 + np.array([look_x * 0.2, look_y * 0.08]) * eye_w + rng.normal(0, 0.3, 2)
    return points.astype(np.float32)


def make_person(seed: int, offset: tuple[float, float] | None = None) -> dict:
    """A synthetic person; `offset` (screen fractions) replaces the drawn personal offset."""
    rng = np.random.default_rng(10_000 + seed)
    return {
        "skin": rng.uniform(60, 220, 3) * np.array([1.0, 0.85, 0.7]),
        "iris": rng.uniform(20, 140, 3),
        "background": rng.uniform(30, 220, 3),
        "eye_open": rng.uniform(8, 12),
        "bias": rng.normal(0, 0.04, 2),            # personal offset, fraction of the screen
        "head": (rng.uniform(0.3, 0.5), rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.35)),
        "mesh": rng.uniform(0.05, 0.95, (478, 2)),
    } | ({"bias": np.asarray(offset, float)} if offset is not None else {})


def make_sample(person: dict, screen: tuple[int, int], rng: np.random.Generator,
                size: int = 64, at: tuple[float, float] | None = None) -> SyntheticSample:
    """One frame looking at `at` (screen fractions; default: drawn edge-heavy)."""
    w, h = screen
    u, v = at if at is not None else np.clip(rng.beta(0.4, 0.4, 2), 0.001, 0.999)
    yaw, pitch, roll = rng.normal(0, 8), rng.normal(0, 6), rng.normal(0, 4)
    # The eyes rotate by what the head does not: the iris offset is gaze minus head pose.
    look_x = np.clip(2 * (u + person["bias"][0] - 0.5) - yaw / 25, -1.3, 1.3)
    look_y = np.clip(2 * (v + person["bias"][1] - 0.5) - pitch / 25, -1.3, 1.3)
    hx, hy, hw = person["head"]
    box = (hx + yaw / 200 + rng.normal(0, 0.01), hy - pitch / 200 + rng.normal(0, 0.01), hw, hw * 1.2)
    face = _face(size, yaw, pitch, look_x, look_y, person, rng)
    # l_eye is the person's left eye: on the right of the photo. Both look the same way.
    images = {"face": face, "face_aligned": face.copy(),
              "l_eye": _eye(size, look_x, look_y, person, rng),
              "r_eye": _eye(size, look_x, look_y, person, rng),
              "head_pos": _head_pos(size, box)}
    return SyntheticSample((float(u * w), float(v * h)), (float(yaw), float(pitch), float(roll)), images,
                           _landmarks(person, box, look_x, look_y, rng))


def encode(image: np.ndarray, fmt: str = "png") -> bytes:
    """RGB (S,S,3) or grey (S,S) array → PNG/JPEG bytes (as the extraction stores them)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode("." + fmt, image)
    assert ok
    return buf.tobytes()


def _add_sample(db: Session, session: CollectionSession, sample: SyntheticSample, index: int,
                captured: dt.datetime, fmt: str, trial: Trial | None = None) -> None:
    row = Sample(session_id=session.id, volunteer_id=session.volunteer_id, client_frame_id=str(index),
                 trial_id=trial.id if trial else None, captured_at=captured, status="accepted",
                 target_x=sample.target[0], target_y=sample.target[1], yaw=sample.angles[0],
                 pitch=sample.angles[1], roll=sample.angles[2], frame_width=FRAME[0], frame_height=FRAME[1])
    row.images = SampleImages(format=fmt, landmarks=encode_landmarks(sample.landmarks),
                              **{k: encode(a, fmt) for k, a in sample.images.items()})
    db.add(row)


def insert_dataset(db: Session, volunteers: int, samples_per_volunteer: int, sessions_per_volunteer: int = 1,
                   seed: int = 0, size: int = 64, fmt: str = "png", calibration_frames: int = 0,
                   offset: tuple[float, float] | None = None) -> int:
    """Insert accepted samples for `volunteers` synthetic people; returns the number inserted.
    `calibration_frames` > 0: each session first looks at the 9 calibration dots, that many
    frames per dot (trial kind "calibration"), before its `samples_per_volunteer` frames.
    `offset`: every one of these people has this personal offset (screen fractions)."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2026, 1, 1)
    total = 0
    for v in range(volunteers):
        person = make_person(seed * 1000 + v, offset)
        tag = f"synthetic:{seed}:{v}"
        volunteer = Volunteer(id=stable_id(tag), consent_version="synthetic", source=tag)
        db.add(volunteer)
        for s in range(sessions_per_volunteer):
            screen = SCREENS[rng.integers(len(SCREENS))]
            session = CollectionSession(volunteer=volunteer, token_hash="x" * 64, screen_width=screen[0],
                                        screen_height=screen[1], mm_per_px=0.25, status="finished")
            db.add(session)
            db.flush()
            for u, w in CALIBRATION_GRID if calibration_frames else ():
                trial = Trial(session_id=session.id, kind="calibration", target_x=u * screen[0],
                              target_y=w * screen[1], shown_at=start + dt.timedelta(seconds=total))
                db.add(trial)
                db.flush()
                for _ in range(calibration_frames):
                    _add_sample(db, session, make_sample(person, screen, rng, size, at=(u, w)), total,
                                start + dt.timedelta(seconds=total), fmt, trial)
                    total += 1
            for _ in range(samples_per_volunteer // sessions_per_volunteer):
                _add_sample(db, session, make_sample(person, screen, rng, size), total,
                            start + dt.timedelta(seconds=total), fmt)
                total += 1
            db.flush()
    return total
