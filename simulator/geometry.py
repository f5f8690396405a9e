"""Geometry of the virtual volunteer: screen, webcam, head and gaze, all in millimetres.

Camera coordinates (the webcam's): x to the image's right, y down, z away from the camera
towards the volunteer. The webcam sits at the top centre of the screen, looking straight
out of the screen plane (z = 0); the screen hangs below it, so a screen point (sx, sy) in
CSS px lies at x = -(sx - width/2) * mm_per_px (the volunteer's right is the image's left),
y = SCREEN_GAP_MM + sy * mm_per_px.

Angles follow collection.extraction's conventions: yaw positive when the face (or gaze) points
toward the image's right side, pitch positive when it points up, roll = clockwise angle of
the eye line on screen. The face is a plane (the base photograph) rotated by the head pose.
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


def screen_point_mm(point_px: tuple[float, float], screen: tuple[int, int], mm_per_px: float) -> np.ndarray:
    """A point on the screen (CSS px, origin top-left) in camera-frame mm."""
    sx, sy = point_px
    return np.array([-(sx - screen[0] / 2) * mm_per_px, SCREEN_GAP_MM + sy * mm_per_px, 0.0])


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
    """One eye's gaze: angles in the camera frame and relative to the head, iris shift."""
    yaw: float
    pitch: float
    yaw_in_head: float
    pitch_in_head: float
    iris_shift_mm: tuple[float, float]  # in the face plane (face-frame x, y)


def eye_gaze(eye_camera_mm: np.ndarray, target_camera_mm: np.ndarray, pose: HeadPose) -> Gaze:
    """The gaze of an eye at `eye_camera_mm` fixating `target_camera_mm`."""
    direction = target_camera_mm - eye_camera_mm
    direction = direction / np.linalg.norm(direction)
    in_head = pose.rotation.T @ direction
    yaw, pitch = direction_angles(direction)
    yaw_h, pitch_h = direction_angles(in_head)
    shift = (EYEBALL_RADIUS_MM * float(in_head[0]), EYEBALL_RADIUS_MM * float(in_head[1]))
    return Gaze(yaw, pitch, yaw_h, pitch_h, shift)
