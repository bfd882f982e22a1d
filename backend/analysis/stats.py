"""Pure aggregation helpers shared by the report and the dashboard: running statistics with the
time of their extremes, percentiles, fixed-width time bins for charts, spans between events.

Everything streams: a `Stat` keeps a compact array of its values only when percentiles are
wanted (8 bytes a value: a 24-hour run at 1 Hz is 0.7 MB per series), and `TimeBins` keeps one
small record per bin, never the samples.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) of already sorted values, interpolated linearly (as numpy)."""
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    rank = (len(sorted_values) - 1) * min(100.0, max(0.0, q)) / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low))


@dataclass
class Stat:
    """Count, mean, min and max of a series, with the time of the extremes; percentiles on demand."""

    keep: bool = False
    count: int = 0
    total: float = 0.0
    min: float | None = None
    max: float | None = None
    t_min: float | None = None
    t_max: float | None = None
    values: array = field(default_factory=lambda: array("d"))

    def add(self, value: float, t: float | None = None) -> None:
        self.count += 1
        self.total += value
        if self.min is None or value < self.min:
            self.min, self.t_min = value, t
        if self.max is None or value > self.max:
            self.max, self.t_max = value, t
        if self.keep:
            self.values.append(value)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def percentile(self, q: float) -> float | None:
        return percentile(sorted(self.values), q) if self.keep else None

    def count_over(self, threshold: float) -> int:
        return sum(1 for v in self.values if v > threshold)

    def summary(self, digits: int = 2, percentiles: Iterable[float] = ()) -> dict:
        data: dict = {
            "max": _round(self.max, digits), "mean": _round(self.mean, digits), "min": _round(self.min, digits),
            "t_max": self.t_max, "t_min": self.t_min, "n": self.count,
        }
        if self.keep and self.values:
            ordered = sorted(self.values)
            for q in percentiles:
                data[f"p{q:g}"] = _round(percentile(ordered, q), digits)
        return data


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Bin:
    """What fell into one time bin or chart column: count, sum, min, max (the one counter type: the
    report's statistics and the dashboard's series, tui/series.py)."""

    n: int = 0
    total: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def merge(self, other: Bin) -> None:
        self.n += other.n
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def pick(self, how: str) -> float:
        """The bin's "max", "min" or (anything else) mean: what a chart column shows."""
        if how == "max":
            return self.max
        if how == "min":
            return self.min
        return self.mean


class TimeBins:
    """A series reduced to bins of `width_s` seconds (min, max, mean each), resampled for charts."""

    def __init__(self, width_s: float = 10.0) -> None:
        self.width = width_s
        self.bins: dict[int, Bin] = {}

    def add(self, t: float, value: float) -> None:
        key = int(t // self.width)
        slot = self.bins.get(key)
        if slot is None:
            slot = self.bins[key] = Bin()
        slot.add(value)

    @property
    def span(self) -> tuple[float, float] | None:
        if not self.bins:
            return None
        return min(self.bins) * self.width, (max(self.bins) + 1) * self.width

    def resample(self, start: float, end: float, columns: int) -> list[Bin | None]:
        """`columns` bins covering [start, end); a column with no data is None (a gap, never filled)."""
        if columns <= 0 or end <= start:
            return []
        out: list[Bin | None] = [None] * columns
        step = (end - start) / columns
        for key, slot in self.bins.items():
            t = (key + 0.5) * self.width
            if not start <= t < end:
                continue
            column = min(columns - 1, int((t - start) / step))
            if out[column] is None:
                out[column] = Bin()
            out[column].merge(slot)  # type: ignore[union-attr]
        return out

    def points(self) -> list[tuple[float, Bin]]:
        return [(key * self.width, self.bins[key]) for key in sorted(self.bins)]


def spans(changes: Sequence[tuple[float, str]], end: float | None = None) -> list[dict]:
    """Consecutive (time, value) changes -> [{"value", "start", "end", "duration_s"}]; the last one
    runs to `end` when given, else its end and duration are None."""
    result = []
    for i, (t, value) in enumerate(changes):
        until = changes[i + 1][0] if i + 1 < len(changes) else end
        result.append({"value": value, "start": t, "end": until,
                       "duration_s": None if until is None else round(until - t, 3)})
    return result


def histogram(values: Iterable[float], edges: Sequence[float]) -> dict[str, int]:
    """Counts per bucket: key `"a"` holds values in [a, next edge); the last bucket is open."""
    counts = {f"{edge:g}": 0 for edge in edges}
    for value in values:
        chosen = None
        for edge in edges:
            if value >= edge:
                chosen = edge
        if chosen is not None:
            counts[f"{chosen:g}"] += 1
    return counts
