"""The Textual app: the wizard from connect to review, then the run.

The app owns the `WizardState` being edited and the order of the steps; each step is a Screen in
`screens/` that reads and changes the state. Everything slow (connection tests, the engine) runs in
workers. Seams for tests and the demo: the probe opener (how Connect reaches a host), the plan and
the target opener the run uses, where unfinished runs are looked for, and the run screen factory
(the live dashboard by default; tests may give their own).

Reopened answers (`--answers FILE`, Subiquity's interactive sections as the model): the wizard opens
on Connect, tests the connection itself when it can (`WizardState.tests_alone`), then passes every
step whose answers are valid as Next would and stops on the first that needs the user: a problem
in its fields, a blocker, or a step that refuses its answers. Every step passed stays on the stack,
prefilled, for Back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from backend.errors import BadInput, VlbError
from backend.model.answers import Answers
from backend.run import service
from backend.run.engine import RunOptions, Step
from backend.run.journal import RunDir, unfinished_runs
from backend.run.service import ProbeOpener, Run, TargetOpener
from backend.run.service import probe_opener as probe_opener_for
from backend.target import open_target
from tui import keys
from tui.wizardstate import WizardState, first_line

STEP_ORDER = ("connect", "host", "sizing", "storage_network", "guest", "review")

SCENARIO_PRESETS: dict[str, dict[str, int]] = {  # what failed in the field, in VM units
    "success": {},
    "oom": {"memory_gib": 100},  # the first attempt: its guest saw 97 GB; OOM during activation
    "overcommit": {"vcpus": 24, "memory_gib": 112},  # the second: 24 vCPUs on 12 cores, a 109Gi guest; P653 PANIC
}

SCENARIO_CAUSES = {"oom": "a 100 GiB VM (its guest sees 97 GB), as in the field report's first attempt",
                   "overcommit": "24 vCPUs on 12 cores, as in its second attempt"}

STEP_HINTS = {  # (step, scenario or "*") -> the demo's hint on that wizard step
    ("connect", "*"): "Demo: the built-in lab plays the field report's host. ^t connects; y trusts its "
                      "certificate.",
    ("sizing", "success"): "Demo: the recommendation is what worked in the field (12 vCPUs, a 120 GiB VM). "
                           "^n goes on; Start on Review.",
    ("sizing", "oom"): f"Demo (oom): {SCENARIO_CAUSES['oom']}. It is blocked: ^o overrides it on purpose "
                       "to watch it fail.",
    ("sizing", "overcommit"): f"Demo (overcommit): {SCENARIO_CAUSES['overcommit']}. It is blocked: ^o "
                              "overrides it on purpose to watch it fail.",
}


@dataclass
class Demo:
    scenario: str = "success"
    kiosk: bool = False  # served to a browser: the lab only, nothing read on the server (tui/kiosk.py)

    def hint_for(self, step: str) -> str:
        """The hint a wizard step shows in the demo ('' where the step speaks for itself), naming
        the keys of where it runs."""
        return keys.localize(STEP_HINTS.get((step, self.scenario)) or STEP_HINTS.get((step, "*"), ""), self.kiosk)


def demo_state(scenario: str, speed: float | None) -> WizardState:
    """The lab with the field report's host pre-selected, and the scenario's sizing preset."""
    answers = Answers.model_validate({"proxmox": {"url": "lab"}, "lab": {"host_profile": "seed"}})
    for key, value in SCENARIO_PRESETS.get(scenario, {}).items():
        setattr(answers.vm, key, value)
    return WizardState(answers=answers, speed=speed)


class WizardApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "vast-loopback"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("ctrl+q", "quit", "Quit", id="quit"),
    ]

    def __init__(
        self,
        state: WizardState | None = None,
        *,
        probe_opener: ProbeOpener | None = None,
        runs_root: Path | None = None,
        first_step: str = "start",
        demo: Demo | None = None,
        plan: Callable[[], list[Step]] | None = None,
        run_target_opener: TargetOpener = open_target,
        run_screen_factory: Callable[[Run], Screen] | None = None,
        blink: bool = True,
    ) -> None:
        super().__init__()
        self.state = state or WizardState()
        self.probe_opener = probe_opener or probe_opener_for(self.state.speed)
        self.runs_root = runs_root
        self.first_step = first_step
        self.demo = demo
        self.plan = plan
        self.run_target_opener = run_target_opener
        self.run_screen_factory = run_screen_factory or self._dashboard_screen
        self.blink = blink  # cursor blink off keeps snapshots deterministic
        self.exit_code = 0
        self.launched: Run | None = None
        self.reopening = first_step == "reopen"  # until the connection is tested and the steps passed

    @property
    def kiosk(self) -> bool:
        """The demo served to a browser: the lab only, no secret references, no files saved."""
        return self.demo is not None and self.demo.kiosk

    def keys_in(self, text: str) -> str:
        """`text` naming the keys of where the app runs (tui/keys.py: F2 for ^n in a browser)."""
        return keys.localize(text, self.kiosk)

    # --- screens --------------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.kiosk:  # in a browser: function keys for the control keys it keeps (tui/keys.py)
            self.set_keymap(keys.web_keymap())
        if self.first_step == "start":
            from screens.start import StartScreen

            self.push_screen(StartScreen())
        elif self.first_step == "reopen":
            from screens.connect import ConnectScreen

            self.push_screen(ConnectScreen(auto=self.state.tests_alone))
        else:
            self.push_screen(self.make_step(self.first_step))

    def make_step(self, step: str) -> Screen:
        if step == "connect":
            from screens.connect import ConnectScreen

            return ConnectScreen()
        if step == "host":
            from screens.host import HostScreen

            return HostScreen()
        if step == "sizing":
            from screens.sizing import SizingScreen

            return SizingScreen()
        if step == "storage_network":
            from screens.storage_network import StorageNetworkScreen

            return StorageNetworkScreen()
        if step == "guest":
            from screens.guest import GuestScreen

            return GuestScreen()
        if step == "review":
            from screens.review import ReviewScreen

            return ReviewScreen()
        raise ValueError(f"unknown wizard step {step}")

    def skip_ahead(self) -> None:
        """Reopened answers, connected: pass each step as Next would, up to the first that needs the user."""
        self.reopening = False
        self.run_worker(self._skip_ahead(), group="reopen", exclusive=True, description="open the first step "
                        "that needs the user")

    async def _skip_ahead(self) -> None:
        from screens.base import WizardScreen

        for step in STEP_ORDER[STEP_ORDER.index("connect") + 1:]:
            screen = self.make_step(step)
            await self.push_screen(screen)
            assert isinstance(screen, WizardScreen)
            if step == "review" or self.state.problems_of(step) or not screen.next_enabled or not screen.committed():
                return

    def go_next(self, step: str) -> None:
        index = STEP_ORDER.index(step)
        if index + 1 < len(STEP_ORDER):
            self.push_screen(self.make_step(STEP_ORDER[index + 1]))
        else:
            self.start_new_run()

    def go_back(self) -> None:
        # The default screen plus the first one pushed stay: Back never leaves an empty app.
        if len(self.screen_stack) > 2:
            self.pop_screen()
        else:
            self.bell()

    def action_help(self) -> None:
        from screens.help import GENERAL, RUN_KEYS, HelpScreen
        from screens.sessionbase import SessionScreen

        if isinstance(self.screen, HelpScreen):
            return
        general = RUN_KEYS if isinstance(self.screen, SessionScreen) else GENERAL
        self.push_screen(HelpScreen(self.keys_in(getattr(self.screen, "HELP", "")), getattr(self.screen, "TITLE", ""),
                                    self.keys_in(general)))

    # --- runs -----------------------------------------------------------------------------------

    def start_new_run(self) -> None:
        state = self.state
        if state.fleet_count > 1:
            self.start_fleet()
            return
        try:
            launch = service.start(state.answers, run_dir=state.run_dir, speed=state.speed,
                                   options=RunOptions(force=state.forced))
        except VlbError as exc:
            self.notify(first_line(exc), severity="error", timeout=8)
            return
        self.launch(launch)

    def start_fleet(self) -> None:
        """A class: N members across the cluster's nodes, in the fleet view (screens/fleet.py)."""
        from backend.run.fleet import FleetOptions
        from screens.fleet import FleetScreen
        from tui.fleetsession import FleetSession

        state = self.state
        session = FleetSession(state.answers, state.fleet_count, state.run_dir,
                               FleetOptions(speed=state.speed, force=state.forced))
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(FleetScreen(session))

    def resume_run(self, path: Path) -> None:
        from backend.model.answers import check_secrets

        try:
            launch = service.resume(path, speed=self.state.speed)
            if launch.finished:
                self.notify(f"run {path} already finished ({launch.finished}); nothing to resume", timeout=8)
                return
            warnings = check_secrets(launch.answers)  # a reference gone since (env var unset, file moved): said now
        except VlbError as exc:
            self.notify(first_line(exc), severity="error", timeout=8)
            return
        for warning in warnings:
            self.notify(warning, severity="warning", timeout=10)
        self.launch(launch)

    def launch(self, launch: Run) -> None:
        from tui.messages import RunLaunched

        self.launched = launch
        self.post_message(RunLaunched(str(launch.run.path), launch.options.resume))
        screen = self.run_screen_factory(launch)
        # The wizard is done: the run screen replaces every step, so Back cannot edit a running run.
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(screen)

    def _dashboard_screen(self, launch: Run) -> Screen:
        """The live dashboard on the launch's session (the engine as its source)."""
        from screens.dashboard import DashboardScreen
        from tui.session import launch_session

        async def confirm(fingerprint: str) -> bool:
            address = session.state.guest_address or "the guest"
            return await self.ask_host_key(f"{launch.answers.guest.user}@{address}", fingerprint)

        async def confirm_vms(fingerprint: str) -> bool:
            return await self.ask_vms_certificate(session.state.guest_address or "the guest", fingerprint,
                                                  launch.answers.vast.cert_path)

        session = launch_session(launch, plan=self.plan, opener=self.run_target_opener, confirm_host_key=confirm,
                                 confirm_vms_certificate=confirm_vms)
        return DashboardScreen(session, scenario=self.demo.scenario if self.demo else None)

    async def ask_host_key(self, guest: str, fingerprint: str) -> bool:
        """Show a guest's unknown SSH host key and wait for the user's answer (the engine waits
        meanwhile); an aborted run takes the question away."""
        from tui.messages import HostKeyAnswered
        from tui.widgets.dashboard.hostkey import HostKeyDialog

        trusted = await self._ask(HostKeyDialog(guest, fingerprint))
        self.post_message(HostKeyAnswered(guest, fingerprint, trusted))
        if not trusted:
            self.notify("Host key not trusted: the run stops at the SSH step.", severity="warning", timeout=6)
        return trusted

    async def ask_vms_certificate(self, address: str, fingerprint: str, cert_path: str) -> bool:
        """Show the certificate the guest's VMS presents when nothing vouches for it (no certificate
        at `cert_path` on the guest, no pin in the answers) and wait for the user's answer."""
        from tui.widgets.wizard.fingerprint import FingerprintDialog

        hint = (f"The guest keeps no VMS certificate at [i]{cert_path}[/i] (vast.cert_path). Compare it on "
                "the guest's console: [i]openssl s_client -connect 127.0.0.1:443 | openssl x509 -noout "
                "-fingerprint -sha256[/i]. The VMS password is sent only after you trust it; to skip this "
                "question, pin it in the answers: vast.fingerprint.")
        trusted = await self._ask(FingerprintDialog("the guest's VMS", f"https://{address}", fingerprint, hint))
        if not trusted:
            self.notify("VMS certificate not trusted: the VMS password is not sent.", severity="warning", timeout=6)
        return trusted

    async def _ask(self, dialog: Screen[bool]) -> bool:
        """Push a trust dialog and wait for its answer; an aborted run takes the question away."""
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def answered(trusted: bool | None) -> None:
            if not answer.done():
                answer.set_result(bool(trusted))

        self.push_screen(dialog, answered)
        try:
            return await answer
        except asyncio.CancelledError:
            if dialog.is_current:
                dialog.dismiss(False)
            raise

    def unfinished_runs(self) -> list[RunDir]:
        return unfinished_runs(self.runs_root)

    def finish(self, exit_code: int) -> None:
        """Leave the app with the engine's exit code."""
        self.exit_code = exit_code
        self.exit(result=exit_code, return_code=exit_code)


