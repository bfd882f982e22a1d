"""Heartbeat gaps: how long the guest stood still. The longest gap, how many went over 1 s and
over 2 s, the latest ones, and a histogram of all of them (StallDetected events, and the samples'
own counts where the event stream was down)."""

from __future__ import annotations

from backend.analysis.charts import Line
from tui.session import GAP_EDGES, RunSession
from tui.widgets.dashboard.pane import Pane, clock

BUCKET_LABELS = {"50": "50ms", "100": "100ms", "250": "250ms", "500": "500ms", "1000": "1s", "2000": "2s",
                 "5000": "5s"}


def gap_style(length_ms: float) -> str:
    if length_ms > 2000:
        return "bold red"
    if length_ms > 1000:
        return "red"
    if length_ms >= 250:
        return "yellow"
    return ""


def seconds(length_ms: float) -> str:
    return f"{length_ms / 1000:.2f} s"


class GapsPane(Pane):
    PANE_TITLE = "Heartbeat gaps"

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        state = session.state
        hist = session.gap_hist
        total = sum(hist.values())
        if not session.samples_seen and not state.gaps:
            return [(("no heartbeat yet", "dim"),), (("(the monitor starts with the guest)", "dim"),)]
        head: Line = (("max ", "dim"), (seconds(state.gap_max_ms), "bold " + gap_style(state.gap_max_ms)),
                      ("  >1 s ", "dim"), (str(state.gap_count_1s), "bold red" if state.gap_count_1s else "bold"),
                      ("  >2 s ", "dim"), (str(state.gap_count_2s), "bold red" if state.gap_count_2s else "bold"),
                      (f"  {total} gaps", "dim"))
        latest: list[tuple[str, str]] = [("latest ", "dim")]
        for start, length in reversed(list(state.gaps)[-6:]):
            latest += [(clock(start)[:8], "dim"), (f" {seconds(length)}  ", gap_style(length))]
        if len(latest) == 1:
            latest.append(("none", "dim"))
        out: list[Line] = [head, tuple(latest)]
        room = height - len(out)
        if room >= len(GAP_EDGES):
            out += self._bars(hist, width)
        elif room >= 1:
            out += self._rows(hist, width)[:room]
        return out

    def _rows(self, hist: dict[str, int], width: int) -> list[Line]:
        """The histogram as 'bucket count' pairs, wrapped to the width."""
        rows: list[list[tuple[str, str]]] = [[]]
        used = 0
        for edge in GAP_EDGES:
            key = str(edge)
            count = hist.get(key, 0)
            style = gap_style(float(edge) + 1) if count and edge >= 250 else ("" if count else "dim")
            cell = [(BUCKET_LABELS[key] + " ", "dim"), (str(count), style), ("  ", "")]
            size = sum(len(text) for text, _ in cell)
            if used and used + size - 2 > width:
                rows.append([])
                used = 0
            rows[-1] += cell
            used += size
        return [tuple(row) for row in rows]

    def _bars(self, hist: dict[str, int], width: int) -> list[Line]:
        most = max(hist.values()) or 1
        room = max(1, width - 6 - 6)
        out: list[Line] = []
        for edge in GAP_EDGES:
            key = str(edge)
            count = hist.get(key, 0)
            bar = "█" * max(1 if count else 0, round(count / most * room))
            style = gap_style(float(edge) + 1) or "cyan"
            out.append(((BUCKET_LABELS[key].rjust(5) + " ", "dim"), (bar, style), (f" {count}", "" if count else "dim")))
        return out
