"""The aggregation helpers and text charts the report (and later the dashboard) are built from."""

from __future__ import annotations

import pytest

from backend.analysis.charts import column_chart, marker_row, spark_row
from backend.analysis.stats import Stat, TimeBins, histogram, percentile, spans


def test_percentile_interpolates_like_numpy():
    values = sorted([1.0, 2.0, 3.0, 4.0, 100.0])
    assert percentile(values, 50) == 3.0
    assert percentile(values, 99) == pytest.approx(96.16)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert percentile([], 99) is None and percentile([7.0], 99) == 7.0


def test_stat_keeps_the_time_of_its_extremes():
    stat = Stat(keep=True)
    for t, value in enumerate([0.5, 26.73, 0.0, 3.0]):
        stat.add(value, float(t))
    summary = stat.summary(2, (99,))
    assert (summary["max"], summary["t_max"], summary["min"], summary["t_min"]) == (26.73, 1.0, 0.0, 2.0)
    assert summary["mean"] == pytest.approx(7.56, abs=0.01) and summary["n"] == 4
    assert summary["p99"] == pytest.approx(26.02, abs=0.01)
    assert stat.count_over(0.0) == 3
    assert Stat().summary()["max"] is None


def test_time_bins_resample_and_leave_gaps_empty():
    bins = TimeBins(width_s=10)
    for t in range(0, 60):
        bins.add(float(t), float(t))
    for t in range(120, 180):
        bins.add(float(t), 1.0)
    columns = bins.resample(0, 180, 6)
    assert [round(c.max) if c else None for c in columns] == [29, 59, None, None, 1, 1]
    assert columns[0].min == 0 and columns[0].mean == pytest.approx(14.5)


def test_spans_and_histogram():
    assert spans([(0.0, "INIT"), (9.0, "ACTIVATING"), (650.0, "ONLINE")], end=700.0) == [
        {"value": "INIT", "start": 0.0, "end": 9.0, "duration_s": 9.0},
        {"value": "ACTIVATING", "start": 9.0, "end": 650.0, "duration_s": 641.0},
        {"value": "ONLINE", "start": 650.0, "end": 700.0, "duration_s": 50.0}]
    assert histogram([60, 76, 120, 2500, 10], (50, 100, 1000, 2000)) == {"50": 2, "100": 1, "1000": 0, "2000": 1}


def test_column_chart_draws_bars_gaps_axis_and_markers():
    lines = column_chart([0.0, 5.0, 10.0, None, 10.0], 0.0, 50.0, height=2, y_max=10.0, digits=0,
                         markers=[(20.0, "A"), (40.0, "O")])
    assert lines[0] == "10 ┤  █ █"
    assert lines[1] == " 5 ┤ ██ █"
    assert lines[2] == " 0 ┼─────"
    assert lines[-1].strip() == "A O"
    assert column_chart([], 0, 1) == ["(no data)"]


def test_threshold_line_and_sparkline():
    lines = column_chart([1.0, 1.0], 0.0, 20.0, height=4, y_max=8.0, threshold=6.0)
    assert lines[0] == "8.0 ┤··"  # the row where 6.0 falls, dotted where no bar reaches
    assert "".join(text for text, _ in spark_row([0, 4, 8, None], 5, 0.0, 8.0)) == "▁▅█· "  # a gap, then the future
    assert marker_row(0, 10, 5, [(0, "B"), (0.1, "C")]) == "BC"  # a taken column moves right
