"""Input preparation and augmentation on whole batches of tensors (CPU or GPU alike).

uint8 arrays → float tensors normalised with the training split's statistics; during
training, photo inputs get what another camera and room would change — colour jitter
(brightness, contrast, per-channel gain), a tone curve, blur, lost resolution and sensor
noise (camera_jitter), JPEG compression at another quality (jpeg_artifacts) — face crops
also a small random shift and occluders. Eye crops are never shifted: they are cut around the
eye corners, so where the iris sits inside the crop *is* the gaze signal, and a shift
of a few px moves it as much as a gaze change of a few hundred px. head_pos (a mask of
where the face is in the frame) is not augmented at all: its position is the signal.
The one exception is a mirror (mirror_inputs): every input and the target flipped
together is another plausible volunteer, which doubles the head positions, faces and
eye shapes the model sees (the webcam sits at the middle of the top of the screen; the
eyes' position in the geometry input mirrors to -x).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gazelab.schema import PHOTO_KINDS
from trainer.geometry import GEOMETRY_MIRROR

ANGLE_SCALE = 20.0  # degrees → about unit scale
# Eyes and head_pos are never shifted: where the iris sits in the eye crop and where the
# face sits in the frame are both gaze signals (see above).
MAX_SHIFT_PX = {"face": 2.0, "face_aligned": 2.0}
# Occluders on the face crops only: on an eye crop one would hide the iris, the signal itself.
OCCLUDED_KINDS = ("face", "face_aligned")


def normalisation_stats(images: dict, indices: np.ndarray, kinds: tuple[str, ...],
                        sample: int = 2000, chunk: int = 256) -> dict[str, list[float]]:
    """Per-input mean and std (one per channel) over the first `sample` of the given
    samples, read `chunk` rows at a time (float64 sums: no float copy of them all)."""
    stats = {}
    for kind in kinds:
        if kind in ("angles", "geometry"):
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


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def _chosen(n: int, rate: float, generator: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=generator, device=device) < rate).float().view(n, 1, 1, 1)


def camera_jitter(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What another webcam would change, on 0..255 floats (N, C, S, S), per sample: a tone
    curve (gamma), lens blur, lost resolution (down- and up-sampled: a lower-resolution camera
    or a face further away) and sensor noise."""
    n, c, size, _ = images.shape
    device = images.device
    gamma = _uniform(n, 0.75, 1.35, generator, device).view(n, 1, 1, 1)
    out = 255 * (images.clamp(0, 255) / 255) ** gamma
    kernel = torch.tensor([0.25, 0.5, 0.25], device=device)
    kernel = (kernel[:, None] * kernel[None, :]).expand(c, 1, 3, 3)
    blurred = F.conv2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
    strength = _chosen(n, 0.4, generator, device) * _uniform(n, 0.3, 1.0, generator, device).view(n, 1, 1, 1)
    out = out + (blurred - out) * strength
    small = F.interpolate(out, size=(size // 2, size // 2), mode="area")
    coarse = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    out = out + (coarse - out) * _chosen(n, 0.25, generator, device)
    sigma = _uniform(n, 0.0, 6.0, generator, device).view(n, 1, 1, 1)
    return out + sigma * torch.randn(out.shape, generator=generator, device=device)


# JPEG's quantisation tables (ITU-T T.81 Annex K), scaled by quality as libjpeg does.
JPEG_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61), (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56), (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77), (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101), (72, 92, 95, 98, 112, 100, 103, 99))
JPEG_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99), (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99), (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8 for _ in range(4)))
JPEG_QUALITY = (25.0, 90.0)
# RGB -> YCbCr (JFIF, less the +128 offset of the chroma, which the DCT does not need)
_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def _dct_matrix(device) -> torch.Tensor:
    k = torch.arange(8, device=device, dtype=torch.float32).view(8, 1)
    n = torch.arange(8, device=device, dtype=torch.float32).view(1, 8)
    matrix = torch.cos((2 * n + 1) * k * torch.pi / 16) * (2 / 8) ** 0.5
    matrix[0] /= 2 ** 0.5
    return matrix


