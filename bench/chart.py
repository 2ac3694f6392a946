"""The throughput chart of ``make bench``: records/s by approach, SQLite and PostgreSQL side by
side, each bar labelled with its ratio to the raw baseline of the same run.

The figures go beside the chart as JSON (same name, ``.json``), so that it can be drawn again
without running the benchmark: ``python -m bench.chart docs/ingest-throughput.json``.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

BASELINE_COLOUR, SERVICE_COLOUR, NAIVE_COLOUR = "#9e9e9e", "#1f77b4", "#d62728"


def draw(panels: list[tuple[str, list[tuple[str, float]]]], path: Path, subtitle: str) -> Path:
    """``panels``: (title, [(approach, records/s), ...]) with the baseline first in each."""
    figure, axes = plt.subplots(
        1, len(panels), figsize=(6.5 * len(panels), 3.8), squeeze=False, layout="constrained"
    )
    for ax, (title, bars) in zip(axes[0], panels, strict=True):
        labels = [label for label, _ in bars][::-1]
        rates = [rate for _, rate in bars][::-1]
        baseline = bars[0][1]
        colours = [
            BASELINE_COLOUR if label == bars[0][0] else NAIVE_COLOUR if "naive" in label
            else SERVICE_COLOUR
            for label in labels
        ]  # fmt: skip
        ax.barh(labels, rates, color=colours)
        for y, rate in enumerate(rates):
            ax.text(
                rate, y, f" {rate / 1000:,.0f}k/s  {rate / baseline:.2f}x", va="center", fontsize=9
            )
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("records per second (all three types)")
        ax.set_xlim(0, max(rates) * 1.45)
        ax.tick_params(axis="y", labelsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value / 1000:,.0f}k"))
    figure.suptitle(f"Ingest throughput — {subtitle}", fontsize=12)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    path.with_suffix(".json").write_text(
        json.dumps({"subtitle": subtitle, "panels": panels}, indent=1) + "\n"
    )
    return path


if __name__ == "__main__":
    saved = Path(sys.argv[1])
    figures = json.loads(saved.read_text())
    print(draw(figures["panels"], saved.with_suffix(".png"), figures["subtitle"]))
