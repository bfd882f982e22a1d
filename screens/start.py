"""The first screen: start a new run on a Proxmox VE host, try the built-in lab, or resume one of the
runs that did not reach their end (backend.run.journal.unfinished_runs: interrupted, failed, aborted or
stopped), each described with how it ended and where. A resumed run opens the dashboard with its
history read from the journal first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from backend.errors import BadInput
from backend.events import RunStarted, StepFinished, StepStarted
from backend.run.journal import RunDir

if TYPE_CHECKING:
    from tui.app import WizardApp

INTRO = ("[b]vast-loopback[/b]: from a Proxmox VE host and the VAST Data 5.4 loopback OVA to a tuned VAST "
         "loopback cluster, ONLINE and snapshotted, with a deployment analysis report.")


OUTCOME_WORDS = {"failed": "failed", "aborted": "aborted", "stopped": "stopped as asked", "blocked": "blocked",
                 "prepared": "stopped at pre-install"}


def describe_run(run: RunDir) -> Text:
    """Two lines: which run, then its VM and target, how it ended (or that it was interrupted), where
    it stopped and how many steps are done."""
    started, failed_step, done, last = None, "", set(), ""
    try:
        for event in run.events():
            if isinstance(event, RunStarted) and started is None:
                started = event
            elif isinstance(event, StepStarted):
                last = event.step
            elif isinstance(event, StepFinished):
                if event.ok:
                    done.add(event.step)
                else:
                    failed_step = event.step
        outcome = str(run.read_meta().get("outcome") or "")
        damaged = ""
    except BadInput as exc:  # a damaged run.json or journal file: listed; resuming it says why not
        outcome, damaged = "failed", exc.message
    if damaged:
        how = f"cannot be resumed: {damaged}"
    elif started is None:
        how = "not started"
    elif outcome:
        how = OUTCOME_WORDS.get(outcome, outcome) + (f" at {failed_step}" if outcome == "failed" and failed_step else "")
    else:
        how = "interrupted" + (f" in {last}" if last and last not in done else "")
    where = f"VM {started.vm_name} on {started.target}" if started else "VM ?"
    text = Text(f"Resume {run.path.name}\n")
    text.append(f"  {where} · ", style="dim")
    text.append(how, style="bold red" if outcome in ("failed", "blocked") else "bold yellow")
    text.append(f" · {len(done)} step{'s' if len(done) != 1 else ''} done", style="dim")
    return text


class StartScreen(Screen):
    CSS_PATH = "start.tcss"
    TITLE = "Start"
    HELP = """\
Built-in lab: the wizard against a lab that behaves like the field report's host; nothing real is
touched.
New run: the wizard asks for a Proxmox VE host (URL and API token), then the node, the VM's size,
its storage and network, and starts the run.
Resume: a run that was interrupted, failed, aborted or stopped continues where it stopped: a
finished step is not repeated, the VM is found again, never created twice. The dashboard shows the
run's history from its journal (charts, phases, diagnosis), then follows it live."""

    def compose(self) -> ComposeResult:
        yield Static(INTRO, id="intro")
        options = [  # the lab first: Enter on a fresh machine tries the wizard without touching anything
            Option("Try it on the built-in lab (the field report's host)", id="lab"),
            Option("New run on a Proxmox VE host", id="new"),
        ]
        self._runs = {f"resume:{i}": run.path for i, run in enumerate(self.wizard_app.unfinished_runs())}
        for key, path in self._runs.items():
            options.append(Option(describe_run(RunDir(path)), id=key))
        yield OptionList(*options, id="choices")
        hint = (f"{len(self._runs)} unfinished run{'s' if len(self._runs) != 1 else ''} can be resumed"
                if self._runs else "no unfinished runs")
        yield Static(hint, classes="hint", id="runs-hint")
        yield Footer()

    @property
    def wizard_app(self) -> WizardApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        choice = event.option.id or ""
        app = self.wizard_app
        if choice in self._runs:
            app.resume_run(Path(self._runs[choice]))
            return
        from screens.connect import ConnectScreen

        if choice == "new":
            app.push_screen(ConnectScreen(scheme="https"))
        else:
            app.state.answers.section("lab").host_profile = "seed"
            app.push_screen(ConnectScreen(scheme="lab"))
