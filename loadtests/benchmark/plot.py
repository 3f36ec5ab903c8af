"""Latency distributions, one panel per endpoint, the baseline beside the current run when comparing.

matplotlib is a development dependency (requirements-dev.txt). It is drawn
through the object-oriented Figure API with the Agg canvas, so no display and
no global pyplot state are involved.
"""

import math
from pathlib import Path

from loadtests.benchmark.stats import percentile

# A tail this many times the fastest sample squashes the body of a linear axis.
LOG_SCALE_SPREAD = 20


def plot_latencies(path: Path, current: dict, baseline: dict | None = None) -> None:
    try:
        from matplotlib import ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install -r requirements-dev.txt") from exc

    labels = list(current["endpoints"])
    columns = 1 if len(labels) == 1 else 2
    rows = math.ceil(len(labels) / columns)
    figure = Figure(figsize=(6.5 * columns, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, label in zip(axes, labels, strict=False):
        series = [("current", current)]
        if baseline is not None and label in baseline["endpoints"]:
            series.insert(0, ("baseline", baseline))
        _panel(ax, label, series, ticker)
    for ax in axes[len(labels) :]:
        ax.set_visible(False)
    settings = current["settings"]
    figure.suptitle(
        f"Latency per request, {settings['mode']} cache, concurrency {settings['concurrency']}, "
        f"commit {current['git_commit'][:12]}\n(bar: median; ^ p95; v p99)"
    )
    figure.savefig(path, dpi=100)


def _panel(ax, label: str, series: list[tuple[str, dict]], ticker) -> None:
    samples = [document["endpoints"][label]["samples_ms"] for _, document in series]
    names = [f"{name}\n{document['git_commit'][:8]}" for name, document in series]
    ax.set_title(label.split(" /api/v1/")[-1], fontsize=10)
    ax.set_ylabel("ms")
    if not any(samples):
        ax.text(0.5, 0.5, "no successful request", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        return
    positions = [index + 1 for index, values in enumerate(samples) if values]
    drawn = [values for values in samples if values]
    ax.violinplot(drawn, positions=positions, showmedians=True, showextrema=True)
    for position, values in zip(positions, drawn, strict=True):
        ordered = sorted(values)
        for p, marker in ((95, "^"), (99, "v")):
            ax.plot(position, percentile(ordered, p), marker, color="black", markersize=5)
    ax.set_xticks(range(1, len(names) + 1), names)
    lowest, highest = min(min(values) for values in drawn), max(max(values) for values in drawn)
    if lowest > 0 and highest / lowest > LOG_SCALE_SPREAD:
        ax.set_yscale("log")
        # Ticks at 1, 2, 5 x 10^n, written as plain milliseconds.
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
