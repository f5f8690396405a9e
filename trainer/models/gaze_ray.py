"""Gaze-ray model: gaze direction from the pictures, the screen point from geometry.

The conv towers and the head are the compact model's (face tower, one keypoint eye tower
shared by both eyes, face grid, head angles, geometry); they predict the gaze direction *relative to the head*
(yaw, pitch) — what the eyeballs do, which looks the same whatever the screen. The rest is
fixed geometry, not learned (trainer.geometry): the head's measured rotation turns that
direction into the camera frame, and the ray from the eyes' midpoint (estimated from the
iris size, "geometry" input) is intersected with the screen plane, whose size in mm the
session measured. So the same eye rotation lands on different pixels of a 13" laptop at
45 cm and a 27" monitor at 70 cm, as it should, and the network never has to learn a
screen size or a sitting distance from pixels.

Output: screen fractions, like every model here (the loss, the error grid and the personal
calibration are unchanged); `head[-1]` ends in the two gaze angles (radians), so the
calibration maps the penultimate features as it does for the others.
"""
from __future__ import annotations

import torch
from torch import nn

from trainer.geometry import CAMERA_GAP_MM
from trainer.models.compact import INPUTS, CompactGazeNet
from trainer.transforms import ANGLE_SCALE

MIN_TOWARD_SCREEN = 0.1   # |d_z| floor: a ray (nearly) parallel to the screen hits nothing


def rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) face → camera rotations for head poses in degrees (collection.extraction's
    signs: yaw toward the image's right, pitch up, roll clockwise): Ry(-yaw) Rx(-pitch) Rz(roll)."""
    y, p, r = (torch.deg2rad(a) for a in (yaw, pitch, roll))
    one, zero = torch.ones_like(y), torch.zeros_like(y)
    def matrix(rows):
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)
    ry = matrix([[torch.cos(y), zero, -torch.sin(y)], [zero, one, zero], [torch.sin(y), zero, torch.cos(y)]])
    rx = matrix([[one, zero, zero], [zero, torch.cos(p), torch.sin(p)], [zero, -torch.sin(p), torch.cos(p)]])
    rz = matrix([[torch.cos(r), -torch.sin(r), zero], [torch.sin(r), torch.cos(r), zero], [zero, zero, one]])
    return ry @ rx @ rz


def direction(yaw: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
    """(B, 3) unit vectors for (yaw, pitch) in radians, pointing away from the face (−z)."""
    return torch.stack([torch.sin(yaw) * torch.cos(pitch), -torch.sin(pitch),
                        -torch.cos(yaw) * torch.cos(pitch)], dim=-1)


def screen_fractions(origin_m: torch.Tensor, gaze: torch.Tensor, screen_m: torch.Tensor) -> torch.Tensor:
    """Where rays (origin (B, 3) m, direction (B, 3)) meet the screen plane z = 0, as
    fractions of the screen (B, 2 m) hanging below a camera at its top centre."""
    dz = torch.clamp(gaze[:, 2], max=-MIN_TOWARD_SCREEN)
    t = -origin_m[:, 2] / dz
    hit_x = origin_m[:, 0] + t * gaze[:, 0]
    hit_y = origin_m[:, 1] + t * gaze[:, 1]
    return torch.stack([0.5 - hit_x / screen_m[:, 0], (hit_y - CAMERA_GAP_MM / 1000) / screen_m[:, 1]], dim=1)


class GazeRayNet(CompactGazeNet):
    """The compact model's towers and head; the head's two outputs are the gaze's yaw and
    pitch in the head (radians), and the screen point follows by geometry."""

    def __init__(self, inputs: str = "full_geometry", **options):
        if not {"angles", "geometry"} <= set(INPUTS[inputs]):
            raise ValueError("the gaze-ray model needs the head angles and the geometry inputs "
                             "(inputs = full_geometry)")
        super().__init__(inputs=inputs, eye_tower="keypoints", **options)
        nn.init.zeros_(self.head[-1].weight)   # start by looking where the head points
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        angles_in_head = self.head(self.fused(batch)).float()
        head = batch["angles"].float() * ANGLE_SCALE
        gaze = (rotation(head[:, 0], head[:, 1], head[:, 2])
                @ direction(angles_in_head[:, 0], angles_in_head[:, 1]).unsqueeze(-1)).squeeze(-1)
        geometry = batch["geometry"].float()
        return screen_fractions(geometry[:, :3], gaze, geometry[:, 3:5])
