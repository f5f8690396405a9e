"""The room's light: where it comes from, its colour, and how it shades the 3-D face.

The photographs were taken under soft light from near the photographer. A session's light
re-shades the face by the ratio of two Lambert terms at every mesh vertex: the new light on
the posed normal over that baked light on the photo's normal, so the photo's own shading is
kept and only the change is added. Where the head shadows itself (simulator.shadows) only the
new light's ambient part is left. Back-light (a bright window behind the volunteer) lifts
the background in the texture; the auto-exposure (simulator.render) then darkens the face.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BAKED_AMBIENT = 0.55          # the portraits' light: mostly soft, from the photographer


@dataclass(frozen=True)
class Light:
    """A session's lighting. direction: unit camera-frame vector from the face toward the light."""
    direction: np.ndarray
    ambient: float                 # 0 = hard point light .. 1 = fully diffuse
    colour: np.ndarray             # (3,) RGB gains of the light (green = 1)
    backlight: float               # 0 = none .. 1 = a bright window behind the volunteer
    level: float                   # overall brightness of the room (the camera's exposure copes)

    @classmethod
    def draw(cls, rng: np.random.Generator, azimuth: tuple[float, float], elevation: tuple[float, float],
             ambient: tuple[float, float], kelvin: tuple[float, float], backlight: tuple[float, float],
             level: tuple[float, float]) -> "Light":
        side = rng.choice([-1.0, 1.0])
        return cls(direction=light_direction(side * rng.uniform(*azimuth), rng.uniform(*elevation)),
                   ambient=float(rng.uniform(*ambient)), colour=kelvin_rgb(rng.uniform(*kelvin)),
                   backlight=float(rng.uniform(*backlight)), level=float(rng.uniform(*level)))

    def jittered(self, rng: np.random.Generator) -> "Light":
        """The same light a moment later (people and clouds move): a slightly different direction."""
        direction = self.direction + rng.normal(0, 0.03, 3)
        return Light(direction / np.linalg.norm(direction), self.ambient, self.colour, self.backlight, self.level)


def light_direction(azimuth: float, elevation: float) -> np.ndarray:
    """Degrees: azimuth toward the image's right from the camera axis, elevation up."""
    a, e = math.radians(azimuth), math.radians(elevation)
    return np.array([math.sin(a) * math.cos(e), -math.sin(e), -math.cos(a) * math.cos(e)])


def kelvin_rgb(kelvin: float) -> np.ndarray:
    """RGB gains of a black body at `kelvin` relative to ~5500 K daylight (green = 1)."""
    def raw(t: float) -> np.ndarray:   # Tanner Helland's fit of the Planckian locus
        t = t / 100
        red = 255.0 if t <= 66 else 329.7 * (t - 60) ** -0.1332
        green = 99.47 * math.log(t) - 161.1 if t <= 66 else 288.1 * (t - 60) ** -0.0755
        blue = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5 * math.log(t - 10) - 305.0)
        return np.clip([red, green, blue], 1, 255)
    gains = raw(kelvin) / raw(5500)
    return (gains / gains[1]).astype(np.float32)


def vertex_shade(normals_camera: np.ndarray, normals_photo: np.ndarray, light: Light,
                 lit: float = 1.0) -> np.ndarray:
    """(N,) light factor per vertex: new Lambert shading over the photograph's baked shading.

    lit: 1 where the light reaches the vertex, 0 where the head casts a shadow on it (only the
    room's ambient light is left there: simulator.shadows)."""
    new = light.ambient + (1 - light.ambient) * lit * np.clip(normals_camera @ light.direction, 0, None)
    baked = BAKED_AMBIENT + (1 - BAKED_AMBIENT) * np.clip(-normals_photo[:, 2], 0, None)
    frontal = light.ambient + (1 - light.ambient) * max(float(-light.direction[2]), 0.0)
    # normalised so a frontal face keeps its brightness where it faces the camera: the room's
    # level and the exposure set that, the light's direction only what varies across the face
    return np.clip(new / baked / max(frontal, 0.35), 0.25, 1.8).astype(np.float32)
