"""Sizing rules, table-driven, including the field report's three attempts."""

from __future__ import annotations

import pytest

from backend.model.sizing import Proposal, Topology, evaluate, recommend, topology
from tests.conftest import BIG, SEED, SMALL, node

FOUR_SOCKETS = node(32, 64, 503.8, sockets=4, storage_gib=7000)  # 8 cores a socket


def ids(result, severity=None):
    return {f.id for f in result.findings if severity is None or f.severity == severity}


@pytest.mark.parametrize(
    ("label", "proposal", "blockers", "warnings"),
    [
        # Attempt 1: its guest saw 97 GB (a ~100 GiB VM) and died of OOM during activation.
        ("attempt 1", Proposal(vcpus=12, memory_gib=100, disk_gib=1000, storage="local-lvm"),
         {"memory-below-minimum"}, set()),
        # Attempt 2: 24 vCPUs (2x12), qemu64, ballooning, a 112 GiB VM (its guest saw 109Gi): the P653 PANIC.
        ("attempt 2", Proposal(vcpus=24, memory_gib=112, disk_gib=1000, storage="local-lvm", sockets=2,
                               cpu_type="qemu64", balloon=True, scsihw="virtio-scsi-pci", iothread=False),
         {"vcpus-over-cores", "memory-below-minimum"}, {"cpu-type", "sockets", "balloon", "controller"}),
        # Attempt 3: 12 vCPUs / a 120 GiB VM (its guest saw 117.5 GiB) worked: no blocker, RAM is tight.
        ("attempt 3", Proposal(vcpus=12, memory_gib=120, disk_gib=1000, storage="local-lvm"),
         set(), {"memory-tight"}),
    ],
)
def test_field_report_attempts_on_the_seed_host(label, proposal, blockers, warnings):
    result = evaluate(SEED, proposal)
    assert ids(result, "blocker") == blockers, label
    assert warnings <= ids(result, "warning"), label
    assert result.ok == (not blockers)


def test_every_finding_has_message_remedy_and_evidence():
    result = evaluate(SEED, Proposal(vcpus=24, memory_gib=97, disk_gib=100, storage="local-lvm", balloon=True))
    for finding in result.findings:
        assert finding.message and finding.remedy and finding.evidence
        assert finding.severity in {"blocker", "warning", "info"}
    assert [f.severity for f in result.findings] == sorted(
        (f.severity for f in result.findings), key={"blocker": 0, "warning": 1, "info": 2}.get)


def test_overcommit_evidence_names_the_panic():
    finding = next(f for f in evaluate(SEED, Proposal(24, 120, 1000, "local-lvm")).findings
                   if f.id == "vcpus-over-cores")
    assert "P653" in finding.evidence and "vmsg_keepalive_fiber" in finding.evidence
    assert "24 threads" in finding.message  # hyperthreads are named and not counted


@pytest.mark.parametrize(
    ("host", "vcpus", "memory", "feasible", "numa"),
    [
        (SEED, 12, 120, True, False),   # the field report's host: the field's working VM
        (SMALL, 8, 60, False, False),  # 8 cores / 64 GB cannot host it
        (BIG, 24, 131, True, True),     # 2 x 16 cores / 512 GB: the guest sees the report's 128 GB+, NUMA on
    ],
)
def test_recommendation_per_host(host, vcpus, memory, feasible, numa):
    rec = recommend(host)
    assert (rec.vcpus, rec.memory_gib, rec.feasible, rec.numa) == (vcpus, memory, feasible, numa)
    assert rec.sockets == (2 if numa else 1) and rec.cpu == "host" and rec.balloon == 0
    assert rec.scsihw == "virtio-scsi-single" and rec.iothread


@pytest.mark.parametrize(
    ("host", "vcpus", "memory", "layout"),
    [
        (SEED, 12, 117, Topology(1, 12, False, 1)),  # one socket: one NUMA node, NUMA off
        (BIG, 12, 160, Topology(1, 12, False, 1)),   # 12 vCPUs fit in one of BIG's 16-core sockets
        (BIG, 24, 160, Topology(2, 12, True, 2)),    # spanning both sockets: 2 x 12, a NUMA node each
        (BIG, 32, 160, Topology(2, 16, True, 2)),
        (BIG, 17, 160, Topology(1, 17, False, 2)),   # 17 does not split over 2 sockets: NUMA stays off
        (FOUR_SOCKETS, 24, 117, Topology(3, 8, True, 3)),    # 119808 MiB split over 3 nodes
        (FOUR_SOCKETS, 24, 128, Topology(1, 24, False, 3)),  # 131072 MiB does not: NUMA stays off
    ],
)
def test_the_vms_sockets_and_numa_match_the_hosts_layout_or_numa_stays_off(host, vcpus, memory, layout):
    assert topology(host, vcpus, memory) == layout


