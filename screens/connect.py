"""Step 1, Connect: the built-in lab (one of its hosts, or a recording of a real one: `file:/PATH`)
or a Proxmox VE host (URL, API token id, and a reference to the token secret). "Test connection"
opens the target in a worker, shows the certificate's fingerprint for the user to trust, and only
then sends the token and reads the PVE version and the nodes."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Select, Static

from backend.errors import BadInput, VlbError
from backend.model.answers import Answers, ProxmoxAnswers
from backend.run.service import describe_error
from backend.target import provider_info, provider_scheme
from screens.base import WizardScreen
from tui.messages import CertificateRejected, ConnectionFailed, ConnectionTested
from tui.widgets.wizard.fingerprint import FingerprintDialog
from tui.widgets.wizard.progress import WizardProgress
from tui.wizardstate import first_line, validated

LAB = "lab"  # the built-in target's provider (backend/lab): its hosts and their descriptions are its own
FILE = "file:"  # the host choice whose file (a recording) is named in the Recording field


def lab_choice() -> tuple[str, dict[str, str], str]:
    """The field of the lab's answers section the form chooses, each value's description, and what a
    file:/PATH value is ("" when the field takes none)."""
    info = provider_info(LAB)
    return (info.choice, info.choices, info.file_choice) if info is not None else ("", {}, "")


def file_reference(text: str, field: str) -> str:
    """`file:/ABSOLUTE/PATH` of an existing file typed as PATH, file:PATH or ~/PATH; BadInput otherwise."""
    typed = text.strip().removeprefix(FILE)
    if not typed:
        raise BadInput(f"{LAB}.{field}: give the path of the recording")
    path = Path(typed).expanduser().absolute()
    if not path.is_file():
        raise BadInput(f"{LAB}.{field}: {path}: no such file" if not path.exists() else f"{LAB}.{field}: {path}: not a file")
    return f"{FILE}{path}"


class ConnectScreen(WizardScreen):
    STEP = "connect"
    TITLE = "Connect to Proxmox VE"
    CSS_PATH = "connect.tcss"
    HELP = """\
Pick the built-in lab (a Proxmox VE API, a guest and a VMS that behave like the field report's
host) or a real Proxmox VE host. The lab plays one of its own hosts, or a real host recorded with
`vast-loopback probe ANSWERS --record FILE`: choose "recording" and give the file's path.

For a real host give its URL (https://HOST:8006), an API token id (USER@REALM!TOKENID, create it
under Datacenter → Permissions → API Tokens) and where the token secret is: env:NAME (an
environment variable) or file:PATH. The secret itself is never typed here, saved or shown.

^t tests the connection: the host's TLS certificate is shown first and nothing is sent until you
trust it (y). Its fingerprint is then pinned in the answers. Next is available after a successful
test.

