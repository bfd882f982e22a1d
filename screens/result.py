"""The result of a run: the outcome (ONLINE, failed, blocked, aborted), the key times (total and
activation, as the report counts them), the diagnosis with its evidence and remedy, what restoring
the `vast-online` snapshot needs (it holds no RAM state), and where the run directory and its
report are.

Keys: r rolls back to the pre-install snapshot and retries with the remedy (only after a failure
whose diagnosis carries a remedy the engine can apply), o opens the report (writing it first when
needed), Esc goes back to the dashboard, q quits with the run's exit code. A live run's report is
written when this screen opens (backend.analysis.report, the same as `vast-loopback report RUN_DIR`).
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Markdown, Static
from textual.worker import Worker, WorkerState

from backend.analysis.report import REPORT
from backend.errors import VlbError
from backend.run.safefiles import read_small
from screens.sessionbase import SessionScreen
from tui.hints import demo_hint
from tui.messages import ReportOpened
from tui.session import RunSession
from tui.widgets.dashboard.alerts import HintLine, RunHeader
from tui.widgets.dashboard.diagnosis import DiagnosisPane
from tui.widgets.dashboard.pane import span
from tui.widgets.dashboard.preparation import FailedChecksPane

REPORT_MAX_BYTES = 16 * 1024 * 1024  # what the report screen shows at most (a report is ~50 KB)

BANNERS = {
    "online": ("✓ ONLINE", "bold green"),
    "done": ("✓ DONE", "bold green"),
    "stopped": ("■ STOPPED", "bold cyan"),
    "prepared": ("■ PREPARED", "bold cyan"),
    "failed": ("✖ FAILED", "bold red"),
    "blocked": ("⛔ BLOCKED", "bold red"),
    "aborted": ("■ ABORTED", "bold yellow"),
}


def banner(session: RunSession) -> Text:
    end = session.end
    assert end is not None
    outcome = end.outcome.lower()
    if outcome == "done" and session.state.cluster_state.upper() == "ONLINE":
        outcome = "online"
    label, style = BANNERS.get(outcome, (outcome.upper() or "ENDED", "bold"))
    text = Text()
    text.append(f" {label} ", style=style + " reverse")
    text.append(f"  exit {end.exit_code}", style="dim")
    if session.attempt > 1:
        text.append(f"  attempt {session.attempt} (after a rollback-and-retry)", style="bold")
    if end.message:
        text.append(f"\n{end.message}", style="red" if end.failed else "")
    return text


def key_times(session: RunSession, analysis: dict | None) -> Text:
    state = session.state
    text = Text()
    run_s = (state.now - state.started) if state.now is not None and state.started is not None else None
    timeline = (analysis or {}).get("timeline") or {}
    rows = [
        ("install", timeline.get("total_s"), "first install phase → cluster_deploy completed"),
        ("activation", timeline.get("activation_s"), "ACTIVATING → ONLINE"),
        ("whole run", run_s, "from the first event to the last"),
    ]
    for number, (label, seconds, meaning) in enumerate(rows):
        if number:
            text.append("\n")
        value = span(seconds) if seconds is not None else ("…" if analysis is None else "-")
        text.append(f"{label:<11}", style="bold")
        text.append(f"{value:>8}", style="bold cyan" if seconds is not None else "dim")
        text.append(f"  {meaning}", style="dim")
    return text


def restore_note(session: RunSession) -> Text:
    """What restoring `vast-online` needs: it is taken without RAM state, so a restore is a boot and
    VAST must be started again, the path the reboot test walks (backend/steps/restart.py)."""
    state = session.state
    text = Text()
    if "vast-online" not in state.snapshots:
        return text
    text.append("vast-online   ", style="bold")
    text.append("taken without RAM state: restoring it boots the VM, and VAST does not start by itself.\n")
    text.append("  roll back to vast-online, start the VM, run ", style="dim")
    text.append("./start_vms.sh", style="bold")
    text.append(" on the guest as the install user, wait for ONLINE", style="dim")
    restart = state.restart
    if restart.get("ok"):
        text.append(f"\n  this run's reboot test took that path: ONLINE again {span(restart.get('online_after_s'))} "
                    "after the reboot", style="dim")
    elif not restart:
        text.append("\n  this run did not test that path (vast.reboot_test: false)", style="yellow")
    return text


def write_report(run_path: Path, write: bool) -> tuple[dict, Path | None]:
    """The report's analysis of the run; with `write`, report.md too (as `vast-loopback report`)."""
    from backend.analysis.deployment import analyse
    from backend.analysis.report import save_report

    if not write:
        return analyse(run_path), None
    return save_report(run_path)


