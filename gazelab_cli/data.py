"""`gazelab demo-data`, `gazelab sim-video` and `gazelab sim-sheet`: the virtual volunteer's data."""
from __future__ import annotations

import json

import click

from gazelab.config import load_config


@click.command("sim-video")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="FILE.y4m to write.")
@click.option("--targets", "target_spec", default="center", show_default=True,
              help="center | grid9 | x,y;x,y;... (CSS px on --screen).")
@click.option("--seconds", default=3.0, show_default=True, type=click.FloatRange(0.04, 600))
@click.option("--seed", default=0, show_default=True, type=int, help="Which virtual volunteer.")
@click.option("--screen", default="1280x720", show_default=True, help="WIDTHxHEIGHT in CSS px.")
def sim_video(out_path: str, target_spec: str, seconds: float, seed: int, screen: str) -> None:
    """Write a Y4M video (Chromium's fake webcam) of a virtual volunteer following targets."""
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


@click.command("sim-sheet")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="FILE.png to write.")
@click.option("--seed", default=0, show_default=True, type=int)
def sim_sheet(out_path: str, seed: int) -> None:
    """A contact sheet of the simulator's rendering styles (the held-out one marked): frames and
    the crops the extraction cut from them."""
    from simulator.contact_sheet import build_contact_sheet
    click.echo(json.dumps({"path": str(build_contact_sheet(out_path, seed=seed))}))


@click.command("demo-data")
@click.option("--volunteers", default=5, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--samples", default=200, show_default=True, type=click.IntRange(1, 100_000),
              help="Frames per volunteer.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**31 - 1))
@click.option("--workers", default=None, type=click.IntRange(1, 64), help="Processes (default: all cores).")
def demo_data(volunteers: int, samples: int, seed: int, workers: int | None) -> None:
    """Fill the database with virtual volunteers through the real ingest path (idempotent per seed)."""
    from simulator.demo import run_demo
    click.echo(json.dumps(run_demo(load_config(), volunteers, samples, seed=seed, workers=workers)))