def _quantised_blocks(planes: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) planes through JPEG's lossy step: the 8x8 DCT of each block divided by
    its table (N, 1, 8, 8), rounded, multiplied back, transformed back (edges padded to
    whole blocks as an encoder does)."""
    n, c, h, w = planes.shape
    padded = F.pad(planes, (0, -w % 8, 0, -h % 8), mode="replicate")
    rows, cols = padded.shape[2] // 8, padded.shape[3] // 8
    dct = _dct_matrix(planes.device)
    blocks = padded.view(n, c, rows, 8, cols, 8).permute(0, 1, 2, 4, 3, 5)
    tables = tables.view(n, 1, 1, 1, 8, 8)
    coefficients = torch.round(dct @ blocks @ dct.T / tables) * tables
    restored = (dct.T @ coefficients @ dct).permute(0, 1, 2, 4, 3, 5).reshape(n, c, rows * 8, cols * 8)
    return restored[:, :, :h, :w]


def jpeg_artifacts(images: torch.Tensor, generator: torch.Generator, rate: float = 0.3) -> torch.Tensor:
    """What JPEG at another quality would do, on 0..255 floats (N, 3 or 1, S, S), to `rate` of
    the samples: colour to YCbCr, chroma halved in both directions (4:2:0), each plane's 8x8
    blocks' DCT quantised with the standard tables at a quality drawn from JPEG_QUALITY, the
    chroma interpolated back, and RGB again (entropy coding is lossless: not needed)."""
    n, c, h, w = images.shape
    device = images.device
    chosen = _chosen(n, rate, generator, device).bool()
    quality = _uniform(n, *JPEG_QUALITY, generator, device)
    scale = torch.where(quality < 50, 5000 / quality, 200 - 2 * quality).view(n, 1, 1)
    def tables(base):
        table = torch.tensor(base, device=device, dtype=torch.float32).unsqueeze(0)
        return torch.floor((table * scale + 50) / 100).clamp(1, 255)
    pixels = images.clamp(0, 255) - 128
    if c == 1:
        pixels = _quantised_blocks(pixels, tables(JPEG_LUMA_TABLE))
    else:
        to_ycbcr = torch.tensor(_YCBCR, device=device)
        planes = torch.einsum("ij,njhw->nihw", to_ycbcr, pixels)
        luma = _quantised_blocks(planes[:, :1], tables(JPEG_LUMA_TABLE))
        chroma = _quantised_blocks(F.avg_pool2d(planes[:, 1:], 2, ceil_mode=True), tables(JPEG_CHROMA_TABLE))
        chroma = F.interpolate(chroma, size=(h, w), mode="bilinear", align_corners=False)
        pixels = torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_ycbcr), torch.cat([luma, chroma], dim=1))
    return torch.where(chosen, (pixels + 128).clamp(0, 255), images)


def occlude(images: torch.Tensor, generator: torch.Generator, rate: float = 0.2) -> torch.Tensor:
    """A flat grey rectangle (hair, a hand, a glasses frame's shadow) over 10–35 % of the
    side of `rate` of the samples, somewhere in the picture."""
    n, _, size, _ = images.shape
    device = images.device
    sides = (_uniform(n, 0.1, 0.35, generator, device) * size).view(n, 1, 1)
    corner_x = (_uniform(n, 0, 1, generator, device) * size).view(n, 1, 1) - sides / 2
    corner_y = (_uniform(n, 0, 1, generator, device) * size).view(n, 1, 1) - sides / 2
    ys = torch.arange(size, device=device).view(1, size, 1)
    xs = torch.arange(size, device=device).view(1, 1, size)
    inside = ((xs >= corner_x) & (xs < corner_x + sides) & (ys >= corner_y) & (ys < corner_y + sides)).float()
    mask = inside.unsqueeze(1) * _chosen(n, rate, generator, device)
    grey = _uniform(n, 20, 230, generator, device).view(n, 1, 1, 1)
    return images * (1 - mask) + grey * mask


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
        elif kind == "geometry":
            out[kind] = pick(kind, images * images.new_tensor(GEOMETRY_MIRROR))
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
        if kind == "geometry":   # metres: about unit scale already
            batch[kind] = images
            continue
        if augment:
            if kind in PHOTO_KINDS:
                images = jpeg_artifacts(camera_jitter(colour_jitter(images, generator), generator), generator)
            if kind in OCCLUDED_KINDS:
                images = occlude(images, generator)
            max_shift = MAX_SHIFT_PX.get(kind, 0.0)
            if max_shift:
                shifts = (torch.rand(len(first), 2, generator=generator, device=images.device) * 2 - 1) * max_shift
                images = random_shift(images, shifts)
        batch[kind] = normalise(kind, images, stats)
    return batch
