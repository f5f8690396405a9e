"""Glasses on a lens plane: a 3-D frame in front of the eyes, drawn into each frame.

The lenses are two ellipses in a plane ~15 mm in front of the irises (the cornea plus a
spectacle vertex distance), the frame's rims run round them, a bridge joins them and the
temples go back to the ears -- all in the face frame, so when the head turns the rims shift
against the eyes behind them (parallax) as real glasses do, and the far temple hides behind
the face. Through a lens the eye is seen scaled about the lens's centre: a minus lens (short
sight, the commonest) shrinks it, a plus lens enlarges it (spectacle magnification
1 / (1 - d P), d the lens-to-eye distance, P the power in dioptres) -- which also changes the
iris's apparent size the extraction reads distance from. Each lens has a tint and a reflection
of the room's light that slides across it as the head turns against the light.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

LENS_AHEAD_MM = 15.0         # iris plane to the lens plane
EYE_TO_LENS_M = 0.015        # for the spectacle magnification
RIM_POINTS = 48
SUBPIXEL_BITS = 4
FRAME_COLOURS = np.array([(20, 18, 18), (70, 45, 30), (150, 150, 155), (110, 30, 30), (40, 40, 70)], np.float32)
TINT_COLOUR = np.array([200, 210, 225], np.float32)


@dataclass(frozen=True)
class Glasses:
    """A pair of glasses in the face frame (mm; simulator.face: x right, y down, z into the head)."""
    centres_mm: np.ndarray       # (2, 3) lens centres, image-left lens first
    half_mm: tuple[float, float]  # lens half width, half height
    rim_mm: float                # the frame's thickness
    colour: np.ndarray           # (3,) float RGB
    tint: float
    reflectivity: float
    magnification: float         # scale of what is seen through a lens
    ears_mm: np.ndarray          # (2, 3) where the temples reach the head, image-left first

    def rims(self) -> list[np.ndarray]:
        """(RIM_POINTS, 3) face-frame points round each lens."""
        angle = np.linspace(0, 2 * np.pi, RIM_POINTS, endpoint=False)
        ring = np.column_stack([self.half_mm[0] * np.cos(angle), self.half_mm[1] * np.sin(angle),
                                np.zeros(RIM_POINTS)])
        return [centre + ring for centre in self.centres_mm]

    def bridge(self) -> np.ndarray:
        """(9, 3) face-frame points: an arch between the inner rim edges, rising above the lenses' centres."""
        inner = [self.centres_mm[0] + (self.half_mm[0], 0, 0), self.centres_mm[1] - (self.half_mm[0], 0, 0)]
        t = np.linspace(0, 1, 9)[:, None]
        rise = (4 * t * (1 - t)) * (0, 0.35 * self.half_mm[1], 0)
        return inner[0] + (inner[1] - inner[0]) * t - rise

    def temples(self) -> list[np.ndarray]:
        """(2, 3) face-frame segments from each lens's outer edge back to the ear."""
        starts = [self.centres_mm[0] - (self.half_mm[0], 0, 0), self.centres_mm[1] + (self.half_mm[0], 0, 0)]
        return [np.array([start, ear]) for start, ear in zip(starts, self.ears_mm)]


def make(rng: np.random.Generator, eye_centres_mm: np.ndarray, eye_width_mm: float,
         ears_mm: np.ndarray) -> Glasses:
    """A random pair for eyes centred at `eye_centres_mm` (face frame, image-left first)."""
    half = (eye_width_mm * rng.uniform(0.72, 0.9), eye_width_mm * rng.uniform(0.5, 0.7))
    colour = FRAME_COLOURS[int(rng.integers(len(FRAME_COLOURS)))]
    rim = eye_width_mm * rng.uniform(0.06, 0.12)
    if rng.random() < 0.4:       # round rims: taller lenses
        half = (half[0], half[1] * 1.15)
    tint = float(rng.uniform(0.0, 0.12))
    reflectivity = float(rng.uniform(0.12, 0.35))
    kind = rng.random()          # short sight is commonest; some lenses are plain
    power = rng.uniform(-6.0, -0.5) if kind < 0.6 else (rng.uniform(0.5, 3.0) if kind < 0.85 else 0.0)
    centres = np.array(eye_centres_mm, np.float64) + (0, 0.08 * eye_width_mm, 0)
    centres[:, 2] = eye_centres_mm[:, 2].mean() - LENS_AHEAD_MM
    ears = np.array(ears_mm, np.float64)
    ears[:, 1] = centres[:, 1] - 0.05 * eye_width_mm
    return Glasses(centres, half, float(rim), colour, tint, reflectivity,
                   float(1 / (1 - EYE_TO_LENS_M * power)), ears)


