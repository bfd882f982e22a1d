"""Saved answers reopen in the wizard (`--answers FILE`): prefilled, on the first step that needs the
user (a problem in its fields, a sizing blocker, a certificate only the user can trust), everything
valid before it passed as Next passes it and kept for Back; a value that does not validate is shown
as written, with the model's message, on its own step; a secret is never more than its reference."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from backend.model import answers as answers_mod
from tests.test_cli_first_hour import quiet_cli
from tests.test_tui_lab import lab_available  # noqa: F401  - a fixture: skips where the lab cannot start
from tests.tui_helpers import FINGERPRINT, Opener, key, make_app, to_step, wait_for_screen
from tests.tui_lab_helpers import screen_name, until
from tui.app import WizardApp
from tui.widgets.wizard.findings import FindingsList
from tui.widgets.wizard.summary import AnswersSummary
from tui.wizardstate import WizardState

LAB_ANSWERS = """\
proxmox: {url: lab, node: pve}
lab: {host_profile: seed}
vm: {name: lab-vm-7, vcpus: 10, memory_gib: 122, disk_gib: 1200, storage: local-lvm, bridge: vmbr0}
guest: {user: centos, address: dhcp}
vast: {cluster_name: lab-class-7, admin_user: admin}
"""
REAL_HOST = "proxmox: {url: 'https://pve.example:8006', token_id: 'root@pam!vlb', token_secret: 'env:PVE_TOKEN'%s}\n"


async def reopened(pilot, app) -> None:
    """Let the reopened wizard test its connection and pass the valid steps."""
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


def reopen(tmp_path, text: str, opener: Opener | None = None, **state: object):
    path = tmp_path / "answers.yaml"
    path.write_text(text)
    return make_app(WizardState.reopen(path, **state), opener=opener, first_step="reopen")


def screens(app) -> list[str]:
    return [type(s).__name__ for s in app.screen_stack[1:]]


def loaded_problems(app) -> str:
    box = app.screen.query_one("#loaded", Static)
    return str(box.render()) if box.display else ""


async def test_a_complete_lab_file_opens_on_review_with_its_values_and_every_step_behind_it(tmp_path):
    opener = Opener()
    app = reopen(tmp_path, LAB_ANSWERS, opener)
    async with app.run_test(size=(80, 24)) as pilot:
        await reopened(pilot, app)
        assert screens(app) == ["ConnectScreen", "HostScreen", "SizingScreen", "StorageNetworkScreen",
                                "GuestScreen", "ReviewScreen"]
        assert len(opener.asked) == 1  # tested by the wizard itself: the lab's certificate is its own
        summary = dict(app.screen.query_one(AnswersSummary).rows)
        assert summary["VM"].startswith("lab-vm-7: 10 vCPUs") and "122 GiB" in summary["VM"]
        assert "1200 GiB disk" in summary["VM"] and "cluster lab-class-7" in summary["VAST"]
        assert summary["Node"] == "pve"
        assert app.screen.next_enabled and loaded_problems(app) == ""
        assert app.screen.query_one("#save-path", Input).value == str(tmp_path / "answers.yaml")
        await pilot.press("escape", "escape")  # Back: the steps passed are there, prefilled
        await pilot.pause()
        assert type(app.screen).__name__ == "StorageNetworkScreen"
        assert app.screen.query_one("#name", Input).value == "lab-vm-7"
        await pilot.press("escape")
        await pilot.pause()
        sizes = [app.screen.query_one(f"#{field}", Input).value for field in ("vcpus", "memory", "disk")]
        assert sizes == ["10", "122", "1200"]


async def test_24_vcpus_on_the_seed_host_open_sizing_with_the_blocker_and_next_off_until_overridden(tmp_path):
    app = reopen(tmp_path, "proxmox: {url: lab}\nvm: {vcpus: 24}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await reopened(pilot, app)
        assert screens(app) == ["ConnectScreen", "HostScreen", "SizingScreen"]
        screen = app.screen
        assert screen.query_one("#vcpus", Input).value == "24"
        assert [f.id for f in screen.query_one(FindingsList).findings if f.severity == "blocker"] == ["vcpus-over-cores"]
        assert "24 vCPUs exceed the host's 12 physical cores" in str(screen.query_one(FindingsList).render())
        assert not screen.next_enabled
        await pilot.press(key(app, "next"))
        await pilot.pause()
        assert app.screen is screen  # Next refused
        await pilot.press("ctrl+o")
        await wait_for_screen(pilot, app, "OverrideDialog")
        await pilot.press("o")
        await pilot.pause()
        assert screen.next_enabled
        await pilot.press(key(app, "next"))
        await pilot.pause()
        assert type(app.screen).__name__ == "StorageNetworkScreen" and app.state.answers.vm.vcpus == 24


async def test_with_force_the_blocker_does_not_stop_the_reopened_wizard(tmp_path):
    app = reopen(tmp_path, "proxmox: {url: lab}\nvm: {vcpus: 24}\n", force=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await reopened(pilot, app)
        assert screens(app)[-1] == "ReviewScreen" and app.state.answers.vm.vcpus == 24


async def test_an_invalid_value_opens_its_step_as_written_with_the_models_message(tmp_path):
    app = reopen(tmp_path, "proxmox: {url: lab}\nvm: {vcpus: lots, memory_gib: 122}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await reopened(pilot, app)
        assert screens(app)[-1] == "SizingScreen"
        screen = app.screen
        assert screen.query_one("#vcpus", Input).value == "lots"
        assert screen.query_one("#memory", Input).value == "122"  # what validated is loaded
        assert "vm.vcpus: must be a whole number or 'auto' (got 'lots')" in loaded_problems(app)
        assert not screen.next_enabled
        screen.query_one("#vcpus", Input).value = "12"
        await pilot.pause()
        await pilot.press(key(app, "next"))
        await pilot.pause()
        assert type(app.screen).__name__ == "StorageNetworkScreen" and app.state.answers.vm.vcpus == 12
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and loaded_problems(app) == ""  # fixed: no longer said


async def test_a_bad_guest_value_opens_the_guest_step_and_a_secret_value_is_never_shown(tmp_path):
    secret = "hunter2-not-a-reference"
    app = reopen(tmp_path, f"proxmox: {{url: lab}}\nguest: {{user: Bad User, password: {secret}}}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await reopened(pilot, app)
        assert screens(app)[-1] == "GuestScreen"
        screen = app.screen
        assert screen.query_one("#user", Input).value == "Bad User"
        assert screen.query_one("#password", Input).value == ""
        problems = loaded_problems(app)
        assert "guest.user: must be a Linux user name" in problems and "guest.password: a secret must be a " \
            "reference" in problems
        assert secret not in problems and secret not in str(app.state.raw) and secret not in str(app.state.answers)


async def test_an_empty_file_opens_connect_saying_the_target_is_missing(tmp_path):
    opener = Opener()
    app = reopen(tmp_path, "", opener)
    async with app.run_test(size=(80, 24)) as pilot:
        await reopened(pilot, app)
        assert screens(app) == ["ConnectScreen"] and opener.asked == []
        assert "proxmox.url: required but missing" in loaded_problems(app)


async def test_a_real_hosts_unpinned_certificate_waits_for_the_user_then_the_wizard_goes_on(tmp_path):
    opener = Opener(pin=True)
    app = reopen(tmp_path, REAL_HOST % "", opener)
    async with app.run_test(size=(80, 24)) as pilot:
        await reopened(pilot, app)
        assert screens(app) == ["ConnectScreen"] and opener.asked == []  # nothing sent before the user asks
        assert app.screen.query_one("#url", Input).value == "https://pve.example:8006"
        assert app.screen.query_one("#token-secret", Input).value == "env:PVE_TOKEN"
        assert "not pinned" in app.screen.status
        await pilot.press(key(app, "test"))
        await wait_for_screen(pilot, app, "FingerprintDialog")
        await pilot.press("y")
        await reopened(pilot, app)
        assert screens(app)[-1] == "ReviewScreen" and app.state.answers.proxmox.fingerprint == FINGERPRINT


async def test_a_real_host_pinned_in_the_file_is_tested_without_a_question(tmp_path):
    opener = Opener()
    app = reopen(tmp_path, REAL_HOST % f", fingerprint: '{FINGERPRINT}'", opener)
    async with app.run_test(size=(80, 24)) as pilot:
        await reopened(pilot, app)
        assert screens(app)[-1] == "ReviewScreen" and len(opener.asked) == 1
        assert opener.asked[0].proxmox.fingerprint == FINGERPRINT


async def test_a_target_that_does_not_vouch_for_its_certificate_is_asked_about_even_when_tested_alone(tmp_path):
    """The negative of the lab's case: a provider's target whose certificate nothing pins (a pin to
    save) is shown to the user, and nothing is read before the answer."""
    opener = Opener(pin=True)
    app = reopen(tmp_path, LAB_ANSWERS, opener)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_screen(pilot, app, "FingerprintDialog")
        assert not opener.probes[0].inventory_read
        await pilot.press("n")
        await reopened(pilot, app)
        assert screens(app) == ["ConnectScreen"] and not opener.probes[0].inventory_read


async def test_a_node_the_cluster_does_not_have_opens_the_host_step(tmp_path):
    app = reopen(tmp_path, "proxmox: {url: lab, node: pve9}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await reopened(pilot, app)
        assert screens(app)[-1] == "HostScreen"
        assert "proxmox.node: node pve9 is not in this cluster" in loaded_problems(app)


async def test_a_storage_the_node_does_not_have_opens_storage_and_network_saying_what_was_chosen(tmp_path):
    app = reopen(tmp_path, "proxmox: {url: lab}\nvm: {storage: local-zfs, bridge: vmbr9}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await reopened(pilot, app)
        assert screens(app)[-1] == "StorageNetworkScreen"
        problems = loaded_problems(app)
        assert "vm.storage: node pve has no storage local-zfs: local-lvm is chosen, check it" in problems
        assert "vm.bridge: node pve has no bridge vmbr9: vmbr0 is chosen, check it" in problems
        await pilot.press(key(app, "next"))
        await pilot.pause()
        assert type(app.screen).__name__ == "GuestScreen" and app.state.problems == {}


async def test_answers_saved_at_review_reopen_on_review(tmp_path):
    first = make_app()
    target = tmp_path / "saved.yaml"
    async with first.run_test(size=(80, 24)) as pilot:
        await to_step(pilot, first, "review")
        first.screen.query_one("#save-path", Input).value = str(target)
        await pilot.press("ctrl+s")
        await pilot.pause()
    saved = answers_mod.load(target)
    app = make_app(WizardState.reopen(target), first_step="reopen")
    async with app.run_test(size=(80, 24)) as pilot:
        await reopened(pilot, app)
        assert screens(app)[-1] == "ReviewScreen" and app.state.problems == {}
        assert app.state.answers == saved


@pytest.mark.parametrize("text, said", [
    (None, "no such answers file"),
    ("vm: {vcpus: [\n", "invalid YAML"),
    ("- a list\n", "must be a mapping"),
])
def test_a_file_the_wizard_cannot_read_is_bad_input_before_any_ui(tmp_path, text, said):
    path = tmp_path / "answers.yaml"
    if text is not None:
        path.write_text(text)
    for args in (("--answers", str(path)), ("demo", "--answers", str(path))):
        done = quiet_cli(*args, cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        assert said in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert "\x1b[" not in done.stdout  # no UI was drawn


def test_answers_for_the_wizard_only(tmp_path):
    done = quiet_cli("--answers", "a.yaml", "check", "a.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "--answers FILE opens the wizard" in done.stderr, done.stderr


@pytest.mark.usefixtures("lab_available")
async def test_on_the_real_lab_24_vcpus_open_sizing_through_the_front_doors_own_probe(tmp_path):
    """The built-in lab's certificate is its provider's own (nothing to ask); the seed host's facts
    come through the real probe, and its blocker is the front door's."""
    path = tmp_path / "answers.yaml"
    path.write_text("proxmox: {url: lab}\nvm: {vcpus: 24}\n")
    app = WizardApp(WizardState.reopen(path, speed=30), first_step="reopen", blink=False)  # the real probe opener
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: screen_name(app) == "SizingScreen" and app.screen.query_one(FindingsList).findings,
                    what="the reopened Sizing step and its findings")
        assert screens(app) == ["ConnectScreen", "HostScreen", "SizingScreen"]
        assert "vcpus-over-cores" in [f.id for f in app.screen.query_one(FindingsList).findings]
        assert not app.screen.next_enabled