# --- entry points (called from tui/cli.py) ------------------------------------------------------------


def run_wizard(speed: float | None, run_dir: str | None, force: bool, answers: str | None = None) -> int:
    """The wizard: start screen (new run, resume, lab), then the steps; with `answers` (a saved
    answers file) prefilled from it, on the first step that needs the user. Returns the exit code."""
    options = {"speed": speed, "run_dir": run_dir, "force": force}
    if answers:  # an unreadable file is bad input here, before any UI
        app = WizardApp(WizardState.reopen(answers, **options), first_step="reopen")
    else:
        app = WizardApp(WizardState(**options))
    result = app.run()
    return int(result) if result is not None else app.exit_code


def run_demo(scenario: str, speed: float, web: bool, port: int, kiosk: bool = False, answers: str | None = None) -> int:
    """The wizard on the lab with the field report's host; `--web` serves it in a browser, where
    each visitor's session is the kiosk (`tui/kiosk.py`); `answers`: reopened from a saved file."""
    if web:
        from tui.webdemo import serve

        if answers:
            raise BadInput("demo --web serves the lab's own answers: --answers FILE opens them in a terminal")
        return serve(scenario, speed, port)
    app = demo_app(scenario, speed, kiosk=kiosk, answers=answers)
    try:
        result = app.run()
    finally:
        _end_demo_guests(app)
    return int(result) if result is not None else app.exit_code


