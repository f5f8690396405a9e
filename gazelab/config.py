"""Configuration: config.ini + GAZELAB_<SECTION>_<KEY> environment overrides.

Loaded and validated once at start-up. Every key is declared in SPEC with its parser;
a key that is unknown, missing or malformed raises ConfigError naming section, key,
value and what is allowed. Access is by attribute: ``config.collection.beta_a``.
"""
from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "config.ini"


class ConfigError(ValueError):
    """A config value is missing, unknown or invalid. The message is one line."""


@dataclass(frozen=True)
class Key:
    parse: Callable[[str], Any]
    allowed: str
    choices: tuple[str, ...] = ()   # the options of a choice key (for CLI and forms)


def _int(lo: int, hi: int) -> Key:
    def parse(raw: str) -> int:
        value = int(raw)
        if not lo <= value <= hi:
            raise ValueError
        return value
    return Key(parse, f"an integer from {lo} to {hi}")


def _float(lo: float, hi: float) -> Key:
    def parse(raw: str) -> float:
        value = float(raw)
        if not lo <= value <= hi:
            raise ValueError
        return value
    return Key(parse, f"a number from {lo} to {hi}")


def _bool() -> Key:
    words = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}
    return Key(lambda raw: words[raw.lower()], "True or False")


def _choice(*options: str) -> Key:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError
        return raw
    return Key(parse, "one of " + ", ".join(options), options)


def _text(nonempty: bool = True) -> Key:
    def parse(raw: str) -> str:
        if nonempty and not raw:
            raise ValueError
        return raw
    return Key(parse, "a non-empty text" if nonempty else "any text")


def _blob_url() -> Key:
    def parse(raw: str) -> str:
        if raw and not (re.match(r"file:///.", raw) or re.match(r"s3://[^/?]+", raw)):
            raise ValueError
        return raw
    return Key(parse, "empty (the data dir), file:///absolute/folder or s3://bucket/prefix")


def _grid() -> Key:
    def parse(raw: str) -> tuple[int, int]:
        cols, rows = (int(part) for part in raw.lower().split("x"))
        if not (1 <= cols <= 200 and 1 <= rows <= 200):
            raise ValueError
        return cols, rows
    return Key(parse, "COLSxROWS, e.g. 16x9")


SPEC: dict[str, dict[str, Key]] = {
    "server": {
        "data_dir": _text(),
        "host": _text(),
        "port": _int(1, 65535),
        "database_url": _text(),
        "broker_url": _text(),
        "web_workers": _int(1, 64),
        "web_threads": _int(1, 64),
        "worker_concurrency": _int(1, 64),
        "secret_key": _text(nonempty=False),
        "max_upload_bytes": _int(1000, 100_000_000),
        "rate_limit_per_second": _float(0.1, 10_000),
        "rate_limit_burst": _int(1, 100_000),
        "store_raw_frames": _bool(),
        "consent_version": _text(),
        "session_ttl_hours": _float(0.1, 24 * 365),
        "session_hours": _float(0.05, 24 * 31),
        "secure_cookies": _bool(),
        "login_attempts": _int(1, 1000),
        "login_window_minutes": _float(0.1, 24 * 60),
        "sessions_per_ip_per_hour": _int(1, 1_000_000),
        "retention_days": _int(0, 100_000),
        "export_keep_hours": _float(0.1, 24 * 365),
        "export_part_samples": _int(1, 10_000_000),
        "blob_url": _blob_url(),
    },
    "collection": {
        "image_size": _int(16, 512),
        "record_frame_rate": _int(1, 120),
        "skip_frames": _int(1, 120),
        "focus_edges": _bool(),
        "only_edges": _bool(),
        "beta_a": _float(0.01, 100),
        "beta_b": _float(0.01, 100),
        "target_radius": _int(2, 200),
        "target_speed": _float(1, 10_000),
        "map_scale": _int(1, 1000),
        "avg_window_length": _int(1, 120),
        "sampler": _choice("focus_edges", "only_edges", "undersampled", "model_error"),
        "dots_per_session": _int(1, 10_000),
        "fixation_delay_ms": _int(0, 10_000),
        "capture_window_ms": _int(50, 20_000),
        "capture_fps": _float(0.5, 60),
        "upload_batch_frames": _int(1, 64),
        "attention_ms": _int(100, 20_000),
        "pursuit": _bool(),
        "pursuit_seconds": _int(1, 3600),
        "abandon_after_minutes": _int(1, 7 * 24 * 60),
        "validation_points": _int(0, 50),
        "validation_pass_px": _float(1, 100_000),
        "camera_hfov_deg": _float(10, 170),
    },
    "extraction": {
        "max_pixels": _int(10_000, 200_000_000),
        "min_side": _int(8, 4096),
        "eye_margin": _float(0.5, 5),
        "face_margin": _float(0.5, 5),
        "min_face_fraction": _float(0, 1),
        "min_eye_aspect_ratio": _float(0, 1),
        "min_sharpness": _float(0, 1e6),
        "min_brightness": _float(0, 255),
        "max_cut_off": _float(0, 1),
        "crop_format": _choice("png", "jpeg"),
        "crop_jpeg_quality": _int(10, 100),
    },
    "training": {
        "architecture": _choice("gaze_ray", "compact", "reference"),
        "inputs": _choice("full_geometry", "full", "face", "eyes"),
        "epochs": _int(1, 10_000),
        "batch_size": _int(1, 65_536),
        "learning_rate": _float(1e-7, 10),
        "weight_decay": _float(0, 10),
        "warmup_epochs": _int(0, 1000),
        "early_stopping_patience": _int(1, 10_000),
        "seed": _int(0, 2**31 - 1),
        "validation_fraction": _float(0, 0.9),
        "test_fraction": _float(0.01, 0.9),
        "folds": _int(1, 100),
        "error_grid": _grid(),
        "device": _choice("auto", "cpu", "cuda"),
        "mirror_augment": _bool(),
        "stale_after_seconds": _int(10, 10**6),
        "memory_budget_mb": _int(256, 10**7),
    },
}


