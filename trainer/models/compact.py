"""Compact multi-input gaze model (default): small conv towers, no large flatten.

Face, eyes (one shared tower; the right eye mirrored so both eyes look alike), head
position and head angles are fused by a small MLP into (x, y) in screen fractions.

The eye tower keeps a 16×16 map and ends in a spatial soft-argmax (Levine et al.,
"End-to-end training of deep visuomotor policies"): each of K channels becomes the
expected (x, y) of its activation. The iris *position* is the gaze signal, and global
average pooling would throw it away; soft-argmax keeps it as K explicit coordinates,
whatever the volunteer's skin, iris colour or crop scale. Each eye crop is normalised
on its own first (per image and channel), which removes lighting and colour shifts.
The face tower ends in a global depthwise convolution (learned per-channel pooling, as
in MobileFaceNet).
"""
from __future__ import annotations

import torch
from torch import nn

INPUTS = {"full": ("face", "eyes", "head_pos", "angles"), "face": ("face",), "eyes": ("eyes",),
          # + where the eyes and the screen are, in metres (trainer.geometry)
          "full_geometry": ("face", "eyes", "head_pos", "angles", "geometry")}


def conv_bn(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def per_image_normalise(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True)
    return (x - mean) / (std + 1e-3)


class Tower(nn.Module):
    """(B,C,S,S) → (B,width[-1]): stride-2 conv blocks, 4×4 map, global depthwise conv."""

    def __init__(self, c_in: int, widths: list[int]):
        super().__init__()
        layers, c = [], c_in
        for w in widths:
            layers.append(conv_bn(c, w, 2))
            c = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4))
        self.pool = nn.Sequential(nn.Conv2d(c, c, 4, groups=c, bias=False), nn.BatchNorm2d(c), nn.Flatten())
        self.out_features = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))


class SpatialSoftArgmax(nn.Module):
    """(B,K,H,W) → (B,2K): the softmax-weighted mean (x, y) of each channel, in [-1, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k, h, w = x.shape
        weights = torch.softmax(x.float().flatten(2), dim=2).view(b, k, h, w)
        xs = torch.linspace(-1, 1, w, device=x.device)
        ys = torch.linspace(-1, 1, h, device=x.device)
        return torch.cat([(weights.sum(dim=2) * xs).sum(dim=2), (weights.sum(dim=3) * ys).sum(dim=2)], dim=1)


class EyeTower(nn.Module):
    """(B,3,64,64) → (B,2K): conv blocks down to 16×16, K keypoints by soft-argmax."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 32), keypoints: int = 16):
        super().__init__()
        self.features = nn.Sequential(conv_bn(3, widths[0], 2), conv_bn(widths[0], widths[1], 2),
                                      conv_bn(widths[1], widths[2], 1),
                                      nn.Conv2d(widths[2], keypoints, 1))
        self.keypoints = SpatialSoftArgmax()
        self.out_features = 2 * keypoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.keypoints(self.features(per_image_normalise(x)))


class CompactGazeNet(nn.Module):
    def __init__(self, inputs: str = "full", image_size: int = 64, widths: list[int] | None = None,
                 hidden: int = 128, eye_tower: str = "keypoints", **_):
        super().__init__()
        self.parts = INPUTS[inputs]
        widths = widths or [16, 32, 64, 96]
        fused = 0
        if "face" in self.parts:
            self.face = Tower(3, widths)
            fused += self.face.out_features
        if "eyes" in self.parts:
            self.eye = EyeTower() if eye_tower == "keypoints" else Tower(3, widths)
            fused += 2 * self.eye.out_features
        if "head_pos" in self.parts:
            # a coarse 16×16 "face grid" (iTracker) is all the head position image says
            self.head_pos = nn.Sequential(nn.AdaptiveAvgPool2d(16), nn.Flatten(), nn.Linear(256, 32),
                                          nn.ReLU(inplace=True))
            fused += 32
        if "angles" in self.parts:
            self.angles = nn.Sequential(nn.Linear(3, 16), nn.ReLU(inplace=True))
            fused += 16
        if "geometry" in self.parts:
            self.geometry = nn.Sequential(nn.Linear(5, 16), nn.ReLU(inplace=True))
            fused += 16
        self.head = nn.Sequential(nn.Linear(fused, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))

    def fused(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Every input's tower output, side by side: what `head` reads."""
        parts = []
        if "face" in self.parts:
            parts.append(self.face(batch["face"]))
        if "eyes" in self.parts:
            parts += [self.eye(batch["l_eye"]), self.eye(torch.flip(batch["r_eye"], dims=[3]))]
        if "head_pos" in self.parts:
            parts.append(self.head_pos(batch["head_pos"]))
        if "angles" in self.parts:
            parts.append(self.angles(batch["angles"]))
        if "geometry" in self.parts:
            parts.append(self.geometry(batch["geometry"]))
        return torch.cat(parts, dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.fused(batch)) + 0.5
