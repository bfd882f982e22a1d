"""The lab's world as facts: every number and behaviour the lab's Proxmox host, Rocky 8.10 guest
and VMS follow, each with its source.

The lab stands in for the real world, so it must answer as the real world does, never as our own
rules say it should: nothing here (nor anywhere in `backend/lab/`) imports the product's rules
(sizing, tuning, vmconfig, provision, prepare, install, diagnose, recovery, preflight). Sources are
named by the aliases of `../shared/research/ground-truth.md` §0 (mem, dmesg, inst, seed, jv,
lustre-cfg, dracut8, pve-network, qemu-server, pve-storage, apidata, vms54) with the section (§n)
where the fact is stated, or by the upstream file the behaviour comes from.
"""

from __future__ import annotations

# --- memory: the kernel's overhead and the field run's demand ------------------------------------


# --- kernel: the Rocky 8.10 kernel's storage drivers ---------------------------------------------


# --- kernel and Docker: what the guest keeps of an OOM kill ----------------------------------------

# The kernel's messages live in its ring buffer from boot on (`dmesg`, /dev/kmsg); Rocky 8's journal
# is volatile (no /var/log/journal, Storage=auto), so `journalctl -k` holds this boot only too; both
# are lost at a reboot (the lab rebuilds /dev/kmsg at every boot, runtime.py). /proc/vmstat oom_kill
# counts the OOM killer's kills since boot (mm/oom_kill 8e675f7af507, 4.13; research/monitoring.md).
#
# The VAST containers run without --memory, so the kernel's global OOM killer, not a cgroup limit,
# strikes. The lab lets the victim (`.env`, timeline.oom_messages) be the node container's main
# process (modelled: the field notes of attempt 1 only say the cluster was left in INIT), so Docker
# reports that container exited with 128 + SIGKILL.
OOM_KILLED_EXIT_CODE = 137
# Docker sets State.OOMKilled from containerd's OOM event, which cgroup v1 (Rocky 8) signals on the
# container cgroup's memory.oom_control for an OOM within the cgroup's own limit, not for the global
# OOM killer; users and maintainers report the flag unreliable for a "system OOM" (moby/moby#15621,
# moby/moby#38352, kubernetes/kubernetes#22322). Not verified on a Rocky 8 guest: the product must
# conclude from the kernel's record whichever way this goes.
DOCKER_OOMKILLED_ON_GLOBAL_OOM = False


# --- the OVA: its import metadata and its initramfs ----------------------------------------------


# --- network: how a guest's address can be known ---------------------------------------------------
# Behaviours: what a real host, guest and kernel do, each with its source; the lab's code that
# follows one names it.

IPAM_ONLY_ON_DHCP_VNETS = (
    "Proxmox records a VM's address (and its dnsmasq hands it out) only for a NIC whose bridge is an SDN "
    "VNet in a zone with both `ipam` and `dhcp`: add_dhcp_mapping, get_ips_from_mac and add_next_free_cidr "
    "return early otherwise, so a VM on the plain bridge vmbr0 has no IPAM entry at all (get_vnet('vmbr0') "
    "is undef). [ground-truth §7; pve-network src/PVE/Network/SDN/Vnets.pm; qemu-server src/usr/pve-bridge]")
IPAM_LEASE_AT_NIC_START = (
    "The mapping is made when the NIC starts (the pve-bridge hook calls add_dhcp_mapping(bridge, mac, vmid, "
    "name)), which takes the next free address of the subnet's dhcp-range when the MAC has none yet; the "
    "entry stays until the NIC or the VM is removed. [pve-network Vnets.pm add_dhcp_mapping -> "
    "add_next_free_cidr; qemu-server create/delete_ifaces_ipams_ips]")
IPAM_STATUS_PVE_ONLY = (
    "GET /cluster/sdn/ipams/{ipam}/status dies with 'Currently only PVE IPAM is supported!' for any other "
    "IPAM and lists only zones with ipam=pve and dhcp; each entry is {zone, subnet, ip, vnet, vmid, mac, "
    "hostname}, or {zone, subnet, ip, vnet, gateway: 1} for the subnet's gateway. [ground-truth §7; "
    "pve-network src/PVE/API2/Network/SDN/Ipams.pm]")