def test_the_numa_finding_says_which_layout_the_vm_gets():
    spanning = next(f for f in evaluate(BIG, Proposal(24, 160, 1000, "local-lvm")).findings if f.id == "numa")
    assert spanning.severity == "info" and "2 sockets x 12 cores with NUMA on" in spanning.message
    assert "Memory.pm" in spanning.evidence
    uneven = next(f for f in evaluate(BIG, Proposal(17, 160, 1000, "local-lvm")).findings if f.id == "numa")
    assert uneven.severity == "warning" and "NUMA stays off" in uneven.message and "16" in uneven.remedy
    single = next(f for f in evaluate(SEED, Proposal(12, 117, 1000, "local-lvm")).findings if f.id == "numa")
    assert "NUMA stays off: the host has a single socket" in single.message


def test_small_host_says_why_it_cannot():
    rec = recommend(SMALL)
    assert "119 GiB (the guest sees ≈116.5 GiB)" in rec.reason
    result = evaluate(SMALL, Proposal(8, 54, 1000, "local-lvm"))
    assert "host-memory-too-small" in ids(result, "blocker")
    assert "host-few-cores" in ids(result, "warning")


def test_recommendation_passes_on_its_own_host():
    for host in (SEED, BIG):
        rec = recommend(host)
        result = evaluate(host, Proposal(rec.vcpus, rec.memory_gib, rec.disk_gib, rec.storage))
        assert result.ok, [f.message for f in result.blockers]


@pytest.mark.parametrize(
    ("memory", "expected"),
    [(112, "memory-below-minimum"), (117, "memory-below-minimum"), (118, "memory-below-minimum"),
     (119, "memory-tight"), (120, "memory-tight"), (123, "memory-tight"), (124, "memory-over-host-reserve")],
)
def test_memory_thresholds(memory, expected):
    assert expected in ids(evaluate(SEED, Proposal(12, memory, 1000, "local-lvm")))


@pytest.mark.parametrize(
    ("disk", "expected", "severity"),
    [(499, "disk-below-minimum", "blocker"), (500, "disk-small", "warning"), (999, "disk-small", "warning")],
)
def test_disk_thresholds(disk, expected, severity):
    assert expected in ids(evaluate(SEED, Proposal(12, 120, disk, "local-lvm")), severity)


def test_storage_must_exist_hold_images_and_have_room():
    assert "storage-missing" in ids(evaluate(SEED, Proposal(12, 120, 1000, "tank")), "blocker")
    assert "storage-no-images" in ids(evaluate(SEED, Proposal(12, 120, 1000, "local")), "blocker")
    assert "storage-too-small" in ids(evaluate(SEED, Proposal(12, 120, 5000, "local-lvm")), "blocker")


def test_vcpus_equal_to_cores_pass_and_below_twelve_warn():
    assert "vcpus-over-cores" not in ids(evaluate(SEED, Proposal(12, 120, 1000, "local-lvm")))
    assert "vcpus-below-validated" in ids(evaluate(SEED, Proposal(8, 120, 1000, "local-lvm")), "warning")


def test_old_proxmox_and_no_kvm_are_blockers():
    from tests.conftest import node

    assert "pve-too-old" in ids(evaluate(node(12, 24, 125.8, version="8.2.4"), Proposal(12, 120, 1000, "local-lvm")))
    assert "no-kvm" in ids(evaluate(node(12, 24, 125.8, hvm=False), Proposal(12, 120, 1000, "local-lvm")))


def test_the_field_run_passes_on_its_own_host_and_a_smaller_guest_than_its_peak_use_blocks():
    field = evaluate(SEED, Proposal(12, 120, 1000, "local-lvm"))  # 125.8 GiB host, the field kept 5.8 GiB
    assert field.ok and "memory-over-host-reserve" not in ids(field)
    smaller = evaluate(SEED, Proposal(12, 117, 1000, "local-lvm"))  # the guest sees 114.6 < 116.3 GiB used
    blocker = next(f for f in smaller.blockers if f.id == "memory-below-minimum")
    assert "114.6 GiB" in blocker.message and "116.3 GiB" in blocker.message
    assert "at least 119 GiB" in blocker.remedy and "120 GiB" in blocker.remedy  # a VM size that passes
    assert "memory.log" in blocker.evidence


def test_the_host_reserve_is_derived_from_proxmox_and_qemu_overheads():
    from backend.model.sizing import host_reserve_gib

    reserve = host_reserve_gib(SEED, 120, 12, "local-lvm", 1000)
    assert 2.5 < reserve < 5.8  # PVE's 2 GB + QEMU's ~0.56 GiB; LVM-thin keeps no cache in RAM
    finding = next(f for f in evaluate(SEED, Proposal(12, 124, 1000, "local-lvm")).findings
                   if f.id == "memory-over-host-reserve")
    assert "Proxmox VE docs" in finding.evidence and "0.2 %" in finding.evidence


@pytest.mark.parametrize(("typed", "vm"), [(97, 100), (109, 112), (117, 120)])
def test_the_reports_figures_typed_as_the_vms_get_a_hint_in_vm_units(typed, vm):
    hint = next(f for f in evaluate(SEED, Proposal(12, typed, 1000, "local-lvm")).findings
                if f.id == "memory-seed-figure")
    assert f"'{typed}GB' is what its guest saw" in hint.message and f"a VM of {vm} GiB" in hint.message
    assert f"Type {vm}" in hint.remedy
    assert "memory-seed-figure" not in ids(evaluate(SEED, Proposal(12, 120, 1000, "local-lvm")))
