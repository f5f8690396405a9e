"""Where to put the next dots, following [collection] in config.ini.

- calibration: the 9 points of a 3x3 grid, shuffled (as in the reference project);
- focus_edges: each coordinate Beta(beta_a, beta_b) x screen size — U-shaped, edges frequent;
- only_edges: the corners;
- undersampled: the least-covered cells of the global coverage map (map_scale px cells);
- model_error: cells where the active model's error is highest (focus_edges until one exists).
"""
from __future__ import annotations

import numpy as np
from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from collection import summary
from gazelab.config import Config
from gazelab.schema import CollectionSession, ModelArtifact, Sample

CALIBRATION_FRACTIONS = (0.1, 0.5, 0.9)


def coverage_counts(db: Session, cols: int, rows: int, session_id: str | None = None) -> np.ndarray:
    """Accepted samples per normalised screen cell, shape (rows, cols), row 0 at the top.
    One session's: a GROUP BY over its samples (found by index). All data: a sum over the
    admin summary's fine grid (collection.summary.coverage), never a scan of the samples."""
    if not session_id:
        return summary.coverage(db, cols, rows)
    col, row = (_cell(db, target / size, n) for target, size, n in (
        (Sample.target_x, CollectionSession.screen_width, cols),
        (Sample.target_y, CollectionSession.screen_height, rows)))
    query = (select(row, col, func.count())
             .join(CollectionSession, Sample.session_id == CollectionSession.id)
             .where(Sample.status == "accepted", Sample.session_id == session_id).group_by(row, col))
    grid = np.zeros((rows, cols), dtype=np.int64)
    for r, c, count in db.execute(query):
        grid[min(max(int(r), 0), rows - 1), min(max(int(c), 0), cols - 1)] += count
    return grid


def _cell(db: Session, fraction, n: int):
    """floor(fraction * n) in SQL (fractions are >= 0: SQLite's CAST truncates; PostgreSQL's rounds)."""
    scaled = fraction * n
    if db.get_bind().dialect.name == "sqlite":
        return cast(scaled, Integer)
    return cast(func.floor(scaled), Integer)


def calibration_points(width: int, height: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    points = [(fx * width, fy * height) for fy in CALIBRATION_FRACTIONS for fx in CALIBRATION_FRACTIONS]
    return [points[i] for i in rng.permutation(len(points))]


def _focus_edges(config: Config, width: int, height: int, n: int, rng) -> np.ndarray:
    c = config.collection
    return np.stack([rng.beta(c.beta_a, c.beta_b, n) * width,
                     rng.beta(c.beta_a, c.beta_b, n) * height], axis=1)


def _only_edges(width: int, height: int, n: int, rng) -> np.ndarray:
    corners = np.array([(0, 0), (width, 0), (0, height), (width, height)], dtype=float)
    return corners[rng.integers(0, 4, n)]


def _from_cell_weights(weights: np.ndarray, width: int, height: int, n: int, rng) -> np.ndarray:
    rows, cols = weights.shape
    p = weights.ravel() / weights.sum()
    cells = rng.choice(weights.size, size=n, p=p)
    cell_rows, cell_cols = np.divmod(cells, cols)
    x = (cell_cols + rng.random(n)) / cols * width
    y = (cell_rows + rng.random(n)) / rows * height
    return np.stack([x, y], axis=1)


def _undersampled(db: Session, config: Config, width: int, height: int, n: int, rng) -> np.ndarray:
    cols = max(1, width // config.collection.map_scale)
    rows = max(1, height // config.collection.map_scale)
    counts = coverage_counts(db, cols, rows)
    least = (counts == counts.min()).astype(float)
    return _from_cell_weights(least, width, height, n, rng)


def _model_error(db: Session, width: int, height: int, n: int, rng) -> np.ndarray | None:
    grid = db.scalar(select(ModelArtifact.error_grid).where(ModelArtifact.id == ModelArtifact.active_id(db)))
    errors = np.array((grid or {}).get("mean_px") or [], dtype=float)
    if errors.ndim != 2 or not np.isfinite(errors).any():
        return None
    weights = np.nan_to_num(errors, nan=float(np.nanmax(errors)))
    return _from_cell_weights(weights + 1e-6, width, height, n, rng)


def effective_sampler(config: Config, requested: str | None = None) -> str:
    """The sampler in force: [collection] only_edges = True overrides every other choice."""
    if config.collection.only_edges:
        return "only_edges"
    return requested or config.collection.sampler


VALIDATION_PATTERN = [(0.5, 0.5), (0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]


def validation_points(width: int, height: int, n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """`n` check dots in random order: the centre and the four quadrant centres first
    (between the calibration dots, so they test interpolation), then uniform draws."""
    fractions = VALIDATION_PATTERN[:n] + [tuple(rng.uniform(0.1, 0.9, 2)) for _ in range(n - len(VALIDATION_PATTERN))]
    order = rng.permutation(len(fractions))
    return [(round(fractions[i][0] * width, 1), round(fractions[i][1] * height, 1)) for i in order]


def next_targets(db: Session, config: Config, session: CollectionSession, n: int,
                 kind: str = "collection", sampler: str | None = None,
                 rng: np.random.Generator | None = None) -> tuple[list[tuple[float, float]], str]:
    """`n` target points in CSS px on this session's screen, and the sampler used."""
    rng = rng or np.random.default_rng()
    width, height = session.screen_width, session.screen_height
    if kind == "calibration":
        return calibration_points(width, height, rng), "calibration"
    if kind == "validation":
        return validation_points(width, height, n, rng), "validation"
    sampler = effective_sampler(config, sampler)
    points = None
    if sampler == "model_error":
        points = _model_error(db, width, height, n, rng)
        if points is None:
            sampler = "focus_edges"
    if sampler == "only_edges":
        points = _only_edges(width, height, n, rng)
    elif sampler == "undersampled":
        points = _undersampled(db, config, width, height, n, rng)
    elif sampler == "focus_edges" or points is None:
        points = _focus_edges(config, width, height, n, rng)
    # keep the whole dot on screen
    margin = config.collection.target_radius
    points[:, 0] = np.clip(points[:, 0], margin, max(margin, width - margin))
    points[:, 1] = np.clip(points[:, 1], margin, max(margin, height - margin))
    return [(round(float(x), 1), round(float(y), 1)) for x, y in points], sampler
