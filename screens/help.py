"""The help screen (F1 or ?): the keys that work everywhere, then what the current step is about."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

GENERAL = """\
[b]Keys[/b]
  Tab / Shift+Tab  move between fields      ↑ ↓ Enter  lists, tables, choices
  ^n  Next (Start on Review)                 Esc        Back
  F1 or ?  this help                         ^q         quit (before a run starts: nothing changes)
"""


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
                    yield Static(f"[b]{self.topic_title}[/b]\n{self.topic}", id="topic", markup=True)
            yield Static("Esc closes this help", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
