"""The first boot against the lab, whose kernel and OVA initramfs are Rocky 8.10's (backend.lab.facts):
the default (host-only, built on VMware) OVA boots at once on PVSCSI; a guest that does not come up
on a controller (dracut's emergency shell: no address, no SSH, no agent) is detected within the
boot bound and the next controller is tried, with a `BootAttemptFailed` saying so; a product
forced onto LSI alone never reaches SSH; the generic OVA boots straight on VirtIO SCSI single when
the answers ask for it."""

from __future__ import annotations

import pytest

from backend.events import BootAttemptFailed, GuestAddressResolved
from backend.model import vmconfig
from backend.steps import provision
from tests.lab_fixtures import require_lab_guest
from tests.proxmox_lab_support import lab_answers, open_lab, requests_to, run_provision

pytestmark = pytest.mark.lab

SPEED = 600.0
BOUND = provision.BOOT_WAIT_S  # what the product allows a boot (the lab's own work costs no lab time)


@pytest.fixture
async def lab(tmp_path):
    require_lab_guest()
    opened = []

    async def open_(ova: str = "host-only", speed: float = SPEED):
        target = await open_lab(tmp_path / "lab", "seed", speed, ova=ova)
        opened.append(target)
        return target

    yield open_
    for target in opened:
        await target.close()


def force_lsi_first(monkeypatch, order: tuple[str, ...]) -> None:
    """A product that boots on QEMU's LSI 53C895A, as the GUI's OVA import leaves a Linux VM (§8)."""
    lsi = vmconfig.Controller("lsi", "scsi", "lsi", "q35", "sym53c8xx")
    monkeypatch.setitem(vmconfig.CONTROLLERS, "lsi", lsi)
    monkeypatch.setattr(vmconfig, "EL8_UNBOOTABLE", {})
    monkeypatch.setitem(vmconfig.BOOT_ORDER, "scsi", order)


def created_scsihw(tmp_path) -> str:
    return requests_to(tmp_path / "lab", "POST", "/nodes/pve/qemu")[0]["params"].get("scsihw", "")


async def test_the_default_ova_boots_at_once_on_pvscsi(tmp_path, lab):
    code, rec, ctx = await run_provision(tmp_path, await lab(), lab_answers("seed"))
    assert code == 0
    assert created_scsihw(tmp_path) == "pvscsi" and ctx.facts.boot_controller == "pvscsi"
    assert not rec.of("BootAttemptFailed")
    assert [e.action for e in rec.of("VmPowerChanged")] == ["start"]


async def test_an_lsi_first_boot_is_detected_within_the_bound_and_pvscsi_is_tried(tmp_path, lab, monkeypatch):
    force_lsi_first(monkeypatch, ("lsi", "pvscsi"))
    # The lab's own work (the boots, its network's replies) costs no lab time, but the product's does:
    # each address round's requests and probe start count speed-fold, so the wait's end is measured
    # at a speed where a round's overrun of the bound stays within a lab minute on a busy machine.
    target = await lab(speed=120)
    code, rec, ctx = await run_provision(tmp_path, target, lab_answers("seed"))
    assert code == 0, [e.to_dict() for e in rec.of("RunFinished")]
    assert created_scsihw(tmp_path) == "lsi"
    [failed] = rec.of("BootAttemptFailed")
    assert isinstance(failed, BootAttemptFailed)
    assert (failed.controller, failed.next_controller) == ("lsi", "pvscsi")
    assert BOUND - 60 <= failed.waited_s <= BOUND + 60, failed  # the bound, not the old 15 min wait
    assert "no SSH" in failed.reason or "no address" in failed.reason
    assert ctx.facts.boot_controller == "pvscsi"
    assert [e.action for e in rec.of("VmPowerChanged")] == ["start", "stop", "start"]
    switched = [r["params"] for r in requests_to(tmp_path / "lab", "POST", "/nodes/pve/qemu/100/config")]
    assert switched == [{"scsihw": "pvscsi"}]
    assert [e.kind for e in rec.events].index("BootAttemptFailed") < [e.kind for e in rec.events].index(
        "GuestAddressResolved")


async def test_a_product_forced_onto_lsi_alone_never_reaches_ssh(tmp_path, lab, monkeypatch):
    force_lsi_first(monkeypatch, ("lsi",))
    code, rec, _ = await run_provision(tmp_path, await lab(), lab_answers("seed"))
    assert code == 1
    [failed] = rec.of("BootAttemptFailed")
    assert (failed.controller, failed.next_controller) == ("lsi", "")
    assert not rec.of("GuestAddressResolved")
    [finished] = rec.of("RunFinished")
    assert "came up on none of: lsi" in finished.message
    guest = (tmp_path / "lab" / "guests" / "100" / "guest.json").read_text()
    assert '"state": "unbootable"' in guest and "Entering emergency mode" in guest


async def test_virtio_first_on_a_host_only_ova_falls_back_to_pvscsi(tmp_path, lab):
    answers = lab_answers("seed", vm={"first_boot_controller": "virtio-scsi-single"})
    code, rec, ctx = await run_provision(tmp_path, await lab(), answers)
    assert code == 0
    assert [(e.controller, e.next_controller) for e in rec.of("BootAttemptFailed")] == [
        ("virtio-scsi-single", "pvscsi")]
    assert ctx.facts.boot_controller == "pvscsi"


async def test_the_generic_ova_boots_straight_on_virtio_scsi_single(tmp_path, lab):
    answers = lab_answers("seed", vm={"first_boot_controller": "virtio-scsi-single"},
                          lab={"host_profile": "seed", "ova": "generic"})
    code, rec, ctx = await run_provision(tmp_path, await lab("generic"), answers)
    assert code == 0
    assert not rec.of("BootAttemptFailed")
    assert ctx.facts.boot_controller == "virtio-scsi-single"
    params = requests_to(tmp_path / "lab", "POST", "/nodes/pve/qemu")[0]["params"]
    assert params["scsihw"] == "virtio-scsi-single" and params["scsi0"].endswith(",iothread=1")
    assert [type(e) for e in rec.events if isinstance(e, GuestAddressResolved)] == [GuestAddressResolved]
