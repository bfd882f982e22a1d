"""Exports replay exactly (issue 17, item 5): the answers the wizard saves at Review, run headless with
`--auto` against a fresh lab, make the same Proxmox requests and the same tuning as the wizard's own run.

The wizard is driven with Pilot on the built-in lab through every step with values that are not the
defaults (the `big` host, a node that is not the best one, 16 vCPUs, a 130 GiB VM, an 800 GiB disk, its
own VM name, the SDN VNet's bridge, the limits tuning off), saves at Review (^s) and starts its own run
(^n) up to UNTIL; the saved file is then replayed through the CLI's front door
(`main(["--auto", FILE, "--until", UNTIL])`) on a fresh lab. The two labs' request logs are compared
request by request and parameter by parameter, and so are the tuning events of the two journals.

What legitimately differs per run is normalised by name (`normalised`), nothing else:
- the run id in the VM's description (`vast-loopback run: <run id>`): each run has its own;
- the time of each request (`t`);
- GETs (reads: how many polls a wait takes depends on where the lab clock is when they land) and the
  guest agent's unanswered pings (`agent/ping` with status 500 while the guest boots: polls too).
The VMID is not normalised: both labs are fresh, so the next free VMID is the same one.

The negative control replays the file with values the wizard used taken out of it (`vm.memory_gib`,
`tuning.limits`: the defaults come back) and asserts the comparison names them.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import yaml
from textual.widgets import Checkbox, Input, Select

from backend.events import TuningApplied, TuningChecked
from backend.lab import facts as lab_facts
from backend.model.answers import Answers
from backend.model.sizing import recommend
from backend.run.journal import RunDir
from backend.run.plan import build_plan
from tests.proxmox_lab_support import requests_log
from tests.tui_lab_helpers import end_guests, require_lab, screen_name, until
from tui.app import WizardApp, demo_state
from tui.cli import main
from tui.wizardstate import WizardState

pytestmark = pytest.mark.slow

SPEED = 600.0
UNTIL = "verify_after_reboot"  # the VM created, tuned, switched to VirtIO SCSI and every tuning read back
VM_NAME = "replay-vm"
SIZES = {"vcpus": "16", "memory": "130", "disk": "800"}  # none of them the recommendation
RUN_ID = re.compile(r"(vast-loopback run: )\S+")


def up_to(until: str):
    """The wizard's run, stopped where `--until` stops the replay."""

    def plan():  # noqa: ANN202
        steps = build_plan()
        return steps[: [s.id for s in steps].index(until) + 1]

    return plan


# --- the comparison ---------------------------------------------------------------------------------


def normalised(state_dir: Path) -> list[dict]:
    """What a run asked the lab's Proxmox to do, in order: every POST, PUT and DELETE with its
    parameters and status, normalised as the module's docstring says."""
    requests = []
    for entry in requests_log(state_dir):
        if entry["method"] == "GET":
            continue
        if entry["path"].endswith("/agent/ping") and entry["status"] != 200:
            continue
        params = dict(entry["params"])
        if "description" in params:
            params["description"] = RUN_ID.sub(r"\1<run id>", params["description"])
        requests.append({"request": f"{entry['method']} {entry['path']}", "params": params,
                         "status": entry["status"]})
    return requests


def tuning(run_dir: Path) -> list[tuple]:
    """The tuning the guest received, as the run's journal recorded it (applied, then read back)."""
    found: list[tuple] = []
    for event in RunDir.open(run_dir).events():
        if isinstance(event, TuningApplied):
            found.append(("applied", event.id, event.changed, event.detail))
        elif isinstance(event, TuningChecked):
            found.append(("checked", event.id, event.expected, event.observed, event.ok, event.after_reboot))
    return found


def differences(wizard: Path, replay: Path) -> list[str]:
    """Every difference between the wizard's run and the replay, one line each, naming the request
    and the parameter (or the tuning) that differs; empty when they did the same."""
    said: list[str] = []
    ours, theirs = normalised(wizard / "lab"), normalised(replay / "lab")
    for index, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if a["request"] != b["request"]:
            said.append(f"request {index}: {a['request']} (wizard) != {b['request']} (replay)")
            continue
        for name in sorted(a["params"].keys() | b["params"].keys()):
            if a["params"].get(name) != b["params"].get(name):
                said.append(f"{a['request']}: {name}: {a['params'].get(name)!r} (wizard) != "
                            f"{b['params'].get(name)!r} (replay)")
        if a["status"] != b["status"]:
            said.append(f"{a['request']}: status {a['status']} (wizard) != {b['status']} (replay)")
    for extra in ours[len(theirs):]:
        said.append(f"only the wizard's run: {extra['request']}")
    for extra in theirs[len(ours):]:
        said.append(f"only the replay: {extra['request']}")
    wizard_tuning, replay_tuning = tuning(wizard), tuning(replay)
    said += [f"tuning only in the wizard's run: {t}" for t in wizard_tuning if t not in replay_tuning]
    said += [f"tuning only in the replay: {t}" for t in replay_tuning if t not in wizard_tuning]
    return said


