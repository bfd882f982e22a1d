"""Helpers for the wizard's tests: fixed host inventories, probes that answer without a network,
and an app factory with the seams set (no Proxmox, no lab, no cursor blink)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backend.clock import Clock
from backend.errors import RunFailed, TargetUnreachable
from backend.model.answers import Answers
from backend.model.hostfacts import HostInventory
from backend.run.engine import RunContext, Step
from backend.run.service import Probe
from backend.secrets import Secret
from backend.target import Target, TargetOptions
from tests.conftest import SEED, SMALL, node
from tui.app import Demo, WizardApp
from tui.keys import KEYS
from tui.wizardstate import WizardState

FINGERPRINT = ":".join(f"{i * 7 % 256:02X}" for i in range(32))

SEED_INVENTORY = HostInventory("9.1.3", (SEED,), FINGERPRINT)
SMALL_INVENTORY = HostInventory("9.1.3", (SMALL,), FINGERPRINT)
BIG_INVENTORY = HostInventory(
    "8.4.1",
    (
        node(32, 64, 503.8, sockets=2, storage_gib=7000, name="pve1", used_gib=96, version="8.4.1"),
        node(32, 64, 503.8, sockets=2, storage_gib=7000, name="pve2", used_gib=12, version="8.4.1"),
        node(32, 64, 503.8, sockets=2, storage_gib=7000, name="pve3", used_gib=300, version="8.4.1"),
    ),
    FINGERPRINT,
    "lab-cluster",
)


@dataclass
class StaticProbe(Probe):
    """A target that answers with fixed facts; records whether the token was used and it was closed."""

    facts: HostInventory = SEED_INVENTORY
    label: str = "test host"
    url: str = "https://192.0.2.10:8006"
    fingerprint: str = FINGERPRINT
    pin_to_save: str | None = None
    inventory_read: bool = False
    closed: bool = False

    async def inventory(self) -> HostInventory:
        self.inventory_read = True
        return self.facts

    async def close(self) -> None:
        self.closed = True


@dataclass
class Opener:
    """A probe opener that hands out StaticProbes (or raises `error`) and remembers what it was asked."""

    facts: HostInventory = SEED_INVENTORY
    pin: bool = False
    error: BaseException | None = None
    asked: list[Answers] = field(default_factory=list)
    probes: list[StaticProbe] = field(default_factory=list)

    async def __call__(self, answers: Answers) -> Probe:
        self.asked.append(answers)
        if self.error is not None:
            raise self.error
        probe = StaticProbe(self.facts, pin_to_save=FINGERPRINT if self.pin else None)
        self.probes.append(probe)
        return probe


def make_app(state: WizardState | None = None, *, opener: Opener | None = None, first_step: str = "connect",
             runs_root: Path | None = None, plan=None, demo: Demo | None = None) -> WizardApp:
    kwargs = {}
    if plan is not None:
        kwargs["plan"] = plan
        kwargs["run_target_opener"] = fixed_target
    return WizardApp(state or WizardState(), probe_opener=opener or Opener(), first_step=first_step,
                     runs_root=runs_root, demo=demo, blink=False, **kwargs)


async def fixed_target(answers: Answers, options: TargetOptions) -> Target:
    """A target whose clock stands still, so durations on screen are deterministic."""
    return Target(label="test target", proxmox_url="https://192.0.2.10:8006", token_id="root@pam!vlb",
                  token_secret=Secret("not-used-by-the-test-plan"), clock=Clock(scale=0.0, origin_target=1e9))


def small_plan(fail_at: str | None = None):
    """A plan of three steps; the one named `fail_at` fails with a clear error."""

    def make(step_id: str, title: str) -> Step:
        async def run(ctx: RunContext) -> dict:
            ctx.progress(f"{title.lower()} in progress")
            if step_id == fail_at:
                raise RunFailed(f"{title.lower()} failed: the OVA is missing")
            return {step_id: True}

        return Step(step_id, title, "provision", run)

    return lambda: [make("connect", "Connect to Proxmox"), make("create_vm", "Create the VM"),
                    make("first_boot", "First boot")]


UNREACHABLE = TargetUnreachable("cannot reach https://192.0.2.10:8006: connection refused")


async def wait_for_screen(pilot, app: WizardApp, name: str, tries: int = 50) -> None:
    """Let the app run until the screen named `name` is on top (a worker pushes it)."""
    for _ in range(tries):
        if type(app.screen).__name__ == name:
            return
        await pilot.pause(0.01)
    raise AssertionError(f"{name} never showed; on top: {app.screen!r}")


def key(app: WizardApp, binding_id: str) -> str:
    """The key of an action where the app runs: the terminal's, or the browser's in the web demo."""
    terminal, web = KEYS[binding_id]
    return web if app.kiosk else terminal


async def connect(pilot, app: WizardApp) -> None:
    """From the Connect screen: test the connection, trust the certificate."""
    await pilot.press(key(app, "test"))
    await wait_for_screen(pilot, app, "FingerprintDialog")
    await pilot.press("y")
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def to_step(pilot, app: WizardApp, step: str) -> None:
    """Drive the wizard from Connect to `step` with the defaults."""
    order = ["connect", "host", "sizing", "storage_network", "guest", "review"]
    await connect(pilot, app)
    for _ in range(order.index(step)):
        await pilot.press(key(app, "next"))
        await pilot.pause()
    assert type(app.screen).__name__.lower().startswith(step.replace("_", "")[:4]), app.screen


def posted(seen: list, kind: type) -> list:
    """Messages of `kind` collected by a message_hook, once each (a bubbling message is seen at every hop)."""
    unique = {id(m): m for m in seen if isinstance(m, kind)}
    return list(unique.values())
