"""Text charts that read well in a terminal and in a Markdown code block.

`column_chart` draws one column per time bin with eighth-block characters, a y axis, a time axis
in UTC and a row of markers (phase starts, cluster states, failures) under it. A column without
data stays blank: gaps are shown, never filled. `sparkline` is the one-line version.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

BLOCKS = " ▁▂▃▄▅▆▇█"
SPARKS = "▁▂▃▄▅▆▇█"


def clock(t: float | None, seconds: bool = True) -> str:
    """HH:MM:SS (or HH:MM) UTC of an epoch time; '-' when unknown."""
    if t is None:
        return "-"
    return time.strftime("%H:%M:%S" if seconds else "%H:%M", time.gmtime(t))


def sparkline(values: Sequence[float | None], low: float | None = None, high: float | None = None) -> str:
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return " " * len(values)
    lo = min(present) if low is None else low
    hi = max(present) if high is None else high
    span = (hi - lo) or 1.0
    out = []
    for value in values:
        if value is None or math.isnan(value):
            out.append(" ")
        else:
            index = int(round((min(max(value, lo), hi) - lo) / span * (len(SPARKS) - 1)))
            out.append(SPARKS[index])
    return "".join(out)


def _label(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def column_chart(
    values: Sequence[float | None],
    start: float,
    end: float,
    *,
    height: int = 8,
    y_max: float | None = None,
    digits: int = 1,
    markers: Sequence[tuple[float, str]] = (),
    threshold: float | None = None,
) -> list[str]:
    """Lines of a column chart of `values` (one per column) spanning [start, end) in time.

    `threshold` draws a dotted line at that value (e.g. where the OOM killer bites)."""
    columns = len(values)
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not columns or not present:
        return ["(no data)"]
    top = y_max if y_max and y_max > 0 else (max(present) or 1.0)
    labels = [_label(top * (height - row) / height, digits) for row in range(height)]
    width = max(len(label) for label in labels + [_label(0.0, digits)])
    threshold_row = None
    if threshold is not None and 0 < threshold < top:
        threshold_row = height - 1 - min(height - 1, int(threshold / top * height))
    lines = []
    for row in range(height):
        level = height - 1 - row  # 0 = bottom row
        cells = []
        for value in values:
            if value is None or math.isnan(value):
                cells.append("·" if row == threshold_row else " ")
                continue
            eighths = int(round(min(max(value, 0.0), top) / top * height * 8)) - level * 8
            char = BLOCKS[max(0, min(8, eighths))]
            if char == " " and row == threshold_row:
                char = "·"
            cells.append(char)
        lines.append(f"{labels[row].rjust(width)} ┤{''.join(cells)}")
    lines.append(f"{_label(0.0, digits).rjust(width)} ┼{'─' * columns}")
    lines.append(" " * (width + 2) + time_axis(start, end, columns))
    if markers:
        lines.append(" " * (width + 2) + marker_row(start, end, columns, markers))
    return lines


def time_axis(start: float, end: float, columns: int, every: int = 10) -> str:
    """HH:MM labels (UTC) under every `every`-th column, starting with the first."""
    if columns <= 0 or end <= start:
        return ""
    row = [" "] * columns
    step = (end - start) / columns
    for column in range(0, columns - 4, every):
        row[column:column + 5] = list(clock(start + column * step, seconds=False))
    return "".join(row).rstrip()


def marker_row(start: float, end: float, columns: int, markers: Sequence[tuple[float, str]]) -> str:
    """One character per marker at its column; a later marker on a taken column moves right."""
    row = [" "] * columns
    if end <= start:
        return ""
    for t, char in sorted(markers):
        if not start <= t <= end:
            continue
        column = min(columns - 1, int((t - start) / (end - start) * columns))
        while column < columns - 1 and row[column] != " ":
            column += 1
        row[column] = char[:1]
    return "".join(row).rstrip()
