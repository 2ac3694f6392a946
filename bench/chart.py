"""The throughput chart of ``make bench``: records/s by approach, SQLite and PostgreSQL side by
side, each bar labelled with its ratio to the raw baseline of the same run.

The figures go beside the chart as JSON (same name, ``.json``), so that it can be drawn again
without running the benchmark: ``python -m bench.chart docs/ingest-throughput.json``.

Several benchmarks share the chart: each one ``update``s its own panels (by title) and keeps
the others', two panels a row (the insert benchmark's on top, the bulk actions' below). A bar
is ``(label, rate)``, compared with the first bar of its panel, or ``(label, rate, baseline
rate)`` when a panel holds several baselines (one per action; a label with "(baseline)" is drawn
grey).

The panel titled ``Targets`` is a table instead (``bench.targets``): a row per target, its
figure, its goal and whether it is met, each benchmark replacing its own rows by name
(:func:`update_targets`).
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

BASELINE_COLOUR, SERVICE_COLOUR, NAIVE_COLOUR = "#9e9e9e", "#1f77b4", "#d62728"
TARGETS = "Targets"


def draw(panels: list[tuple[str, list[tuple]]], path: Path, subtitle: str) -> Path:
    """``panels``: (title, [(approach, records/s[, baseline records/s]), ...]) with the baseline
    first in each."""
    saved = {"subtitle": subtitle, "panels": panels}  # the table too
    table = next((bars for title, bars in panels if title == TARGETS), None)
    panels = [(title, bars) for title, bars in panels if title != TARGETS]
    columns = max(1, min(len(panels), 2))
    rows = -(-len(panels) // columns)
    height = [max(3.8, 0.3 * max((len(bars) for _, bars in panels), default=0) + 1.6)] * rows
    if table:  # a row of its own, the whole width, under the charts
        height.append(0.28 * len(table) + 1.0)
    figure = plt.figure(figsize=(max(6.5 * columns, 11), sum(height)), layout="constrained")
    grid = figure.add_gridspec(len(height), columns, height_ratios=height)
    axes = [figure.add_subplot(grid[n // columns, n % columns]) for n in range(len(panels))]
    if table:
        _table(figure.add_subplot(grid[len(height) - 1, :]), table)
    for ax, (title, bars) in zip(axes, panels, strict=True):
        labels = [bar[0] for bar in bars][::-1]
        rates = [bar[1] for bar in bars][::-1]
        baselines = [bar[2] if len(bar) > 2 else bars[0][1] for bar in bars][::-1]
        colours = [
            BASELINE_COLOUR if label == bars[0][0] or "(baseline)" in label
            else NAIVE_COLOUR if "naive" in label
            else SERVICE_COLOUR
            for label in labels
        ]  # fmt: skip
        ax.barh(labels, rates, color=colours)
        for y, (rate, baseline) in enumerate(zip(rates, baselines, strict=True)):
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
    path.with_suffix(".json").write_text(json.dumps(saved, indent=1) + "\n")
    return path


def _table(ax, rows: list[list[str]]) -> None:
    """The targets' table: target, figure, goal, verdict (met in blue, not met in red)."""
    ax.set_axis_off()
    ax.set_title(TARGETS, fontsize=11)
    table = ax.table(
        cellText=[list(row) for row in rows],
        colLabels=["target", "measured", "goal", ""],
        loc="center",
        cellLoc="left",
        colWidths=[0.36, 0.44, 0.12, 0.08],
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.4)
    for number, row in enumerate(rows, start=1):
        colour = SERVICE_COLOUR if row[3] == "met" else NAIVE_COLOUR
        table[number, 3].get_text().set_color(colour)


def update_targets(rows: list[tuple[str, str, str, str]], path: Path) -> Path:
    """Put target rows (name, figure, goal, verdict) into the chart's table of targets, in place
    of saved rows with the same names; the chart is drawn again with the saved panels."""
    saved = path.with_suffix(".json")
    figures = json.loads(saved.read_text()) if saved.exists() else {"subtitle": "", "panels": []}
    panels = dict((title, bars) for title, bars in figures["panels"])
    table = {row[0]: list(row) for row in panels.get(TARGETS, [])}
    table.update({row[0]: list(row) for row in rows})
    return update([(TARGETS, list(table.values()))], path, figures["subtitle"])


def update(panels: list[tuple[str, list[tuple]]], path: Path, subtitle: str) -> Path:
    """Draw ``panels`` into the chart at ``path``, in place of the saved panels with the same
    titles; the other saved panels (another benchmark's) stay where they were."""
    saved = path.with_suffix(".json")
    kept = json.loads(saved.read_text())["panels"] if saved.exists() else []
    new = dict(panels)
    merged = [(title, new.pop(title, bars)) for title, bars in kept]
    return draw(merged + list(new.items()), path, subtitle)


if __name__ == "__main__":
    saved = Path(sys.argv[1])
    figures = json.loads(saved.read_text())
    print(draw(figures["panels"], saved.with_suffix(".png"), figures["subtitle"]))
