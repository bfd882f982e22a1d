"""Snapshots of every wizard screen at 80x24 (and one on a bigger terminal), from fixed host facts,
with no clock and no cursor blink. Update on purpose with `pytest --snapshot-update`."""

from __future__ import annotations

import shutil
from pathlib import Path

from textual.widgets import Input

from tests.tui_helpers import BIG_INVENTORY, Opener, connect, make_app, small_plan, to_step, wait_for_screen
from tui.wizardstate import WizardState

RUN_DIR = Path("/tmp/vlb-snapshot-run")  # shown on the run screen, so it must not vary
REOPENED = Path("/tmp/vlb-snapshot-answers.yaml")  # named on the reopened step, so it must not vary


def test_start_screen(snap_compare, tmp_path):
    assert snap_compare(make_app(first_step="start", runs_root=tmp_path), terminal_size=(80, 24))


def test_connect_screen_connected(snap_compare):
    async def run_before(pilot):
        await connect(pilot, pilot.app)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_connect_screen_real_host_form(snap_compare):
    async def run_before(pilot):
        await pilot.click("#scheme-https")
        pilot.app.screen.query_one("#url", Input).value = "https://pve.example:8006"
        pilot.app.screen.query_one("#token-id", Input).value = "root@pam!vlb"
        pilot.app.screen.query_one("#token-secret", Input).value = "env:PVE_TOKEN"
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_fingerprint_dialog(snap_compare):
    async def run_before(pilot):
        await pilot.press("ctrl+t")
        await wait_for_screen(pilot, pilot.app, "FingerprintDialog")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_host_screen_three_nodes(snap_compare):
    async def run_before(pilot):
        await to_step(pilot, pilot.app, "host")

    assert snap_compare(make_app(opener=Opener(facts=BIG_INVENTORY)), terminal_size=(80, 24), run_before=run_before)


async def _sizing_with_24_vcpus(pilot):
    await to_step(pilot, pilot.app, "sizing")
    pilot.app.screen.query_one("#vcpus", Input).value = "24"
    await pilot.pause()


def test_sizing_screen_blocked(snap_compare):
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_sizing_with_24_vcpus)


def test_override_dialog(snap_compare):
    async def run_before(pilot):
        await _sizing_with_24_vcpus(pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_storage_network_screen(snap_compare):
    async def run_before(pilot):
        await to_step(pilot, pilot.app, "storage_network")

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_guest_screen(snap_compare):
    async def run_before(pilot):
        await to_step(pilot, pilot.app, "guest")
        pilot.app.screen.query_one("#password", Input).value = "env:VLB_GUEST_PW"
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_host_key_dialog(snap_compare):
    from textual.app import App

    from tui.widgets.dashboard.hostkey import HostKeyDialog

    class DialogApp(App):
        def on_mount(self) -> None:
            self.push_screen(HostKeyDialog("centos@192.168.30.109", "SHA256:Mkq2l/F71ofgIefIwt/YZGoNv5yEtEOfce05zXNPZbE"))

    assert snap_compare(DialogApp(), terminal_size=(80, 24))


def test_review_screen(snap_compare):
    async def run_before(pilot):
        await to_step(pilot, pilot.app, "review")

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_help_screen_on_sizing(snap_compare):
    async def run_before(pilot):
        await to_step(pilot, pilot.app, "sizing")
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_run_result_after_a_failed_step(snap_compare):
    shutil.rmtree(RUN_DIR, ignore_errors=True)

    async def run_before(pilot):
        app = pilot.app
        await to_step(pilot, app, "review")
        await pilot.press("ctrl+n")
        await pilot.pause()
        await app.screen.workers.wait_for_complete()  # the engine
        await pilot.pause()
        await app.screen.workers.wait_for_complete()  # the result screen's report
        await pilot.pause()

    app = make_app(WizardState(run_dir=str(RUN_DIR)), plan=small_plan(fail_at="create_vm"))
    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
    finally:
        shutil.rmtree(RUN_DIR, ignore_errors=True)


def test_sizing_screen_on_a_big_terminal(snap_compare):
    async def run_before(pilot):
        await to_step(pilot, pilot.app, "sizing")

    app = make_app(opener=Opener(facts=BIG_INVENTORY))
    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


def test_sizing_screen_reopened_with_an_invalid_value(snap_compare):
    """`--answers FILE` with 24 vCPUs and RAM written as text: Sizing opens with both as written, the
    model's message about the RAM above the form, the field as the finding, and Next off."""
    REOPENED.write_text("proxmox: {url: lab}\nvm: {vcpus: 24, memory_gib: lots}\n")

    async def run_before(pilot):
        for _ in range(3):
            await pilot.pause()
            await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    try:
        app = make_app(WizardState.reopen(REOPENED), first_step="reopen")
        assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
    finally:
        REOPENED.unlink(missing_ok=True)
