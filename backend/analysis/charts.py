"""Text charts in eighth blocks, the one chart module: the report's (plain text that reads well in
a Markdown code block) and the dashboard's panes' (styled lines).

`column_chart` draws one column per time bin with eighth-block characters, a y axis, a time axis
in UTC and a row of markers (phase starts, cluster states, failures) under it. A column without
data stays blank: gaps are shown, never filled.

For the dashboard a chart is a list of lines; a line is a tuple of (text, style) segments, so a
pane can compare what it would draw with what it drew and repaint only on a change
(`column_rows`, `spark_row`, `axis_row`). A column without samples (`None`) is a gap and stays a
gap: its bottom cell shows a dim `·`, nothing is interpolated. Columns after the latest sample are
simply not there yet.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

BLOCKS = " ▁▂▃▄▅▆▇█"
SPARKS = "▁▂▃▄▅▆▇█"


def spark_index(value: float, low: float, high: float) -> int:
    """Which spark (0..7) a value gets on the scale low..high (clamped to it)."""
    span = (high - low) or 1.0
    return int(round((min(max(value, low), high) - low) / span * (len(SPARKS) - 1)))


def clock(t: float | None, seconds: bool = True) -> str:
    """HH:MM:SS (or HH:MM) UTC of an epoch time; '-' when unknown."""
    if t is None:
        return "-"
    return time.strftime("%H:%M:%S" if seconds else "%H:%M", time.gmtime(t))


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


# --- the dashboard's styled lines ---------------------------------------------------------------

Segment = tuple[str, str]
Line = tuple[Segment, ...]

GAP = ("·", "dim")
RULE = "┈"


def segments(cells: Sequence[Segment]) -> Line:
    """Cells of one character each, merged into runs of the same style."""
    merged: list[list[str]] = []
    for char, style in cells:
        if merged and merged[-1][1] == style:
            merged[-1][0] += char
        else:
            merged.append([char, style])
    return tuple((text, style) for text, style in merged)


def fit(line: Sequence[Segment], width: int) -> Line:
    """The line cut to `width` cells, with an ellipsis when something was cut."""
    out: list[Segment] = []
    room = width
    for text, style in line:
        if room <= 0:
            break
        if len(text) > room:
            out.append((text[: max(0, room - 1)] + "…", style))
            room = 0
            break
        out.append((text, style))
        room -= len(text)
    return tuple(out)


def column_rows(values: Sequence[float | None], width: int, height: int, top: float, *,
                style_of: Callable[[int], str] | None = None, threshold: float | None = None,
                threshold_style: str = "dim") -> list[Line]:
    """`height` rows of a column chart, one column per value, scaled 0..top, `width` wide.

    `style_of(index)` colours a column; `threshold` draws a dotted rule through the empty cells of
    the row holding that value."""
    top = top if top > 0 else 1.0
    rule_row = None
    if threshold is not None and 0 < threshold <= top:
        rule_row = height - 1 - min(height - 1, int(threshold / top * height))
    scale = height * 8 / top
    eighths = [None if v is None else int(round(min(max(v, 0.0), top) * scale)) for v in values[:width]]
    styles = [style_of(i) if style_of else "" for i in range(len(eighths))]
    future = width - len(eighths)
    rows: list[Line] = []
    for row in range(height):
        floor = (height - 1 - row) * 8  # 0 = the bottom row
        empty = (RULE, threshold_style) if row == rule_row else (" ", "")
        cells: list[Segment] = []
        for index, level in enumerate(eighths):
            if level is None:
                cells.append(GAP if floor == 0 else empty)
                continue
            filled = level - floor
            if filled <= 0:
                cells.append(empty)
            else:
                cells.append((BLOCKS[filled if filled < 8 else 8], styles[index]))
        cells.extend([empty] * future)
        rows.append(segments(cells))
    return rows


def spark_row(values: Sequence[float | None], width: int, low: float, high: float, style: str = "") -> Line:
    """One row: a spark per value scaled low..high; a gap is a dim `·`; future columns are blank."""
    cells: list[Segment] = []
    for index in range(width):
        if index >= len(values):
            cells.append((" ", ""))
            continue
        value = values[index]
        if value is None:
            cells.append(GAP)
            continue
        cells.append((SPARKS[spark_index(value, low, high)], style))
    return segments(cells)


def axis_row(start: float, step: int, width: int, clock: Callable[[float], str]) -> Line:
    """The first column's time on the left, the last one's on the right, seconds per column between."""
    left, right = clock(start)[:5], clock(start + step * (width - 1))[:5]
    middle = f" {step_label(step)}/col "
    room = width - len(left) - len(right)
    if room < len(middle):
        return fit(((left, "dim"),), width)
    pad = room - len(middle)
    return ((left + " " * (pad // 2) + middle + " " * (pad - pad // 2) + right, "dim"),)


def step_label(step: int) -> str:
    if step < 60:
        return f"{step} s"
    if step < 3600:
        return f"{step // 60} min"
    return f"{step // 3600} h"
