"""Step 5, Review: every answer and the findings in one place; ^s saves the answers file (secrets as
references only), Start (^n) creates the run directory with the answers in it and starts the run."""

from __future__ import annotations

import shlex
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Label, Static

from backend.errors import BadInput
from backend.model import answers as answers_mod
from screens.base import WizardScreen
from tui import kiosk
from tui.messages import AnswersSaved
from tui.widgets.wizard.findings import FindingsList
from tui.widgets.wizard.summary import AnswersSummary, summary_rows

DEFAULT_ANSWERS_FILE = "vast-loopback-answers.yaml"


def replay_command(path: Path, *, count: int = 1, forced: bool = False) -> str:
    """The command that runs saved answers as Start runs them (the answers hold no run options): `fleet
    up` for a class of `count` clusters (its placement refuses a sizing blocker, overridden or not:
    backend/run/fleet.py), else `--auto`, with `--force` when blockers were overridden on purpose."""
    if count > 1:
        return f"vast-loopback fleet up {shlex.quote(str(path))} --count {count} --run-dir DIR"
    return f"vast-loopback --auto {shlex.quote(str(path))}" + (" --force" if forced else "")


class ReviewScreen(WizardScreen):
    STEP = "review"
    TITLE = "Review and start"
    CSS_PATH = "review.tcss"
    NEXT_LABEL = "Start ^n"
    HELP = """\
Everything the run will use, the sizing findings for it, and what the run will change on the host
beyond its VM (the 'images' content type added to the OVA's storage for the import, removed again
once the disk is imported unless proxmox.keep_host_changes is set).

^s saves the answers file to the path shown (YAML, mode 0600). It holds every value, defaults
included, and secrets only as references (env:NAME / file:PATH), so
`vast-loopback --auto FILE` replays the same run headless. What Start does beyond the answers is
said when saving, with the command that replays it: a run past blockers overridden on purpose
(`--auto FILE --force`), a class of several clusters (`fleet up FILE --count N`).

On a multi-node cluster, Clusters asks how many loopback clusters to bring up (a class: one per
member, `<vm.name>-1..N`, placed across the nodes); more than one opens the fleet view.

Start (^n) reads every secret reference (a missing env var or file is said here, before anything
is created), creates the run directory (its journal, the answers, the lab's state) and starts the
run; Esc goes back to change something."""

    BINDINGS = [
        Binding("ctrl+n", "next", "Start", id="next"),  # the footer says what ^n does here, as the button does
        Binding("escape", "back", "Back"),
        Binding("ctrl+s", "save", "Save answers", id="save"),
    ]

    def compose_body(self) -> ComposeResult:
        yield AnswersSummary(id="summary")
        yield Static("", id="forced")
        yield FindingsList(id="review-findings")
        with Horizontal(classes="form-row", id="fleet-row"):
            yield Label("Clusters", classes="label")
            yield Input("1", id="fleet-count", compact=True, type="integer",
                        tooltip="how many loopback clusters (a class): one per member, across the nodes")
        with Horizontal(classes="form-row", id="save-row"):
            yield Label("Save to", classes="label")
            # reopened answers are saved back to their file by default
            yield Input(self.wizard.source or DEFAULT_ANSWERS_FILE, id="save-path", compact=True,
                        disabled=self.wizard_app.kiosk)

    def on_mount(self) -> None:
        super().on_mount()
        state = self.wizard
        # a multi-node cluster can hold a class: one loopback cluster per member (backend/fleet.py)
        multi = state.inventory is not None and len([n for n in state.inventory.nodes if n.online]) > 1
        self.query_one("#fleet-row").display = multi and not self.wizard_app.kiosk
        self.query_one("#fleet-count", Input).value = str(state.fleet_count)
        self.query_one(AnswersSummary).rows = tuple(summary_rows(state.answers, state.node, state.fingerprint))
        result = state.sizing()
        findings = self.query_one(FindingsList)
        findings.show_info = False
        findings.show_evidence = False
        findings.overridden = state.overridden
        findings.findings = result.findings  # the host changes among them (backend/steps/hostcheck.py)
        unresolved = state.unresolved_blockers(result)
        overridden = [f.id for f in result.blockers if f.id not in unresolved]
        forced = self.query_one("#forced", Static)
        if overridden:
            why = "--force" if state.force else "overridden on purpose"
            forced.update(f"[b magenta]Blockers {why}:[/] {', '.join(overridden)}")
        self.next_enabled = not unresolved
        if unresolved:
            self.say("a blocker is left: go back to Sizing (esc)", error=True)
        self.query_one("#next").focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "save" and self.wizard_app.kiosk:
            return False  # nothing is written on the server: not offered in the web demo's footer
        return super().check_action(action, parameters)

    def action_save(self) -> None:
        if self.wizard_app.kiosk:  # a visitor of the web demo writes no file on the server
            self.say("saving is off in the web demo", error=True)
            return
        raw = self.query_one("#save-path", Input).value.strip()
        if not raw:
            self.say("give a file name to save the answers to", error=True)
            return
        path = Path(raw).expanduser()
        try:
            count = self._clusters()
        except BadInput as exc:
            self.say(str(exc), error=True)
            return
        try:
            saved = answers_mod.save(self.wizard.answers, path)
        except OSError as exc:
            self.say(f"cannot save {path}: {exc.strerror or exc.__class__.__name__}", error=True)
            return
        self.say(f"saved {saved}")
        forced = self.wizard.forced
        if count > 1 or forced:  # Start does more than `--auto FILE` would: say how to replay it
            why = f"a class of {count} clusters" if count > 1 else "past blockers overridden on purpose"
            self.notify(f"Start runs {why}, which the answers do not hold; replay it with "
                        f"{replay_command(saved, count=count, forced=forced)}", severity="warning", timeout=20)
        self.post_message(AnswersSaved(str(saved)))

    def _clusters(self) -> int:
        """How many loopback clusters Start brings up: the Clusters field, where it is shown."""
        if not self.query_one("#fleet-row").display:
            return self.wizard.fleet_count
        raw = self.query_one("#fleet-count", Input).value.strip()
        if not raw.isdigit() or not 1 <= int(raw) <= 64:
            raise BadInput(f"clusters: '{raw[:10]}' is not a number of clusters (1-64)")
        return int(raw)

    def commit(self) -> None:
        self.wizard.fleet_count = self._clusters()
        result = self.wizard.sizing()
        if self.wizard.unresolved_blockers(result):
            raise BadInput("a sizing blocker is left: go back to Sizing to fix or override it")
        if self.wizard_app.kiosk:
            kiosk.check_answers(self.wizard.answers)  # before anything would be read on the server
        # a missing or unfit secret, before a run directory exists; a loose secret file is said
        for warning in answers_mod.check_secrets(self.wizard.answers):
            self.notify(warning, severity="warning", timeout=10)
