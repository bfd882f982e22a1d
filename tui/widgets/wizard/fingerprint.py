"""The fingerprint dialog: shows the certificate a TLS server presented (a Proxmox API, or a VMS
that nothing else vouches for) and asks whether to trust it. Nothing (no token, no password) is
sent to it before the user answers yes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from tui.widgets.wizard.choice import TrustDialog


def split_fingerprint(fingerprint: str, pairs_per_line: int = 16) -> str:
    """AA:BB:... in lines of 16 pairs, so a SHA-256 fingerprint fits an 80-column terminal."""
    pairs = fingerprint.split(":")
    return "\n".join(":".join(pairs[i:i + pairs_per_line]) for i in range(0, len(pairs), pairs_per_line))


class FingerprintDialog(TrustDialog):
    """Dismissed with True (trusted) or False (rejected)."""

    DEFAULT_CSS = """
    FingerprintDialog { align: center middle; }
    FingerprintDialog > Vertical {
        width: 64; height: auto; padding: 1 2; border: thick $warning; background: $surface;
    }
    FingerprintDialog #fp { margin: 1 0; text-style: bold; color: $warning; }
    FingerprintDialog Horizontal { height: auto; align: center middle; }
    FingerprintDialog Button { margin: 0 1; }
    """

    PROXMOX_HINT = ("Compare it with the host's (Datacenter → node → Certificates, or [i]pvenode cert info[/i]). "
                    "The API token is sent only after you trust it; the fingerprint is then pinned in the answers.")

    def __init__(self, label: str, url: str, fingerprint: str, hint: str = PROXMOX_HINT) -> None:
        super().__init__()
        self.label = label
        self.url = url
        self.fingerprint = fingerprint
        self.hint = hint

    def body(self) -> ComposeResult:
        yield Static(f"[b]Trust this certificate?[/b]\n{self.label}\n{self.url}")
        yield Static(split_fingerprint(self.fingerprint), id="fp")
        yield Static(self.hint, classes="hint")
