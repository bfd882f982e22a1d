"""The phase timeline: every planned step done / running / pending with its duration on the target
clock, the running step's last log line under it (a done step's notes, e.g. the controllers its
boot gave up on), and a window around the running step when the plan is longer than the pane."""

from __future__ import annotations

import re
import textwrap

from backend.analysis.charts import Line
from backend.run.runstate import StepView
from tui.session import RunSession
from tui.widgets.dashboard.pane import Pane, span

ICONS = {
    "pending": ("·", "dim"),
    "running": ("▶", "bold yellow"),
    "done": ("✓", "green"),
    "failed": ("✖", "bold red"),
    "skipped": ("↷", "cyan"),
}


def step_seconds(step: StepView, now: float | None) -> float | None:
    if step.started is None or step.status in ("pending", "skipped"):
        return None
    end = step.finished if step.finished is not None else now
    return None if end is None else max(0.0, end - step.started)


def step_line(step: StepView, now: float | None, width: int) -> Line:
    icon, style = ICONS.get(step.status, ("?", ""))
    duration = "skipped" if step.status == "skipped" else span(step_seconds(step, now))
    room = max(1, width - 2 - len(duration) - 1)
    title = step.title if len(step.title) <= room else step.title[: room - 1] + "…"
    title_style = "bold" if step.status == "running" else ("dim" if step.status == "pending" else "")
    return ((f"{icon} ", style), (title.ljust(room), title_style), (" " + duration, "dim" if step.status != "running"
                                                                    else "yellow"))


STAMP = re.compile(r"^\[\d{4}-\d\d-\d\d (\d\d:\d\d:\d\d)(?:[.,]\d+)?\]\s*")


def short_line(text: str, keep_time: bool = True) -> str:
    """A log line with its leading '[YYYY-MM-DD HH:MM:SS]' cut to the time (or cut off, where the
    time is shown beside it anyway): the panes are narrow."""
    return STAMP.sub(r"\1 " if keep_time else "", text.strip())


def detail_lines(step: StepView, session: RunSession, width: int) -> list[Line]:
    """The failed step's error or the running step's last line, on up to two lines."""
    if step.status == "failed" and step.error:
        text, style, lead = step.error.splitlines()[0], "red", "red"
    elif step.status == "running" and (session.last_line or step.message):
        text, style, lead = short_line(session.last_line[1] if session.last_line else step.message), "italic dim", "dim"
    elif step.status == "done" and step.notes:  # e.g. a first boot that needed another controller
        text, style, lead = "; ".join(step.notes), "yellow", "dim"
    else:
        return []
    chunks = textwrap.wrap(text, max(8, width - 4), max_lines=2, placeholder="…") or [""]
    return [(("  ↳ " if n == 0 else "    ", lead), (chunk, style)) for n, chunk in enumerate(chunks)]


class TimelinePane(Pane):
    PANE_TITLE = "Phases"

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        steps = list(session.state.steps.values())
        if not steps:
            return [(("waiting for the engine…", "dim"),)]
        now = session.now()
        blocks = [[step_line(s, now, width), *detail_lines(s, session, width)] for s in steps]
        if sum(len(b) for b in blocks) <= height:
            return [line for block in blocks for line in block]
        return self._window(steps, blocks, height, now)

    def _window(self, steps: list[StepView], blocks: list[list[Line]], height: int, now: float | None) -> list[Line]:
        count = len(steps)
        statuses = [s.status for s in steps]
        if "running" in statuses:
            focus = max(i for i, s in enumerate(statuses) if s == "running")
        elif "failed" in statuses:
            focus = statuses.index("failed")
        else:
            done = [i for i, s in enumerate(statuses) if s != "pending"]
            focus = done[-1] if done else 0
        lo = hi = focus
        used = len(blocks[focus])
        want_before = max(1, height // 4)

        def fits(extra: int, new_lo: int, new_hi: int) -> bool:
            return used + extra + (new_lo > 0) + (new_hi < count - 1) <= height

        while True:
            grew = False
            if lo > 0 and (focus - lo < want_before or hi == count - 1) and fits(len(blocks[lo - 1]), lo - 1, hi):
                lo -= 1
                used += len(blocks[lo])
                grew = True
            if hi < count - 1 and fits(len(blocks[hi + 1]), lo, hi + 1):
                hi += 1
                used += len(blocks[hi])
                grew = True
            if not grew:
                break
        out: list[Line] = []
        if lo > 0:
            hidden = steps[:lo]
            spent = sum(step_seconds(s, now) or 0.0 for s in hidden)
            out.append(((f"✓ {lo} earlier step{'s' if lo != 1 else ''}", "green"), (f" · {span(spent)}", "dim")))
        for block in blocks[lo:hi + 1]:
            out.extend(block)
        if hi < count - 1:
            rest = count - 1 - hi
            out.append(((f"· {rest} more step{'s' if rest != 1 else ''}", "dim"),))
        return out
