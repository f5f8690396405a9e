"""Model registry: an architecture spec (a JSON-able dict) → a torch module."""
from __future__ import annotations

from torch import nn

from trainer.models.compact import INPUTS, CompactGazeNet
from trainer.models.gaze_ray import GazeRayNet
from trainer.models.reference import ReferenceGazeNet

ARCHITECTURES: dict[str, type[nn.Module]] = {"compact": CompactGazeNet, "reference": ReferenceGazeNet,
                                             "gaze_ray": GazeRayNet}
VECTOR_INPUTS = ("angles", "geometry")   # per-sample numbers, not pictures


def build_model(spec: dict) -> nn.Module:
    """spec: {"name": compact|reference|gaze_ray, "inputs": full|face|eyes|full_geometry,
    "image_size": int, ...}."""
    options = {k: v for k, v in spec.items() if k != "name"}
    return ARCHITECTURES[spec["name"]](**options)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tensors_needed(inputs: str) -> tuple[str, ...]:
    """The snapshot arrays a model with these inputs reads."""
    names = []
    for part in INPUTS[inputs]:
        names += {"eyes": ["l_eye", "r_eye"]}.get(part, [part])
    return tuple(names)


def outputs_and_features(model: nn.Module, batch: dict) -> tuple:
    """The model's (x, y) output and the input of its last layer — the penultimate
    features the personal calibration maps (every architecture ends in `head[-1]`)."""
    captured = []
    handle = model.head[-1].register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    try:
        output = model(batch)
    finally:
        handle.remove()
    return output, captured[0]
