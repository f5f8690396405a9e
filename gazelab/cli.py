"""The `gazelab` command: Flask's CLI (run/routes/shell) plus GazeLab's own subcommands."""
from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from gazelab.config import ConfigError, load_config


def _create_app():
    from webapp import create_app
    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=True,
             load_dotenv=False, set_debug_flag=False)
def cli() -> None:
    """GazeLab: webcam gaze data collection, feature extraction and model training."""


@cli.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Create or upgrade the schema to the newest migration (idempotent)."""
    from gazelab import migrate
    url = current_app.config["GAZELAB"].database_url
    before = migrate.current_revision(url)
    migrate.upgrade(url)
    after = migrate.current_revision(url)
    click.echo(f"database at revision {after}" + (" (no change)" if before == after else
                                                  f" (was {before or 'empty'})"))


@cli.command("up")
def up() -> None:
    """Start everything one machine needs: Redis (embedded), web server, one worker."""
    from gazelab.supervisor import run_all
    sys.exit(run_all(load_config()))


@cli.group()
def bench() -> None:
    """Benchmarks; each prints one JSON object."""


@cli.group()
def admin() -> None:
    """Admin accounts of the dashboard (/admin)."""


@admin.command("create")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Prompted for when omitted.")
@with_appcontext
def admin_create(name: str, password: str) -> None:
    """Create an admin account NAME."""
    from webapp.accounts import create_admin
    _save_account(create_admin, name, password)
    click.echo(f"admin {name!r} created")


@admin.command("list")
@with_appcontext
def admin_list() -> None:
    """List admin accounts and their last login."""
    from sqlalchemy import select
    from gazelab.schema import AdminUser
    from webapp import get_db
    for user in get_db().scalars(select(AdminUser).order_by(AdminUser.name)):
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        click.echo(f"{user.name}\tcreated {user.created_at:%Y-%m-%d %H:%M}\tlast login {last}")


@admin.command("reset-password")
@click.argument("name")
@click.option("--password", prompt="New password", hide_input=True, confirmation_prompt=True,
              help="Prompted for when omitted.")
@with_appcontext
def admin_reset_password(name: str, password: str) -> None:
    """Set a new password for the admin NAME."""
    from webapp.accounts import set_password
    _save_account(set_password, name, password)
    click.echo(f"password of {name!r} changed")


def _save_account(change, name: str, password: str) -> None:
    """Apply an accounts change (create_admin / set_password) and commit; errors as CLI errors."""
    from webapp import get_db
    db = get_db()
    try:
        change(db, name, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    db.commit()


@bench.command("ingest")
@click.option("--volunteers", default=10, show_default=True, help="Simulated volunteers.")
@click.option("--seconds", default=30.0, show_default=True, help="Length of the upload phase.")
@click.option("--fps", default=5.0, show_default=True, help="Frames per second per volunteer.")
@click.option("--url", default=None, help="A running server to target (default: start one).")
@click.option("--database-url", default=None, help="Database of the started server (default SQLite).")
@click.option("--web-workers", type=int, default=None, help="gunicorn workers of the started server.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the default output).")
def bench_ingest_command(volunteers, seconds, fps, url, database_url, web_workers, as_json) -> None:
    """Simulated volunteers upload real JPEG frames over loopback; prints throughput and latency."""
    import json
    from webapp.bench_ingest import bench_ingest
    click.echo(json.dumps(bench_ingest(volunteers, seconds, fps, url, database_url, web_workers)))


@bench.command("extract")
@click.option("--frames", default=300, show_default=True, help="640x480 JPEG frames to time.")
@click.option("--workers", type=int, default=None, help="Pool processes (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the default output).")
def bench_extract_command(frames, workers, as_json) -> None:
    """Feature extraction speed: ms per frame on one core, frames/s over all cores."""
    import json
    from webapp.bench_extract import run
    click.echo(json.dumps(run(frames, load_config(), workers)))


@cli.command("sim-video")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="FILE.y4m to write.")
@click.option("--targets", "target_spec", default="center", show_default=True,
              help="center | grid9 | x,y;x,y;... (CSS px on --screen).")
@click.option("--seconds", default=3.0, show_default=True, type=click.FloatRange(0.04, 600))
@click.option("--seed", default=0, show_default=True, type=int, help="Which virtual volunteer.")
@click.option("--screen", default="1280x720", show_default=True, help="WIDTHxHEIGHT in CSS px.")
def sim_video(out_path: str, target_spec: str, seconds: float, seed: int, screen: str) -> None:
    """Write a Y4M video (Chromium's fake webcam) of a virtual volunteer following targets."""
    import json
    from simulator.video import parse_targets, write_y4m
    try:
        size = tuple(int(v) for v in screen.lower().split("x"))
        if len(size) != 2 or min(size) < 1:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{screen!r} is not WIDTHxHEIGHT", param_hint="--screen") from None
    try:
        points = parse_targets(target_spec, size)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--targets") from None
    click.echo(json.dumps(write_y4m(out_path, points, seconds=seconds, seed=seed, screen=size)))


@cli.command("demo-data")
@click.option("--volunteers", default=5, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--samples", default=200, show_default=True, type=click.IntRange(1, 100_000),
              help="Frames per volunteer.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**31 - 1))
@click.option("--workers", default=None, type=click.IntRange(1, 64), help="Processes (default: all cores).")
def demo_data(volunteers: int, samples: int, seed: int, workers: int | None) -> None:
    """Fill the database with virtual volunteers through the real ingest path (idempotent per seed)."""
    import json
    from simulator.demo import run_demo
    click.echo(json.dumps(run_demo(load_config(), volunteers, samples, seed=seed, workers=workers)))


@cli.command("train")
@click.option("--architecture", type=click.Choice(["compact", "reference"]), help="Default: [training] architecture.")
@click.option("--inputs", type=click.Choice(["full", "face", "eyes"]), help="Default: [training] inputs.")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--learning-rate", type=float)
@click.option("--seed", type=int)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]))
def train(**options) -> None:
    """Train in the foreground on all accepted samples (a run row like a background one)."""
    import json
    from gazelab.db import session_scope
    from gazelab.schema import TrainingRun
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
                               "split": run.split.get("sizes")}))
    sys.exit(0 if status == "done" else 1)


@bench.command("train")
@click.option("--volunteers", default=20, show_default=True, type=click.IntRange(3, 10_000))
@click.option("--samples", default=400, show_default=True, type=click.IntRange(10, 100_000),
              help="Frames per volunteer.")
@click.option("--epochs", type=click.IntRange(1, 10_000), help="Default: [training] epochs.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--source", type=click.Choice(["simulator", "synthetic"]), default="simulator", show_default=True)
@click.option("--device", type=click.Choice(["cpu", "auto", "cuda"]), default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object (the default output anyway).")
def bench_train(volunteers: int, samples: int, epochs: int | None, seed: int, source: str, device: str,
                as_json: bool) -> None:
    """Train the default model and the reference on virtual-volunteer data; print one JSON object."""
    import json
    from trainer.bench import run_bench
    click.echo(json.dumps(run_bench(load_config(), volunteers, samples, epochs, seed, source, device)))


# COMMANDS (one block each; keep this marker)


def main() -> None:
    try:
        load_config()  # validate once, before any command runs
    except ConfigError as exc:
        click.echo(f"gazelab: config error: {exc}", err=True)
        sys.exit(2)
    cli.main(prog_name="gazelab")
