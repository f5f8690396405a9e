"""Where the eyes are and where the screen is, in millimetres, from what a session records.

Camera coordinates as everywhere in GazeLab: x to the image's right, y down, z away from
the camera towards the volunteer. The webcam is assumed at the top centre of the screen,
looking straight out of it (z = 0 is the screen plane), CAMERA_GAP_MM above the picture's
top edge — the browser cannot tell us otherwise, and a per-person calibration absorbs what
a real set-up differs by. A screen point (sx, sy) in CSS px lies at
x = -(sx - width / 2) * mm_per_px, y = CAMERA_GAP_MM + sy * mm_per_px.

The eyes: the iris is nearly the same size in every adult (IRIS_DIAMETER_MM), so its
apparent diameter with the camera's field of view (`[collection] camera_hfov_deg`, a typical
webcam's when unknown) gives each eye's distance; its pixel position gives the direction.

`geometry_inputs` turns this into the model's "geometry" input: the eyes' midpoint and the
screen's size, in metres (GEOMETRY_COLUMNS). Rows without landmarks get a typical sitter
(TYPICAL_ORIGIN_MM); sessions without a measured pixel pitch a typical one.
"""
from __future__ import annotations

import math

import numpy as np

from collection.extraction import LEFT_IRIS, RIGHT_IRIS

IRIS_DIAMETER_MM = 11.7              # adults, nearly constant: a ruler in every frame
IRIS_RINGS = ((469, 471), (470, 472), (474, 476), (475, 477))   # opposite iris-edge landmarks
CAMERA_GAP_MM = 10.0                 # lens to the top edge of the screen's picture
TYPICAL_MM_PER_PX = 0.25             # when the session did not measure its screen
TYPICAL_ORIGIN_MM = (0.0, 150.0, 600.0)
DISTANCE_RANGE_MM = (150.0, 2000.0)  # beyond this the iris measure is not believed
GEOMETRY_COLUMNS = ("origin_x_m", "origin_y_m", "origin_z_m", "screen_width_m", "screen_height_m")
GEOMETRY_MIRROR = (-1.0, 1.0, 1.0, 1.0, 1.0)   # a mirrored frame: the eyes at -x, the same screen


def focal_px(frame_width: np.ndarray | float, hfov_deg: float) -> np.ndarray | float:
    return np.asarray(frame_width, np.float64) / 2 / math.tan(math.radians(hfov_deg) / 2)


def iris_diameter_px(landmarks: np.ndarray) -> np.ndarray:
    """(N,) mean apparent iris diameter of both eyes, px; landmarks (N, 478, 2)."""
    rings = [np.linalg.norm(landmarks[:, a] - landmarks[:, b], axis=-1) for a, b in IRIS_RINGS]
    return np.mean(rings, axis=0)


def viewing_distance_mm(landmarks: np.ndarray, frame_width: int, hfov_deg: float) -> float | None:
    """Camera-to-eye distance of one frame (landmarks (478, 2)), None when unmeasurable."""
    iris_px = float(iris_diameter_px(np.asarray(landmarks, np.float64)[None])[0])
    if not iris_px > 0 or not frame_width:
        return None
    return float(focal_px(frame_width, hfov_deg)) * IRIS_DIAMETER_MM / iris_px


def eye_origin_mm(landmarks: np.ndarray, frame_sizes: np.ndarray, hfov_deg: float) -> np.ndarray:
    """(N, 3) camera-frame mm of the midpoint between the two iris centres; NaN rows where a
    frame has no usable landmarks."""
    landmarks = np.asarray(landmarks, np.float64)
    frame_sizes = np.asarray(frame_sizes, np.float64)
    focal = focal_px(frame_sizes[:, 0], hfov_deg)
    with np.errstate(invalid="ignore", divide="ignore"):
        depth = focal * IRIS_DIAMETER_MM / iris_diameter_px(landmarks)
        centre = (landmarks[:, RIGHT_IRIS] + landmarks[:, LEFT_IRIS]) / 2
        x = (centre[:, 0] - frame_sizes[:, 0] / 2) * depth / focal
        y = (centre[:, 1] - frame_sizes[:, 1] / 2) * depth / focal
    origin = np.stack([x, y, depth], axis=1)
    bad = ~np.isfinite(origin).all(axis=1) | (depth < DISTANCE_RANGE_MM[0]) | (depth > DISTANCE_RANGE_MM[1])
    origin[bad] = np.nan
    return origin


def geometry_inputs(landmarks: np.ndarray, frame_sizes: np.ndarray, screens: np.ndarray,
                    mm_per_px: np.ndarray, hfov_deg: float) -> np.ndarray:
    """(N, 5) float32, GEOMETRY_COLUMNS: eye midpoint (m) and screen width, height (m)."""
    origin = eye_origin_mm(landmarks, frame_sizes, hfov_deg)
    origin = np.where(np.isfinite(origin), origin, np.asarray(TYPICAL_ORIGIN_MM))
    pitch = np.asarray(mm_per_px, np.float64)
    pitch = np.where(np.isfinite(pitch) & (pitch > 0), pitch, TYPICAL_MM_PER_PX)
    screen_mm = np.asarray(screens, np.float64) * pitch[:, None]
    return (np.hstack([origin, screen_mm]) / 1000).astype(np.float32)


def snapshot_geometry(snapshot, hfov_deg: float, chunk: int = 4096) -> np.ndarray:
    """geometry_inputs for every row of a trainer.snapshot.Snapshot (landmarks read a chunk
    at a time: they may be shard files)."""
    parts = [geometry_inputs(snapshot.landmarks[start:start + chunk], snapshot.frame_sizes[start:start + chunk],
                             snapshot.screens[start:start + chunk], snapshot.mm_per_px[start:start + chunk],
                             hfov_deg)
             for start in range(0, len(snapshot), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, len(GEOMETRY_COLUMNS)), np.float32)


def screen_point_mm(fractions: np.ndarray, screen_mm: np.ndarray) -> np.ndarray:
    """(N, 2) screen fractions → (N, 3) camera-frame mm on the screen plane."""
    fractions, screen_mm = np.asarray(fractions, np.float64), np.asarray(screen_mm, np.float64)
    x = -(fractions[:, 0] - 0.5) * screen_mm[:, 0]
    y = CAMERA_GAP_MM + fractions[:, 1] * screen_mm[:, 1]
    return np.stack([x, y, np.zeros_like(x)], axis=1)
