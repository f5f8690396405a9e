"""`gazelab bench …`: the benchmarks (gazelab_cli.benchmarks); each prints one JSON object."""
from __future__ import annotations

import json

import click

from gazelab.config import SPEC, load_config


@click.group()
def bench() -> None:
    """Benchmarks; each prints one JSON object."""


@bench.command("ingest")
@click.option("--volunteers", default=10, show_default=True, help="Simulated volunteers.")
@click.option("--seconds", default=30.0, show_default=True, help="Length of the upload phase.")
@click.option("--fps", default=5.0, show_default=True, help="Frames per second per volunteer.")
@click.option("--url", default=None, help="A running server to target (default: start one).")
@click.option("--database-url", default=None, help="Database of the started server (default SQLite).")
@click.option("--web-workers", type=int, default=None, help="gunicorn workers of the started server.")
@click.option("--batch", type=click.IntRange(1, 64), default=None,
              help="Most frames per request (default: [collection] upload_batch_frames, as the page; 1: one by one).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the default output).")
def bench_ingest(volunteers, seconds, fps, url, database_url, web_workers, batch, as_json) -> None:
    """Simulated volunteers upload real JPEG frames over loopback; prints throughput and latency."""
    from gazelab_cli.benchmarks.ingest import bench_ingest as run
    click.echo(json.dumps(run(volunteers, seconds, fps, url, database_url, web_workers, batch)))


@bench.command("extract")
@click.option("--frames", default=300, show_default=True, help="640x480 JPEG frames to time.")
@click.option("--workers", type=int, default=None, help="Pool processes (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the default output).")
def bench_extract(frames, workers, as_json) -> None:
    """Feature extraction speed: ms per frame on one core, frames/s over all cores."""
    from gazelab_cli.benchmarks.extract import run
    click.echo(json.dumps(run(frames, load_config(), workers)))


@bench.command("train")
@click.option("--volunteers", default=20, show_default=True, type=click.IntRange(3, 10_000))
@click.option("--samples", default=400, show_default=True, type=click.IntRange(10, 100_000),
              help="Frames per volunteer.")
@click.option("--epochs", type=click.IntRange(1, 10_000), help="Default: [training] epochs.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--source", type=click.Choice(["simulator", "synthetic"]), default="simulator", show_default=True)
@click.option("--device", type=click.Choice(SPEC["training"]["device"].choices), default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object (the default output anyway).")
def bench_train(volunteers: int, samples: int, epochs: int | None, seed: int, source: str, device: str,
                as_json: bool) -> None:
    """Train the default model and the reference on virtual-volunteer data; print one JSON object."""
    from gazelab_cli.benchmarks.train import run_bench
    click.echo(json.dumps(run_bench(load_config(), volunteers, samples, epochs, seed, source, device)))


@bench.command("faults")
@click.option("--database-url", default=None, help="Run against this database (default: a fresh SQLite).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the default output).")
def bench_faults(database_url: str | None, as_json: bool) -> None:
    """Crash and abuse scenarios against a started product: frames lost, duplicates, stuck runs,
    deleted bytes found (each should be 0)."""
    from gazelab_cli.benchmarks.faults import run
    click.echo(json.dumps(run(database_url)))
@bench.command("accuracy")
@click.option("--volunteers", default=30, show_default=True, type=click.IntRange(3, 10_000))
@click.option("--samples", default=300, show_default=True, type=click.IntRange(40, 100_000),
              help="Frames per volunteer (the first 36 or so are the 9-dot calibration).")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 100))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(1, 10_000),
              help="Per fold (early stopping may end a fold sooner); 15 keeps three variants × 5 folds of "
                   "30 volunteers within ~45 min on 2 CPU cores.")
@click.option("--source", type=click.Choice(["simulator", "synthetic"]), default="simulator", show_default=True)
@click.option("--device", type=click.Choice(SPEC["training"]["device"].choices), default="cpu", show_default=True)
@click.option("--models", default="direct_geometry,direct,gaze_ray", show_default=True,
              help="Model variants cross-validated on the same folds; the first is reported as \"model\" "
                   "(direct_geometry: the default [training] compact / full_geometry).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (the default output anyway).")
def bench_accuracy(volunteers: int, samples: int, folds: int, seed: int, epochs: int | None, source: str,
                   device: str, models: str, as_json: bool) -> None:
    """Cross-validated accuracy by volunteer, zero-shot and calibrated, beside the peers, for the
    training styles and the held-out rendering style; one JSON object."""
    from gazelab_cli.benchmarks.accuracy import VARIANTS, run
    chosen = tuple(m.strip() for m in models.split(",") if m.strip())
    unknown = [m for m in chosen if m not in VARIANTS]
    if not chosen or unknown:
        raise click.BadParameter(f"unknown model variant(s) {unknown}; choose from {', '.join(VARIANTS)}",
                                 param_hint="--models")
    click.echo(json.dumps(run(load_config(), volunteers, samples, folds, seed, epochs, source, device, chosen)))


@bench.command("scale")
@click.option("--samples", default=1_000_000, show_default=True, type=click.IntRange(100, 100_000_000))
@click.option("--runs", default=3000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Training runs in the list.")
@click.option("--database-url", default=None,
              help="An empty database to fill (e.g. PostgreSQL; default: SQLite in a temp dir).")
@click.option("--repeat", default=30, show_default=True, type=click.IntRange(1, 10_000),
              help="Timed requests per page (after two warm-up ones).")
@click.option("--image-every", default=20, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Store crops for every n-th sample (and the newest 200).")
@click.option("--keep", is_flag=True, help="Keep the SQLite file (its path is in the JSON).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the default output).")
def bench_scale(samples, runs, database_url, repeat, image_every, keep, as_json) -> None:
    """The admin pages at scale: bulk-build a database, then p50/p95 ms of the overview, the review
    grid (first and a deep page), the runs list and coverage through the Flask app."""
    from gazelab_cli.benchmarks.scale import run
    click.echo(json.dumps(run(samples, runs, database_url, repeat, image_every, keep)))


@bench.command("snapshot")
@click.option("--samples", default=200_000, show_default=True, type=click.IntRange(100, 100_000_000),
              help="Accepted samples in the bench database (bulk-inserted).")
@click.option("--database-url", default=None, help="Fill this (empty, migrated on start) database "
                                                   "instead of a SQLite file in a temp dir.")
@click.option("--subset", default=20_000, show_default=True, type=click.IntRange(50, 100_000_000),
              help="Samples kept (the rest rejected) for the in-RAM vs streamed comparison.")
@click.option("--train-batches", default=300, show_default=True, type=click.IntRange(1, 10_000_000),
              help="Training batches timed over the whole store (a random training split of this size).")
@click.option("--subset-batches", default=150, show_default=True, type=click.IntRange(1, 10_000_000),
              help="Training batches timed on the subset, in RAM and streamed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (the default output anyway).")
def bench_snapshot(samples: int, database_url: str | None, subset: int, train_batches: int, subset_batches: int,
                   as_json: bool) -> None:
    """Shard store build (from scratch and incremental) and training at scale: time and peak RSS."""
    from gazelab_cli.benchmarks.snapshot import run
    click.echo(json.dumps(run(load_config(), samples, database_url, subset, train_batches, subset_batches)))