def draw(picture: np.ndarray, glasses: Glasses, rotation: np.ndarray, centre: np.ndarray,
         project: Callable[[np.ndarray], np.ndarray], focal: float, light_in_head: np.ndarray,
         light_strength: float, shade: float, face_depth: Callable[[np.ndarray], np.ndarray]) -> None:
    """Draw the glasses (in place) into a frame of the head at rotation/centre (face -> camera mm).

    project: camera mm -> frame px; face_depth: (N, 2) frame px -> camera z of the face drawn
    there (+inf where none), which hides the far temple; shade: the light's factor on the frame.
    """
    def to_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        camera = points @ rotation.T + centre
        return project(camera), camera[:, 2]

    for lens_centre in glasses.centres_mm:
        _lens(picture, glasses, lens_centre, rotation, centre, project, light_in_head, light_strength)
    colour = tuple(float(c) for c in np.clip(glasses.colour * shade, 0, 255))
    for points in (*glasses.rims(), glasses.bridge()):
        px, depth = to_frame(points)
        thickness = max(1, int(round(glasses.rim_mm * focal / float(depth.mean()))))
        closed = len(points) == RIM_POINTS
        cv2.polylines(picture, [_fixed(px)], closed, colour, thickness, cv2.LINE_AA, SUBPIXEL_BITS)
    for segment in glasses.temples():
        steps = np.linspace(0, 1, 13)[:, None]
        points = segment[0] + (segment[1] - segment[0]) * steps
        px, depth = to_frame(points)
        thickness = max(1, int(round(0.8 * glasses.rim_mm * focal / float(depth.mean()))))
        visible = depth <= face_depth(px) + 1.0
        for k in range(len(points) - 1):
            if visible[k] and visible[k + 1]:
                cv2.line(picture, tuple(_fixed(px[k])), tuple(_fixed(px[k + 1])), colour, thickness,
                         cv2.LINE_AA, SUBPIXEL_BITS)


def lens_homography(lens_centre: np.ndarray, rotation: np.ndarray, centre: np.ndarray,
                    project: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """3x3: lens-plane mm (a, b from the lens centre along the face's x, y) -> frame px."""
    plane = np.array([(0, 0), (10, 0), (0, 10), (10, 10)], np.float64)
    points = lens_centre + np.column_stack([plane, np.zeros(4)])
    frame = project(points @ rotation.T + centre)
    return cv2.getPerspectiveTransform(plane.astype(np.float32), frame.astype(np.float32))


def _lens(picture: np.ndarray, glasses: Glasses, lens_centre: np.ndarray, rotation: np.ndarray,
          centre: np.ndarray, project, light_in_head: np.ndarray, light_strength: float) -> None:
    """What is behind one lens, scaled about its centre, tinted, with the light's reflection."""
    to_frame = lens_homography(lens_centre, rotation, centre, project)
    half_w, half_h = glasses.half_mm
    outline = cv2.perspectiveTransform(
        np.array([[(half_w * np.cos(a), half_h * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 24)]],
                 np.float32), to_frame)[0]
    height, width = picture.shape[:2]
    x0, y0 = np.maximum(np.floor(outline.min(axis=0)) - 1, 0).astype(int)
    x1, y1 = np.minimum(np.ceil(outline.max(axis=0)) + 2, (width, height)).astype(int)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    plane = cv2.perspectiveTransform(np.dstack([xs, ys]), np.linalg.inv(to_frame))
    u, v = plane[..., 0] / half_w, plane[..., 1] / half_h
    edge_px = float(np.ptp(outline[:, 0])) / 2 / max(half_w, 1e-6)        # frame px per mm, across
    inside = np.clip((1 - np.sqrt(u * u + v * v)) * half_w * edge_px + 0.5, 0, 1)[..., None]
    optical = cv2.perspectiveTransform(np.zeros((1, 1, 2), np.float32), to_frame)[0, 0]
    scale = 1 / glasses.magnification
    seen = cv2.remap(picture, optical[0] + (xs - optical[0]) * scale, optical[1] + (ys - optical[1]) * scale,
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    seen += (TINT_COLOUR - seen) * glasses.tint
    offset = -0.6 * float(light_in_head[0]) - 0.6 * float(light_in_head[1])
    band = np.exp(-(((u + v) * 0.7 - offset) / 0.25) ** 2)[..., None] * glasses.reflectivity * light_strength
    seen += (255 - seen) * band
    patch = picture[y0:y1, x0:x1].astype(np.float32)
    picture[y0:y1, x0:x1] = np.clip(patch + (seen - patch) * inside, 0, 255).astype(np.uint8)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * (1 << SUBPIXEL_BITS)).astype(np.int32)
