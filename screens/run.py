"""The run screen (a placeholder until the live dashboard replaces it): runs the engine in a worker,
shows the plan's steps as they start and finish, and leaves the app with the engine's exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from backend import events as ev
from backend.errors import VlbError
from backend.runstate import RunState
from tui.messages import EngineEventEmitted, RunEnded
from tui.runner import Launch, run_engine
from tui.state import first_line
from tui.widgets.steplist import StepList, step_lines

if TYPE_CHECKING:
    from tui.app import WizardApp


class RunScreen(Screen):
    CSS_PATH = "run.tcss"
    TITLE = "Run"
    HELP = """\
The run: each step of the plan with its status and duration. The run's journal is written to
its run directory as it goes; if this program stops, the start screen offers to resume it.
q quits: while the run is going, a second q aborts it (the journal records where it stopped)."""

    BINDINGS = [Binding("q,ctrl+q", "quit_run", "Quit")]

    running: reactive[bool] = reactive(True)
    headline: reactive[str] = reactive("")

    def __init__(self, launch: Launch) -> None:
        super().__init__()
        self.launch = launch
        self.state = RunState()
        self.exit_code: int | None = None
        self._abort_armed = False

    @property
    def wizard_app(self) -> WizardApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        verb = "Resuming" if self.launch.options.resume else "Running"
        yield Static(f"[b]{verb}[/b] VM {self.launch.answers.vm.name} · run directory {self.launch.run.path}",
                     id="run-title")
        with VerticalScroll(id="run-body"):
            yield StepList(id="steps")
        yield Static("", id="headline")
        yield Footer()

    def on_mount(self) -> None:
        self.headline = "starting…"
        self.run_worker(self._run_engine(), name="engine", group="engine", exit_on_error=False,
                        description="run the plan")

    async def _run_engine(self) -> int:
        app = self.wizard_app
        return await run_engine(self.launch, self._on_event, plan=app.plan, opener=app.run_target_opener)

    def _on_event(self, event: ev.Event) -> None:
        if not self.state.steps and self.launch.planned:
            self.state.plan(self.launch.planned)
        self.post_message(EngineEventEmitted(event))

    def on_engine_event_emitted(self, message: EngineEventEmitted) -> None:
        event = message.event
        self.state.apply(event)
        self.query_one(StepList).steps = step_lines(self.state)
        step = self.state.current_step
        if step is not None:
            self.headline = f"{step.title}: {step.message}" if step.message else step.title

    def watch_headline(self, text: str) -> None:
        self.query_one("#headline", Static).update(text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        finished = (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)
        if event.worker.group != "engine" or event.state not in finished:
            return
        if event.state == WorkerState.SUCCESS:
            code = int(event.worker.result or 0)
            outcome, message = self.state.outcome or "done", self.state.message
        elif event.state == WorkerState.CANCELLED:
            code, outcome, message = 130, "aborted", "aborted by the user"
        else:
            error = event.worker.error
            code = error.exit_code if isinstance(error, VlbError) else 1
            outcome, message = "failed", first_line(error) if error else "failed"
        self.post_message(RunEnded(code, outcome, message))

    def on_run_ended(self, message: RunEnded) -> None:
        self.running = False
        self.exit_code = message.exit_code
        style = "green" if message.exit_code == 0 else "red"
        detail = f": {message.message}" if message.message else ""
        self.headline = (f"[{style}][b]run {message.outcome}[/b] (exit {message.exit_code}){detail}[/]"
                         "  ·  q quits")

    def action_quit_run(self) -> None:
        if not self.running:
            self.wizard_app.finish(self.exit_code or 0)
            return
        if not self._abort_armed:
            self._abort_armed = True
            self.headline = "[b]q again aborts the run[/b] (the journal keeps where it stopped; resume later)"
            return
        self.workers.cancel_group(self, "engine")
