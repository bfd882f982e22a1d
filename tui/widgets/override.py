"""The override dialog: lists the blockers with their reason and the field report's evidence, and
lets the user go past them only by an explicit choice."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from backend.sizing import Finding


class OverrideDialog(ModalScreen[bool]):
    """Dismissed with True only when the user chose to override; Cancel is focused first."""

    DEFAULT_CSS = """
    OverrideDialog { align: center middle; }
    OverrideDialog > Vertical {
        width: 76; max-height: 22; height: auto; padding: 0 1; border: thick $error; background: $surface;
    }
    OverrideDialog VerticalScroll { height: auto; max-height: 14; }
    OverrideDialog Horizontal { height: auto; align: center middle; margin-top: 1; }
    OverrideDialog Button { margin: 0 1; }
    """

    BINDINGS = [
        Binding("o", "override", "Override"),
        Binding("escape,c", "cancel", "Cancel"),
    ]

    def __init__(self, blockers: list[Finding]) -> None:
        super().__init__()
        self.blockers = blockers

    def compose(self) -> ComposeResult:
        text = Text()
        for number, finding in enumerate(self.blockers):
            if number:
                text.append("\n\n")
            text.append("✖ ", style="bold red")
            text.append(finding.message, style="bold")
            text.append(f"\n  why: {finding.evidence}", style="")
            text.append(f"\n  fix: {finding.remedy}", style="italic")
        with Vertical():
            yield Static("[b]Override these blockers on purpose?[/b] The run will most likely fail "
                         "the way the field report's did.")
            with VerticalScroll():
                yield Static(text, id="blockers")
            with Horizontal():
                yield Button("Cancel (esc)", id="cancel", compact=True)
                yield Button("Override on purpose (o)", id="override", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "override")

    def action_override(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
