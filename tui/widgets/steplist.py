"""The step list of a run: every planned step with its status, duration and latest message."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from backend.runstate import RunState

ICONS = {
    "pending": ("·", "dim"),
    "running": ("▶", "bold yellow"),
    "done": ("✓", "green"),
    "failed": ("✖", "bold red"),
    "skipped": ("↷", "cyan"),
}


@dataclass(frozen=True)
class StepLine:
    title: str
    status: str
    duration: float | None
    message: str


def step_lines(state: RunState) -> tuple[StepLine, ...]:
    """An immutable snapshot of the steps, so the widget repaints only when something changed."""
    return tuple(StepLine(s.title, s.status, s.duration, s.error or s.message) for s in state.steps.values())


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s"


class StepList(Widget):
    DEFAULT_CSS = """
    StepList { height: auto; width: 1fr; }
    """

    steps: reactive[tuple[StepLine, ...]] = reactive((), layout=True)

    def render(self) -> Text:
        text = Text()
        if not self.steps:
            text.append("waiting for the engine…", style="dim")
            return text
        for number, step in enumerate(self.steps):
            if number:
                text.append("\n")
            icon, style = ICONS.get(step.status, ("?", ""))
            text.append(f"{icon} ", style=style)
            text.append(step.title, style="bold" if step.status == "running" else "")
            duration = format_duration(step.duration) if step.status != "pending" else ""
            if duration:
                text.append(f"  {duration}", style="dim")
            if step.message and step.status in ("running", "failed", "skipped"):
                text.append(f"\n    {step.message}", style="red" if step.status == "failed" else "dim")
        return text