def demo_app(scenario: str, speed: float, *, kiosk: bool = False, probe_opener: ProbeOpener | None = None,
             run_target_opener: TargetOpener = open_target, answers: str | None = None,
             **seams: object) -> WizardApp:
    """The demo's wizard; in kiosk mode (a browser's session) both openers refuse anything but the
    lab and any secret reference (`tui.kiosk.lab_only`). `answers`: a saved answers file reopened
    (in place of the scenario's sizing preset), on the first step that needs the user."""
    probe_opener = probe_opener or probe_opener_for(speed)
    if kiosk:
        from tui.kiosk import lab_only

        probe_opener, run_target_opener = lab_only(probe_opener), lab_only(run_target_opener)
    state = WizardState.reopen(answers, speed=speed) if answers else demo_state(scenario, speed)
    return WizardApp(state, first_step="reopen" if answers else "connect", demo=Demo(scenario, kiosk=kiosk),
                     probe_opener=probe_opener, run_target_opener=run_target_opener, **seams)  # type: ignore[arg-type]


def _end_demo_guests(app: WizardApp) -> None:
    """A demo is over when it quits: a lab guest still running (a finished run has ended its own; an
    interrupted one leaves them for a resume) is ended; the run directory stays for `report` and
    `replay`."""
    if app.launched is None:
        return
    from backend.lab.shutdown import end_guests

    run = app.launched.run.path
    if end_guests(run / "lab"):
        print(f"demo: the lab's guests were stopped; the run is kept in {run} (vast-loopback replay {run})")
