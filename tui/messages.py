"""Messages the wizard's screens post, each a fact in the past tense.

The app and tests listen to these (tests collect them with `run_test(message_hook=...)`); screens
never reach into each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from backend.model.hostfacts import HostInventory
from backend.model.sizing import SizingResult


@dataclass
class ConnectionTested(Message):
    """The target answered and the user trusted its certificate."""

    url: str
    pve_version: str
    fingerprint: str
    inventory: HostInventory


@dataclass
class ConnectionFailed(Message):
    """A connection test failed; `error` is the one line shown to the user."""

    url: str
    error: str


@dataclass
class CertificateRejected(Message):
    """The user did not trust the certificate the target presented; no token was sent."""

    url: str
    fingerprint: str


@dataclass
class HostChosen(Message):
    node: str  # a node name, or "auto"
    resolved: str  # the node that "auto" stood for


@dataclass
class SizingChanged(Message):
    """The sizing inputs changed and the findings were recomputed."""

    vcpus: int | None
    memory_gib: int | None
    disk_gib: int | None
    result: SizingResult | None  # None while an input is not a number


@dataclass
class RecommendationApplied(Message):
    vcpus: int
    memory_gib: int
    disk_gib: int


@dataclass
class BlockersOverridden(Message):
    """The user went past these blockers on purpose, having seen why they block."""

    ids: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass
class StorageNetworkChosen(Message):
    storage: str
    bridge: str
    ova: str
    address: str


@dataclass
class GuestChosen(Message):
    """The guest and VAST answers were committed; secrets as their references only."""

    user: str
    password_ref: str
    key_ref: str
    host_key: str
    vms_user: str
    vms_password_ref: str
    limits: bool


@dataclass
class AnswersSaved(Message):
    path: str


@dataclass
class RunLaunched(Message):
    run_dir: str
    resumed: bool


@dataclass
class RunEnded(Message):
    exit_code: int
    outcome: str
    message: str


# --- the dashboard and the result screen (screens/dashboard.py, screens/result.py) ---------------


@dataclass
class AbortConfirmed(Message):
    """The user confirmed aborting the run; the engine is being cancelled (the journal keeps where
    it stopped, so the run can be resumed)."""

    run_dir: str


@dataclass
class RollbackRequested(Message):
    """After a diagnosed failure, the user asked to roll back to the pre-install snapshot, apply the
    diagnosis' remedy (`changes`, e.g. {"vcpus": 12}) to the VM's config and retry the install. The
    app (backend/steps/recovery.py on the engine's side) carries it out."""

    run_dir: str
    diagnosis: str
    changes: dict


@dataclass
class ReportOpened(Message):
    """The result screen wrote (or found) the run's report.md and showed it."""

    path: str


@dataclass
class HostKeyAnswered(Message):
    """The user answered whether to trust a guest SSH host key that was neither pinned nor known;
    trusted pins it for the run, rejected fails the step."""

    guest: str
    fingerprint: str
    trusted: bool
