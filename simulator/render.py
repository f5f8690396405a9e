"""Pixels: repainting an eyeball for a gaze and a lid position, and the webcam's imperfections.

Eyes are painted in the portrait texture before the 3-D head is drawn, so the head's turn,
the light, blur, noise and JPEG that follow treat them like the rest of the face. The iris is
the volunteer's own (colour, fibres, crypts, collarette, limbus), drawn as an ellipse when
the eye turns away from the photo axis, with its pupil and a corneal highlight placed by the
caller from the light's direction.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from simulator.face import EyeShape

SUBPIXEL_BITS = 4            # fixed-point bits for anti-aliased cv2 polygons
GLINT_COLOUR = np.array([250, 250, 250], np.float32)
PUPIL_COLOUR = np.array([14, 11, 11], np.float32)
LASH_COLOUR = np.array([28, 20, 18], np.float32)


@dataclass(frozen=True)
class EyeLook:
    """A volunteer's eyes (float RGB colours; the iris pattern in polar coordinates)."""
    iris: np.ndarray
    sclera: np.ndarray
    pattern: np.ndarray          # (IRIS_RINGS, IRIS_SECTORS) float32 brightness factor, pupil -> limbus
    pupil_fraction: float        # pupil radius / iris radius in the photograph's light

    @classmethod
    def draw(cls, rng: np.random.Generator, iris: np.ndarray, sclera: np.ndarray) -> "EyeLook":
        return cls(iris, sclera, iris_pattern(rng), float(rng.uniform(0.3, 0.45)))


IRIS_RINGS, IRIS_SECTORS = 24, 180


def iris_pattern(rng: np.random.Generator) -> np.ndarray:
    """A random iris: radial fibres, crypts, a collarette ring, a darker limbus, an inner tint."""
    radius = np.linspace(0, 1, IRIS_RINGS, dtype=np.float32)[:, None]
    angle = np.linspace(0, 2 * np.pi, IRIS_SECTORS, endpoint=False, dtype=np.float32)[None, :]
    fibres = np.zeros((1, IRIS_SECTORS), np.float32)
    for frequency in rng.integers(7, 45, int(rng.integers(4, 8))):
        fibres = fibres + rng.uniform(0.02, 0.07) * np.sin(frequency * angle + rng.uniform(0, 2 * np.pi))
    crypts = np.zeros((IRIS_RINGS, IRIS_SECTORS), np.float32)
    for _ in range(int(rng.integers(3, 14))):
        r0, a0 = rng.uniform(0.35, 0.85), rng.uniform(0, 2 * np.pi)
        gap = np.angle(np.exp(1j * (angle - a0)))
        crypts += rng.uniform(0.1, 0.3) * np.exp(-((radius - r0) / 0.07) ** 2 - (gap / 0.08) ** 2)
    collarette_radius = rng.uniform(0.4, 0.6)
    collarette = rng.uniform(0.05, 0.2) * np.exp(-((radius - collarette_radius) / 0.05) ** 2)
    limbus = rng.uniform(0.35, 0.65) * np.clip((radius - 0.72) / 0.28, 0, 1) ** 1.5
    inner = rng.uniform(-0.1, 0.25) * (radius < collarette_radius)
    pattern = (1 + fibres * (0.6 + radius)) * (1 - crypts) * (1 + collarette + inner) * (1 - limbus)
    return pattern.astype(np.float32)


@dataclass(frozen=True)
class IrisView:
    """Where this frame's iris lies in the portrait and how it is foreshortened (portrait px)."""
    centre: np.ndarray           # (2,) iris centre
    tilt: np.ndarray             # (2,) unit direction in which the disc is foreshortened
    squash: float                # cos of the angle between the iris normal and the photo axis
    glint: np.ndarray            # (2,) corneal highlight
    pupil_fraction: float


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
    width = float(np.linalg.norm(eye.photo_upper[0] - eye.photo_upper[-1]))
    points = np.vstack([eye.corners, eye.upper, eye.lower, eye.photo_upper, eye.photo_lower])
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return (int(x0 - 0.25 * width), int(y0 - 0.5 * width), int(x1 + 0.25 * width) + 1,
            int(y1 + 0.3 * width) + 1)


