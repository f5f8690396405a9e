"""Run figures as PNG bytes (matplotlib, Agg): error heatmap, coverage heatmap, error
histogram, loss curves, and with cross-validation the error heatmap of each regime.
Every figure is FIGSIZE × DPI = 800×450 px."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIGSIZE, DPI = (8, 4.5), 100


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def _grid_figure(values: np.ndarray, title: str, label: str, cmap: str) -> bytes:
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    rows, cols = values.shape
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, extent=(0, 1, 1, 0), aspect="auto")
    ax.set(title=title, xlabel="screen x (fraction of width)", ylabel="screen y (fraction of height, top = 0)")
    if rows * cols <= 16 * 9 * 2:
        for r in range(rows):
            for c in range(cols):
                if np.isfinite(values[r, c]):
                    bright = image.norm(values[r, c]) > 0.6  # dark text on the light end of the map
                    ax.text((c + 0.5) / cols, (r + 0.5) / rows, f"{values[r, c]:.0f}", ha="center",
                            va="center", fontsize=7, color="black" if bright else "white")
    fig.colorbar(image, ax=ax, label=label)
    return _png(fig)


def error_heatmap(grid: dict, title: str = "Mean test error per screen region (empty: no test samples)") -> bytes:
    values = np.array([[np.nan if v is None else v for v in row] for row in grid["mean_px"]], float)
    return _grid_figure(values, title, "mean error (px of the sample's screen)", "magma")


REGIME_TITLES = {"zero_shot": "Cross-validated error per region, zero-shot (new person, no calibration)",
                 "calibrated_9": "Cross-validated error per region, calibrated on the person's 9 dots"}


def coverage_heatmap(grid: dict) -> bytes:
    counts = np.array(grid["counts"], float)
    counts[counts == 0] = np.nan
    return _grid_figure(counts, "Test samples per screen region", "samples", "viridis")


def error_histogram(errors: np.ndarray, baselines: dict[str, float]) -> bytes:
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    ax.hist(errors, bins=40, color="tab:blue", alpha=0.8, label="model")
    for (name, value), colour in zip(baselines.items(), ("tab:orange", "tab:green", "tab:red")):
        if value is not None:
            ax.axvline(value, color=colour, linestyle="--", label=f"{name} mean: {value:.0f} px")
    if len(errors):
        ax.axvline(float(np.mean(errors)), color="black", label=f"model mean: {np.mean(errors):.0f} px")
    ax.set(title="Test error distribution", xlabel="error (px of the sample's screen)", ylabel="samples")
    ax.legend()
    return _png(fig)


def loss_curves(history: list[dict]) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=FIGSIZE, layout="constrained")
    epochs = [h["epoch"] for h in history]
    left.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    left.plot(epochs, [np.nan if h["val_loss"] is None else h["val_loss"] for h in history], marker="o",
              label="validation")
    left.set(title="Loss", xlabel="epoch", ylabel="mean squared error (kilo-px²)", yscale="log")
    left.legend()
    right.plot(epochs, [np.nan if h["val_error_px"] is None else h["val_error_px"] for h in history],
               marker="o", color="tab:orange")
    right.set(title="Validation error", xlabel="epoch", ylabel="mean error (px)")
    return _png(fig)


def run_figures(metrics: dict, test_errors: np.ndarray, history: list[dict]) -> dict[str, bytes]:
    baselines = {name: metrics["test"][name]["mean_px"] for name in ("mean", "ridge")}
    figures = {"error_heatmap": error_heatmap(metrics["error_grid"]),
               "coverage_heatmap": coverage_heatmap(metrics["error_grid"]),
               "error_histogram": error_histogram(test_errors, baselines),
               "loss_curves": loss_curves(history)}
    for regime, grid in metrics.get("crossval", {}).get("error_grid", {}).items():
        figures[f"error_heatmap_{regime}"] = error_heatmap(grid, REGIME_TITLES[regime])
    return figures
