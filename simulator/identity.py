"""Identity details painted into a portrait's texture: facial hair and age marks.

Everything is painted once per volunteer in portrait px, so it lies on the 3-D face and
turns with it. Glasses are not painted: they are a 3-D object on a lens plane in front of the
eyes, drawn into each frame (simulator.glasses); `decorate` only draws whether they are worn.
"""
from __future__ import annotations

import cv2
import numpy as np

FACIAL_HAIR = ("none", "stubble", "moustache", "beard")
FACIAL_HAIR_WEIGHTS = (0.55, 0.2, 0.1, 0.15)
GLASSES_RATE = 0.3
# Face Mesh indices: lower face (jaw line up to the cheeks and nose wings), upper lip, lips.
JAW = (454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58,
       132, 93, 234, 116, 205, 129, 2, 358, 425, 345)
MOUSTACHE = (98, 2, 327, 410, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185, 61, 186)
LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
FOREHEAD = (109, 10, 338)
NOSE_WINGS, MOUTH_CORNERS = (129, 358), (61, 291)


def decorate(image: np.ndarray, landmarks: np.ndarray, eyes, face_oval: tuple[int, ...], rng: np.random.Generator,
             photo_has_glasses: bool = False) -> bool:
    """Paint this volunteer's facial hair and age marks (in place); whether they wear glasses."""
    kind = FACIAL_HAIR[int(rng.choice(len(FACIAL_HAIR), p=FACIAL_HAIR_WEIGHTS))]
    hair_colour = (rng.uniform(25, 90) * rng.uniform(0.85, 1.15, 3) * (1.1, 1.0, 0.9)).astype(np.float32)
    age = rng.uniform(0, 1) ** 1.5
    if kind != "none":
        _facial_hair(image, landmarks, kind, hair_colour, rng)
    if age > 0.15:
        _age_marks(image, landmarks, eyes, face_oval, age, rng)
    wears = rng.random() < GLASSES_RATE and not photo_has_glasses
    return wears


def _region(shape: tuple[int, int], landmarks: np.ndarray, indices, blur: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[list(indices)]).astype(np.int32)], 255)
    return cv2.GaussianBlur(mask, (0, 0), blur).astype(np.float32) / 255 if blur else mask.astype(np.float32) / 255


def _blend(image: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    ys, xs = np.nonzero(alpha > 0.01)
    if not len(ys):
        return
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    a = alpha[y0:y1, x0:x1, None]
    patch = image[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = np.clip(patch + (colour - patch) * a, 0, 255).astype(np.uint8)


def _facial_hair(image, landmarks, kind: str, colour: np.ndarray, rng: np.random.Generator) -> None:
    """Hair texture: dark speckles (stubble) or strokes, denser for a beard, in the lower face."""
    shape = image.shape[:2]
    lips = _region(shape, landmarks, LIPS, 1.5)
    if kind == "moustache":
        region = _region(shape, landmarks, MOUSTACHE, 2.5)
    else:
        region = np.maximum(_region(shape, landmarks, JAW, 5), _region(shape, landmarks, MOUSTACHE, 2.5))
    region *= 1 - lips
    density = {"stubble": 0.35, "moustache": 0.85, "beard": 0.9}[kind]
    grain = rng.random(shape).astype(np.float32)
    if kind == "stubble":
        hairs = (grain < density).astype(np.float32)
        hairs = cv2.GaussianBlur(hairs, (0, 0), 0.7)
        strength = rng.uniform(0.35, 0.6)
    else:  # strands: noise smeared downwards
        hairs = cv2.GaussianBlur(grain, (0, 0), 0.8)
        hairs = cv2.blur(hairs, (1, 7))
        hairs = np.clip((hairs - hairs.mean()) * 6 + density, 0, 1)
        strength = rng.uniform(0.45, 0.75)
    _blend(image, colour, region * hairs * strength)


def _age_marks(image, landmarks, eyes, face_oval, age: float, rng: np.random.Generator) -> None:
    """Wrinkle lines (crow's feet, forehead, nasolabial folds) and a few spots."""
    shape = image.shape[:2]
    lines = np.zeros(shape, np.float32)
    eye_width = float(np.mean([np.linalg.norm(e.corners[1] - e.corners[0]) for e in eyes]))
    for eye in eyes:
        outer, inner = eye.corners
        out = (outer - inner) / np.linalg.norm(outer - inner)
        for angle in np.radians(rng.uniform(-35, 35, 3)):
            c, s = np.cos(angle), np.sin(angle)
            direction = np.array([c * out[0] - s * out[1], s * out[0] + c * out[1]])
            start = outer + out * 0.15 * eye_width
            _stroke(lines, [start, start + direction * rng.uniform(0.3, 0.55) * eye_width], 1)
    top = landmarks[list(FOREHEAD)]
    brow = (eyes[0].upper.mean(axis=0) + eyes[1].upper.mean(axis=0)) / 2
    for k in range(int(1 + 3 * age)):
        y_fraction = 0.35 + 0.15 * k + rng.uniform(-0.04, 0.04)
        left = eyes[0].corners[0] + (top[0] - brow) * y_fraction * 1.3
        right = eyes[1].corners[0] + (top[2] - brow) * y_fraction * 1.3
        middle = (left + right) / 2 + (0, -0.05 * eye_width)
        _stroke(lines, [left, middle, right], 1)
    for wing, corner in zip(NOSE_WINGS, MOUTH_CORNERS):
        a, b = landmarks[wing], landmarks[corner]
        bow = (a + b) / 2 + (np.sign(a[0] - b[0]) * 0.08 * eye_width, 0)
        _stroke(lines, [a + (b - a) * 0.1, bow, b + (b - a) * 0.15], 2)
    lines = cv2.GaussianBlur(lines, (0, 0), 1.0)
    face = _region(shape, landmarks, face_oval, 3)
    _blend(image, np.array([70, 45, 35], np.float32), lines * face * 0.35 * age)
    spots = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(0, 12) * age)):
        point = landmarks[int(rng.integers(0, 468))]
        cv2.circle(spots, (int(point[0]), int(point[1])), int(rng.integers(1, 4)), 1.0, -1, cv2.LINE_AA)
    _blend(image, np.array([110, 70, 50], np.float32), cv2.GaussianBlur(spots, (0, 0), 1.2) * face * 0.5)


def _stroke(canvas: np.ndarray, points, thickness: int) -> None:
    curve = np.round(np.array(points) * 16).astype(np.int32)
    cv2.polylines(canvas, [curve], False, 1.0, thickness, cv2.LINE_AA, 4)
