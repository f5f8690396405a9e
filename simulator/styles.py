"""Rendering styles: the kinds of room, screen and webcam a virtual volunteer sits in.

A style is the set of ranges a session's setting is drawn from: the screen (diagonal and CSS
resolution, hence mm per CSS px), the viewing distance, the webcam (frame size, field of view,
where it sits beside the picture, white balance, blur, noise, JPEG, motion blur) and the light
(direction, softness, colour temperature, back-light, brightness). One style, HELD_OUT_STYLE,
is never used for training: it measures how a model copes with a setting it has not seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.geometry import Camera, Screen
from simulator.lighting import Light

Range = tuple[float, float]
# CSS resolutions of common screens; a screen's diagonal picks those with a plausible pixel pitch.
CSS_RESOLUTIONS = ((1280, 720), (1280, 800), (1366, 768), (1440, 900), (1536, 864), (1600, 900),
                   (1680, 1050), (1920, 1080), (1920, 1200), (2560, 1440))
MM_PER_CSS_PX = (0.2, 0.33)


@dataclass(frozen=True)
class Style:
    name: str
    description: str
    frame_sizes: tuple[tuple[int, int], ...]
    fov_deg: Range                   # horizontal field of view
    camera_right_mm: Range           # lens to the right of the picture's centre line
    camera_gap_mm: Range             # lens above the picture's top edge
    screen_inches: Range             # picture diagonal
    distance_cm: Range               # eyes to the screen
    light_azimuth: Range             # degrees from the camera axis, either side
    light_elevation: Range
    light_ambient: Range
    kelvin: Range
    backlight: Range
    room_level: Range
    white_balance: Range             # part of the light's colour the camera removes
    blur_sigma: Range
    noise_sigma: Range
    jpeg_quality: tuple[int, int]
    motion_blur_rate: float
    motion_blur_px: float
    restlessness: Range              # scales the head's drift and jitter

    def draw_screen(self, rng: np.random.Generator) -> Screen:
        """A screen of this style's size with a plausible CSS resolution and the webcam beside it."""
        inches = rng.uniform(*self.screen_inches)
        pitches = [(size, inches * 25.4 * size[0] / math.hypot(*size) / size[0]) for size in CSS_RESOLUTIONS]
        fitting = [(size, pitch) for size, pitch in pitches if MM_PER_CSS_PX[0] <= pitch <= MM_PER_CSS_PX[1]]
        size, pitch = fitting[int(rng.integers(len(fitting)))] if fitting else min(
            pitches, key=lambda item: abs(item[1] - 0.26))
        offset = (float(rng.uniform(*self.camera_right_mm)), -float(rng.uniform(*self.camera_gap_mm)))
        return Screen(size, float(pitch), offset)

    def draw_camera(self, rng: np.random.Generator) -> Camera:
        size = self.frame_sizes[int(rng.integers(len(self.frame_sizes)))]
        return Camera.from_fov(size, rng.uniform(*self.fov_deg))

    def draw_light(self, rng: np.random.Generator) -> Light:
        return Light.draw(rng, self.light_azimuth, self.light_elevation, self.light_ambient, self.kelvin,
                          self.backlight, self.room_level)


STYLES: dict[str, Style] = {style.name: style for style in (
    Style("laptop_daylight", "a laptop's built-in webcam by a side window in daylight",
          frame_sizes=((640, 480),), fov_deg=(55, 68), camera_right_mm=(-3, 3), camera_gap_mm=(5, 12),
          screen_inches=(13, 16), distance_cm=(45, 65), light_azimuth=(20, 70), light_elevation=(0, 30),
          light_ambient=(0.45, 0.7), kelvin=(5000, 6500), backlight=(0, 0.1), room_level=(0.9, 1.2),
          white_balance=(0.6, 0.9), blur_sigma=(0.3, 0.9), noise_sigma=(1.5, 5), jpeg_quality=(70, 92),
          motion_blur_rate=0.05, motion_blur_px=4, restlessness=(0.8, 1.2)),
    Style("office_webcam", "an external webcam on a desk monitor under overhead office light",
          frame_sizes=((1280, 720), (1920, 1080)), fov_deg=(60, 78), camera_right_mm=(-40, 40),
          camera_gap_mm=(10, 40), screen_inches=(21, 27), distance_cm=(55, 75), light_azimuth=(0, 30),
          light_elevation=(35, 65), light_ambient=(0.55, 0.8), kelvin=(3800, 4800), backlight=(0, 0.15),
          room_level=(0.8, 1.1), white_balance=(0.7, 0.95), blur_sigma=(0.3, 0.8), noise_sigma=(1, 3),
          jpeg_quality=(80, 95), motion_blur_rate=0.03, motion_blur_px=4, restlessness=(0.7, 1.0)),
    Style("evening_lamp", "a laptop or small monitor at night, lit by a warm desk lamp from one side",
          frame_sizes=((640, 480), (1280, 720)), fov_deg=(55, 70), camera_right_mm=(-10, 10),
          camera_gap_mm=(5, 25), screen_inches=(14, 24), distance_cm=(45, 70), light_azimuth=(35, 75),
          light_elevation=(10, 40), light_ambient=(0.3, 0.5), kelvin=(2600, 3300), backlight=(0, 0),
          room_level=(0.45, 0.7), white_balance=(0.4, 0.7), blur_sigma=(0.5, 1.1), noise_sigma=(4, 8),
          jpeg_quality=(60, 85), motion_blur_rate=0.12, motion_blur_px=6, restlessness=(1.0, 1.4)),
    Style("big_monitor", "a 27-32 inch monitor seen from further away, with a narrow webcam on top",
          frame_sizes=((1920, 1080), (1280, 720)), fov_deg=(50, 62), camera_right_mm=(-20, 20),
          camera_gap_mm=(15, 45), screen_inches=(27, 32), distance_cm=(60, 85), light_azimuth=(0, 50),
          light_elevation=(10, 45), light_ambient=(0.5, 0.75), kelvin=(4000, 6000), backlight=(0, 0.2),
          room_level=(0.8, 1.1), white_balance=(0.6, 0.9), blur_sigma=(0.3, 0.8), noise_sigma=(1, 3),
          jpeg_quality=(80, 95), motion_blur_rate=0.04, motion_blur_px=4, restlessness=(0.8, 1.2)),
    Style("window_backlight", "a laptop's wide webcam with a bright window behind the volunteer, cool light",
          frame_sizes=((1280, 720),), fov_deg=(70, 80), camera_right_mm=(-2, 2), camera_gap_mm=(4, 10),
          screen_inches=(13, 15.6), distance_cm=(40, 60), light_azimuth=(0, 40), light_elevation=(-10, 20),
          light_ambient=(0.6, 0.85), kelvin=(6500, 8500), backlight=(0.6, 0.95), room_level=(0.7, 1.0),
          white_balance=(0.5, 0.8), blur_sigma=(0.4, 0.9), noise_sigma=(2, 5), jpeg_quality=(70, 90),
          motion_blur_rate=0.05, motion_blur_px=4, restlessness=(0.8, 1.2)),
)}
HELD_OUT_STYLE: str = "window_backlight"
TRAINING_STYLES: tuple[str, ...] = tuple(name for name in STYLES if name != HELD_OUT_STYLE)
DEFAULT_STYLE: str = TRAINING_STYLES[0]


def style_for_volunteer(index: int) -> str:
    """The style of demo volunteer `index`: round-robin over all styles, the held-out one included."""
    names = tuple(STYLES)
    return names[index % len(names)]
