"""Cast shadows: the parts of the 3-D face that the head itself hides from the light.

A shadow map (Williams 1978): the mesh is drawn as the light sees it -- an orthographic view
along the light's direction, the lamp or window being far away compared with a face --
keeping at every texel the depth of the surface nearest the light. A point of the face is
lit where nothing in the map lies nearer the light than it does (less a bias that grows on
surfaces the light grazes, where one texel spans more depth). The frame's rasteriser
interpolates each pixel's place in the light's view, so the nose's shadow on the cheek and
the brow's over the eye socket are tested per pixel; the edge is then softened by the
light's size (a soft light casts a wide penumbra). Only the head casts shadows: the glasses
and the hair plane do not.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from simulator.mesh import HeadMesh, interpolate, nearest, triangle_ids

TEXEL_MM = 0.5
BIAS_MM = 1.0               # on a surface facing the light
MAX_BIAS_MM = 6.0           # on one the light grazes
MARGIN_TEXELS = 2
# Penumbra: a hard lamp (ambient ~0.3) gives ~2 mm, a window's diffuse light (~0.8) ~4 mm.
PENUMBRA_MM = (0.6, 4.0)    # at ambient 0, extra per unit of ambient


@dataclass(frozen=True)
class ShadowMap:
    """The head as the light sees it. axes: rows u, v (the map's x, y) and the direction the
    light travels (depth); origin: the (u, v) mm of texel (0, 0); depth: (h, w) float32 mm,
    +inf where no surface is."""
    axes: np.ndarray
    origin: np.ndarray
    depth: np.ndarray

    def coordinates(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame mm -> (N, 3): map x, map y (texels) and depth along the light (mm)."""
        light_view = points @ self.axes.T
        return np.column_stack([(light_view[:, :2] - self.origin) / TEXEL_MM, light_view[:, 2]])

    def lit(self, coordinates: np.ndarray, bias_mm: np.ndarray | float = BIAS_MM) -> np.ndarray:
        """(N,) bool: nothing nearer the light at these map coordinates (from `coordinates`)."""
        return coordinates[:, 2] <= nearest(self.depth, coordinates[:, :2]) + bias_mm


def light_axes(direction: np.ndarray) -> np.ndarray:
    """(3, 3) rows u, v, f: f the way the light travels (-direction); (u, v, f) right-handed like
    the camera's (x, y, z), so a triangle that faces the light turns the same way as one facing the camera."""
    forward = -direction / np.linalg.norm(direction)
    hint = np.array([0.0, 1.0, 0.0]) if abs(forward[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(hint, forward)
    u /= np.linalg.norm(u)
    return np.vstack([u, np.cross(forward, u), forward])


def shadow_map(mesh: HeadMesh, vertices: np.ndarray, direction: np.ndarray) -> ShadowMap:
    """The map of `mesh` posed at `vertices` (camera-frame mm) for a light toward `direction`."""
    axes = light_axes(direction)
    light_view = vertices @ axes.T
    origin = light_view[:, :2].min(axis=0) - MARGIN_TEXELS * TEXEL_MM
    points = (light_view[:, :2] - origin) / TEXEL_MM
    width, height = (np.ceil(points.max(axis=0)) + MARGIN_TEXELS).astype(int)
    ids = triangle_ids(mesh, points, light_view[:, 2], (height, width))
    depth = np.full((height, width), np.inf, np.float32)
    rows, cols, values = interpolate(mesh, points, light_view[:, 2:3], ids)
    depth[rows, cols] = values[:, 0]
    return ShadowMap(axes, origin, depth)


def slope_bias(normals: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """(N,) mm of bias per vertex: more where the light grazes the surface."""
    cosine = np.clip(normals @ direction, 0.05, 1.0)
    return np.minimum(BIAS_MM + 1.5 * TEXEL_MM * np.sqrt(1 - cosine ** 2) / cosine, MAX_BIAS_MM)


def soft_edge(lit: np.ndarray, ambient: float, px_per_mm: float) -> np.ndarray:
    """(h, w) float32 0..1: a per-pixel lit test (1 where nothing is drawn) with a penumbra as
    wide as the light is soft."""
    sigma = (PENUMBRA_MM[0] + PENUMBRA_MM[1] * ambient) * px_per_mm / 2
    return cv2.GaussianBlur(lit, (0, 0), sigma) if sigma >= 0.3 else lit
