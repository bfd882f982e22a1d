"""The help screen (F1 or ?): the keys that work here (the wizard's, or a run's on the dashboard and
the screens around it), then what the current screen is about."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

GENERAL = """\
[b]Keys[/b]
  Tab, Shift+Tab   next / previous field
  ↑ ↓ Enter        lists, tables and choices
  ^n / Esc         Next (Start on Review) / Back
  F1 or ?          this help
  ^q               quit (nothing changes before a run starts)"""

RUN_KEYS = """\
[b]Keys while a run is shown[/b]
  d / l            every pane at full size / the full log (Esc goes back)
  a                abort the run (asks first; the run can be resumed later)
  r                roll back to pre-install and retry with the remedy (after a diagnosed failure)
  Enter            the result, once the run ended (o opens the report there)
  q or ^q          quit (asks first while the run goes on)
  F1 or ?          this help"""


def reflow(text: str) -> str:
    """Join hard-wrapped lines into paragraphs; keep blank lines and lines that start a bullet."""
    paragraphs: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            paragraphs.append("")
        elif paragraphs and paragraphs[-1] and (line.startswith("  ") or not stripped.startswith(("•", "-"))):
            paragraphs[-1] += " " + stripped  # a wrapped line, or the continuation of a bullet
        else:
            paragraphs.append(stripped)
    return "\n".join(paragraphs)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"

    BINDINGS = [Binding("escape,q,f1,question_mark", "close", "Close")]

    def __init__(self, topic: str = "", title: str = "", general: str = GENERAL) -> None:
        super().__init__()
        self.topic = topic
        self.topic_title = title
        self.general = general

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            with VerticalScroll():
                yield Static(self.general, id="general")
                if self.topic:
                    yield Static(Text.assemble((self.topic_title, "bold"), "\n", reflow(self.topic)), id="topic")
            yield Static("Esc closes this help", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
