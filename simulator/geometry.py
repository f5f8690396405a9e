"""Geometry of the virtual volunteer: screen, webcam, head and gaze, all in millimetres.

Camera coordinates (the webcam's): origin at the lens, x to the image's right, y down, z away
from the camera towards the volunteer. The webcam looks straight out of the screen, and the
screen's picture lies in the camera's z = 0 plane. `Screen.camera_offset_mm` says where the
lens sits relative to the top centre of the picture, in the picture's own axes as the
volunteer sees them (right, down; mm): a webcam on the bezel above the picture has
(0, -SCREEN_GAP_MM). A screen point (sx, sy) in CSS px then lies at
x = -((sx - width/2) * mm_per_px - right) (the volunteer's right is the image's left),
y = sy * mm_per_px - down, z = 0.

Angles follow collection.extraction's conventions: yaw positive when the face (or gaze) points
toward the image's right side, pitch positive when it points up, roll = clockwise angle of
the eye line on screen. The head (simulator.mesh, in the face frame of simulator.face) is
rotated by the head pose; its eyeballs turn about their centres toward what they look at.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SCREEN_GAP_MM = 8.0          # webcam lens to the top edge of the screen's picture
EYEBALL_RADIUS_MM = 10.5     # rotation centre to the iris plane: how far the iris moves
FRAME_SIZE = (640, 480)
FOCAL_PX = 600.0             # ~56 degrees horizontal field of view at 640 px


@dataclass(frozen=True)
class Camera:
    width: int = FRAME_SIZE[0]
    height: int = FRAME_SIZE[1]
    focal: float = FOCAL_PX

    @classmethod
    def from_fov(cls, size: tuple[int, int], horizontal_fov_deg: float) -> "Camera":
        return cls(size[0], size[1], size[0] / 2 / math.tan(math.radians(horizontal_fov_deg) / 2))

    @property
    def horizontal_fov_deg(self) -> float:
        return math.degrees(2 * math.atan(self.width / 2 / self.focal))

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame mm -> (N, 2) frame px."""
        points = np.atleast_2d(points)
        z = points[:, 2:3]
        return np.hstack([self.width / 2 + self.focal * points[:, 0:1] / z,
                          self.height / 2 + self.focal * points[:, 1:2] / z])

    def unproject(self, pixel: tuple[float, float], depth: float) -> np.ndarray:
        """The camera-frame point at `depth` mm that projects to `pixel`."""
        u, v = pixel
        return np.array([(u - self.width / 2) * depth / self.focal,
                         (v - self.height / 2) * depth / self.focal, depth])


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation (face frame -> camera frame) for a head pose in degrees (extraction's signs)."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    # Ry(-yaw) turns the face normal (0, 0, -1) toward +x; Rx(-pitch) toward -y (up).
    ry = np.array([[math.cos(-y), 0, math.sin(-y)], [0, 1, 0], [-math.sin(-y), 0, math.cos(-y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(-p), -math.sin(-p)], [0, math.sin(-p), math.cos(-p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


def direction_angles(direction: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees of a direction pointing away from the face (towards -z)."""
    x, y, z = direction
    return math.degrees(math.atan2(x, -z)), math.degrees(math.atan2(-y, math.hypot(x, z)))


@dataclass(frozen=True)
class Screen:
    """The screen's picture (CSS px, their physical size) and the webcam's place beside it."""
    size_px: tuple[int, int]
    mm_per_px: float
    camera_offset_mm: tuple[float, float] = (0.0, -SCREEN_GAP_MM)   # lens from the picture's top centre

    @property
    def size_mm(self) -> tuple[float, float]:
        return self.size_px[0] * self.mm_per_px, self.size_px[1] * self.mm_per_px

    @property
    def diagonal_inches(self) -> float:
        return math.hypot(*self.size_mm) / 25.4

    def point_mm(self, point_px: tuple[float, float]) -> np.ndarray:
        """A point on the screen (CSS px, origin top-left) in camera-frame mm (z = 0)."""
        sx, sy = point_px
        right, down = self.camera_offset_mm
        return np.array([-((sx - self.size_px[0] / 2) * self.mm_per_px - right),
                         sy * self.mm_per_px - down, 0.0])

    def point_px(self, point_mm: np.ndarray) -> tuple[float, float]:
        """The inverse of `point_mm` for a camera-frame point in the screen plane."""
        right, down = self.camera_offset_mm
        return (float((-point_mm[0] + right) / self.mm_per_px + self.size_px[0] / 2),
                float((point_mm[1] + down) / self.mm_per_px))


def screen_point_mm(point_px: tuple[float, float], screen: tuple[int, int], mm_per_px: float) -> np.ndarray:
    """A point on a screen with the webcam at its top centre (CSS px) in camera-frame mm."""
    return Screen(tuple(screen), mm_per_px).point_mm(point_px)


def ray_hits_screen(origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Where the ray origin + t * direction meets the screen plane (z = 0)."""
    return origin - direction * (origin[2] / direction[2])


@dataclass(frozen=True)
class HeadPose:
    """Where the head is: rotation, and the camera-frame position of the point between the eyes."""
    yaw: float
    pitch: float
    roll: float
    centre: np.ndarray  # (3,) mm

    @property
    def rotation(self) -> np.ndarray:
        return head_rotation(self.yaw, self.pitch, self.roll)

    def to_camera(self, face_points_mm: np.ndarray) -> np.ndarray:
        """(N, 3) face-frame mm (origin between the eyes) -> camera-frame mm."""
        return face_points_mm @ self.rotation.T + self.centre


@dataclass(frozen=True)
class Gaze:
    """One eye's gaze: angles in the camera frame and relative to the head, and its direction."""
    yaw: float
    pitch: float
    yaw_in_head: float
    pitch_in_head: float
    in_head: np.ndarray      # (3,) unit direction in the face frame (out of the face: -z)


def eye_gaze(eyeball_camera_mm: np.ndarray, target_camera_mm: np.ndarray, pose: HeadPose) -> Gaze:
    """The gaze of an eyeball centred at `eyeball_camera_mm` fixating `target_camera_mm`."""
    direction = target_camera_mm - eyeball_camera_mm
    direction = direction / np.linalg.norm(direction)
    in_head = pose.rotation.T @ direction
    yaw, pitch = direction_angles(direction)
    yaw_h, pitch_h = direction_angles(in_head)
    return Gaze(yaw, pitch, yaw_h, pitch_h, in_head)