Reopened answers (--answers FILE) are tested without asking when the certificate is vouched for (a
pin in the file, or the built-in lab's own); a real host's unpinned certificate waits for your ^t.
After the test the wizard goes on to the first step that needs you."""

    BINDINGS = [
        *WizardScreen.BINDINGS,
        Binding("ctrl+t", "test", "Test connection", id="test"),
    ]

    scheme: reactive[str] = reactive("lab")
    tested: reactive[bool] = reactive(False)

    def __init__(self, scheme: str | None = None, *, auto: bool = False) -> None:
        super().__init__()
        self._first_scheme = scheme  # the start screen's choice; else the answers' url decides
        self._auto = auto  # reopened answers: test the connection on mount, no question for a vouched certificate
        self._tested_with: ProxmoxAnswers | None = None

    def _url(self) -> str:
        """The answers' URL, or the text a reopened file gave for it (not loaded)."""
        return self.wizard.shown("proxmox.url", self.wizard.answers.proxmox.url)

    def _scheme(self) -> str:
        scheme = provider_scheme(self._url())
        return self._first_scheme or (scheme if scheme in (LAB, "https") else "https")

    def compose_body(self) -> ComposeResult:
        answers = self.wizard.answers
        proxmox = answers.proxmox
        scheme = self._scheme()
        demo = self.wizard_app.demo
        if demo is not None and demo.hint_for(self.STEP):
            yield Static(demo.hint_for(self.STEP), classes="demo-hint")
        with Horizontal(classes="form-row"):
            yield Label("Target", classes="label")
            with RadioSet(id="scheme"):
                yield RadioButton("Built-in lab", id="scheme-lab", value=scheme == "lab")
                # the web demo (kiosk) stays on the lab: a real host is not offered there
                yield RadioButton("Proxmox VE host", id="scheme-https", value=scheme == "https",
                                  disabled=self.wizard_app.kiosk)
        field, choices, file_choice = lab_choice()
        loaded = str(getattr(answers.section(LAB), field, ""))
        chosen = self.wizard.shown(f"{LAB}.{field}", loaded)  # a reopened file's text when it was not valid
        recorded = bool(file_choice) and chosen not in choices
        chosen = chosen if recorded or chosen in choices else loaded
        options = [(text, name) for name, text in choices.items()]
        if file_choice:
            options.append((f"recording: {file_choice}", FILE))
        with Horizontal(classes="form-row lab-only"):
            yield Label("Lab host", classes="label")
            yield Select(options, value=FILE if recorded else chosen, allow_blank=False, id="profile", compact=True)
        with Horizontal(classes="form-row lab-only file-only"):
            yield Label("Recording", classes="label")
            yield Input(chosen.removeprefix(FILE) if recorded else "", placeholder="/PATH/host.json",
                        id="recording", compact=True)
        with Horizontal(classes="form-row https-only"):
            yield Label("URL", classes="label")
            yield Input(self._url() if provider_scheme(self._url()) != LAB else "", placeholder="https://pve.example:8006",
                        id="url", compact=True)
        with Horizontal(classes="form-row https-only"):
            yield Label("Token id", classes="label")
            yield Input(self.wizard.shown("proxmox.token_id", proxmox.token_id), placeholder="root@pam!vlb",
                        id="token-id", compact=True)
        with Horizontal(classes="form-row https-only"):
            yield Label("Token secret", classes="label")
            yield Input(self.wizard.shown("proxmox.token_secret", proxmox.token_secret),
                        placeholder="env:PVE_TOKEN or file:~/.pve-token", id="token-secret", compact=True)
        yield Static("The secret is a reference (env:NAME or file:PATH), never the value.",
                     classes="hint https-only")
        yield Button(self.wizard_app.keys_in("Test connection ^t"), id="test", compact=True)
        yield Static("", id="result", classes="panel")

    def on_mount(self) -> None:
        super().on_mount()
        self.scheme = self._scheme()
        self.set_class(self.query_one("#profile", Select).value == FILE, "-file")
        self.next_enabled = False
        if self.wizard.inventory is not None:  # came back from a later step: still connected
            self._tested_with = self.wizard.answers.proxmox.model_copy()
            self._show_connected(self.wizard.inventory.pve_version, self.wizard.fingerprint,
                                 len(self.wizard.inventory.nodes))
            self.tested = True
        self.query_one("#test", Button).focus()
        if self._auto:
            self._auto = False
            self._test(ask=False)
        elif self.wizard_app.reopening:
            self.say("fix the target, then test the connection (^t)" if self.wizard.problems_of(self.STEP) else
                     "the host's certificate is not pinned in the answers: test the connection (^t) to see it")

    # --- form ---------------------------------------------------------------------------------

    def watch_scheme(self, scheme: str) -> None:
        self.set_class(scheme == "lab", "-lab")
        self.set_class(scheme == "https", "-https")

    def watch_tested(self, tested: bool) -> None:
        self.next_enabled = tested

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        self.scheme = (event.pressed.id or "scheme-lab").removeprefix("scheme-")
        self._form_changed()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._form_changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.set_class(event.value == FILE, "-file")
        self._form_changed()

    def _form_changed(self) -> None:
        if not self.tested:
            return
        try:
            proxmox, lab = self._form_answers()
        except VlbError:
            proxmox, lab = None, None
        same_lab = lab is None or lab == self.wizard.answers.section(LAB)
        if proxmox != self._tested_with or not same_lab:
            self.tested = False
            self.say("the target changed: test the connection again (^t)")

    def _form_answers(self) -> tuple[ProxmoxAnswers, BaseModel]:
        """The Proxmox and lab sections as the form stands; BadInput names what is wrong."""
        current = self.wizard.answers
        url = self.scheme if self.scheme != "https" else self.query_one("#url", Input).value.strip()
        data: dict = {"url": url, "node": current.proxmox.node, "keep_host_changes": current.proxmox.keep_host_changes}
        token_id = self.query_one("#token-id", Input).value.strip()
        secret = self.query_one("#token-secret", Input).value.strip()
        if self.scheme == "https":
            if not url:
                raise BadInput("proxmox.url: give the host's URL, e.g. https://pve.example:8006")
            data.update(token_id=token_id or None, token_secret=secret or None)
            if url == current.proxmox.url:
                data["fingerprint"] = current.proxmox.fingerprint  # keep a pin for the same host
        proxmox = validated(ProxmoxAnswers, data, "proxmox")
        field = lab_choice()[0]
        profile = self.query_one("#profile", Select).value
        if profile == FILE and self.scheme != "https":
            profile = file_reference(self.query_one("#recording", Input).value, field)
        elif profile == FILE:
            profile = getattr(current.section(LAB), field)  # a real host: the lab's choice stays as it was
        section = current.section(LAB)
        lab = validated(type(section), {**section.model_dump(), field: profile}, LAB)
        return proxmox, lab

    # --- testing ------------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "test":
            event.stop()
            self.action_test()
        else:
            super().on_button_pressed(event)

    def action_test(self) -> None:
        self._test(ask=True)

    def _test(self, ask: bool) -> None:
        """Test the connection with the form's target; `ask` False: a certificate the target vouches
        for (a pin in the answers, a provider's own) is not asked about."""
        try:
            proxmox, lab = self._form_answers()
        except VlbError as exc:
            self.say(first_line(exc), error=True)
            return
        answers = self.wizard.answers.model_copy(update={"proxmox": proxmox}).with_section(LAB, lab)
        self.tested = False
        self.query_one("#result", Static).update("")
        self.say(f"connecting to {self._where(proxmox)}…")
        self.test_connection(answers, ask)

    @staticmethod
    def _where(proxmox: ProxmoxAnswers) -> str:
        return "the built-in lab" if provider_scheme(proxmox.url) != "https" else proxmox.url

    @work(exclusive=True, group="connect", exit_on_error=False, description="test the connection")
    async def test_connection(self, answers: Answers, ask: bool = True) -> None:
        url = answers.proxmox.url
        try:
            probe = await self.wizard_app.probe_opener(answers)
        except Exception as exc:
            self.post_message(ConnectionFailed(url, describe_error(exc, url)))
            return
        try:
            vouched = not ask and probe.pin_to_save is None
            trusted = vouched or await self.app.push_screen_wait(FingerprintDialog(probe.label, probe.url,
                                                                                   probe.fingerprint))
            if not trusted:
                self.post_message(CertificateRejected(url, probe.fingerprint))
                return
            self.say("certificate trusted; reading the host's facts…")
            host = await probe.host(answers)
            inventory = host.inventory
        except Exception as exc:
            self.post_message(ConnectionFailed(url, describe_error(exc, probe.url)))
            return
        finally:
            await probe.close()
        self.wizard.answers = answers
        self.wizard.settled(self.STEP)
        self.wizard.connected(host, probe.fingerprint, probe.pin_to_save, target=probe.description or probe.label)
        self._tested_with = answers.proxmox.model_copy()
        self.post_message(ConnectionTested(url, inventory.pve_version, probe.fingerprint, inventory))

    def on_connection_tested(self, message: ConnectionTested) -> None:
        self.query_one(WizardProgress).where = self.wizard.target  # the header names the target from now on
        self._show_connected(message.pve_version, message.fingerprint, len(message.inventory.nodes))
        self.tested = True
        self.show_problems()
        self.say("connected: Next (^n) to choose the host")
        self.query_one("#next").focus()
        if self.wizard_app.reopening:  # reopened answers: on to the first step that needs the user
            self.wizard_app.skip_ahead()

    def on_connection_failed(self, message: ConnectionFailed) -> None:
        self.say(message.error, error=True)
        self.query_one("#result", Static).update("")

    def on_certificate_rejected(self, message: CertificateRejected) -> None:
        self.say("certificate not trusted: nothing was sent to the host", error=True)

    def _show_connected(self, version: str, fingerprint: str, nodes: int) -> None:
        self.query_one("#result", Static).update(
            f"[green]✓[/] Proxmox VE [b]{version}[/b] · {nodes} node{'s' if nodes != 1 else ''}\n"
            f"certificate [b]{fingerprint[:47]}[/b]\n            {fingerprint[48:]}  (trusted)"
        )
