"""Model artifacts in the database (weights + architecture + normalisation + metrics +
error grid), so any node can load them; and the run's figures."""
from __future__ import annotations

import io

import torch
from sqlalchemy import delete
from sqlalchemy.orm import Session

from gazelab.schema import ModelArtifact, RunFigure, TrainingRun
from trainer.models import build_model


def weights_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def save_artifact(db: Session, run: TrainingRun | None, model: torch.nn.Module, spec: dict,
                  normalisation: dict, metrics: dict) -> ModelArtifact:
    artifact = ModelArtifact(run_id=run.id if run else None, weights=weights_bytes(model), architecture=spec,
                             normalisation=normalisation, metrics=metrics, error_grid=metrics["error_grid"])
    db.add(artifact)
    db.flush()
    return artifact


def save_figures(db: Session, run: TrainingRun, figures: dict[str, bytes]) -> None:
    db.execute(delete(RunFigure).where(RunFigure.run_id == run.id))
    db.add_all(RunFigure(run_id=run.id, name=name, png=png) for name, png in figures.items())


def load_model(artifact: ModelArtifact, device: str = "cpu") -> torch.nn.Module:
    spec = {k: v for k, v in artifact.architecture.items() if k != "parameters"}
    model = build_model(spec)
    state = torch.load(io.BytesIO(artifact.weights), map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()
