"""A yes/no question with its consequences spelled out; No is focused first, so Enter never
does the irreversible thing by accident."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from tui.widgets.wizard.choice import Answer, ChoiceDialog


class ConfirmDialog(ChoiceDialog):
    """Dismissed with True only on an explicit yes."""

    DEFAULT_CSS = """
    ConfirmDialog { align: center middle; }
    ConfirmDialog > Vertical {
        width: 64; height: auto; padding: 1 2; border: thick $error; background: $surface;
    }
    ConfirmDialog Horizontal { height: auto; align: center middle; margin-top: 1; }
    ConfirmDialog Button { margin: 0 1; }
    """

    BINDINGS = [
        Binding("y", "choose(True)", "Yes"),
        Binding("n,escape", "choose(False)", "No"),
    ]

    def __init__(self, question: str, detail: str, yes: str = "Yes (y)", no: str = "No (n)") -> None:
        super().__init__(Answer("yes", yes, "error"), Answer("no", no))
        self.question, self.detail = question, detail

    def body(self) -> ComposeResult:
        yield Static(f"[b]{self.question}[/b]", id="question")
        yield Static(self.detail, classes="hint", id="detail")
