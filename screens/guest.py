"""Step 5, Guest & VAST: how the run logs in to the guest over SSH (user, a password or key
*reference*, the host key to pin), the VMS admin and its password reference, and whether the
file-descriptor and inotify limits are raised. Every secret is a reference (env:NAME or file:PATH),
never a value: the answers file and the screen never hold one."""

from __future__ import annotations

import os
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Checkbox, Input, Label, Static

from backend.model.answers import GuestAnswers, TuningAnswers, VastAnswers
from screens.base import WizardScreen
from tui import kiosk
from tui.messages import GuestChosen
from tui.wizardstate import validated

REFERENCE_FIELDS = ("password", "key", "vms-password")


def is_reference(text: str) -> bool:
    return text.startswith(("env:", "file:"))


def reference_note(text: str) -> str:
    """Whether a reference can be read here (nothing of its value is read or shown)."""
    text = text.strip()
    if not text or not is_reference(text):
        return ""
    kind, where = text.split(":", 1)
    if kind == "env":
        return "" if os.environ.get(where) else f"{text} is not set in this environment"
    return "" if Path(where).expanduser().is_file() else f"{text}: no such file here"


class GuestScreen(WizardScreen):
    STEP = "guest"
    TITLE = "Guest & VAST"
    CSS_PATH = "guest.tcss"
    HELP = """\
How the run reaches the guest and the VAST cluster. Secrets are references, never values:
env:NAME (an environment variable) or file:PATH; they are read when the run needs them.
• Guest user: the OVA's SSH user (centos).
• Password / key: a reference to the guest's SSH password or private key. Empty password: the
  OVA's documented default (the lab's guest accepts it too).
• Host key: the guest's SSH host key fingerprint (SHA256:...) to pin. Empty: the target's
  known_hosts, else the wizard shows the key and asks before it connects (headless refuses).
• VMS admin and password: the VAST management login; empty password: the OVA's default. The
  password goes only to the VMS whose certificate the run read from the guest over SSH (or that
  vast.fingerprint / vast.ca_file in an answers file vouch for); otherwise you are asked.
• Raise limits: file-descriptor and inotify limits for the VAST containers (recommended)."""

    def compose_body(self) -> ComposeResult:
        answers = self.wizard.answers
        guest, vast = answers.guest, answers.vast
        kiosk = self.wizard_app.kiosk  # the web demo reads nothing on the server: no references there
        shown = self.wizard.shown  # a value of a reopened file not loaded: its text (a secret's only as a reference)
        default = "the OVA's default (no references in the web demo)" if kiosk else None
        rows = (
            ("Guest user", Input(shown("guest.user", guest.user), id="user", compact=True)),
            ("Password", Input(shown("guest.password", guest.password),
                               placeholder=default or "env:NAME or file:PATH (empty: the OVA's default)",
                               id="password", compact=True, disabled=kiosk)),
            ("SSH key", Input(shown("guest.key", guest.key), placeholder=default or "file:~/.ssh/id_ed25519 (optional)",
                              id="key", compact=True, disabled=kiosk)),
            ("Host key", Input(shown("guest.host_key", guest.host_key), placeholder="SHA256:... (empty: known_hosts, or ask)",
                               id="host-key", compact=True)),
            ("VMS admin", Input(shown("vast.admin_user", vast.admin_user), id="vms-user", compact=True)),
            ("VMS password", Input(shown("vast.admin_password", vast.admin_password),
                                   placeholder=default or "env:NAME or file:PATH (empty: the OVA's default)",
                                   id="vms-password", compact=True, disabled=kiosk)),
        )
        for label, field in rows:
            with Horizontal(classes="form-row"):
                yield Label(label, classes="label")
                yield field
        yield Checkbox("Raise file-descriptor and inotify limits for the VAST containers",
                       value=answers.tuning.limits, id="limits", compact=True)
        yield Static("Secrets are references (env:NAME or file:PATH), never values.", classes="hint")
        yield Static("", id="refs-note")

    def on_mount(self) -> None:
        super().on_mount()
        for field_id in REFERENCE_FIELDS:
            self._mask(self.query_one(f"#{field_id}", Input))
        self._note_references()
        self.query_one("#user", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in REFERENCE_FIELDS:
            self._mask(event.input)
            self._note_references()

    @staticmethod
    def _mask(field: Input) -> None:
        """Something typed into a reference field that is not a reference may be the secret itself:
        it is not shown."""
        text = field.value.strip()
        field.password = bool(text) and not is_reference(text) and not "env:".startswith(text) \
            and not "file:".startswith(text)

    def _note_references(self) -> None:
        if self.wizard_app.kiosk:  # not even whether a variable or a file exists on the server
            return
        notes = [note for field_id in REFERENCE_FIELDS
                 if (note := reference_note(self.query_one(f"#{field_id}", Input).value))]
        self.query_one("#refs-note", Static).update(
            "[yellow]! " + "; ".join(notes) + "[/] (the run reads them when it needs them)" if notes else "")

    def _value(self, field_id: str) -> str | None:
        return self.query_one(f"#{field_id}", Input).value.strip() or None

    def commit(self) -> None:
        answers = self.wizard.answers
        guest = validated(GuestAnswers, {**answers.guest.model_dump(mode="json"),
                                         "user": self._value("user") or "", "password": self._value("password"),
                                         "key": self._value("key"), "host_key": self._value("host-key")}, "guest")
        vast = validated(VastAnswers, {**answers.vast.model_dump(mode="json"), "admin_user": self._value("vms-user") or "",
                                       "admin_password": self._value("vms-password")}, "vast")
        tuning = validated(TuningAnswers, {"limits": self.query_one("#limits", Checkbox).value}, "tuning")
        if self.wizard_app.kiosk:
            kiosk.check_answers(answers.model_copy(update={"guest": guest, "vast": vast}))
        answers.guest, answers.vast, answers.tuning = guest, vast, tuning
        self.post_message(GuestChosen(guest.user, str(guest.password or ""), str(guest.key or ""),
                                      guest.host_key or "", vast.admin_user, str(vast.admin_password or ""),
                                      tuning.limits))
