"""The guest host-key dialog: the run reached the guest over SSH and the guest presented a host key
that neither the answers (`guest.host_key`) nor the known_hosts file vouch for. The user compares
the fingerprint with the guest's console and trusts it (the run pins it and goes on) or not (the
step fails; nothing is sent to the guest)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from tui.widgets.wizard.choice import TrustDialog


class HostKeyDialog(TrustDialog):
    """Dismissed with True (trusted) or False (rejected); Reject is focused first."""

    DEFAULT_CSS = """
    HostKeyDialog { align: center middle; }
    HostKeyDialog > Vertical {
        width: 70; max-width: 100%; height: auto; padding: 1 2; border: thick $warning; background: $surface;
    }
    HostKeyDialog #hostkey { margin: 1 0; text-style: bold; color: $warning; }
    HostKeyDialog Horizontal { height: auto; align: center middle; margin-top: 1; }
    HostKeyDialog Button { margin: 0 1; }
    """

    def __init__(self, guest: str, fingerprint: str) -> None:
        super().__init__()
        self.guest = guest
        self.fingerprint = fingerprint

    def body(self) -> ComposeResult:
        yield Static(f"[b]Trust the guest's SSH host key?[/b]\n{self.guest} presented a key that is "
                     "not pinned and not in known_hosts.", markup=True, id="question")
        yield Static(self.fingerprint, id="hostkey", markup=False)
        yield Static("Compare it on the guest's console: [i]ssh-keygen -lf "
                     "/etc/ssh/ssh_host_ed25519_key.pub[/i]. Trust pins it for this run (a resume keeps "
                     "it); Reject stops the run here. To skip this question, put it in the answers: "
                     f"guest.host_key: {self.fingerprint}", classes="hint", id="why")
