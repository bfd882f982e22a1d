"""A question answered on purpose: two buttons, the safe answer focused first (so Enter never does
the risky thing by accident) and on Escape; the dialog is dismissed with True only for the
deliberate answer. The trust, confirm and override dialogs are this with their own words."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button


@dataclass(frozen=True)
class Answer:
    """One button: its id (for tests and styles), its label (with its key) and its variant."""

    id: str
    label: str
    variant: str = "default"


class ChoiceDialog(ModalScreen[bool]):
    """Dismissed with True (the deliberate answer) or False (the safe one).

    A subclass composes its question in `body()` and binds its keys to `choose(True)` and
    `choose(False)`, Escape among the latter."""

    def __init__(self, deliberate: Answer, safe: Answer, *, safe_first: bool = True) -> None:
        super().__init__()
        self.deliberate, self.safe, self.safe_first = deliberate, safe, safe_first

    def body(self) -> ComposeResult:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with Vertical():
            yield from self.body()
            with Horizontal():
                buttons = [Button(answer.label, id=answer.id, variant=answer.variant, compact=True)
                           for answer in (self.safe, self.deliberate)]
                yield from buttons if self.safe_first else reversed(buttons)

    def on_mount(self) -> None:
        self.query_one(f"#{self.safe.id}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == self.deliberate.id)

    def action_choose(self, deliberate: bool) -> None:
        self.dismiss(deliberate)


class TrustDialog(ChoiceDialog):
    """Trust (y) or Reject (n, Escape) what a host presented (a certificate, an SSH host key):
    Trust on the left, Reject focused first."""

    BINDINGS = [
        Binding("y", "choose(True)", "Trust"),
        Binding("n,escape", "choose(False)", "Reject"),
    ]

    def __init__(self) -> None:
        super().__init__(Answer("trust", "Trust (y)", "warning"), Answer("reject", "Reject (n)"), safe_first=False)
