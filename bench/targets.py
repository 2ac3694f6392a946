"""The targets ``make bench`` checks, each printed with its figure and whether it is met.

Every benchmark that measures a target calls :func:`check` with what it measured; the line it
prints starts with ``target`` (``make bench | grep ^target`` lists them all), and the row goes
into the chart's table of targets (``bench.chart``), beside the rows other benchmarks added.
Targets are ratios against a baseline measured in the same run, or percentiles: never seconds,
which a busy machine moves.
"""

from pathlib import Path


def check(name: str, figure: str, goal: str, met: bool, chart: Path | None = None) -> bool:
    """Print one target (``name``: the figure measured, the goal, met or not) and put it in the
    chart's table at ``chart``, if given; returns ``met``."""
    verdict = "met" if met else "NOT met"
    print(f"target  {name}: {figure} (goal {goal}): {verdict}")
    if chart is not None:
        from bench.chart import update_targets

        update_targets([(name, figure, goal, verdict)], chart)
    return met
