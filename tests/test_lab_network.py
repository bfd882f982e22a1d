"""The lab's network answers as a real host's does (backend/lab/facts.py, network section): VNets in
`type=any_bridge`, IPAM entries only for a VNet with IPAM and DHCP, never for vmbr0; and the jump
host's LAN is real (network namespaces): a guest's NIC answers ARP with the VM's MAC while the guest
is up, and not while it is off or stuck before its userspace."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from proxmoxer import ResourceException

from backend.clients import jumpnet
from backend.lab import facts
from backend.lab.profiles import PROFILES
from tests.lab_fixtures import boot, hardware, open_lab
from tests.lab_pve_support import allow_images_on_local, client, create_args, start_world, wait_task

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

SDN_SEED = dataclasses.replace(PROFILES["seed"], sdn_vnet=True)


@pytest.fixture
def sdn_world(tmp_path):
    world = start_world(tmp_path / "lab", SDN_SEED)
    yield world
    world.stop()


@pytest.fixture
def plain_world(tmp_path):
    world = start_world(tmp_path / "lab")
    yield world
    world.stop()


def _names(rows: list[dict]) -> list[tuple[str, str]]:
    return sorted((r["iface"], r["type"]) for r in rows)


def test_any_bridge_lists_the_vnet_as_proxmox_does_and_the_other_filters_do_not(sdn_world):
    network = client(sdn_world).nodes("pve").network
    vnet = next(r for r in network.get(type="any_bridge") if r["type"] == "vnet")
    assert vnet == {"iface": facts.SDN_VNET, "type": "vnet", "active": "1", "ipam": 1, "vlanaware": 0,
                    "comments": None}
    assert _names(network.get(type="any_bridge")) == [(facts.SDN_VNET, "vnet"), ("vmbr0", "bridge")]
    assert _names(network.get(type="any_local_bridge")) == [("vmbr0", "bridge")]
    assert _names(network.get(type="bridge")) == [("vmbr0", "bridge")]
    assert (facts.SDN_VNET, "vnet") not in _names(network.get())
    assert (facts.SDN_VNET, "vnet") in _names(network.get(type="include_sdn"))
    vmbr0 = next(r for r in network.get(type="bridge"))
    assert vmbr0["cidr"] == f"{facts.LAN_PREFIX}.{facts.HOST_ADDRESS_FIRST}/{facts.LAN_PREFIXLEN}"


def test_without_sdn_any_bridge_is_the_bridges_and_the_zones_are_empty(plain_world):
    api = client(plain_world)
    assert _names(api.nodes("pve").network.get(type="any_bridge")) == [("vmbr0", "bridge")]
    assert api.cluster.sdn.zones.get(running=1) == [] and api.cluster.sdn.vnets.get(running=1) == []


def test_ipam_status_holds_the_vnet_nic_and_never_the_vmbr0_one(sdn_world):
    api = client(sdn_world)
    allow_images_on_local(api)
    for vmid, bridge in ((100, "vmbr0"), (101, facts.SDN_VNET)):
        wait_task(api, "pve", api.nodes("pve").qemu.post(**create_args(vmid, net0=f"virtio,bridge={bridge}")))
    assert api.cluster.sdn.ipams("pve").status.get() == [
        {"zone": facts.SDN_ZONE, "subnet": facts.SDN_SUBNET, "vnet": facts.SDN_VNET, "ip": facts.SDN_GATEWAY,
         "gateway": 1}]  # nothing before a NIC starts
    for vmid in (100, 101):
        assert wait_task(api, "pve", api.nodes("pve").qemu(vmid).status.start.post())["exitstatus"] == "OK"
    entries = [e for e in api.cluster.sdn.ipams("pve").status.get() if "mac" in e]
    macs = {vmid: api.nodes("pve").qemu(vmid).config.get()["net0"].split(",")[0].split("=")[1].upper()
            for vmid in (100, 101)}
    assert [(e["mac"], e["vmid"], e["ip"]) for e in entries] == [(macs[101], "101", facts.SDN_DHCP_RANGE[0])]
    assert sdn_sorted(api.cluster.sdn.zones.get(running=1)) == [
        (facts.SDN_ZONE, facts.SDN_ZONE_TYPE, facts.SDN_IPAM, facts.SDN_DHCP)]
    assert sdn_world.guest.hardware[100].ip.startswith(facts.LAN_PREFIX + ".")  # the LAN's DHCP, unseen by Proxmox
    assert sdn_world.guest.hardware[101].ip == facts.SDN_DHCP_RANGE[0]


def sdn_sorted(zones: list[dict]) -> list[tuple]:
    return sorted((z["zone"], z["type"], z.get("ipam"), z.get("dhcp")) for z in zones)


def test_ipam_status_refuses_any_ipam_but_pve(plain_world):
    with pytest.raises(ResourceException) as info:
        client(plain_world).cluster.sdn.ipams("netbox").status.get()
    assert "Currently only PVE IPAM is supported!" in str(info.value)


# --- the jump host's LAN, in real namespaces ---------------------------------------------------


def _find(lab, mac: str, within: list[str] | None = None, wait_s: float = 1.5) -> dict:
    """backend/clients/jumpnet.py's probe, run in the lab's jump host network as the product runs it (once
    the lab carried out the network changes of the guests' boots)."""
    lab.segment.wait_idle()
    request = {"op": "find", "mac": mac, "within": within, "wait_s": wait_s}
    done = subprocess.run([*lab.segment.probe_prefix(), sys.executable, "-c", jumpnet.LOADER, json.dumps(request)],
                          input=Path(jumpnet.__file__).read_text(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_guest_nic_answers_arp_on_the_lan_only_while_the_guest_is_up(tmp_path):
    lab = open_lab(tmp_path / "lab")
    try:
        hw = hardware(100)
        guest = boot(lab, hw)
        found = _find(lab, hw.mac.lower())
        assert (found["address"], found["iface"]) == (hw.ip, "lan0")
        lab.power_off(guest.vmid, graceful=False)
        lab.power_on(dataclasses.replace(hw, scsihw="virtio-scsi-single"))  # no driver: stuck before userspace
        assert lab.wait_state(guest.vmid, ("up", "unbootable")) == "unbootable"
        assert _find(lab, hw.mac)["address"] is None
    finally:
        lab.shutdown()


def test_a_jump_host_elsewhere_has_no_interface_on_the_lan(tmp_path):
    lab = open_lab(tmp_path / "lab", jump_host="elsewhere")
    try:
        hw = hardware(100)
        boot(lab, hw)
        found = _find(lab, hw.mac, within=[f"{facts.LAN_PREFIX}.0/{facts.LAN_PREFIXLEN}"])
        assert found == {**found, "address": None, "probed": 0, "networks": []}
        found = _find(lab, hw.mac)  # all of its own subnets: the guest is not on any
        assert found["address"] is None and found["networks"] == ["10.77.0.0/24"]
    finally:
        lab.shutdown()
