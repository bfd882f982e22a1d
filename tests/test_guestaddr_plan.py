"""Which source of the guest's address can work from here (backend/steps/guestaddr.py `plan`), how the node's
bridges and VNets are read (backend/clients/proxmox.py `parse_networks`), and the probe program's own parsing
(backend/clients/jumpnet.py): pure functions, and one in-process probe that sends nothing."""

from __future__ import annotations

import pytest

from backend.clients import jumpnet
from backend.clients.proxmox import parse_networks
from backend.clock import Clock
from backend.model.hostfacts import BridgeFacts, NodeFacts
from backend.secrets import Secret
from backend.steps import guestaddr
from backend.steps.guestaddr import LocalNetworks, plan
from backend.target import Target

ON_LAN = LocalNetworks(({"iface": "eth0", "address": "192.168.30.5", "cidr": "192.168.30.0/24"},))
ELSEWHERE = LocalNetworks(({"iface": "wlan0", "address": "10.77.0.5", "cidr": "10.77.0.0/24"},))


def _node(*networks: BridgeFacts) -> NodeFacts:
    return NodeFacts(node="pve", online=True, cpu_model="x", sockets=1, cores=12, threads=24, mem_total=1,
                     mem_used=0, hvm=True, bridges=tuple(n.name for n in networks), networks=networks)


VMBR0 = BridgeFacts("vmbr0", "bridge", cidr="192.168.30.10/24")
VMBR1 = BridgeFacts("vmbr1", "bridge")
LABNET = BridgeFacts("labnet", "vnet", zone="lab", ipam="pve", dhcp="dnsmasq")
NODHCP = BridgeFacts("nodhcp", "vnet", zone="plain", ipam="pve")
NETBOX = BridgeFacts("nbnet", "vnet", zone="nb", ipam="netbox", dhcp="dnsmasq")
NODE = _node(VMBR0, VMBR1, LABNET, NODHCP, NETBOX)


def _ids(the_plan) -> list[tuple[str, str]]:
    return [(f.id, f.severity) for f in the_plan.findings]


def test_a_fixed_address_needs_nothing_else():
    assert plan(NODE, "vmbr0", "10.1.2.3", ELSEWHERE) == guestaddr.AddressPlan((guestaddr.SOURCE_ANSWERS,))


def test_a_plain_bridge_on_this_machines_subnet_is_read_from_the_neighbour_table():
    the_plan = plan(NODE, "vmbr0", "dhcp", ON_LAN)
    assert the_plan.sources == (guestaddr.SOURCE_NEIGHBOURS, guestaddr.SOURCE_AGENT)
    assert the_plan.probe == ("192.168.30.0/24",) and _ids(the_plan) == [(guestaddr.FINDING_SOURCE, "info")]
    assert "layer 2" in the_plan.findings[0].message


def test_a_plain_bridge_this_machine_is_not_on_is_a_blocker_naming_the_remedy():
    the_plan = plan(NODE, "vmbr0", "dhcp", ELSEWHERE)
    assert the_plan.blocked and the_plan.sources == (guestaddr.SOURCE_AGENT,)
    finding = the_plan.findings[0]
    assert "vmbr0 is a plain bridge" in finding.message and "10.77.0.5/24 on wlan0" in finding.message
    assert finding.remedy.startswith("Set guest.address") and "192.168.30.0/24" in finding.remedy


def test_a_vnet_with_pve_ipam_and_dhcp_is_read_from_the_ipam_from_anywhere():
    the_plan = plan(NODE, "labnet", "dhcp", ELSEWHERE)
    assert the_plan.sources == (guestaddr.SOURCE_IPAM, guestaddr.SOURCE_AGENT) and not the_plan.blocked