class Config(SimpleNamespace):
    """Parsed configuration; one SimpleNamespace per section plus ``path`` and ``root``."""

    path: Path
    root: Path

    def resolve(self, relative: str) -> Path:
        """A path from the config file's folder (absolute paths pass through)."""
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else (self.root / candidate)

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.server.data_dir)

    @property
    def database_url(self) -> str:
        """database_url with a relative sqlite path made absolute from the config folder."""
        url = self.server.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
            return prefix + str(self.resolve(url[len(prefix):]))
        return url



def load_config(path: str | os.PathLike | None = None,
                environ: dict[str, str] | None = None) -> Config:
    """Read, override from the environment, parse and validate the configuration."""
    environ = dict(os.environ if environ is None else environ)
    path = Path(path or environ.get("GAZELAB_CONFIG") or DEFAULT_CONFIG_PATH).resolve()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except configparser.Error as exc:
        raise ConfigError(f"{path}: {' '.join(str(exc).split())}") from None

    for section in parser.sections():
        if section not in SPEC:
            raise ConfigError(f"[{section}] is not a known section; allowed: {', '.join(SPEC)}")
        for key in parser[section]:
            if key not in SPEC[section]:
                raise ConfigError(f"[{section}] {key} is not a known key; "
                                  f"allowed: {', '.join(SPEC[section])}")
    prefix = "GAZELAB_"
    for name in environ:
        if name.startswith(prefix) and name not in ("GAZELAB_CONFIG",) \
                and not name.startswith(("GAZELAB_TEST_", "GAZELAB_ADMIN_")):
            rest = name[len(prefix):].lower()
            if not any(rest.startswith(s + "_") and rest[len(s) + 1:] in SPEC[s] for s in SPEC):
                raise ConfigError(f"environment variable {name} names no config key")

    sections: dict[str, SimpleNamespace] = {}
    for section, keys in SPEC.items():
        values = {}
        for key, spec in keys.items():
            env_name = f"GAZELAB_{section.upper()}_{key.upper()}"
            if env_name in environ:
                raw, source = environ[env_name], env_name
            elif parser.has_option(section, key):
                raw, source = parser.get(section, key), f"[{section}] {key}"
            else:
                raise ConfigError(f"[{section}] {key} is missing; it must be {spec.allowed}")
            try:
                values[key] = spec.parse(raw.strip())
            except (ValueError, KeyError, TypeError):
                raise ConfigError(f"{source} = {raw!r} is invalid; it must be {spec.allowed}") from None
        sections[section] = SimpleNamespace(**values)
    training = sections["training"]
    if training.architecture == "gaze_ray" and training.inputs != "full_geometry":
        raise ConfigError(f"[training] architecture = gaze_ray needs inputs = full_geometry, not {training.inputs}")
    config = Config(**sections)
    config.path = path
    config.root = path.parent
    return config
