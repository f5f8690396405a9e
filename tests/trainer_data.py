"""Trainer test data: real schema rows with procedurally generated crops whose content
follows the gaze target (trainer.synthetic), written into a `gz` installation."""
from __future__ import annotations

from gazelab.db import session_scope
from trainer.synthetic import insert_dataset


def add_samples(gz, volunteers: int, samples_per_volunteer: int, sessions_per_volunteer: int = 1,
                seed: int = 0) -> int:
    with session_scope(gz.config.database_url) as db:
        return insert_dataset(db, volunteers, samples_per_volunteer, sessions_per_volunteer, seed=seed)


def fast_params(**overrides) -> dict:
    """Training parameters small enough for a test to run in seconds."""
    return {"epochs": 6, "batch_size": 32, "learning_rate": 0.003, "validation_fraction": 0.2,
            "test_fraction": 0.2, "error_grid": "4x3", "device": "cpu", "folds": 1, **overrides}
