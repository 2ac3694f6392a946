"""``make bench``'s targets: each printed on a line starting with ``target``, and kept in the
chart's table while the other benchmarks redraw their own panels (a redraw once dropped the
table: only the last benchmark's row was left)."""

import json

from bench.chart import TARGETS, update, update_targets
from bench.targets import check


def _saved(path) -> dict:
    figures = json.loads(path.with_suffix(".json").read_text())
    return {title: bars for title, bars in figures["panels"]}


def test_the_table_of_targets_survives_the_other_benchmarks_panels(tmp_path):
    path = tmp_path / "chart.png"
    update([("Inserts", [("raw (baseline)", 100.0), ("service", 101.0)])], path, "2 CPUs")
    update_targets([("insert", "1.01x", ">= 1.0x", "met")], path)
    update([("Upserts", [("raw (baseline)", 50.0), ("service", 40.0)])], path, "2 CPUs")
    update_targets([("reads", "20 ms", "< 50 ms", "met")], path)
    update_targets([("insert", "0.97x", ">= 1.0x", "NOT met")], path)

    panels = _saved(path)
    assert set(panels) == {"Inserts", "Upserts", TARGETS}
    assert panels[TARGETS] == [
        ["insert", "0.97x", ">= 1.0x", "NOT met"],
        ["reads", "20 ms", "< 50 ms", "met"],
    ]
    assert path.stat().st_size > 0


def test_a_target_prints_its_line_and_says_whether_it_is_met(tmp_path, capsys):
    assert check("reads p99", "20 ms", "< 50 ms", True, tmp_path / "chart.png") is True
    assert check("memory", "11.3x", "< 5x", False) is False

    out = capsys.readouterr().out.splitlines()
    assert out == [
        "target  reads p99: 20 ms (goal < 50 ms): met",
        "target  memory: 11.3x (goal < 5x): NOT met",
    ]
    assert _saved(tmp_path / "chart.png")[TARGETS] == [["reads p99", "20 ms", "< 50 ms", "met"]]
