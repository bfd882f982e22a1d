"""Storage & network, Review and the run: answers saved and read back equal (no secret in them),
Start creates the run directory and runs the plan, the app exits with the engine's exit code."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input, Select

from backend.model import answers as answers_mod
from backend.run.journal import ANSWERS, RunDir
from tests.tui_helpers import BIG_INVENTORY, FINGERPRINT, Opener, make_app, posted, small_plan, to_step
from tui.messages import AbortConfirmed, AnswersSaved, RunEnded, RunLaunched, StorageNetworkChosen
from tui.widgets.wizard.findings import FindingsList
from tui.widgets.wizard.summary import AnswersSummary
from tui.wizardstate import WizardState

SECRET_VALUE = "3f9a61c2-tok-secret-value"


async def test_storage_and_network_answers_are_written():
    app = make_app()
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await to_step(pilot, app, "storage_network")
        screen = app.screen
        assert screen.query_one("#storage", Select).value == "local-lvm"
        screen.query_one("#address", Input).value = "10.0.0.50"
        screen.query_one("#name", Input).value = "lb-test"
        await pilot.press("ctrl+n")
        await pilot.pause()
        chosen = posted(seen, StorageNetworkChosen)[-1]
        assert (chosen.storage, chosen.bridge, chosen.address) == ("local-lvm", "vmbr0", "10.0.0.50")
        assert app.state.answers.vm.name == "lb-test"
        assert type(app.screen).__name__ == "GuestScreen"  # the next step


async def test_a_bad_guest_address_keeps_the_screen_and_names_the_field():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "storage_network")
        app.screen.query_one("#address", Input).value = "10.0.0.300"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "StorageNetworkScreen"
        assert app.screen.status.startswith("guest.address:")


async def test_a_disk_too_big_for_the_storage_is_shown_on_the_storage_screen():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "sizing")
        app.screen.query_one("#disk", Input).value = "1900"
        await pilot.pause()
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("o")
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        ids = [f.id for f in app.screen.query_one(FindingsList).findings]
        assert ids == ["storage-too-small"]


async def test_review_saves_answers_that_load_back_equal_without_the_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("PVE_TOKEN", SECRET_VALUE)
    state = WizardState()
    state.answers = answers_mod.parse(
        "proxmox: {url: 'https://pve.example:8006', token_id: 'root@pam!vlb', token_secret: 'env:PVE_TOKEN'}\n")
    app = make_app(state, opener=Opener(pin=True))
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await to_step(pilot, app, "review")
        summary = " ".join(value for _, value in app.screen.query_one(AnswersSummary).rows)
        assert "env:PVE_TOKEN" in summary and SECRET_VALUE not in summary
        target = tmp_path / "saved" / "answers.yaml"
        app.screen.query_one("#save-path", Input).value = str(target)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert posted(seen, AnswersSaved)[-1].path == str(target)
        text = target.read_text()
        assert SECRET_VALUE not in text and "token_secret: env:PVE_TOKEN" in text
        loaded = answers_mod.load(target)
        assert loaded == app.state.answers
        assert loaded.vm.vcpus == 12 and loaded.vm.memory_gib == 120  # explicit, not 'auto'
        assert loaded.proxmox.fingerprint is not None
        assert target.stat().st_mode & 0o777 == 0o600


def _dashboard(app):
    """The dashboard of the run (the result screen covers it once the run ended)."""
    return next(s for s in app.screen_stack if type(s).__name__ == "DashboardScreen")


async def test_start_creates_the_run_and_the_app_exits_with_the_engine_code(tmp_path):
    state = WizardState(run_dir=str(tmp_path / "run"))
    app = make_app(state, plan=small_plan())
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await to_step(pilot, app, "review")
        await pilot.press("ctrl+n")
        await pilot.pause()
        session = _dashboard(app).session
        await app.screen.workers.wait_for_complete()
        await pilot.pause()
        launched = posted(seen, RunLaunched)
        assert launched and launched[0].run_dir == str(tmp_path / "run") and not launched[0].resumed
        ended = posted(seen, RunEnded)
        assert ended and ended[0].exit_code == 0
        assert type(app.screen).__name__ == "ResultScreen"
        assert [s.status for s in session.state.steps.values()] == ["done", "done", "done"]
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    run = RunDir.open(tmp_path / "run")
    assert answers_mod.load(run.path / ANSWERS) == state.answers
    assert json.loads((run.path / "run.json").read_text())["status"] == "finished"


async def test_a_failed_run_exits_1_with_the_reason_on_screen(tmp_path):
    state = WizardState(run_dir=str(tmp_path / "run"))
    app = make_app(state, plan=small_plan(fail_at="create_vm"))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "review")
        await pilot.press("ctrl+n")
        await pilot.pause()
        await app.screen.workers.wait_for_complete()
        await pilot.pause()
        outcome = str(app.screen.query_one("#outcome").render())
        assert "FAILED" in outcome and "the OVA is missing" in outcome
        assert [s.status for s in _dashboard(app).session.state.steps.values()] == ["done", "failed", "pending"]
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 1


async def test_the_run_is_not_left_by_back_and_aborts_only_when_confirmed(tmp_path):
    import asyncio

    from backend.run.engine import Step

    started = asyncio.Event()

    async def forever(ctx):
        started.set()
        await asyncio.sleep(3600)

    state = WizardState(run_dir=str(tmp_path / "run"))
    app = make_app(state, plan=lambda: [Step("wait", "Wait forever", "install", forever)])
    seen = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await to_step(pilot, app, "review")
        await pilot.press("ctrl+n")
        await asyncio.wait_for(started.wait(), 5)
        await pilot.press("escape")
        assert type(app.screen).__name__ == "DashboardScreen"
        await pilot.press("q")  # quitting a running run asks first
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmDialog"
        await pilot.press("n")
        await pilot.pause()
        assert type(app.screen).__name__ == "DashboardScreen" and app.screen.session.running
        await pilot.press("q", "y")
        await app.screen.workers.wait_for_complete()
        await pilot.pause()
        assert posted(seen, AbortConfirmed)
        assert "ABORTED" in str(app.screen.query_one("#outcome").render())
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 130
    assert RunDir.open(tmp_path / "run").read_meta().get("status") == "finished"


async def test_back_walks_all_the_way_to_connect():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "review")
        names = []
        for _ in range(5):
            await pilot.press("escape")
            await pilot.pause()
            names.append(type(app.screen).__name__)
        assert names == ["GuestScreen", "StorageNetworkScreen", "SizingScreen", "HostScreen", "ConnectScreen"]


def _warned(seen: list) -> list[str]:
    """What the app said in its notifications (Textual's Notify messages)."""
    return [m.notification.message for m in seen if type(m).__name__ == "Notify"]


async def test_saving_says_how_to_replay_what_start_does_beyond_the_answers(tmp_path):
    """A blocker overridden on purpose is a run option, not an answer: the saved file alone is refused
    (exit 3), so saving says the command that replays Start's run (`--force`). Nothing is said when
    `--auto FILE` alone replays it."""
    app = make_app()
    seen: list = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await to_step(pilot, app, "review")
        plain = tmp_path / "plain.yaml"
        app.screen.query_one("#save-path", Input).value = str(plain)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert plain.exists() and not _warned(seen)
        await pilot.press("escape", "escape", "escape")  # back to Sizing
        await pilot.pause()
        assert type(app.screen).__name__ == "SizingScreen"
        app.screen.query_one("#vcpus", Input).value = "24"  # 24 vCPUs on 12 cores: a blocker
        await pilot.pause()
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("o")
        await pilot.pause()
        for _ in range(3):
            await pilot.press("ctrl+n")
            await pilot.pause()
        forced = tmp_path / "forced answers.yaml"
        app.screen.query_one("#save-path", Input).value = str(forced)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert answers_mod.load(forced).vm.vcpus == 24
        assert _warned(seen) == [f"Start runs past blockers overridden on purpose, which the answers do not hold; "
                                 f"replay it with vast-loopback --auto '{forced}' --force"]


async def test_saving_a_class_says_it_replays_with_fleet_up(tmp_path):
    app = make_app(opener=Opener(facts=BIG_INVENTORY))
    seen: list = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await to_step(pilot, app, "review")
        saved = tmp_path / "class.yaml"
        app.screen.query_one("#save-path", Input).value = str(saved)
        app.screen.query_one("#fleet-count", Input).value = "many"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen.status == "clusters: 'many' is not a number of clusters (1-64)" and not saved.exists()
        app.screen.query_one("#fleet-count", Input).value = "3"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert _warned(seen) == ["Start runs a class of 3 clusters, which the answers do not hold; replay it with "
                                 f"vast-loopback fleet up {saved} --count 3 --run-dir DIR"]


KEPT_HTTPS = f"""\
proxmox:
  url: https://pve.example:8006
  token_id: root@pam!vlb
  token_secret: env:PVE_TOKEN
  node: pve
  fingerprint: {FINGERPRINT}
  keep_host_changes: true
"""
KEPT_LAB = """\
proxmox: {url: lab, keep_host_changes: true}
lab: {host_profile: small, network: {sdn_vnet: true, jump_host: elsewhere}, ova: generic}
"""
KEPT_REST = f"""\
vm: {{name: lb-kept, vcpus: 11, memory_gib: 120, disk_gib: 900, vmid: 4242, first_boot_controller: sata}}
ova: local:import/other.ova
guest:
  address: 10.0.0.50
  user: vastdata
  port: 2222
  password: env:GUEST_PW
  key: file:/keys/id
  host_key: SHA256:Mkq2l/F71ofgIefIwt/YZGoNv5yEtEOfce05zXNPZbE
vast:
  build: release-5-4-1-1234567
  cluster_name: kept
  admin_user: ops
  admin_password: env:VMS_PW
  reboot_test: false
  cert_path: /etc/vms.crt
  fingerprint: {FINGERPRINT}
tuning: {{limits: false}}
"""


@pytest.mark.parametrize("target", [KEPT_HTTPS, KEPT_LAB], ids=["https", "lab"])
async def test_every_answer_the_wizard_holds_is_saved_as_it_was(tmp_path, target):
    """Answers with no default left, taken through every step unchanged (the connection tested, Next on
    each), save equal to what they were: no step drops a value it does not ask for (a saved file is
    what the wizard's run uses: tests/test_export_replay.py)."""
    start = answers_mod.parse(target + KEPT_REST)
    app = make_app(WizardState(answers=start.model_copy(deep=True)))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, app, "review")
        saved = tmp_path / "answers.yaml"
        app.screen.query_one("#save-path", Input).value = str(saved)
        await pilot.press("ctrl+s")
        await pilot.pause()
    loaded = answers_mod.load(saved)
    assert loaded.model_dump() == start.model_dump()
    own = start.proxmox.url  # the target provider's own section ('lab'); a real host's has none
    assert loaded.section(own) == start.section(own)
