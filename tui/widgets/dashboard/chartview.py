"""Text charts for the dashboard's panes: column charts in eighth blocks and one-row sparklines.

A chart is a list of lines; a line is a tuple of (text, style) segments, so a pane can compare what
it would draw with what it drew and repaint only on a change. A column without samples (`None`) is
a gap and stays a gap: its bottom cell shows a dim `·`, nothing is interpolated. Columns after the
latest sample are simply not there yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Segment = tuple[str, str]
Line = tuple[Segment, ...]

BLOCKS = " ▁▂▃▄▅▆▇█"
SPARKS = "▁▂▃▄▅▆▇█"
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


def sparkline(values: Sequence[float | None], width: int, low: float, high: float, style: str = "") -> Line:
    """One row: a spark per value scaled low..high; a gap is a dim `·`; future columns are blank."""
    span = (high - low) or 1.0
    cells: list[Segment] = []
    for index in range(width):
        if index >= len(values):
            cells.append((" ", ""))
            continue
        value = values[index]
        if value is None:
            cells.append(GAP)
            continue
        spark = int(round((min(max(value, low), high) - low) / span * (len(SPARKS) - 1)))
        cells.append((SPARKS[spark], style))
    return segments(cells)


def time_axis(start: float, step: int, width: int, clock: Callable[[float], str]) -> Line:
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
