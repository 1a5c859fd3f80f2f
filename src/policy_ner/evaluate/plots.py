"""Report plots as PNG bytes (matplotlib, Agg, no pyplot state): per-label F1 with intervals,
precision/recall against the entity score threshold, and version comparisons."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _error_bars(values: Sequence[float], intervals: Sequence[tuple[float, float]]) -> list[list[float]]:
    return [
        [max(0.0, v - lo) for v, (lo, _) in zip(values, intervals)],
        [max(0.0, hi - v) for v, (_, hi) in zip(values, intervals)],
    ]


def f1_plot(
    names: Sequence[str],
    f1: Sequence[float],
    intervals: Sequence[tuple[float, float]],
    title: str = "Strict entity F1 with 95% bootstrap interval",
) -> bytes:
    """One bar per label (and average), whiskers at the interval."""
    fig = Figure(figsize=(max(4.0, 1.3 * len(names)), 3.4))
    ax = fig.subplots()
    positions = range(len(names))
    ax.bar(positions, f1, color=COLORS[0], yerr=_error_bars(f1, intervals), capsize=4)
    for x, value in zip(positions, f1):
        ax.text(x, value + 0.01, f"{value:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(positions), list(names), rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def threshold_plot(curve: Sequence[Mapping[str, float]]) -> bytes:
    """Micro precision, recall and F1 keeping only entities scored at or above each threshold."""
    fig = Figure(figsize=(5.0, 3.4))
    ax = fig.subplots()
    thresholds = [p["threshold"] for p in curve]
    for key, color in (("precision", COLORS[0]), ("recall", COLORS[1]), ("f1", COLORS[2])):
        ax.plot(thresholds, [p[key] for p in curve], marker=".", color=color, label=key)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("entity score threshold (keep score >= threshold)")
    ax.set_ylabel("micro, strict")
    ax.set_title("Precision and recall against the score threshold", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def comparison_plot(
    names: Sequence[str], systems: Mapping[str, Sequence[float]], intervals: Mapping[str, Sequence[tuple[float, float]]]
) -> bytes:
    """Grouped bars: F1 per label (x) for each system (colour), whiskers at each system's interval."""
    fig = Figure(figsize=(max(5.0, 1.6 * len(names)), 3.6))
    ax = fig.subplots()
    width = 0.8 / max(1, len(systems))
    for k, (system, values) in enumerate(systems.items()):
        xs = [x - 0.4 + width * (k + 0.5) for x in range(len(names))]
        ax.bar(
            xs,
            values,
            width,
            color=COLORS[k % len(COLORS)],
            label=system,
            yerr=_error_bars(values, intervals[system]),
            capsize=3,
        )
    ax.set_xticks(list(range(len(names))), list(names), rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("strict F1")
    ax.set_title("F1 per label with 95% bootstrap intervals", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def delta_plot(names: Sequence[str], deltas: Mapping[str, Sequence[tuple[float, float, float]]]) -> bytes:
    """F1 differences against the baseline, one marker per label and system, with paired intervals."""
    fig = Figure(figsize=(max(5.0, 1.6 * len(names)), 3.4))
    ax = fig.subplots()
    offset = 0.6 / max(1, len(deltas))
    for k, (system, rows) in enumerate(deltas.items()):
        xs = [x - 0.3 + offset * (k + 0.5) for x in range(len(names))]
        values = [d for d, _, _ in rows]
        ax.errorbar(
            xs,
            values,
            yerr=_error_bars(values, [(lo, hi) for _, lo, hi in rows]),
            fmt="o",
            capsize=4,
            color=COLORS[(k + 1) % len(COLORS)],
            label=system,
        )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(list(range(len(names))), list(names), rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("F1 difference")
    ax.set_title("F1 minus the baseline's, with 95% paired bootstrap intervals", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)
