"""Pixels: repainting an eye for a gaze and a lid position, and the webcam's imperfections.

Eyes are painted in the (upscaled) portrait before the head warp, so the warp, blur, noise
and JPEG that follow treat them like the rest of the face.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from simulator.face import EyeShape

SUBPIXEL_BITS = 4            # fixed-point bits for anti-aliased cv2 polygons
PUPIL_FRACTION = 0.4
GLINT_COLOUR = np.array([250, 250, 250], np.float32)
PUPIL_COLOUR = np.array([14, 11, 11], np.float32)
LASH_COLOUR = np.array([28, 20, 18], np.float32)


@dataclass(frozen=True)
class EyeLook:
    """A volunteer's eye colours (float RGB)."""
    iris: np.ndarray
    sclera: np.ndarray


def _fixed(points: np.ndarray, origin: np.ndarray) -> np.ndarray:
    return np.round((points - origin) * (1 << SUBPIXEL_BITS)).astype(np.int32)


def _polygon_mask(shape: tuple[int, int], polygon: np.ndarray, origin: np.ndarray,
                  thickness: int = 0) -> np.ndarray:
    """Anti-aliased filled polygon (plus an outline of `thickness` px) as float 0..1."""
    mask = np.zeros(shape, np.uint8)
    points = [_fixed(polygon, origin)]
    cv2.fillPoly(mask, points, 255, cv2.LINE_AA, SUBPIXEL_BITS)
    if thickness:
        cv2.polylines(mask, points, True, 255, thickness, cv2.LINE_AA, SUBPIXEL_BITS)
    return mask.astype(np.float32) * (1 / 255)


def eye_box(eye: EyeShape) -> tuple[int, int, int, int]:
    """Portrait-px box (x0, y0, x1, y1) that every repaint of this eye stays inside."""
    width = float(np.linalg.norm(eye.corners[1] - eye.corners[0]))
    points = np.vstack([eye.corners, eye.upper, eye.lower])
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return (int(x0 - 0.2 * width), int(y0 - 0.45 * width), int(x1 + 0.2 * width) + 1,
            int(y1 + 0.25 * width) + 1)


