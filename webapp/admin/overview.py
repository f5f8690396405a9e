"""Overview: dataset counts, samples per day, rejection reasons, coverage heatmap (PNG) —
all read from the admin summary (collection.summary), never by scanning the samples."""
from __future__ import annotations

import io
from functools import lru_cache
import numpy as np
from flask import Response, render_template, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from collection import summary
from collection.targets import coverage_counts
from gazelab.schema import CollectionSession, Volunteer
from webapp import get_config, get_db
from webapp.admin import bp


def dataset_counts(db: Session) -> dict[str, int]:
    """Samples by status from the admin summary; volunteers and sessions counted (small tables)."""
    counts = summary.status_counts(db)
    counts["volunteers"] = db.scalar(select(func.count()).select_from(Volunteer)) or 0
    counts["sessions"] = db.scalar(select(func.count()).select_from(CollectionSession)) or 0
    return counts


def heatmap_png(grid: np.ndarray, title: str, label: str) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 3.9), dpi=100)
    axes = figure.subplots()
    image = axes.imshow(grid, cmap="viridis", aspect="auto", extent=(0, 1, 1, 0))
    axes.set_title(title)
    axes.set_xlabel("screen x (fraction of width)")
    axes.set_ylabel("screen y (fraction of height)")
    figure.colorbar(image, ax=axes, label=label)
    if grid.size <= 400:
        rows, cols = grid.shape
        for r in range(rows):
            for c in range(cols):
                axes.text((c + .5) / cols, (r + .5) / rows, str(int(grid[r, c])), ha="center",
                          va="center", fontsize=6, color="w" if grid[r, c] < grid.max() / 2 else "k")
    # fixed margins: tight_layout would draw the whole figure once more just to measure it
    figure.subplots_adjust(left=0.1, right=0.99, bottom=0.12, top=0.92)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


@lru_cache(maxsize=16)
def _cached_heatmap(data: bytes, shape: tuple[int, int], title: str, label: str) -> bytes:
    return heatmap_png(np.frombuffer(data, dtype=np.int64).reshape(shape), title, label)


def coverage_png_bytes(grid: np.ndarray) -> bytes:
    """The coverage heatmap of `grid`, rendered once per distinct grid (matplotlib takes
    ~150-250 ms a picture; the counts themselves come from the summary in a few ms)."""
    grid = np.ascontiguousarray(grid, dtype=np.int64)
    return _cached_heatmap(grid.tobytes(), grid.shape,
                           f"Accepted samples per screen region ({int(grid.sum())} in all)", "samples")


@bp.get("/")
def overview():
    db = get_db()
    per_day = summary.samples_per_day(db)
    return render_template("admin/overview.html", counts=dataset_counts(db), per_day=per_day,
                           max_per_day=max((n for _, n in per_day), default=1),
                           reasons=summary.rejection_reasons(db))


@bp.get("/coverage.png")
def coverage_png():
    cols, rows = get_config().training.error_grid
    grid = coverage_counts(get_db(), cols, rows, request.args.get("session_id") or None)
    png = coverage_png_bytes(grid)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "no-store"})
