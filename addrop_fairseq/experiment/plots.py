"""Small PNGs of a comparison: per-epoch curves by arm (mean, seed range as a band), heatmaps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def _pyplot():
    import logging

    # fairseq's start-up sets the root logger to DEBUG; matplotlib's import and font search
    # would fill it (so the level is set before the import)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)

    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def epoch_matrix(runs: list[dict], field: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values[seed, epoch]) with nan where a run lacks the epoch or the field."""
    epochs = sorted({e["epoch"] for r in runs for e in r["epochs"]})
    values = np.full((len(runs), len(epochs)), np.nan)
    for i, run in enumerate(runs):
        for record in run["epochs"]:
            value = record.get(field)
            if value is not None:
                values[i, epochs.index(record["epoch"])] = value
    return np.array(epochs), values


def _band(ax, runs, field, label, color, style="-"):
    """Plots mean and seed range; returns the plotted (epochs, mean, low, high) or None."""
    epochs, values = epoch_matrix(runs, field)
    keep = ~np.all(np.isnan(values), axis=0)
    if not keep.any():
        return None
    epochs, values = epochs[keep], values[:, keep]
    mean, low, high = (
        np.nanmean(values, axis=0),
        np.nanmin(values, axis=0),
        np.nanmax(values, axis=0),
    )
    ax.plot(epochs, mean, style, color=color, label=label)
    if len(runs) > 1:
        ax.fill_between(epochs, low, high, color=color, alpha=0.15, linewidth=0)
    return epochs, mean, low, high


def _draw_bands(axes, runs_by_arm: dict[str, list[dict]], lines_of) -> dict:
    """One colour per arm (by its place, so an arm keeps its colour as others finish); for each
    arm, ``lines_of(arm, runs)`` names its lines as (panel, runs, field, label, style)."""
    colors = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = {}
    for index, (arm, runs) in enumerate(runs_by_arm.items()):
        if not runs:
            continue
        for panel, source, field, label, style in lines_of(arm, runs):
            series = _band(axes[panel], source, field, label, colors[index % len(colors)], style)
            if series is not None:
                drawn[(panel, arm, field)] = series
    return drawn


def _save(fig, path: Path, title: str = "") -> None:
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    _pyplot().close(fig)


def plot_curves(
    runs_by_arm: dict[str, list[dict]],
    metric: str,
    path: Path,
    title: str = "",
    report_split: str | None = None,
) -> dict:
    """Three panels: dev metric; train and dev loss; the train-dev gap (the overfitting curve).

    With ``report_split`` (the runs also scored that split every epoch, ``report_metric``), a
    fourth panel shows it by epoch, on the same scale as the dev panel, so that the two
    protocols' choices of epoch can be read off one figure.
    The gap uses the unmasked training-split loss when the runs validated on train
    (``valid_on_train``), else the logged training loss (masked in AD-DROP epochs).
    Returns what was drawn: {(panel, arm, field): (epochs, mean, low, high)}.
    """
    panels = 4 if report_split else 3
    fig, axes = _pyplot().subplots(1, panels, figsize=(4.3 * panels, 3.6), dpi=90)
    if report_split:
        axes[3].sharey(axes[0])  # one scale for both splits' metric

    def lines_of(arm, runs):
        has_trainset = any(e.get("trainset_loss") is not None for r in runs for e in r["epochs"])
        train_field = "trainset_loss" if has_trainset else "train_loss"
        gap_runs = [
            {
                "epochs": [
                    dict(epoch=e["epoch"], gap=e["valid_loss"] - e[train_field])
                    for e in r["epochs"]
                    if e.get("valid_loss") is not None and e.get(train_field) is not None
                ]
            }
            for r in runs
        ]
        lines = (
            (0, runs, "valid_metric", arm, "-"),
            (1, runs, train_field, f"{arm} train", "--"),
            (1, runs, "valid_loss", f"{arm} dev", "-"),
            (2, gap_runs, "gap", arm, "-"),
        )
        if report_split:
            lines += ((3, runs, "report_metric", arm, "-"),)
        return lines

    drawn = _draw_bands(axes, runs_by_arm, lines_of)
    axes[0].set_title(f"dev {metric}")
    axes[1].set_title("loss (dashed: train, solid: dev)")
    axes[2].set_title("dev loss - train loss")
    if report_split:
        axes[3].set_title(f"{report_split} {metric} (the reported split)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    _save(fig, path, title)
    return drawn


def plot_heatmap(
    gains: dict[tuple[float, float], float],
    path: Path,
    title: str,
    x_name: str = "q",
    y_name: str = "p",
) -> np.ndarray:
    """Mean gain over the baseline for each (p, q) of a grid, annotated (paper Fig. 4 style).

    Returns the drawn matrix (rows p ascending, columns q ascending; nan where no arm)."""
    plt = _pyplot()
    ys = sorted({p for p, _ in gains})
    xs = sorted({q for _, q in gains})
    grid = np.full((len(ys), len(xs)), np.nan)
    for (p, q), gain in gains.items():
        grid[ys.index(p), xs.index(q)] = gain
    finite = grid[np.isfinite(grid)]
    limit = max(float(np.abs(finite).max()), 1e-9) if finite.size else 1.0
    fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 2, 1.0 * len(ys) + 1.5), dpi=90)
    image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, origin="lower")
    ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
    ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    for i in range(len(ys)):
        for j in range(len(xs)):
            if not math.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:+.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax)
    ax.set_title(title, fontsize=9)
    _save(fig, path)
    return grid