def paint_eye(image: np.ndarray, original: np.ndarray, eye: EyeShape, iris_centre: np.ndarray,
              closure: float, look: EyeLook, lower_drop: float = 0.0) -> None:
    """Repaint one eye of `image` (in place) from `original`.

    closure: 0 = lids as in the photograph, 1 = closed, negative = upper lid raised.
    lower_drop: how far the lower lid moves down, as a fraction of the eye's opening height.
    iris_centre: where the iris centre lies (portrait px) for the current gaze.
    """
    x0, y0, x1, y1 = eye_box(eye)
    origin = np.array([x0, y0], np.float64)
    roi_shape = (y1 - y0, x1 - x0)
    width = float(np.linalg.norm(eye.corners[1] - eye.corners[0]))
    lower = eye.lower + (eye.lower - eye.upper) * lower_drop
    upper = eye.upper + (lower - eye.upper) * closure

    def outline(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        return np.vstack([eye.corners[:1], top, eye.corners[1:], bottom[::-1]])

    opening = (_polygon_mask(roi_shape, outline(upper, lower), origin) if closure < 0.97
               else np.zeros(roi_shape, np.float32))
    old_opening = _polygon_mask(roi_shape, outline(eye.upper, eye.lower), origin,
                                thickness=max(3, int(0.14 * width)))
    repaint = np.maximum(opening, old_opening)

    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    # sclera: shadow under the upper lid and toward the corners
    lid_order = np.argsort(upper[:, 0])
    lid_y = np.interp(xs[0], upper[lid_order, 0], upper[lid_order, 1]).astype(np.float32)
    below_lid = np.maximum(ys - lid_y[None, :], 0)
    centre_x = eye.corners[:, 0].mean()
    shade = (1 - 0.45 * np.exp(-below_lid / (0.09 * width))) \
        * (1 - 0.35 * np.clip(np.abs(xs - centre_x) / (0.5 * width), 0, 1) ** 2)
    eye_rgb = look.sclera * shade[..., None]

    # iris with a darker limbal ring and radial texture, then pupil and a corneal glint
    dx, dy = xs - iris_centre[0], ys - iris_centre[1]
    distance = np.sqrt(dx * dx + dy * dy)
    radius = eye.iris_radius
    iris_alpha = np.clip(radius - distance + 0.5, 0, 1)
    ring = np.clip((distance - 0.7 * radius) / (0.3 * radius), 0, 1)
    texture = 1 + 0.12 * np.sin(np.arctan2(dy, dx) * 13)
    iris_rgb = look.iris * ((1 - 0.55 * ring) * texture * (0.85 + 0.15 * shade))[..., None]
    eye_rgb += (iris_rgb - eye_rgb) * iris_alpha[..., None]
    pupil_alpha = np.clip(PUPIL_FRACTION * radius - distance + 0.5, 0, 1)
    eye_rgb += (PUPIL_COLOUR - eye_rgb) * pupil_alpha[..., None]
    glint = eye.iris + (-0.35 * radius, -0.3 * radius)
    glint_alpha = 0.85 * np.clip(0.22 * radius - np.hypot(xs - glint[0], ys - glint[1]) + 0.5, 0, 1)
    eye_rgb += (GLINT_COLOUR - eye_rgb) * glint_alpha[..., None]

    # where the eye is not open: lid skin, a shade darker close to the lash line
    skin_rgb = eye.skin * (0.93 + 0.07 * np.clip(np.abs(ys - lid_y[None, :]) / (0.2 * width), 0, 1))[..., None]
    content = skin_rgb + (eye_rgb - skin_rgb) * opening[..., None]
    lash = np.zeros(roi_shape, np.uint8)
    cv2.polylines(lash, [_fixed(np.vstack([eye.corners[:1], upper, eye.corners[1:]]), origin)], False, 255,
                  max(1, int(round(0.07 * width))), cv2.LINE_AA, SUBPIXEL_BITS)
    lash_alpha = lash.astype(np.float32) * (0.8 / 255)
    content += (LASH_COLOUR - content) * lash_alpha[..., None]

    repaint = np.maximum(repaint, lash_alpha)[..., None]
    base = original[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = np.clip(base + (content - base) * repaint, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class CameraLook:
    """A session's webcam: exposure, white balance, optics, sensor and encoder."""
    gain: float
    gamma: float
    warmth: float          # -1 (bluish) .. 1 (warm)
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "CameraLook":
        return cls(gain=rng.uniform(0.8, 1.2), gamma=rng.uniform(0.8, 1.25), warmth=rng.uniform(-1, 1),
                   blur_sigma=rng.uniform(0.3, 1.0), noise_sigma=rng.uniform(1.5, 6.0),
                   jpeg_quality=int(rng.integers(70, 96)))


class Sensor:
    """Applies a CameraLook to frames; holds the session's noise pattern (drawn once)."""

    NOISE_MARGIN = 64

    def __init__(self, look: CameraLook, size: tuple[int, int], rng: np.random.Generator):
        self.look = look
        width, height = size
        noise = rng.normal(0, look.noise_sigma, (height + self.NOISE_MARGIN, width + self.NOISE_MARGIN, 3))
        noise = np.round(noise)
        self._noise_up = np.clip(noise, 0, 255).astype(np.uint8)
        self._noise_down = np.clip(-noise, 0, 255).astype(np.uint8)

    def lut(self, gain_drift: float) -> np.ndarray:
        """(256, 1, 3) tone curve: exposure gain, gamma and white balance (RGB order)."""
        look = self.look
        balance = np.array([1 + 0.1 * look.warmth, 1.0, 1 - 0.1 * look.warmth])
        levels = np.arange(256, dtype=np.float64)[:, None] / 255
        curve = np.clip(levels * look.gain * gain_drift * balance, 0, 1) ** (1 / look.gamma)
        return np.round(curve * 255).astype(np.uint8).reshape(256, 1, 3)

    def expose(self, rgb: np.ndarray, gain_drift: float, rng: np.random.Generator) -> np.ndarray:
        """Tone curve, lens blur and sensor noise on a (H, W, 3) uint8 RGB frame."""
        out = cv2.LUT(rgb, self.lut(gain_drift))
        kernel = 3 if self.look.blur_sigma < 0.7 else 5   # fixed small kernels: fast
        out = cv2.GaussianBlur(out, (kernel, kernel), self.look.blur_sigma)
        height, width = out.shape[:2]
        dy, dx = rng.integers(0, self.NOISE_MARGIN, 2)
        out = cv2.add(out, self._noise_up[dy:dy + height, dx:dx + width])
        return cv2.subtract(out, self._noise_down[dy:dy + height, dx:dx + width])

    def encode(self, rgb: np.ndarray, quality_jitter: int = 0) -> bytes:
        quality = int(np.clip(self.look.jpeg_quality + quality_jitter, 70, 95))
        ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                  [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buffer.tobytes()
