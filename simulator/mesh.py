"""The 3-D head: Face Mesh's landmarks (with depth), textured by the portrait, drawn in the frame.

Triangles come from `FACEMESH_TESSELATION` (2,556 edges close into 854 triangles), plus fans
closing the eye openings and the mouth, which the tessellation leaves open, and rings of
triangles around the face oval that carry hair, ears and jaw line (simulator.face.RINGS).
The pose landmarks are morphed onto MediaPipe's canonical face (`canonical_morph`).

Drawing a pose: project the vertices, cull triangles that face away, rasterise a
triangle-id buffer far to near (`triangle_ids`: `cv2.fillConvexPoly`, so near triangles hide
far ones), then per pixel apply its triangle's affine map frame px -> (texture x, texture y,
and any per-vertex values the caller gives: shades, the light's view for shadows, depth) and
do ONE `cv2.remap` of the texture: piecewise affine, so there are no seams between triangles.
The caller blends it over the surround (warped as a plane) with the portrait's face alpha.
The same id buffer drawn from the light's side is the shadow map (simulator.shadows).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

LANDMARKS = 478             # Face Mesh's points: 468 on the surface, 468..477 the irises
# Loops the tessellation leaves open (the eye openings, the mouth), closed by fans around
# an iris centre (468, 473) or a vertex added at the loop's middle (None).
HOLES = (
    (468, (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)),
    (473, (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)),
    (None, (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)),
)
SUBPIXEL_BITS = 4
OUTSIDE = -100.0            # remap coordinate for pixels no triangle covers
MORPH_REACH_MM = 25.0       # how far a pose landmark's correction spreads over the face


@lru_cache(maxsize=1)
def triangles() -> np.ndarray:
    """(854, 3) vertex indices of the canonical face mesh's triangles."""
    import mediapipe as mp
    edges = mp.solutions.face_mesh.FACEMESH_TESSELATION
    neighbours = defaultdict(set)
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    found = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    return np.array(sorted(found), np.int32)



def canonical_morph(vertices_mm: np.ndarray) -> np.ndarray:
    """(N, 3) displacements that bring the pose landmarks onto the (scaled) canonical face.

    The extraction reads head pose by solvePnP against MediaPipe's canonical face: a head
    whose landmarks sit elsewhere (the astronaut's wide smile) reads as turned too little.
    The correction is spread smoothly (Gaussian radial basis) so the face keeps its look.
    """
    from collection.extraction import FACE_MODEL_3D, POSE_LANDMARKS
    points = vertices_mm[list(POSE_LANDMARKS)]
    model = FACE_MODEL_3D - FACE_MODEL_3D.mean(axis=0)
    if vertices_mm[33, 0] > vertices_mm[263, 0]:   # a mirrored portrait: its "right" eye is on the left
        model = model * (-1, 1, 1)
    centred = points - points.mean(axis=0)
    scale = float((centred * model).sum() / (model * model).sum())
    wanted = model * scale + points.mean(axis=0) - points

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        return np.exp(-squared / (2 * MORPH_REACH_MM ** 2))
    weights = np.linalg.solve(kernel(points, points) + 1e-6 * np.eye(len(points)), wanted)
    return kernel(vertices_mm, points) @ weights


@dataclass
class HeadMesh:
    """A portrait's mesh: face-frame vertices (mm), texture coordinates and normals."""
    vertices_mm: np.ndarray   # (468, 3)
    texture_px: np.ndarray    # (468, 2)
    normals: np.ndarray       # (468, 3) unit, pointing out of the face (toward -z when frontal)
    triangles: np.ndarray     # (T, 3)
    frontal_sign: np.ndarray  # (T,) orientation of each triangle seen from the front

    @classmethod
    def build(cls, vertices_mm: np.ndarray, texture_px: np.ndarray, tris: np.ndarray) -> "HeadMesh":
        sign = np.sign(_signed_areas(vertices_mm[:, :2], tris))
        keep = sign != 0
        tris, sign = tris[keep], sign[keep]
        return cls(vertices_mm, texture_px, _vertex_normals(vertices_mm, tris, sign), tris, sign)


def fan_triangles(centre: int, loop: tuple[int, ...]) -> np.ndarray:
    """Triangles closing the loop of vertices `loop` around the vertex `centre`."""
    return np.array([(centre, loop[i], loop[(i + 1) % len(loop)]) for i in range(len(loop))], np.int32)


def ring_triangles(oval: tuple[int, ...], first: int, rings: int) -> np.ndarray:
    """Triangles joining the closed loop `oval` to `rings` loops of vertices numbered from `first`."""
    count = len(oval)
    loops = [np.asarray(oval)] + [first + k * count + np.arange(count) for k in range(rings)]
    found = []
    for inner, outer in zip(loops, loops[1:]):
        for i in range(count):
            j = (i + 1) % count
            found += [(inner[i], outer[i], outer[j]), (inner[i], outer[j], inner[j])]
    return np.array(found, np.int32)