@pytest.mark.parametrize(("bridge", "why"), [("nodhcp", "has no DHCP"), ("nbnet", "IPAM 'netbox'")])
def test_a_vnet_whose_ipam_cannot_be_read_says_why(bridge, why):
    the_plan = plan(NODE, bridge, "dhcp", LocalNetworks())
    assert the_plan.blocked and why in the_plan.findings[0].message


def test_a_bridge_without_address_is_a_warning_and_unknown_local_networks_a_blocker():
    assert _ids(plan(NODE, "vmbr1", "dhcp", ON_LAN)) == [(guestaddr.FINDING_UNCERTAIN, "warning")]
    unknown = plan(NODE, "vmbr0", "dhcp", LocalNetworks(error="needs Linux"))
    assert unknown.blocked and "needs Linux" in unknown.findings[0].message
    assert plan(NODE, "vmbr0", "dhcp", None).findings == ()  # not known yet: nothing said


def test_parse_networks_reads_bridges_and_vnets_with_their_zones():
    rows = [{"iface": "vmbr0", "type": "bridge", "cidr": "192.168.30.10/24"},
            {"iface": "vmbr1", "type": "OVSBridge", "address": "10.0.0.2", "netmask": "16"},
            {"iface": "labnet", "type": "vnet", "active": "1", "ipam": 1, "vlanaware": 0, "comments": None},
            {"iface": "enp5s0", "type": "eth"}]
    zones = [{"zone": "lab", "type": "simple", "ipam": "pve", "dhcp": "dnsmasq"}]
    vnets = [{"vnet": "labnet", "zone": "lab", "type": "vnet"}]
    assert parse_networks(rows, zones, vnets) == (
        BridgeFacts("labnet", "vnet", zone="lab", ipam="pve", dhcp="dnsmasq"),
        BridgeFacts("vmbr0", "bridge", cidr="192.168.30.10/24"),
        BridgeFacts("vmbr1", "OVSBridge", cidr="10.0.0.2/16"))
    assert parse_networks(rows)[0].ipam_leases is False  # zones unreadable: no IPAM assumed
    assert NodeFacts.from_dict(NODE.to_dict()) == NODE


def test_jumpnet_reads_the_neighbour_table_and_probes_nearest_first(tmp_path):
    table = tmp_path / "arp"
    table.write_text("IP address       HW type     Flags       HW address            Mask     Device\n"
                     "192.168.30.109   0x1         0x2         bc:24:11:5a:3c:09     *        eth0\n"
                     "192.168.30.44    0x1         0x0         00:00:00:00:00:00     *        eth0\n")
    assert jumpnet.neighbours(str(table)) == [
        {"ip": "192.168.30.109", "mac": "BC:24:11:5A:3C:09", "iface": "eth0", "complete": True},
        {"ip": "192.168.30.44", "mac": "00:00:00:00:00:00", "iface": "eth0", "complete": False}]
    assert jumpnet.nearest_hosts("192.168.30.2", "192.168.30.0/24", 4) == [
        "192.168.30.1", "192.168.30.3", "192.168.30.4", "192.168.30.5"]
    assert len(jumpnet.nearest_hosts("10.0.0.1", "10.0.0.0/8", jumpnet.MAX_PROBE_HOSTS)) == jumpnet.MAX_PROBE_HOSTS
    assert jumpnet.nearest_hosts("10.0.0.1", "10.0.0.0/30", 10) == ["10.0.0.2"]


async def test_probes_run_in_this_process_by_default_and_probe_nothing_outside_the_wanted_subnets():
    here = Target(label="x", proxmox_url="https://192.0.2.1:8006", token_id="a@pam!b", token_secret=Secret("s"),
                  clock=Clock.wall())
    assert here.probe_prefix == ()
    local = await guestaddr.local_networks(here)
    assert local.error or all(i["cidr"] for i in local.interfaces)
    answer = await guestaddr.from_neighbours(here, "BC:24:11:00:00:01", ("203.0.113.0/24",))  # TEST-NET-3
    assert answer.get("address") is None and answer.get("probed", 0) == 0
