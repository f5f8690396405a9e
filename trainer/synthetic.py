"""Procedural gaze data: crops whose content depends on the gaze target and head pose.

A stand-in for the virtual volunteer + extraction until they are available, and a fast
fixture for tests. Each volunteer has their own skin/iris colours, eye shape and a small
personal gaze offset (like the kappa angle); each sample's iris position in the eye crops
follows the target and the head yaw/pitch, so neither the eyes nor the head pose alone
tell the target exactly. Rows are written with the real schema, so the trainer reads
them through its normal snapshot path.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import cv2
import numpy as np
from sqlalchemy.orm import Session

from gazelab.schema import CollectionSession, Sample, SampleImages, Volunteer

SCREENS = [(1920, 1080), (1440, 900), (1366, 768), (2560, 1440), (1280, 800)]


@dataclass
class SyntheticSample:
    target: tuple[float, float]          # CSS px
    angles: tuple[float, float, float]   # yaw, pitch, roll (degrees)
    images: dict[str, np.ndarray]        # face, face_aligned, l_eye, r_eye (S,S,3); head_pos (S,S)


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


def make_person(seed: int) -> dict:
    rng = np.random.default_rng(10_000 + seed)
    return {
        "skin": rng.uniform(60, 220, 3) * np.array([1.0, 0.85, 0.7]),
        "iris": rng.uniform(20, 140, 3),
        "background": rng.uniform(30, 220, 3),
        "eye_open": rng.uniform(8, 12),
        "bias": rng.normal(0, 0.04, 2),            # personal offset, fraction of the screen
        "head": (rng.uniform(0.3, 0.5), rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.35)),
    }


def make_sample(person: dict, screen: tuple[int, int], rng: np.random.Generator,
                size: int = 64) -> SyntheticSample:
    w, h = screen
    u, v = np.clip(rng.beta(0.4, 0.4, 2), 0.001, 0.999)
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
    return SyntheticSample((float(u * w), float(v * h)), (float(yaw), float(pitch), float(roll)), images)


def encode(image: np.ndarray, fmt: str = "png") -> bytes:
    """RGB (S,S,3) or grey (S,S) array → PNG/JPEG bytes (as the extraction stores them)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode("." + fmt, image)
    assert ok
    return buf.tobytes()


def insert_dataset(db: Session, volunteers: int, samples_per_volunteer: int, sessions_per_volunteer: int = 1,
                   seed: int = 0, size: int = 64, fmt: str = "png") -> int:
    """Insert accepted samples for `volunteers` synthetic people; returns the number inserted."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2026, 1, 1)
    total = 0
    for v in range(volunteers):
        person = make_person(seed * 1000 + v)
        volunteer = Volunteer(consent_version="synthetic", source=f"synthetic:{seed}:{v}")
        db.add(volunteer)
        for s in range(sessions_per_volunteer):
            screen = SCREENS[rng.integers(len(SCREENS))]
            session = CollectionSession(volunteer=volunteer, token_hash="x" * 64, screen_width=screen[0],
                                        screen_height=screen[1], mm_per_px=0.25, status="finished")
            db.add(session)
            db.flush()
            per_session = samples_per_volunteer // sessions_per_volunteer
            for i in range(per_session):
                sample = make_sample(person, screen, rng, size)
                row = Sample(session_id=session.id, volunteer_id=volunteer.id, client_frame_id=str(i),
                             captured_at=start + dt.timedelta(seconds=total), status="accepted",
                             target_x=sample.target[0], target_y=sample.target[1],
                             yaw=sample.angles[0], pitch=sample.angles[1], roll=sample.angles[2])
                row.images = SampleImages(format=fmt, **{k: encode(a, fmt) for k, a in sample.images.items()})
                db.add(row)
                total += 1
            db.flush()
    return total