# --- the wizard -------------------------------------------------------------------------------------


def wizard_app(run_dir: Path, until: str, answers: Answers | None = None) -> WizardApp:
    # By default the lab's world with an SDN VNet next to vmbr0, so the host offers a second bridge.
    answers = answers or Answers.model_validate({"proxmox": {"url": "lab"}, "lab": {"network": {"sdn_vnet": True}}})
    state = WizardState(answers=answers, speed=SPEED, run_dir=str(run_dir))
    return WizardApp(state, first_step="connect", runs_root=run_dir.parent / "none", plan=up_to(until), blink=False)


async def connect(pilot, app: WizardApp) -> None:  # noqa: ANN001 - Pilot
    await pilot.press("ctrl+t")
    await until(pilot, lambda: screen_name(app) == "FingerprintDialog", 60, "the lab's certificate")
    await pilot.press("y")
    await until(pilot, lambda: getattr(app.screen, "tested", False), 60, "the connection test")


async def save_and_start(pilot, app: WizardApp, saved: Path) -> None:  # noqa: ANN001 - Pilot
    """On Review: ^s to `saved`, then ^n, and wait for the end of the wizard's own run."""
    review = app.screen
    review.query_one("#save-path", Input).value = str(saved)
    await pilot.press("ctrl+s")
    await until(pilot, saved.exists, 10, "the saved answers")
    assert review.status == f"saved {saved}"
    await pilot.press("ctrl+n")
    await until(pilot, lambda: screen_name(app) == "DashboardScreen", 10, "the wizard's run")
    await until(pilot, lambda: screen_name(app) == "ResultScreen", 180, "the end of the wizard's run")
    assert app.screen.session.end.exit_code == 0, app.screen.session.end


async def drive_and_save(pilot, app: WizardApp, saved: Path) -> None:  # noqa: ANN001 - Pilot
    """Connect → Host → Sizing → Storage/Network → Guest → Review with values that are not the
    defaults, then ^s to `saved` and ^n to start the wizard's own run."""
    app.screen.query_one("#profile", Select).value = "big"
    await pilot.pause()
    await connect(pilot, app)
    await pilot.press("ctrl+n")
    await until(pilot, lambda: screen_name(app) == "HostScreen", 10, "the host step")

    inventory, best = app.state.inventory, app.state.best_node
    assert inventory is not None and best is not None and len(inventory.nodes) == 3
    other = next(n for n in inventory.nodes if n.node != best.node and recommend(n).feasible)
    names = [n.node for n in inventory.nodes]
    step = names.index(other.node) - names.index(best.node)  # the cursor starts on the best node
    await pilot.press(*(["down"] * step if step > 0 else ["up"] * -step), "enter")
    await pilot.pause()
    assert app.screen.choice == other.node
    await pilot.press("ctrl+n")
    await until(pilot, lambda: screen_name(app) == "SizingScreen", 10, "the sizing step")

    sizing = app.screen
    rec = app.state.sizing().recommendation
    assert (str(rec.vcpus), str(rec.memory_gib), str(rec.disk_gib)) != tuple(SIZES.values())
    for field, value in SIZES.items():
        sizing.query_one(f"#{field}", Input).value = value
    await pilot.pause()
    assert sizing.next_enabled, sizing.status
    await pilot.press("ctrl+n")
    await until(pilot, lambda: screen_name(app) == "StorageNetworkScreen", 10, "the storage step")

    storage = app.screen
    storage.query_one("#name", Input).value = VM_NAME
    assert lab_facts.SDN_VNET in app.state.node.bridges and app.state.answers.vm.bridge != lab_facts.SDN_VNET
    storage.query_one("#bridge", Select).value = lab_facts.SDN_VNET
    await pilot.pause()
    await pilot.press("ctrl+n")
    await until(pilot, lambda: screen_name(app) == "GuestScreen", 10, "the guest step")

    guest = app.screen
    assert guest.query_one("#limits", Checkbox).value is True
    guest.query_one("#limits", Checkbox).value = False
    await pilot.press("ctrl+n")
    await until(pilot, lambda: screen_name(app) == "ReviewScreen", 10, "the review step")
    await save_and_start(pilot, app, saved)


async def replay(saved: Path, run_dir: Path, until: str = UNTIL, *flags: str) -> int:
    """The saved answers headless, through the command line's front door, on a fresh lab: its exit code."""
    args = ["--auto", str(saved), "--run-dir", str(run_dir), "--speed", str(int(SPEED)), "--until", until, *flags]
    return await asyncio.to_thread(main, args)  # main runs its own event loop


