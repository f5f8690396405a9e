"""Training parameters: one dataclass whose fields are the [training] keys a run may
override (plus the crop size from [collection]). Defaults come from the config alone;
overrides are checked with the config spec's own parsers."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from gazelab.config import SPEC, Config


@dataclass(frozen=True)
class TrainParams:
    architecture: str
    inputs: str
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_epochs: int
    early_stopping_patience: int
    seed: int
    validation_fraction: float
    test_fraction: float
    folds: int                    # grouped k-fold cross-validation by volunteer; 1 = single split only
    error_grid: tuple[int, int]
    device: str
    mirror_augment: bool          # flip half the training samples left-right (transforms.mirror_inputs)
    memory_budget_mb: int         # peak RAM of building the shards and of training (trainer.datasets)
    image_size: int               # [collection] image_size: the side of the stored crops
    camera_hfov_deg: float        # [collection] camera_hfov_deg: the geometry input assumes it

    @classmethod
    def from_config(cls, config: Config, **overrides) -> TrainParams:
        """[training] defaults, then `overrides` (None values ignored; not re-validated)."""
        values = {key: getattr(config.training, key) for key in TRAINING_KEYS}
        values["image_size"] = config.collection.image_size
        values["camera_hfov_deg"] = config.collection.camera_hfov_deg
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["error_grid"] = tuple(values["error_grid"])
        return cls(**values)

    def as_dict(self) -> dict:
        return {**asdict(self), "error_grid": list(self.error_grid)}


# The keys a run may override: the parameters that are also [training] config keys.
TRAINING_KEYS = tuple(f.name for f in fields(TrainParams) if f.name in SPEC["training"])


def validate_params(params: dict, config: Config) -> dict:
    """Overrides checked with the config's own rules, merged over [training] defaults."""
    if not isinstance(params, dict):
        raise ValueError("training parameters must be an object")
    resolved = {key: getattr(config.training, key) for key in TRAINING_KEYS}
    for key, value in params.items():
        if key not in TRAINING_KEYS:
            raise ValueError(f"unknown training parameter {key!r}; allowed: {', '.join(TRAINING_KEYS)}")
        spec = SPEC["training"][key]
        if isinstance(value, (list, tuple)) and key == "error_grid":
            value = "x".join(str(v) for v in value)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"training parameter {key} = {value!r} is invalid; it must be {spec.allowed}")
        try:
            resolved[key] = spec.parse(str(value).strip())
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"training parameter {key} = {value!r} is invalid; it must be {spec.allowed}") from None
    if resolved["architecture"] == "gaze_ray" and resolved["inputs"] != "full_geometry":
        raise ValueError("the gaze_ray architecture needs inputs = full_geometry (it intersects the gaze "
                         "with the screen, so it needs the head angles and the geometry)")
    resolved["error_grid"] = list(resolved["error_grid"])
    return resolved
