"""What every wizard step shares: the step bar, a title, the body, Back/Next with their keys, a
status line for the one clear sentence about what is wrong, and the footer.

A step's screen reads and changes the app's `WizardState`; `commit()` writes the step's answers
(raising BadInput with the reason) and the app decides which screen comes next. Reopened answers
(`--answers FILE`) with a problem in a step's fields show it above the step's form until the step's
answers are written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.markup import escape
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Static

from backend.errors import VlbError
from tui.widgets.wizard.progress import WizardProgress
from tui.wizardstate import WizardState, first_line

if TYPE_CHECKING:
    from tui.app import WizardApp


class WizardScreen(Screen):
    """Subclasses set STEP, TITLE and HELP, and implement compose_body() and commit()."""

    STEP: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    HELP: ClassVar[str] = ""
    NEXT_LABEL: ClassVar[str] = "Next ^n"

    BINDINGS = [
        Binding("ctrl+n", "next", "Next", id="next"),
        Binding("escape", "back", "Back"),
    ]

    next_enabled: reactive[bool] = reactive(True, bindings=True)
    status: reactive[str] = reactive("")
    status_is_error: reactive[bool] = reactive(False)

    @property
    def wizard(self) -> WizardState:
        return self.wizard_app.state

    @property
    def wizard_app(self) -> WizardApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield WizardProgress(self.STEP, where=self.wizard.target)
        yield Static(self.TITLE, classes="step-title")
        with VerticalScroll(classes="step-body"):
            yield Static("", id="loaded")
            yield from self.compose_body()
        with Horizontal(classes="step-nav"):
            yield Button("Back esc", id="back", compact=True)
            yield Static("", id="status")
            yield Button(self.wizard_app.keys_in(self.NEXT_LABEL), id="next", variant="primary", compact=True)
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = self.wizard_app.blink
        self.query_one("#next", Button).disabled = not self.next_enabled
        self.show_problems()

    def on_screen_resume(self) -> None:
        self.show_problems()  # back from a later step: what is settled since is no longer said

    def show_problems(self) -> None:
        """The problems of the reopened answers in this step's fields, in the model's words."""
        problems = self.wizard.problems_of(self.STEP)
        loaded = self.query_one("#loaded", Static)
        loaded.display = bool(problems)
        if problems:
            where = f" in {self.wizard.source}" if self.wizard.source else ""
            what = "left out, the defaults shown are used" if self.STEP == "review" else "fix them here"
            loaded.update(f"[b $error]Answers{where} not loaded ({what}):[/]\n" + "\n".join(
                f"[$error]✖[/] {escape(dotted)}: {escape(message)}" for dotted, message in problems.items()))

    # --- status line and the Next button --------------------------------------------------------

    def say(self, text: str, error: bool = False) -> None:
        self.status_is_error = error
        self.status = self.wizard_app.keys_in(text)

    def watch_status(self, text: str) -> None:  # a reactive: unchanged text costs nothing
        for widget in self.query("#status"):
            assert isinstance(widget, Static)
            widget.update(text)
            widget.set_class(self.status_is_error, "error")

    def watch_next_enabled(self, enabled: bool) -> None:
        for button in self.query("#next"):
            button.disabled = not enabled

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next" and not self.next_enabled:
            return None  # shown dimmed in the footer: not available now
        return True

    # --- navigation -----------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "next":
            event.stop()
            self.action_next()
        elif event.button.id == "back":
            event.stop()
            self.action_back()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.focus_next()

    def commit(self) -> None:
        """Write this step's answers into the wizard state; raise BadInput when they are wrong."""

    def committed(self) -> bool:
        """Write this step's answers (`commit`), as Next does: False with the reason said when they
        are wrong; once written, the step's problems from reopened answers are settled."""
        try:
            self.commit()
        except VlbError as exc:
            self.say(first_line(exc), error=True)
            return False
        self.wizard.settled(self.STEP)
        return True

    def action_next(self) -> None:
        if not self.next_enabled:
            self.app.bell()
            return
        if self.committed():
            self.wizard_app.go_next(self.STEP)

    def action_back(self) -> None:
        self.wizard_app.go_back()