# --- the tests --------------------------------------------------------------------------------------


async def test_the_answers_saved_at_review_replay_the_wizards_run_exactly(tmp_path, capsys):
    require_lab()
    saved, wizard_run, replay_run, lacking_run = (tmp_path / "answers.yaml", tmp_path / "wizard",
                                                  tmp_path / "replay", tmp_path / "lacking")
    app = wizard_app(wizard_run, UNTIL)
    try:
        async with app.run_test(size=(100, 40)) as pilot:
            await drive_and_save(pilot, app, saved)
        assert await replay(saved, replay_run) == 0

        # The wizard's run did what was chosen: the create POST on the chosen node, the sizes, the
        # name and the bridge; the resize to the chosen disk; no limits tuning.
        requests = normalised(wizard_run / "lab")
        create = next(r for r in requests if re.fullmatch(r"POST /nodes/[^/]+/qemu", r["request"]))
        node = app.state.answers.proxmox.node
        assert create["request"] == f"POST /nodes/{node}/qemu" and node != app.state.best_node.node
        assert (create["params"]["name"], create["params"]["cores"], create["params"]["memory"]) == (
            VM_NAME, SIZES["vcpus"], str(int(SIZES["memory"]) * 1024))
        assert create["params"]["net0"] == f"virtio,bridge={lab_facts.SDN_VNET}"
        assert any(r["request"].endswith("/resize") and r["params"]["size"] == f"{SIZES['disk']}G"
                   for r in requests)
        applied = [t[1] for t in tuning(wizard_run) if t[0] == "applied"]
        assert applied and not [t for t in applied if t.startswith("limits")]

        assert differences(wizard_run, replay_run) == []

        # Negative control: the file without two values the wizard used; their defaults come back
        # and the comparison names both (the create's memory, the limits tuning).
        data = yaml.safe_load(saved.read_text())
        del data["vm"]["memory_gib"], data["tuning"]["limits"]
        lacking = tmp_path / "lacking.yaml"
        lacking.write_text(yaml.safe_dump(data))
        assert await replay(lacking, lacking_run) == 0
        said = differences(wizard_run, lacking_run)
        assert any(line.startswith(f"POST /nodes/{node}/qemu: memory: '133120' (wizard) != ") for line in said), said
        assert any("tuning only in the replay: ('applied', 'limits" in line for line in said), said
        assert not [line for line in said if ": cores:" in line or ": name:" in line], said
    finally:
        end_guests(tmp_path)
    capsys.readouterr()


async def test_a_run_past_an_overridden_blocker_replays_with_the_force_review_names(tmp_path, capsys):
    """The demo's overcommit (24 vCPUs on the seed's 12 cores), overridden on purpose at Sizing: the
    saved file alone is refused (exit 3, nothing created), and with the `--force` that Review names
    when saving it creates the VM the wizard's run created."""
    require_lab()
    saved, wizard_run = tmp_path / "answers.yaml", tmp_path / "wizard"
    app = wizard_app(wizard_run, "create_vm", demo_state("overcommit", SPEED).answers)
    seen: list = []
    try:
        async with app.run_test(size=(100, 40), message_hook=seen.append) as pilot:
            await connect(pilot, app)
            for name in ("HostScreen", "SizingScreen"):
                await pilot.press("ctrl+n")
                await until(pilot, lambda name=name: screen_name(app) == name, 10, name)
            assert not app.screen.next_enabled
            await pilot.press("ctrl+o")
            await until(pilot, lambda: screen_name(app) == "OverrideDialog", 10, "the override dialog")
            await pilot.press("o")
            await until(pilot, lambda: screen_name(app) == "SizingScreen" and app.screen.next_enabled, 10, "it")
            for name in ("StorageNetworkScreen", "GuestScreen", "ReviewScreen"):
                await pilot.press("ctrl+n")
                await until(pilot, lambda name=name: screen_name(app) == name, 10, name)
            await save_and_start(pilot, app, saved)
        named = [m.notification.message for m in seen if type(m).__name__ == "Notify"]
        assert any(text.endswith(f"replay it with vast-loopback --auto {saved} --force") for text in named), named

        assert await replay(saved, tmp_path / "refused", "create_vm") == 3
        refused = tmp_path / "refused" / "lab"
        assert requests_log(refused) and normalised(refused) == []  # the host was read, nothing changed
        assert await replay(saved, tmp_path / "forced", "create_vm", "--force") == 0
        create = next(r for r in normalised(wizard_run / "lab") if r["request"] == "POST /nodes/pve/qemu")
        assert create["params"]["cores"] == "24"
        assert differences(wizard_run, tmp_path / "forced") == []
    finally:
        end_guests(tmp_path)
    capsys.readouterr()