def plot_loss_panels(runs_by_arm: dict[str, list[dict]], path: Path, title: str = "") -> dict:
    """Two panels, training loss and dev loss per epoch, one line per arm (mean over seeds, seed
    range as a band): the layout of the paper's Fig. 2.

    The training panel shows the training split evaluated without masks where the runs have it
    (``valid_on_train``, solid), and the logged training loss (masked in AD-DROP epochs, dashed).
    Returns what was drawn: {(panel, arm, field): (epochs, mean, low, high)}.
    """
    fig, axes = _pyplot().subplots(1, 2, figsize=(10, 3.8), dpi=90)
    drawn = _draw_bands(
        axes,
        runs_by_arm,
        lambda arm, runs: (
            (0, runs, "trainset_loss", arm, "-"),
            (0, runs, "train_loss", f"{arm} (logged)", "--"),
            (1, runs, "valid_loss", arm, "-"),
        ),
    )
    axes[0].set_title("training loss (solid: training split unmasked; dashed: logged)", fontsize=9)
    axes[1].set_title("dev loss", fontsize=9)
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path, title)
    return drawn


def plot_forest(
    panels: dict[str, list[tuple[str, str, float, float, float]]], path: Path, title: str = ""
) -> dict:
    """A forest plot: one panel per unit (``panels``: unit -> rows), stacked on one page.

    Each row is (label, group, mean, low, high): a point at the mean with its interval as a bar,
    coloured by its group (e.g. GA, RD), first row on top, a zero line in every panel. Units are
    not mixed on one axis: a difference in BLEU and one in F1 do not share a scale.
    Returns what was drawn: {unit: [(label, mean, low, high), ...]}, top to bottom.
    """
    plt = _pyplot()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    groups = list(dict.fromkeys(row[1] for rows in panels.values() for row in rows))
    heights = [len(rows) + 1.2 for rows in panels.values()]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(8.5, 0.32 * sum(heights) + 0.9),
        dpi=100,
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    drawn = {}
    for ax, (unit, rows) in zip(axes[:, 0], panels.items()):
        y = np.arange(len(rows))[::-1]
        for position, (label, group, mean, low, high) in zip(y, rows):
            color = colors[groups.index(group) % len(colors)]
            ax.errorbar(
                mean, position, xerr=[[mean - low], [high - mean]], fmt="o", color=color,
                capsize=3, markersize=4, label=group,
            )
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_yticks(y, [row[0] for row in rows], fontsize=8)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlabel(f"difference in {unit}", fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        # Outside the axes: a panel of two rows has no empty corner, and a legend inside would
        # hide an interval's end.
        ax.legend(
            unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0)
        )
        drawn[unit] = [(label, mean, low, high) for label, _, mean, low, high in rows]
    _save(fig, path, title)
    return drawn
