"""The reference project's best configuration (brief): face 2 conv blocks of 7×7, eyes
1 block of 5×5 (one tower per eye), head_pos 1 conv of 3×3, everything flattened into
FC 128 → 64 → 2; trained with lr ≈ 6.4e-5, batch 16. Channel widths are not in the
brief; they are chosen small enough to train on a CPU. The big flatten is kept on
purpose: it is what this project compares its compact model against.
"""
from __future__ import annotations

import torch
from torch import nn

from trainer.models.compact import INPUTS

HYPERPARAMETERS = {"learning_rate": 6.4e-5, "batch_size": 16}


def block(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2))


class ReferenceGazeNet(nn.Module):
    def __init__(self, inputs: str = "full", image_size: int = 64, **_):
        super().__init__()
        self.parts = INPUTS[inputs]
        s, flat = image_size, 0
        if "face" in self.parts:
            self.face = nn.Sequential(block(3, 8, 7), block(8, 16, 7), nn.Flatten())
            flat += 16 * (s // 4) ** 2
        if "eyes" in self.parts:
            self.l_eye = nn.Sequential(block(3, 8, 5), nn.Flatten())
            self.r_eye = nn.Sequential(block(3, 8, 5), nn.Flatten())
            flat += 2 * 8 * (s // 2) ** 2
        if "head_pos" in self.parts:
            self.head_pos = nn.Sequential(block(1, 4, 3), nn.Flatten())
            flat += 4 * (s // 2) ** 2
        if "angles" in self.parts:
            flat += 3
        self.head = nn.Sequential(nn.Linear(flat, 128), nn.ReLU(inplace=True), nn.Linear(128, 64),
                                  nn.ReLU(inplace=True), nn.Linear(64, 2))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if "face" in self.parts:
            parts.append(self.face(batch["face"]))
        if "eyes" in self.parts:
            parts += [self.l_eye(batch["l_eye"]), self.r_eye(batch["r_eye"])]
        if "head_pos" in self.parts:
            parts.append(self.head_pos(batch["head_pos"]))
        if "angles" in self.parts:
            parts.append(batch["angles"])
        return self.head(torch.cat(parts, dim=1)) + 0.5
