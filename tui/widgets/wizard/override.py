"""The override dialog: lists the blockers with their reason and the field report's evidence, and
lets the user go past them only by an explicit choice."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from backend.model.sizing import Finding
from tui.widgets.wizard.choice import Answer, ChoiceDialog


class OverrideDialog(ChoiceDialog):
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
        Binding("o", "choose(True)", "Override"),
        Binding("escape,c", "choose(False)", "Cancel"),
    ]

    def __init__(self, blockers: list[Finding]) -> None:
        super().__init__(Answer("override", "Override on purpose (o)", "error"), Answer("cancel", "Cancel (esc)"))
        self.blockers = blockers

    def body(self) -> ComposeResult:
        text = Text()
        for number, finding in enumerate(self.blockers):
            if number:
                text.append("\n\n")
            text.append("✖ ", style="bold red")
            text.append(finding.message, style="bold")
            text.append(f"\n  why: {finding.evidence}", style="")
            text.append(f"\n  fix: {finding.remedy}", style="italic")
        yield Static("[b]Override these blockers on purpose?[/b] The run will most likely fail "
                     "the way the field report's did.")
        with VerticalScroll():
            yield Static(text, id="blockers")