class ResultScreen(SessionScreen):
    CSS_PATH = "result.tcss"
    TITLE = "Result"
    HELP = """\
How the run ended, its key times (counted as the report counts them), the diagnosis with the
evidence that triggered it and its remedy, the preflight checks that failed (when one stopped the
run), what restoring the vast-online snapshot needs, and where the run directory and the report are.
Keys: r roll back to the pre-install snapshot and retry with the remedy (after a diagnosed
failure) · o open the report · Esc back to the dashboard · q quit with the run's exit code."""

    BINDINGS = [
        Binding("r", "rollback", "Rollback & retry"),
        Binding("o", "open_report", "Open report"),
        Binding("escape", "back", "Dashboard"),
        Binding("q", "quit_run", "Quit"),
    ]

    def __init__(self, session: RunSession, *, scenario: str | None = None, write: bool | None = None) -> None:
        super().__init__(session)
        self.scenario = scenario
        self.write = session.live if write is None else write  # a replay writes its report only when asked
        self.analysis: dict | None = None
        self.report: Path | None = None
        self.report_error = ""
        self._open_when_written = False

    def compose(self) -> ComposeResult:
        yield RunHeader(self.session)
        with VerticalScroll(id="result-body"):
            yield Static(banner(self.session), id="outcome")
            yield Static(key_times(self.session, None), id="times")
            yield DiagnosisPane(self.session, id="diagnosis")
            yield FailedChecksPane(self.session, id="preflight")
            restore = Static(restore_note(self.session), id="restore")
            restore.display = bool(restore_note(self.session))
            yield restore
            yield Static(self._where(), id="where")
        hint = HintLine("", id="hint")
        hint.display = self.scenario is not None
        yield hint
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        existing = self._existing_report()
        self._analyse(write=self.write and existing is None)

    def _existing_report(self) -> Path | None:
        """The report already written: a regular file, never one reached through a symlink."""
        for path in (Path(self.session.report_path) if self.session.report_path else None,
                     self.session.run_path / REPORT if self.session.run_path else None):
            if path is not None and path.is_file() and not path.is_symlink():
                return path
        return None

    def _analyse(self, write: bool) -> None:
        run_path = self.session.run_path
        if run_path is None:
            return
        self.run_worker(lambda: write_report(run_path, write), thread=True, group="report", exit_on_error=False,
                        description="analyse the run and write its report")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "report" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        if event.state == WorkerState.SUCCESS:
            data, path = event.worker.result
            self.analysis = data
            if path is not None:
                self.report = path
        else:
            error = event.worker.error
            self.report_error = f"the report could not be written: {error.__class__.__name__}: {error}"
        self._show_analysis()
        if self._open_when_written:
            self._open_when_written = False
            self.action_open_report()

    def _show_analysis(self) -> None:
        self.query_one("#times", Static).update(key_times(self.session, self.analysis or {}))
        self.query_one("#where", Static).update(self._where())

    def _where(self) -> Text:
        run_path = self.session.run_path
        text = Text()
        text.append("run directory ", style="bold")
        text.append(str(run_path) if run_path else "-")
        report = self.report or self._existing_report()
        text.append("\nreport        ", style="bold")
        if report is not None:
            text.append(str(report))
            text.append("  (o opens it)", style="dim")
        elif self.report_error:
            text.append(self.report_error, style="red")
        elif run_path is not None:
            text.append(f"vast-loopback report {run_path}", style="italic")
            text.append("  writes it (o writes and opens it)", style="dim")
        return text

    def after_flush(self) -> None:
        if self.scenario is not None:
            self.query_one(HintLine).update(demo_hint(self.session, self.scenario, on_result=True))
        self.refresh_bindings_if_changed()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_report":
            return self.session.run_path is not None
        return super().check_action(action, parameters)

    # --- keys --------------------------------------------------------------------------------

    def action_open_report(self) -> None:
        report = self.report or self._existing_report()
        if report is None:
            self._open_when_written = True
            self._analyse(write=True)
            return
        self.post_message(ReportOpened(str(report)))
        self.app.push_screen(ReportScreen(report))

    def action_back(self) -> None:
        self.dismiss()

    def action_quit_run(self) -> None:
        self.quit_with_run_code()


class ReportScreen(Screen):
    """report.md, rendered. Esc goes back."""

    TITLE = "Report"
    HELP = "The deployment analysis report (report.md in the run directory). Esc goes back."

    DEFAULT_CSS = """
    ReportScreen VerticalScroll { height: 1fr; padding: 0 1; }
    """

    BINDINGS = [Binding("escape,q,o", "close", "Back")]

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        try:
            text = read_small(self.path, REPORT_MAX_BYTES).decode("utf-8", errors="replace")
        except (OSError, VlbError) as exc:
            text = f"**{self.path} cannot be shown:** {exc}"
        with VerticalScroll():
            yield Markdown(text, id="report")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss()
