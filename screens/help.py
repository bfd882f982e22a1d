"""The help screen (F1 or ?): the keys that work everywhere, then what the current step is about."""

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

    def __init__(self, topic: str = "", title: str = "") -> None:
        super().__init__()
        self.topic = topic
        self.topic_title = title

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            with VerticalScroll():
                yield Static(GENERAL)
                if self.topic:
                    yield Static(Text.assemble((self.topic_title, "bold"), "\n", reflow(self.topic)), id="topic")
            yield Static("Esc closes this help", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