DHCP_ONLY_SIMPLE_ZONES = "Only Simple zones take `dhcp` (dnsmasq). [pve-network SDN/Zones/SimplePlugin.pm]"
VNETS_IN_ANY_BRIDGE = (
    "GET /nodes/{node}/network?type=any_bridge lists the local bridges and OVS bridges plus the node's VNets "
    "as {iface, type: 'vnet', active: '1', ipam: 0|1, vlanaware: 0|1, comments: alias}; any_local_bridge "
    "lists the bridges only; include_sdn every local interface unfiltered plus the VNets; bridge only type "
    "bridge; no type every local interface. The VNets come from the applied (running) SDN config. "
    "[ground-truth §7; pve-manager PVE/API2/Network.pm; pve-network src/PVE/Network/SDN.pm get_local_vnets]")
NO_NEIGHBOUR_API = (
    "No Proxmox API exposes the host's ARP or neighbour table: on a plain vmbr0 the host cannot tell a "
    "guest's address before its guest agent runs. [ground-truth §7]")
NO_ADDRESS_IN_EMERGENCY_SHELL = (
    "(I) The guest's kernel command line has no ip= or rd.neednet (crashkernel=auto resume=... "
    "biosdevname=0 net.ifnames=0 rhgb quiet), so dracut brings no network up: a guest stuck in its "
    "initramfs (emergency shell), or powered off, answers no ARP; its NIC answers once its userspace "
    "(NetworkManager, DHCP) is up. [ground-truth §6, dmesg; dracut8 modules.d/40network]")
ARP_IS_THE_KERNELS = (
    "Who answers ARP, the neighbour table's states and its timing are the real Linux kernel's: the lab's "
    "jump host and guest NICs are real network namespaces, nothing of it is modelled.")

LAN_BRIDGE = "vmbr0"  # the node's bridge with the uplink to the LAN (the field host's only bridge)
LAN_PREFIX = "192.168.30"  # the field run's guest was 192.168.30.109 on eth0, by DHCP [ground-truth §6]
LAN_PREFIXLEN = 24  # (I) a /24 home/lab LAN, as 192.168.30.x suggests
LAN_GATEWAY = f"{LAN_PREFIX}.1"  # (I) the LAN's router, which also serves DHCP (not Proxmox)
LAN_DHCP_FIRST = 109  # the LAN's DHCP server gives the first VM the field guest's address [ground-truth §6]
LAN_DHCP_LAST = 249
HOST_ADDRESS_FIRST = 10  # the nodes' own addresses on vmbr0: .10, .11, ... (the lab's choice)

# Where vast-loopback runs (the jump host). The lab's choice: on the LAN's layer 2 with its own
# address (it then sees the guests' MACs), or elsewhere: on another subnet, no interface on the LAN.
JUMP_HOST_ON_LAN = f"{LAN_PREFIX}.5/{LAN_PREFIXLEN}"
JUMP_HOST_ELSEWHERE = "10.77.0.5/24"

# The SDN VNet a lab host can have (lab answers `lab.network.sdn_vnet`): a Simple zone with the
# built-in IPAM and dnsmasq DHCP, one subnet with a dhcp-range. Names and numbers are the lab's
# choice; zone and VNet ids follow pve-sdn-zone-id / pve-sdn-vnet-id (8 characters at most).
SDN_ZONE = "lab"
SDN_ZONE_TYPE = "simple"
SDN_IPAM = "pve"
SDN_DHCP = "dnsmasq"
SDN_VNET = "labnet"
SDN_SUBNET = "10.42.0.0/24"
SDN_GATEWAY = "10.42.0.1"
SDN_DHCP_RANGE = ("10.42.0.100", "10.42.0.199")


# --- disk: the field guest's layout ----------------------------------------------------------------


# --- VAST: the install's and the VMS's behaviour ---------------------------------------------------
