"""The VM's `memory` and what its Rocky 8.10 guest sees, both ways, against the field's own figures."""

from __future__ import annotations

import re

import pytest

from backend.model.guestmemory import both, guest_gib, guest_memtotal_kib, vm_gib_for_guest, vm_mib_for
from tests.conftest import shared_path

FIELD_VM_MIB = 122880  # memory: 122880 (dmesg: "System RAM: 122879MB")
FIELD_MEMTOTAL_KIB = 123223064  # memory.log, all 634 samples


def test_the_field_vm_gives_the_field_guests_memtotal():
    assert guest_memtotal_kib(FIELD_VM_MIB) == pytest.approx(FIELD_MEMTOTAL_KIB, abs=64)
    assert guest_memtotal_kib(114688) == pytest.approx(114964488, abs=2048)  # jv's tmpfs at MemTotal/2
    assert guest_memtotal_kib(FIELD_VM_MIB) == FIELD_MEMTOTAL_KIB  # the decomposition is exact there
    assert vm_mib_for(FIELD_MEMTOTAL_KIB) == FIELD_VM_MIB and vm_gib_for_guest(FIELD_MEMTOTAL_KIB / 2**20) == 120


@pytest.mark.parametrize(("guest", "vm"), [(97, 100), (109, 112), (117, 120), (128, 131)])
def test_the_reports_guest_figures_map_to_vm_sizes(guest, vm):
    assert vm_gib_for_guest(guest) == vm
    assert guest_gib(vm) >= guest > guest_gib(vm - 1)


def test_the_inverse_is_the_smallest_vm_on_both_sides_of_the_crashkernel_tier():
    for kib in (30 * 2**20, 62 * 2**20, 64 * 2**20, 65 * 2**20, 121947036):
        mib = vm_mib_for(kib)
        assert guest_memtotal_kib(mib) >= kib
        assert all(guest_memtotal_kib(m) < kib for m in range(max(0, mib - 600), mib))


def test_both_units_read_as_the_issue_says():
    assert both(120) == "VM 120 GiB, the guest sees ≈117.5 GiB"


def test_the_field_traces_agree_when_present():
    memory = shared_path("traces", "seed-run-2025-12-29", "monitoring", "memory.log").read_text()
    totals = {int(m) for m in re.findall(r"MemTotal:\s+(\d+) kB", memory)}
    assert totals == {FIELD_MEMTOTAL_KIB}
    dmesg = shared_path("traces", "seed-run-2025-12-29", "monitoring", "dmesg_live.log").read_text()
    assert "System RAM: 122879MB" in dmesg
