"""The base of the dashboard's panes: a widget that draws a run session into the lines it has room for.

A pane owns one job. `lines(session, width, height)` is a function of the session (no state of its
own), and the result is kept in the reactive `view`: the pane repaints only when what it would show
changed, and the screen decides how often to ask (coalesced, a few times a second at most).
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.session import RunSession
from tui.widgets.charts import Line, fit


def clock(t: float | None) -> str:
    """HH:MM:SS (UTC) of a target time; '--:--:--' when unknown."""
    return "--:--:--" if t is None else time.strftime("%H:%M:%S", time.gmtime(t))


def span(seconds: float | None) -> str:
    """m:ss, or h:mm:ss from an hour on; '' when unknown."""
    if seconds is None:
        return ""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def gib(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value / 2**30:.{digits}f}"


class Pane(Widget):
    """Subclasses set PANE_TITLE and implement `lines()`."""

    DEFAULT_CSS = """
    Pane {
        border: round $primary-lighten-2;
        border-title-color: $accent;
        border-title-style: bold;
        padding: 0 1;
        height: 1fr;
    }
    """

    PANE_TITLE: ClassVar[str] = ""
    view: reactive[tuple[Line, ...] | None] = reactive(None)

    def __init__(self, session: RunSession, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.session = session

    def on_mount(self) -> None:
        if self.PANE_TITLE:
            self.border_title = self.PANE_TITLE

    def on_resize(self) -> None:
        self.sync()

    def sync(self) -> None:
        """Recompute what the pane shows; a repaint follows only when it changed."""
        if not self.display:
            return
        width, height = self.content_size.width, self.content_size.height
        if width <= 0 or height <= 0:
            return
        self.view = tuple(fit(line, width) for line in self.lines(self.session, width, height)[:height])

    def lines(self, session: RunSession, width: int, height: int) -> list[Line]:
        raise NotImplementedError

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="crop")
        for number, line in enumerate(self.view or ()):
            if number:
                text.append("\n")
            for part, style in line:
                text.append(part, style=style or None)
        return text

    @property
    def plain(self) -> str:
        """What the pane shows, as plain text (for tests and the details screen)."""
        return self.render().plain