def _signed_areas(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = points[tris[:, 0]], points[tris[:, 1]], points[tris[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def _vertex_normals(vertices: np.ndarray, tris: np.ndarray, sign: np.ndarray) -> np.ndarray:
    a, b, c = vertices[tris[:, 0]], vertices[tris[:, 1]], vertices[tris[:, 2]]
    faces = np.cross(b - a, c - a)
    faces *= np.where(faces[:, 2] > 0, -1.0, 1.0)[:, None]   # outward: toward the viewer (-z)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, tris[:, k], faces)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)


@dataclass
class MeshRender:
    """One pose of the mesh inside a frame box: texture coordinates and per-vertex values per pixel."""
    box: tuple[int, int, int, int]   # x0, y0, x1, y1 frame px
    map_x: np.ndarray                # (h, w) float32 texture x, OUTSIDE where no triangle
    map_y: np.ndarray
    values: np.ndarray               # (h, w, K) float32 the vertex values, interpolated (0 outside)
    covered: np.ndarray              # (h, w) bool: a triangle is drawn there

    def sample(self, texture: np.ndarray, border=0) -> np.ndarray:
        return cv2.remap(texture, self.map_x, self.map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=border)

    def value_at(self, points: np.ndarray, column: int, outside: float = np.inf) -> np.ndarray:
        """(N,) value `column` at (N, 2) frame px (nearest pixel); `outside` where no triangle is."""
        return nearest(self.values[..., column], points - self.box[:2], outside, self.covered)


def nearest(image: np.ndarray, points: np.ndarray, outside: float = np.inf,
            valid: np.ndarray | None = None) -> np.ndarray:
    """(N,) float32: `image` (h, w) at the pixels nearest (N, 2) points (x, y); `outside`
    beyond its edges and, with a `valid` mask, where that is False."""
    height, width = image.shape
    x = np.rint(points[:, 0]).astype(np.int64)
    y = np.rint(points[:, 1]).astype(np.int64)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    if valid is not None:
        inside[inside] = valid[y[inside], x[inside]]
    found = np.full(len(points), outside, np.float32)
    found[inside] = image[y[inside], x[inside]]
    return found


def rasterise(mesh: HeadMesh, projected: np.ndarray, depth: np.ndarray, vertex_values: np.ndarray,
              frame_size: tuple[int, int]) -> MeshRender | None:
    """Texture maps for the mesh whose vertices project to `projected` (frame px) at `depth` (mm),
    and the (N, K) `vertex_values` interpolated over each pixel's triangle."""
    width, height = frame_size
    (x0, y0), (x1, y1) = np.floor(projected.min(axis=0)) - 1, np.ceil(projected.max(axis=0)) + 2
    x0, y0, x1, y1 = int(max(x0, 0)), int(max(y0, 0)), int(min(x1, width)), int(min(y1, height))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    local = projected - (x0, y0)
    ids = triangle_ids(mesh, local, depth, (y1 - y0, x1 - x0))
    return _maps(mesh, local, vertex_values, ids, (x0, y0, x1, y1))


def triangle_ids(mesh: HeadMesh, points: np.ndarray, depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) uint16: 1 + the nearest facing triangle at each pixel of a view (0: none).

    points: (N, 2) the vertices in the view's px; depth: (N,) their distance from the viewer.
    Painter's order, far to near, so near triangles hide far ones."""
    tris = mesh.triangles
    facing = np.sign(_signed_areas(points, tris)) == mesh.frontal_sign
    order = np.nonzero(facing)[0]
    order = order[np.argsort(-depth[tris[order]].mean(axis=1), kind="stable")]
    ids = np.zeros(shape, np.uint16)
    fixed = np.round(points * (1 << SUBPIXEL_BITS)).astype(np.int32)
    for t in order:
        cv2.fillConvexPoly(ids, fixed[tris[t]], int(t) + 1, cv2.LINE_8, SUBPIXEL_BITS)
    return ids


def interpolate(mesh: HeadMesh, points: np.ndarray, vertex_values: np.ndarray, ids: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per covered pixel of `ids`: (rows, cols, (n, K) values) -- each triangle's affine map of
    the values at its corners (points: (N, 2) view px; vertex_values: (N, K))."""
    tris = mesh.triangles
    a, b, c = np.moveaxis(_affines(points[tris], vertex_values[tris]), 2, 0)   # each (T, K)
    flat = np.flatnonzero(ids)
    rows, cols = np.divmod(flat, ids.shape[1])
    triangle = ids.ravel()[flat].astype(np.intp) - 1
    out = np.take(a, triangle, axis=0)
    out *= cols.astype(np.float32)[:, None]
    out += np.take(b, triangle, axis=0) * rows.astype(np.float32)[:, None]
    out += np.take(c, triangle, axis=0)
    return rows, cols, out


def _maps(mesh: HeadMesh, local: np.ndarray, vertex_values: np.ndarray, ids: np.ndarray, box) -> MeshRender:
    shape = ids.shape
    map_x = np.full(shape, OUTSIDE, np.float32)
    map_y = np.full(shape, OUTSIDE, np.float32)
    values = np.zeros((*shape, vertex_values.shape[1]), np.float32)
    rows, cols, out = interpolate(mesh, local, np.hstack([mesh.texture_px, vertex_values]), ids)
    map_x[rows, cols], map_y[rows, cols], values[rows, cols] = out[:, 0], out[:, 1], out[:, 2:]
    return MeshRender(box, map_x, map_y, values, ids > 0)


def _affines(corners: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(T, K, 3) float32: per triangle, the affine maps (x, y) -> each of K values given at its corners.

    corners (T, 3, 2) view px; values (T, 3, K). Degenerate triangles get zeros (none of
    their pixels are drawn anyway)."""
    (x0, y0), (x1, y1), (x2, y2) = (corners[:, k].T for k in range(3))
    det = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    usable = np.abs(det) > 1e-9
    inverse = np.where(usable, 1 / np.where(usable, det, 1), 0)[:, None]
    d1, d2 = values[:, 1] - values[:, 0], values[:, 2] - values[:, 0]          # (T, K)
    a = (d1 * (y2 - y0)[:, None] - d2 * (y1 - y0)[:, None]) * inverse
    b = (d2 * (x1 - x0)[:, None] - d1 * (x2 - x0)[:, None]) * inverse
    c = values[:, 0] - a * x0[:, None] - b * y0[:, None]
    return np.stack([a, b, c], axis=2).astype(np.float32)
