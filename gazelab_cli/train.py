"""`gazelab train`: one training run in the foreground."""
from __future__ import annotations

import json
import sys

import click

from gazelab.config import SPEC, load_config
from gazelab.db import session_scope
from gazelab.schema import TrainingRun


def choice_of(key: str) -> click.Choice:
    """The options of a [training] choice key, from the config spec (the one source)."""
    return click.Choice(SPEC["training"][key].choices)


@click.command("train")
@click.option("--architecture", type=choice_of("architecture"), help="Default: [training] architecture.")
@click.option("--inputs", type=choice_of("inputs"), help="Default: [training] inputs.")
@click.option("--epochs", type=int, help="Default: [training] epochs.")
@click.option("--batch-size", type=int, help="Default: [training] batch_size.")
@click.option("--learning-rate", type=float, help="Default: [training] learning_rate.")
@click.option("--seed", type=int, help="Default: [training] seed.")
@click.option("--device", type=choice_of("device"), help="Default: [training] device.")
@click.option("--folds", type=int, help="Cross-validation folds by volunteer; 1 = single split. "
                                        "Default: [training] folds.")
def train(**options) -> None:
    """Train in the foreground on all accepted samples (a run row like a background one)."""
    from trainer import runs
    config = load_config()
    params = {k: v for k, v in options.items() if v is not None}
    with session_scope(config.database_url) as db:
        try:
            run_id = runs.create_run(db, params, config).id
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    try:
        status = runs.execute_run(config, run_id, worker_name="cli", progress=True)
    except runs.TrainingBusy as exc:
        with session_scope(config.database_url) as db:
            db.get(TrainingRun, run_id).status = "cancelled"
        click.echo(f"gazelab train: {exc}; try again when it has finished", err=True)
        sys.exit(1)
    with session_scope(config.database_url) as db:
        run = db.get(TrainingRun, run_id)
        click.echo(json.dumps({"run": run_id, "status": status, "error": run.error,
                               "test": run.metrics.get("test"), "ratio_to_ridge": run.metrics.get("ratio_to_ridge"),
                               "crossval": {k: v for k, v in run.metrics.get("crossval", {}).items()
                                            if k in ("folds", "by", "zero_shot", "calibrated_9")},
                               "split": run.split.get("sizes")}))
    sys.exit(0 if status == "done" else 1)
