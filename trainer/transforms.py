"""Input preparation and augmentation on whole batches of tensors (CPU or GPU alike).

uint8 arrays → float tensors normalised with the training split's statistics; during
training, photo inputs get colour jitter (brightness, contrast, per-channel gain) and
face crops a small random shift. Eye crops are never shifted: they are cut around the
eye corners, so where the iris sits inside the crop *is* the gaze signal, and a shift
of a few px moves it as much as a gaze change of a few hundred px. head_pos (a mask of
where the face is in the frame) is not augmented at all: its position is the signal.
The one exception is a mirror (mirror_inputs): every input and the target flipped
together is another plausible volunteer, which doubles the head positions, faces and
eye shapes the model sees (the webcam sits at the middle of the top of the screen).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gazelab.schema import PHOTO_KINDS

ANGLE_SCALE = 20.0  # degrees → about unit scale
# Eyes and head_pos are never shifted: where the iris sits in the eye crop and where the
# face sits in the frame are both gaze signals (see above).
MAX_SHIFT_PX = {"face": 2.0, "face_aligned": 2.0}


def normalisation_stats(images: dict, indices: np.ndarray, kinds: tuple[str, ...],
                        sample: int = 2000, chunk: int = 256) -> dict[str, list[float]]:
    """Per-input mean and std (one per channel) over the first `sample` of the given
    samples, read `chunk` rows at a time (float64 sums: no float copy of them all)."""
    stats = {}
    for kind in kinds:
        if kind == "angles":
            continue
        rows = indices[:sample]
        total = total_sq = 0.0
        count = 0
        for start in range(0, len(rows), chunk):
            data = np.asarray(images[kind][rows[start:start + chunk]], np.float64)
            data = data.reshape(-1, data.shape[3] if data.ndim == 4 else 1)
            total, total_sq, count = total + data.sum(axis=0), total_sq + (data * data).sum(axis=0), count + len(data)
        mean = np.asarray(total, np.float64) / max(count, 1)
        std = np.sqrt(np.maximum(np.asarray(total_sq, np.float64) / max(count, 1) - mean * mean, 0.0))
        stats[kind] = {"mean": np.atleast_1d(mean).tolist(), "std": np.atleast_1d(std + 1e-3).tolist()}
    return stats


def to_tensor(array: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N,S,S,3) or (N,S,S) uint8 → (N,C,S,S) uint8 tensor (channels first, kept compact)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    tensor = tensor.unsqueeze(1) if tensor.ndim == 3 else tensor.permute(0, 3, 1, 2)
    return tensor.contiguous().to(device)


def normalise(kind: str, images: torch.Tensor, stats: dict) -> torch.Tensor:
    mean = torch.tensor(stats[kind]["mean"], device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(stats[kind]["std"], device=images.device).view(1, -1, 1, 1)
    return (images.float() - mean) / std


def colour_jitter(images: torch.Tensor, generator: torch.Generator, strength: float = 0.2) -> torch.Tensor:
    """Random brightness, contrast and channel gains per sample, on 0..255 floats."""
    n, device = images.shape[0], images.device
    def uniform(*shape):
        return (torch.rand(*shape, generator=generator, device=device) * 2 - 1) * strength
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1 + uniform(n, 1, 1, 1)
    gain = (1 + uniform(n, 1, 1, 1)) * (1 + 0.5 * uniform(n, images.shape[1], 1, 1))
    return ((images - mean) * contrast + mean) * gain


def random_shift(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Translate each image by shifts[i] = (dx, dy) in pixels (bilinear, border padding)."""
    n, _, h, w = images.shape
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shifts[:, 0] / w
    theta[:, 1, 2] = -2 * shifts[:, 1] / h
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="border", align_corners=False)


def mirror_inputs(inputs: dict[str, torch.Tensor], mirror: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same samples seen in a mirror where mirror[i] is True: every picture flipped
    left-right, the eyes swapped (the left eye of a mirrored face is the mirrored right
    eye), yaw and roll negated. The gaze target mirrors too: x → 1 - x (mirror_targets)."""
    def pick(kind: str, mirrored: torch.Tensor) -> torch.Tensor:
        view = mirror.view(-1, *([1] * (mirrored.ndim - 1)))
        return torch.where(view, mirrored, inputs[kind])
    out = dict(inputs)
    swapped = {"l_eye": "r_eye", "r_eye": "l_eye"}
    for kind, images in inputs.items():
        if kind == "angles":
            out[kind] = pick(kind, images * images.new_tensor([-1.0, 1.0, -1.0]))
        elif swapped.get(kind) in inputs:
            out[kind] = pick(kind, torch.flip(inputs[swapped[kind]], dims=[3]))
        else:
            out[kind] = pick(kind, torch.flip(images, dims=[3]))
    return out


def mirror_targets(targets: torch.Tensor, mirror: torch.Tensor) -> torch.Tensor:
    """Screen fractions (x, y) → (1 - x, y) where mirror[i] is True."""
    mirrored = torch.stack([1 - targets[:, 0], targets[:, 1]], dim=1)
    return torch.where(mirror.view(-1, 1), mirrored, targets)


def make_batch(tensors: dict[str, torch.Tensor], index: torch.Tensor, stats: dict, *,
               augment: bool = False, generator: torch.Generator | None = None,
               mirror: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Model inputs for the samples `index` (a LongTensor on the tensors' device; None: the
    tensors are the batch); `mirror` (bool per sample) flips those samples left-right
    (mirror_inputs)."""
    raw = {kind: (tensor if index is None else tensor[index]).float() for kind, tensor in tensors.items()}
    first = next(iter(raw.values()))
    if mirror is not None:
        raw = mirror_inputs(raw, mirror.to(first.device))
    batch = {}
    for kind, images in raw.items():
        if kind == "angles":
            batch[kind] = images / ANGLE_SCALE
            continue
        if augment:
            if kind in PHOTO_KINDS:
                images = colour_jitter(images, generator)
            max_shift = MAX_SHIFT_PX.get(kind, 0.0)
            if max_shift:
                shifts = (torch.rand(len(first), 2, generator=generator, device=images.device) * 2 - 1) * max_shift
                images = random_shift(images, shifts)
        batch[kind] = normalise(kind, images, stats)
    return batch
