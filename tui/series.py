"""A metric over time, kept at a few resolutions so a chart of any span costs O(columns).

The dashboard charts a whole run in the width of a pane: the first minutes one second per column,
a 24-hour run 15 minutes per column. Columns sit on a fixed grid (a column of `step` seconds starts
at a multiple of `step`), so a chart does not shimmer as the run grows; a column without a sample
is `None`, a gap, never interpolated. Plain Python, no Textual.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from backend.analysis.stats import Bin

WIDTHS = (1, 5, 30, 300)  # seconds per stored bin
KEEP = {1: 3600, 5: 4320, 30: None, 300: None}  # bins kept per width (None: all; 24 h at 30 s is 2880)
STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800,
         2700, 3600, 5400, 7200)  # seconds per column


def column_step(span_s: float, columns: int) -> int:
    """The smallest grid step (seconds per column) that fits `span_s` into `columns`."""
    if columns <= 0:
        return STEPS[-1]
    for step in STEPS:
        if span_s <= step * columns:
            return step
    return STEPS[-1]


def _width_for(step: int) -> int:
    return max(w for w in WIDTHS if step % w == 0)


CACHED_GRIDS = 16  # (start, step, how) whose finished columns are kept


class Series:
    """Add (t, value) in time order (late values are accepted); read columns of any grid step.

    A column whose time is over (a later sample exists) cannot change any more while samples come
    in order, so it is computed once and cached; a late sample clears the cache."""

    def __init__(self) -> None:
        self._bins: dict[int, OrderedDict[int, Bin]] = {w: OrderedDict() for w in WIDTHS}
        self._done: dict[tuple[float, int, str], list[float | None]] = {}
        self.first: float | None = None
        self.last: float | None = None
        self.latest: float | None = None

    def add(self, t: float, value: float) -> None:
        if self.first is None or t < self.first:
            self.first = t
        if self.last is None or t >= self.last:
            self.last, self.latest = t, value
        elif self._done:
            self._done.clear()  # a late sample may change a column thought finished
        for width, bins in self._bins.items():
            key = int(t // width)
            cell = bins.get(key)
            if cell is None:
                cell = bins[key] = Bin()
                limit = KEEP[width]
                if limit is not None and len(bins) > limit:
                    bins.popitem(last=False)
            cell.add(value)

    def columns(self, start: float, step: int, count: int, how: str = "mean",
                until: float | None = None) -> tuple[float | None, ...]:
        """`count` columns of `step` seconds from `start` (a multiple of `step`), each the max, min
        or mean of its samples, None where there was none; columns after `until` are left out."""
        width = _width_for(step)
        bins = self._bins[width]
        per = step // width
        first_key = int(start // width)
        key = (start, step, how)
        done = self._done.get(key)
        if done is None:
            if len(self._done) >= CACHED_GRIDS:
                self._done.clear()
            done = self._done[key] = []
        out: list[float | None] = list(done[:count])
        for column in range(len(out), count):
            if until is not None and start + column * step > until:
                break
            merged: Bin | None = None
            for key in range(first_key + column * per, first_key + (column + 1) * per):
                cell = bins.get(key)
                if cell is None:
                    continue
                if merged is None:
                    merged = Bin()
                merged.merge(cell)
            out.append(None if merged is None else merged.pick(how))
            if self.last is not None and start + (column + 1) * step <= self.last and column == len(done):
                done.append(out[-1])  # over: a later sample exists
        return tuple(out)


@dataclass(frozen=True)
class Window:
    """The grid a chart is drawn on: `count` columns of `step` seconds from `start`."""

    start: float
    step: int
    count: int
    until: float

    @classmethod
    def covering(cls, first: float, last: float, count: int) -> Window:
        step = column_step(last - first + 1, count)
        start = (first // step) * step
        while start + step * count <= last:  # the grid's alignment may cost a column
            step = column_step(last - start + step, count)
            start = (first // step) * step
        return cls(start, step, count, last)

    def read(self, series: Series, how: str) -> tuple[float | None, ...]:
        return series.columns(self.start, self.step, self.count, how, self.until)
