"""Compact multi-input gaze model (default): small conv towers with global pooling.

Face, eyes (one shared tower; the right eye mirrored so both eyes look alike), head
position and head angles are fused by a small MLP into (x, y) in screen fractions.
Each tower ends in a global depthwise convolution (a learned per-channel weighted
pooling, as in MobileFaceNet): global pooling that still knows *where* a feature was —
the iris position is the signal — without a large flatten.
"""
from __future__ import annotations

import torch
from torch import nn

INPUTS = {"full": ("face", "eyes", "head_pos", "angles"), "face": ("face",), "eyes": ("eyes",)}


def conv_bn(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))


class CompactGazeNet(nn.Module):
    def __init__(self, inputs: str = "full", image_size: int = 64, widths: list[int] | None = None,
                 hidden: int = 128, **_):
        super().__init__()
        self.parts = INPUTS[inputs]
        widths = widths or [16, 32, 64, 96]
        fused = 0
        if "face" in self.parts:
            self.face = Tower(3, widths)
            fused += widths[-1]
        if "eyes" in self.parts:
            self.eye = Tower(3, widths)
            fused += 2 * widths[-1]
        if "head_pos" in self.parts:
            # a coarse 16×16 "face grid" (iTracker) is all the head position image says
            self.head_pos = nn.Sequential(nn.AdaptiveAvgPool2d(16), nn.Flatten(), nn.Linear(256, 32),
                                          nn.ReLU(inplace=True))
            fused += 32
        if "angles" in self.parts:
            self.angles = nn.Sequential(nn.Linear(3, 16), nn.ReLU(inplace=True))
            fused += 16
        self.head = nn.Sequential(nn.Linear(fused, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if "face" in self.parts:
            parts.append(self.face(batch["face"]))
        if "eyes" in self.parts:
            parts += [self.eye(batch["l_eye"]), self.eye(torch.flip(batch["r_eye"], dims=[3]))]
        if "head_pos" in self.parts:
            parts.append(self.head_pos(batch["head_pos"]))
        if "angles" in self.parts:
            parts.append(self.angles(batch["angles"]))
        return self.head(torch.cat(parts, dim=1)) + 0.5