def paint_eye(image: np.ndarray, original: np.ndarray, eye: EyeShape, view: IrisView,
              closure: float, look: EyeLook, lower_drop: float = 0.0) -> None:
    """Repaint one eye of `image` (in place) from `original`.

    closure: 0 = lids open as in the volunteer's eye shape, 1 = closed, negative = upper lid raised.
    lower_drop: how far the lower lid moves down, as a fraction of the eye's opening height.
    """
    x0, y0, x1, y1 = eye_box(eye)
    origin = np.array([x0, y0], np.float64)
    roi_shape = (y1 - y0, x1 - x0)
    width = float(np.linalg.norm(eye.corners[1] - eye.corners[0]))
    lower = eye.lower + (eye.lower - eye.upper) * lower_drop
    upper = eye.upper + (lower - eye.upper) * closure

    def outline(corners: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        return np.vstack([corners[:1], top, corners[1:], bottom[::-1]])

    photo_corners = np.vstack([eye.photo_upper[0], eye.photo_upper[-1]])
    opening = (_polygon_mask(roi_shape, outline(eye.corners, upper, lower), origin) if closure < 0.97
               else np.zeros(roi_shape, np.float32))
    # the photograph's own eye goes, lashes included, under a soft-edged patch of lid skin
    old_opening = _polygon_mask(roi_shape, outline(photo_corners, eye.photo_upper, eye.photo_lower), origin,
                                thickness=max(3, int(0.22 * width)))
    old_opening = np.maximum(old_opening, cv2.GaussianBlur(old_opening, (0, 0), 0.06 * width) * 1.5)
    repaint = np.clip(np.maximum(opening, old_opening), 0, 1)

    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    # sclera: shadow under the upper lid and toward the corners
    lid_order = np.argsort(upper[:, 0])
    lid_y = np.interp(xs[0], upper[lid_order, 0], upper[lid_order, 1]).astype(np.float32)
    below_lid = np.maximum(ys - lid_y[None, :], 0)
    centre_x = eye.corners[:, 0].mean()
    shade = (1 - 0.3 * np.exp(-below_lid / (0.06 * width))) \
        * (1 - 0.35 * np.clip(np.abs(xs - centre_x) / (0.5 * width), 0, 1) ** 2)
    eye_rgb = look.sclera * shade[..., None]
    eye_rgb = _paint_iris(eye_rgb, xs, ys, eye.iris_radius, view, look, shade)

    # where the eye is not open: lid skin, a shade darker close to the lash line
    skin_rgb = eye.skin * (0.9 + 0.1 * np.clip(np.abs(ys - lid_y[None, :]) / (0.2 * width), 0, 1))[..., None]
    content = skin_rgb + (eye_rgb - skin_rgb) * opening[..., None]
    lash = np.zeros(roi_shape, np.uint8)
    cv2.polylines(lash, [_fixed(np.vstack([eye.corners[:1], upper, eye.corners[1:]]), origin)], False, 255,
                  max(1, int(round(0.045 * width))), cv2.LINE_AA, SUBPIXEL_BITS)
    lash_alpha = lash.astype(np.float32) * (0.7 / 255)
    content += (LASH_COLOUR - content) * lash_alpha[..., None]

    repaint = np.maximum(repaint, lash_alpha)[..., None]
    base = original[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = np.clip(base + (content - base) * repaint, 0, 255).astype(np.uint8)


def _paint_iris(eye_rgb: np.ndarray, xs: np.ndarray, ys: np.ndarray, radius: float, view: IrisView,
                look: EyeLook, shade: np.ndarray) -> np.ndarray:
    """Iris (an ellipse when it turns away), pupil and the corneal highlight over the sclera."""
    dx, dy = xs - view.centre[0], ys - view.centre[1]
    along = (dx * view.tilt[0] + dy * view.tilt[1]) / max(view.squash, 0.2)
    across = dx * -view.tilt[1] + dy * view.tilt[0]
    distance = np.sqrt(along * along + across * across)
    edge_px = max(view.squash, 0.2)      # anti-aliasing width in the squashed direction
    iris_alpha = np.clip((radius - distance) * edge_px + 0.5, 0, 1)
    rings = np.clip(distance / radius * (IRIS_RINGS - 1), 0, IRIS_RINGS - 1).astype(np.int32)
    sectors = ((np.arctan2(across, along) + np.pi) * (IRIS_SECTORS / (2 * np.pi))).astype(np.int32) % IRIS_SECTORS
    texture = look.pattern[rings, sectors]
    iris_rgb = look.iris * (texture * (0.85 + 0.15 * shade))[..., None]
    eye_rgb += (iris_rgb - eye_rgb) * iris_alpha[..., None]
    pupil_alpha = np.clip((view.pupil_fraction * radius - distance) * edge_px + 0.5, 0, 1)
    eye_rgb += (PUPIL_COLOUR - eye_rgb) * pupil_alpha[..., None]
    glint_alpha = 0.9 * np.clip(0.16 * radius - np.hypot(xs - view.glint[0], ys - view.glint[1]) + 0.5, 0, 1)
    eye_rgb += (GLINT_COLOUR - eye_rgb) * glint_alpha[..., None]
    return eye_rgb


@dataclass(frozen=True)
class CameraLook:
    """A session's webcam: exposure, white balance, optics, sensor and encoder."""
    gain: float                 # exposure bias on top of the auto-exposure
    gamma: float
    white_balance: float        # how much of the light's colour the auto white balance removes (0..1)
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int
    exposure_target: float      # mean brightness (0..1) the auto-exposure aims for
    exposure_response: float    # 0 = fixed exposure .. 1 = reaches the target every frame
    motion_blur_rate: float     # frames with motion blur
    motion_blur_px: float       # their longest streak, at 640 px frame width

    @classmethod
    def draw(cls, rng: np.random.Generator, style) -> "CameraLook":
        return cls(gain=rng.uniform(0.9, 1.1), gamma=rng.uniform(0.85, 1.2),
                   white_balance=rng.uniform(*style.white_balance), blur_sigma=rng.uniform(*style.blur_sigma),
                   noise_sigma=rng.uniform(*style.noise_sigma),
                   jpeg_quality=int(rng.integers(style.jpeg_quality[0], style.jpeg_quality[1] + 1)),
                   exposure_target=rng.uniform(0.38, 0.5), exposure_response=rng.uniform(0.6, 0.9),
                   motion_blur_rate=style.motion_blur_rate, motion_blur_px=style.motion_blur_px)


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
        # webcams meter most of the frame, a little toward its centre: a bright window darkens the face
        centre_weight = np.exp(-((np.linspace(-1, 1, 32)[None, :] / 1.2) ** 2
                                 + (np.linspace(-1, 1, 24)[:, None] / 1.2) ** 2))
        self._metering = (centre_weight / centre_weight.sum()).astype(np.float32)

    def auto_exposure(self, rgb: np.ndarray, scene_gain: np.ndarray) -> float:
        """The exposure gain the camera picks for this frame (centre-weighted metering)."""
        small = cv2.resize(rgb, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32) * scene_gain
        luma = (small @ np.array([0.299, 0.587, 0.114], np.float32)) / 255
        measured = max(float((luma * self._metering).sum()), 0.02)
        return float(np.clip(self.look.exposure_target / measured, 0.35, 4.0) ** self.look.exposure_response)

    def lut(self, channel_gain: np.ndarray) -> np.ndarray:
        """(256, 1, 3) tone curve: per-channel gain (RGB), then the camera's gamma."""
        levels = np.arange(256, dtype=np.float64)[:, None] / 255
        curve = np.clip(levels * channel_gain, 0, 1) ** (1 / self.look.gamma)
        return np.round(curve * 255).astype(np.uint8).reshape(256, 1, 3)

    def expose(self, rgb: np.ndarray, light_colour: np.ndarray, level: float, gain_drift: float,
               rng: np.random.Generator) -> np.ndarray:
        """Light colour, auto-exposure, white balance, lens and motion blur, sensor noise."""
        scene = light_colour * level
        balance = light_colour ** -self.look.white_balance
        exposure = self.auto_exposure(rgb, scene) * self.look.gain * gain_drift
        out = cv2.LUT(rgb, self.lut(scene * balance * exposure))
        kernel = 3 if self.look.blur_sigma < 0.7 else 5   # fixed small kernels: fast
        out = cv2.GaussianBlur(out, (kernel, kernel), self.look.blur_sigma)
        if rng.random() < self.look.motion_blur_rate:
            out = motion_blur(out, rng.uniform(1, self.look.motion_blur_px) * out.shape[1] / 640,
                              rng.uniform(0, 180))
        # a dim scene the auto-exposure lifts a lot is noisier: a second, independent window of
        # the pattern adds sqrt(2) more noise
        for _ in range(1 + int(exposure > 1.6)):
            out = self._add_noise(out, rng)
        return out

    def _add_noise(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = rgb.shape[:2]
        dy, dx = rng.integers(0, self.NOISE_MARGIN, 2)
        out = cv2.add(rgb, self._noise_up[dy:dy + height, dx:dx + width])
        return cv2.subtract(out, self._noise_down[dy:dy + height, dx:dx + width])

    def encode(self, rgb: np.ndarray, quality_jitter: int = 0) -> bytes:
        quality = int(np.clip(self.look.jpeg_quality + quality_jitter, 30, 95))
        ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                  [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buffer.tobytes()


def motion_blur(rgb: np.ndarray, length: float, angle: float) -> np.ndarray:
    """A straight streak of `length` px at `angle` degrees: the head moved during the exposure."""
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    half = (size - 1) / 2
    dx, dy = half * np.cos(np.radians(angle)), half * np.sin(np.radians(angle))
    cv2.line(kernel, (int(round(half - dx)), int(round(half - dy))), (int(round(half + dx)), int(round(half + dy))),
             1.0, 1, cv2.LINE_AA)
    return cv2.filter2D(rgb, -1, kernel / kernel.sum())
