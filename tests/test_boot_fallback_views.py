"""A first boot that had to try another controller, and the root filesystem's growth, as the
headless printer and the dashboard's phase timeline show them: a line each in text mode, and under
the First boot step a note that stays once the step is done."""

from __future__ import annotations

import io

from backend import events as ev
from tests.dashboard_helpers import DashboardApp, pane_text, settle
from tests.recorded_runs import T0
from tui.headless import HeadlessPrinter
from tui.session import RunSession

PLAN = [("first_boot", "First boot", "provision"), ("guest_connect", "Connect to the guest over SSH", "prepare")]


def first_boot_events() -> list[ev.Event]:
    return [
        ev.RunStarted(ts=T0, run_id="r", target="lab seed x120", vm_name="vast-lb"),
        ev.StepStarted(ts=T0 + 1, step="first_boot", title="First boot", group="provision"),
        ev.BootAttemptFailed(ts=T0 + 601, vmid=100, controller="virtio-scsi-single", waited_s=600.0,
                             reason="no SSH at 192.168.30.109:22 within 10 min (connection refused)",
                             next_controller="pvscsi"),
        ev.GuestAddressResolved(ts=T0 + 700, address="192.168.30.109", source="dhcp"),
        ev.StepFinished(ts=T0 + 700, step="first_boot", ok=True, result={"boot_controller": "pvscsi"}),
        ev.StepStarted(ts=T0 + 701, step="guest_connect", title="Connect to the guest over SSH", group="prepare"),
        ev.RootFilesystemVerified(ts=T0 + 760, device="/dev/sda3", fstype="xfs", size_gib=998.2,
                                  before_gib=598.2, disk_gib=1000.0, grown=True),
    ]


def test_the_headless_printer_says_which_controller_failed_and_what_comes_next():
    out = io.StringIO()
    printer = HeadlessPrinter(out)
    for event in first_boot_events():
        printer(event)
    lines = out.getvalue().splitlines()
    assert ("[00:10:01]   the guest did not come up on virtio-scsi-single within 10 min 00 s (no SSH at "
            "192.168.30.109:22 within 10 min (connection refused)); trying pvscsi") in lines
    assert "[00:12:40]   root filesystem /dev/sda3 (xfs): 998 GiB, grown from 598 GiB" in lines
    assert printer.state.boot_attempts[0]["controller"] == "virtio-scsi-single"
    assert printer.state.root_fs["size_gib"] == 998.2


async def test_the_timeline_keeps_the_failed_boot_under_the_first_boot_step():
    session = RunSession(title="VM vast-lb", live=False, planned=lambda: PLAN)
    for event in first_boot_events():
        session.apply(event)
    app = DashboardApp(session, result_on_end=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        lines = pane_text(app, "#timeline").splitlines()
    first = next(n for n, line in enumerate(lines) if "First boot" in line)
    assert lines[first].startswith("✓ First boot")
    note = " ".join(line.strip() for line in lines[first + 1:first + 3] if not line.startswith(("✓", "▶", "·")))
    assert note == "↳ no boot on virtio-scsi-single, trying pvscsi"  # wrapped to the pane's width
