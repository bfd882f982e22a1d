"""The base of the dashboard's panes: a widget that draws a run session into the lines it has room for.

A pane owns one job. `lines(session, width, height)` is a function of the session (no state of its
own), and the result is kept in the reactive `view`. A pane draws line by line (Textual's line
API): when the view changes, only the lines that differ are drawn again, so a sample that moves a
header figure and the last column of a chart repaints two lines, not the pane. The screen decides
how often to ask (coalesced, a few times a second at most).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from backend.analysis.charts import Line, fit
from tui.session import RunSession


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


@lru_cache(maxsize=512)
def combined(base: Style, style: str) -> Style:
    """The widget's own style (colours from the CSS) with a segment's style on top."""
    return base + Style.parse(style) if style else base


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
    view: reactive[tuple[Line, ...] | None] = reactive(None, repaint=False)

    def __init__(self, session: RunSession, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.session = session
        self._strips: dict[int, Strip] = {}

    def on_mount(self) -> None:
        if self.PANE_TITLE:
            self.border_title = self.PANE_TITLE

    def on_resize(self) -> None:
        self._strips.clear()
        self.sync()
        self.refresh()

    def watch_view(self, old: tuple[Line, ...] | None, new: tuple[Line, ...] | None) -> None:
        old, new = old or (), new or ()
        width = self.content_size.width
        for y in range(max(len(old), len(new))):
            if y >= len(old) or y >= len(new) or old[y] != new[y]:
                self._strips.pop(y, None)
                self.refresh(Region(0, y, width, 1))

    def render_line(self, y: int) -> Strip:
        strip = self._strips.get(y)
        if strip is None:
            base = self.rich_style
            view = self.view or ()
            line = view[y] if y < len(view) else ()
            segments = [Segment(text, combined(base, style)) for text, style in line]
            strip = Strip(segments).crop_extend(0, self.content_size.width, base)
            self._strips[y] = strip
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()  # a theme or class change alters the base style

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
