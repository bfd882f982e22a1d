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

# What a Rocky 8.10 guest's kernel keeps of its VM's RAM, decomposed from the field guest's boot log
# (dmesg, ground-truth §2): the VM had `memory: 122880` (MiB) and its MemTotal was 123223064 kB.
KIB = 1024
E820_HOLES_KIB = 572  # present RAM: 31457137 pages, the VM's RAM less 572 kB of e820 holes [dmesg]
MEMMAP_FRACTION = 64  # struct page memmap: 64 + 8128 + 483328 pages = exactly 1/64 of RAM [dmesg]
# crashkernel=auto (the guest's cmdline [dmesg]) on RHEL 8 x86_64: 192 MB for 1-4 GB of RAM, 256 MB
# for 4-64 GB, 512 MB above [Red Hat, RHEL 8 "Managing, monitoring and updating the kernel", kdump
# memory requirements; §2]; the field's "System RAM: 122879MB" got 512 MB [dmesg].
CRASHKERNEL_TIERS_MB = ((1024, 0), (4096, 192), (65536, 256))  # (System RAM below this many MB, reserve)
CRASHKERNEL_TOP_MB = 512
# The rest of the early reserve: kernel image (~45 MB), initrd (23.9 MB), SWIOTLB (64 MB), per-CPU
# areas...: 2637936 kB in all, less the memmap (1966080 kB) and the crashkernel (524288 kB) [dmesg].
KERNEL_FIXED_RESERVE_KIB = 2_637_936 - 1_966_080 - 524_288
INIT_FREED_KIB = 32_452  # "Freeing unused kernel memory": initrd, init text and gaps [dmesg]

FIELD_VM_MEMORY_MIB = 122_880
FIELD_MEM_TOTAL_KIB = 123_223_064  # the field guest's MemTotal in all 634 samples [mem §1]


def crashkernel_mb(system_ram_mb: int) -> int:
    for below, reserve in CRASHKERNEL_TIERS_MB:
        if system_ram_mb < below:
            return reserve
    return CRASHKERNEL_TOP_MB


def guest_memtotal_kib(memory_mib: int) -> int:
    """MemTotal (kB) of the Rocky 8.10 guest of a VM with `memory_mib` of RAM, as its kernel arrives
    at it: the RAM less the e820 holes, the memmap, the crashkernel and the fixed reserve, plus the
    init memory freed after boot (122880 MiB gives the field's 123223064 kB exactly)."""
    present_kib = memory_mib * KIB - E820_HOLES_KIB
    crash_kib = crashkernel_mb(present_kib // KIB) * KIB
    kept = memory_mib * KIB // MEMMAP_FRACTION + crash_kib + KERNEL_FIXED_RESERVE_KIB
    return max(64 * KIB, present_kib - kept + INIT_FREED_KIB)


# The field run's memory demand: used = MemTotal - MemAvailable (GiB) of its guest, in seconds on the
# field axis (since the install started, 2025-12-29 18:32:13 UTC; bootstrap 0..887, cluster create
# 887..1961, ACTIVATING at 986, ONLINE at 1627). From memory.log's 634 samples (every ~5 s,
# 18:28:56-19:21:47): Ramer-Douglas-Peucker on the raw samples with 0.4 GiB tolerance, split at the
# peak so that it is kept exactly: 116.30 GiB (121947036 kB) at 19:21:37.8 = 2965 s, 17 min after the
# deploy finished [mem §1]. Checked against the trace by tests/test_scenarios_curves.py.
FIELD_DEMAND_GIB: tuple[tuple[float, float], ...] = (
    (-196.5, 3.14), (-166.5, 3.65), (-51.3, 3.62), (-41.3, 4.37), (239.1, 4.40), (339.3, 5.34), (774.9, 5.21),
    (789.9, 5.53), (794.9, 7.48), (799.9, 8.46), (829.9, 8.35), (839.9, 10.93), (855.0, 11.88), (920.0, 12.20),
    (925.0, 16.55), (930.1, 23.14), (935.1, 27.40), (940.1, 27.84), (945.1, 29.74), (955.1, 29.42),
    (965.1, 37.79), (970.2, 39.64), (980.2, 40.49), (995.3, 45.64), (1005.3, 47.25), (1010.3, 50.96),
    (1015.3, 55.81), (1020.3, 66.29), (1025.3, 79.48), (1030.3, 90.71), (1035.4, 103.59), (1040.4, 112.11),
    (1045.4, 112.30), (1065.5, 112.74), (1070.6, 112.30), (1100.7, 112.10), (1115.7, 112.65), (1150.8, 112.16),
    (1165.8, 112.83), (1190.9, 112.27), (1211.0, 112.34), (1216.0, 112.87), (1251.2, 112.13), (1261.2, 112.30),
    (1266.3, 113.03), (1281.3, 112.44), (1341.4, 112.53), (1346.4, 113.05), (1401.5, 112.63), (1416.6, 113.19),
    (1421.6, 112.71), (1461.6, 112.67), (1466.6, 113.39), (1481.7, 112.68), (1521.7, 112.68), (1526.7, 113.13),
    (1611.9, 112.65), (1621.9, 112.76), (1626.9, 114.21), (1647.0, 114.87), (1692.1, 114.25), (1707.1, 114.89),
    (1802.3, 114.57), (1822.3, 114.63), (1827.3, 115.19), (1842.4, 114.63), (1947.6, 115.37), (1962.7, 114.69),
    (1992.7, 115.03), (1997.7, 114.58), (2007.7, 115.22), (2022.8, 114.74), (2062.9, 115.04), (2067.9, 115.82),
    (2093.0, 115.23), (2123.0, 115.24), (2128.0, 115.80), (2148.1, 115.16), (2188.2, 115.85), (2203.2, 115.34),
    (2248.3, 115.83), (2298.4, 115.47), (2308.5, 116.10), (2323.5, 115.41), (2368.6, 116.10), (2403.6, 115.53),
    (2428.7, 116.20), (2443.8, 115.60), (2488.9, 116.08), (2599.1, 115.53), (2689.3, 116.11), (2699.3, 115.68),
    (2864.6, 116.14), (2869.6, 115.70), (2909.7, 116.25), (2949.8, 115.79), (2964.8, 116.30), (2974.9, 116.06)
)
FIELD_PEAK_USED_KIB = 121_947_036  # the last keypoint but one [mem §1]
# free(1)'s "used" (procps in RHEL 8: total - free - buffers - cache) leaves out what the kernel holds
# that MemAvailable does not count as available; the field run's used exceeded free's by 7.15-7.33 GiB
# from the activation plateau on [mem: MemTotal - MemAvailable vs the `free -h` lines of each block].
FREE_USED_GAP_GIB = 7.2

# The overcommitted world's demand (attempt 2: 24 vCPUs on 12 cores, a 109Gi guest = a 112 GiB VM):
# `free` showed 69Gi used "at steady state after containers started" and 83Gi at the failure, and
# dmesg had no OOM [jv docs/archive/VAST_Support_Case_Summary.md; §15]. So the starved activation never
# reached the good run's 112 GiB plateau: its demand (in MemTotal - MemAvailable, with the gap above)
# rose from 76 GiB once the containers ran to 90 GiB at the PANIC, 1058 s into ACTIVATING.
OVERCOMMIT_FREE_USED_GIB = (69.0, 83.0)  # (containers started, the failure)
# Not decided by any source: attempt 1 (97 GB, OOM during activation) has no vCPU count of its own; the
# seed's "Failed Config" column gives both failed attempts 24 vCPUs. If it had 24, an overcommitted
# activation can also allocate as the good run did before it starves (its guest of ~97.8 GiB met the
# OOM killer). The lab models both readings (`OVERCOMMIT_DEMANDS`): "support-case" (the default,
# attempt 2's figures) and "field-ramp" (the good run's demand until the nodes fall out at UNKNOWN).
OVERCOMMIT_DEMANDS = ("support-case", "field-ramp")


# --- kernel: the Rocky 8.10 kernel's storage drivers ---------------------------------------------

# Built into the kernel (=y): always there, initramfs or not. [lustre-cfg, ground-truth §4]
KERNEL_BUILTIN = frozenset({"scsi_mod", "virtio", "virtio_pci", "virtio_ring"})
# Built as modules (=m): present under /lib/modules, in an initramfs only when dracut put them
# there. [lustre-cfg §4: CONFIG_SCSI_VIRTIO, CONFIG_VIRTIO_BLK, CONFIG_VMWARE_PVSCSI,
# CONFIG_MEGARAID_SAS, CONFIG_FUSION_SPI/SAS, CONFIG_SATA_AHCI, CONFIG_ATA_PIIX, CONFIG_ATA,
# CONFIG_BLK_DEV_NVME, CONFIG_BLK_DEV_SD, CONFIG_XFS_FS]
KERNEL_STORAGE_MODULES = frozenset({
    "virtio_scsi", "virtio_blk", "vmw_pvscsi", "megaraid_sas", "mptspi", "mptsas", "mptscsih", "mptbase",
    "scsi_transport_spi", "scsi_transport_sas", "ahci", "libahci", "ata_piix", "libata", "nvme", "nvme_core",
    "sd_mod", "sr_mod", "cdrom", "sg", "xfs", "scsi_dh_alua", "scsi_dh_emc", "scsi_dh_rdac",
})
# Not built at all: no initramfs of this kernel can hold them. CONFIG_SCSI_SYM53C8XX_2 is the driver
# of QEMU's `lsi` (LSI 53C895A) and `lsi53c810`. [lustre-cfg §4]
KERNEL_NOT_BUILT = frozenset({"sym53c8xx", "mptfc", "BusLogic", "megaraid_mbox", "megaraid_mm", "megaraid"})

# The module that drives the disk controller QEMU gives a VM, by Proxmox's `scsihw` for SCSI disks
# and by bus for the others (q35's IDE is its ICH9 AHCI controller; i440fx's is PIIX).
# [ground-truth §4 "Which scsihw values a stock EL8 kernel can boot from", §6 scsihw enum (apidata)]
SCSIHW_MODULE = {
    "lsi": "sym53c8xx",
    "lsi53c810": "sym53c8xx",
    "megasas": "megaraid_sas",
    "pvscsi": "vmw_pvscsi",
    "virtio-scsi-pci": "virtio_scsi",
    "virtio-scsi-single": "virtio_scsi",
}
SCSIHW_DEFAULT = "lsi"  # Proxmox's default when `scsihw` is not set [apidata, §6]
BUS_MODULE = {("sata", "q35"): "ahci", ("ide", "q35"): "ahci", ("sata", "pc"): "ahci", ("ide", "pc"): "ata_piix",
              ("virtio", "q35"): "virtio_blk", ("virtio", "pc"): "virtio_blk"}

# SCSI HBA drivers and virtio_blk load only when the VM has that controller (udev matches the
# device's modalias): a recorded guest's own HBA driver is replaced by the replaying VM's.
HBA_MODULES = frozenset(SCSIHW_MODULE.values()) | {"virtio_blk"}
# (I) The storage drivers a Rocky guest on KVM has loaded besides its disk controller's: the disk
# (sd_mod, sg), the CD drive (sr_mod, cdrom), libata with ata_piix, the root's xfs. The lab's choice,
# as `lsmod` of the lab guest always showed them; a guest recording gives its own.
LOADED_AT_BOOT = ("sd_mod", "sr_mod", "cdrom", "sg", "ata_piix", "libata", "xfs")


def controller_module(bus: str, scsihw: str | None, machine: str) -> str:
    """The kernel module the guest needs to find a disk on `bus` of a `machine` ("q35" | "pc")."""
    if bus == "scsi":
        return SCSIHW_MODULE.get(scsihw or SCSIHW_DEFAULT, "sym53c8xx")
    return BUS_MODULE.get((bus, "pc" if machine.startswith("pc") or "i440fx" in machine else "q35"), "ahci")


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

# What pve-storage's import-metadata answers for an OVA (ground-truth §8, DirPlugin.pm, OVF.pm): the
# disk key is the OVF controller's ResourceType (6 -> scsi) + AddressOnParent, the controller's
# ResourceSubType (VirtualSCSI, lsilogic...) is never read and `scsihw` never set; `cores` and
# `memory` are raw VirtualQuantity strings; the NIC model is vmxnet3 lowercased from the OVF; an OVA
# always gets the `ova-needs-extracting` warning. The VAST OVF itself is not public (§16): its
# figures here are the lab's stand-in (a VMware-built RHEL 8 guest: one SCSI disk at address 0).
OVA_DISK_KEY = "scsi0"
OVA_CREATE_ARGS = {"cores": "8", "memory": "65536", "ostype": "l26"}
OVA_NIC_MODEL = "vmxnet3"
OVA_WARNINGS = ({"type": "ova-needs-extracting"},)

# Its initramfs, by variant (chosen in the lab's answers, `lab: {ova: ...}`):
# - "host-only" (the default): built by dracut on VMware, where EL8's dist config says
#   hostonly="yes" (ground-truth §5, dracut8 01-dist.conf). Host-only dracut skips every module that
#   is neither loaded nor matched by a present device, but 90kernel-modules always adds sd_mod,
#   sr_mod, scsi_dh and ata_piix plus the root filesystem (xfs). On VMware with the root disk on
#   PVSCSI (VMware's default for RHEL 8 guests, weakly sourced, §5) that gives vmw_pvscsi and no
#   VirtIO driver at all (no virtio device exists on VMware). Whether ahci is in it depends on a SATA
#   controller on the VMware VM, which nobody here knows (§5 I, §16): the lab leaves it out, the harder
#   case (the product then falls back to i440fx IDE, ata_piix, which dracut always adds).
# - "generic": built with `dracut --no-hostonly` (-N): every storage module the kernel builds,
#   VirtIO included (§5 I).
INITRAMFS_ALWAYS = ("sd_mod", "sr_mod", "cdrom", "scsi_dh_alua", "scsi_dh_emc", "scsi_dh_rdac", "ata_piix",
                    "libata", "xfs")  # dracut8 90kernel-modules/module-setup.sh, §5
OVA_INITRAMFS = {
    "host-only": (*INITRAMFS_ALWAYS, "vmw_pvscsi"),
    "generic": tuple(sorted(KERNEL_STORAGE_MODULES)),
}
OVA_VARIANTS = tuple(OVA_INITRAMFS)
OVA_DEFAULT_VARIANT = "host-only"

# What a guest whose initramfs lacks its disk controller's driver shows on its console: dracut waits
# for the root device, then gives up into the emergency shell (no network, no sshd, no agent).
# [dracut8 modules.d/98dracut-systemd dracut-initqueue; the root is named by UUID on the cmdline, §6]
DRACUT_NO_ROOT = ("dracut-initqueue[{pid}]: Warning: dracut-initqueue timeout - starting timeout scripts",
                  "dracut-initqueue[{pid}]: Warning: Could not boot.",
                  "Warning: /dev/disk/by-uuid/{root_uuid} does not exist",
                  "Generating \"/run/initramfs/rdsosreport.txt\"",
                  "Entering emergency mode. Exit the shell to continue.")


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

# The field VM's disk as its kernel saw it (ground-truth §6, dmesg): sda, MBR (`(hd0,msdos1)` on the
# cmdline), sda1 /boot XFS 1 GiB, sda2 swap, sda3 / XFS V5, no LVM; root and resume by UUID.
SECTOR_BYTES = 512
ROOT_UUID = "9914d65e-64ef-46a7-9c3c-94e2d76279a3"  # dmesg cmdline root=UUID=...
SWAP_UUID = "f6fa6613-1edf-462a-9066-33b21e40d246"  # dmesg cmdline resume=UUID=...
SWAP_KIB = 839_676  # "Adding 839676k swap on /dev/sda2" (dmesg, mem SwapTotal)
BOOT_START = 2048  # the first partition at 1 MiB, as anaconda aligns it
BOOT_SECTORS = 2 * 1024 * 1024  # 1 GiB (§6)
SWAP_START = BOOT_START + BOOT_SECTORS
SWAP_SECTORS = (SWAP_KIB + 4) * 2  # mkswap keeps one 4 KiB page for its header
ROOT_START = SWAP_START + SWAP_SECTORS  # 3778560: sda3 follows sda2 (I: not in the traces)
XFS_BLOCK_BYTES = 4096
# df of an XFS counts its data blocks minus the internal log. The field's `/` had 1071842284 1K-blocks
# on a 2147483648-sector disk (§6): with sda3 from ROOT_START to the end, that is a log of 2565
# blocks (10 MiB), what mkfs.xfs gives a filesystem of about 20 GiB: the image's root was made small
# and grown (I). The log never grows with the filesystem.
XFS_LOG_BLOCKS = 2565
# The OVA's disk: ~600 GiB (jv 03-VM-Setup.md, §9), its root filesystem spanning sda3 to its end.
OVA_DISK_BYTES = 600 * 1024**3
# growpart on MBR caps a partition's end at 2^32 sectors (canonical/cloud-utils bin/growpart, §9).
MBR_MAX_SECTORS = 2**32
# The boot partition's XFS (1 GiB) has a log of 2560 blocks, as mkfs.xfs makes it for that size: df's
# 1038336 1K-blocks of /boot (I: the lab's, no trace shows /boot's df).
BOOT_XFS_LOG_BLOCKS = 2560
# An ext4 (a guest recording's root or /boot may be one) as df counts it: its blocks less the inode
# tables (mke2fs.conf's ext4 defaults, inode_ratio 16384 and inode_size 256: 1/64 of the space) and
# the journal, sized by mke2fs for the filesystem it made and never grown by resize2fs
# (e2fsprogs 1.45 lib/ext2fs/mkjournal.c ext2fs_default_journal_size, in 4 KiB blocks). Block
# bitmaps and group descriptors (under 0.01 %) are left out.
EXT4_INODE_TABLE_FRACTION = 64
EXT4_JOURNAL_BLOCKS = ((32_768, 1024), (256 * 1024, 4096), (512 * 1024, 8192), (4096 * 1024, 16_384),
                       (8192 * 1024, 32_768), (16_384 * 1024, 65_536), (32_768 * 1024, 131_072))
EXT4_JOURNAL_TOP_BLOCKS = 262_144
ROOT_FSTYPES = ("xfs", "ext4")  # what the lab's guest tools know how to show and grow


def fs_log_blocks(fstype: str, blocks: int) -> int:
    """The internal log (XFS) or journal (ext4) of a filesystem made with `blocks` 4 KiB blocks."""
    if fstype != "ext4":
        return XFS_LOG_BLOCKS
    return next((size for below, size in EXT4_JOURNAL_BLOCKS if blocks < below), EXT4_JOURNAL_TOP_BLOCKS)


# Exit codes of growpart: 0 CHANGED, 1 NOCHANGE, 2 FAILED (canonical/cloud-utils bin/growpart, §9).
GROWPART_CHANGED, GROWPART_NOCHANGE, GROWPART_FAILED = 0, 1, 2


def root_df_kib(root_sectors: int) -> int:
    """What df shows as the size of an XFS spanning `root_sectors` (1K-blocks)."""
    blocks = root_sectors * SECTOR_BYTES // XFS_BLOCK_BYTES
    return (blocks - XFS_LOG_BLOCKS) * XFS_BLOCK_BYTES // 1024


def df_kib(fstype: str, blocks: int, log_blocks: int) -> int:
    """What df shows as the size (1K-blocks) of a filesystem of `blocks` 4 KiB blocks with an internal
    log or journal of `log_blocks` (the guest's stub tools compute the same, stubs/lib/labstub.sh)."""
    tables = blocks // EXT4_INODE_TABLE_FRACTION if fstype == "ext4" else 0
    return (blocks - tables - log_blocks) * XFS_BLOCK_BYTES // 1024


# --- VAST: the install's and the VMS's behaviour ---------------------------------------------------

# After a reboot of the guest. The field's install log ends with "After Reboot: Run: ./start_vms.sh"
# (inst, §10), and jv's start_vms.sh restarts VMS from inside cnode-1: `docker cp /vast/data/vms_image
# vast_platform_11.0.0.1-4100:/vast/data/vms_image`, then `docker exec ... vms-bringup start` in that
# container (jv docs/archive/scripts/start_vms.sh, §10). Whether that works after a reboot was never
# tried (seed checklist unchecked, §10; §16), so the lab models both answers, chosen in the lab's
# answers (`lab.start_vms_after_reboot`):
#   "works": the platform containers come back with Docker (a restart policy), vms-bringup starts VMS
#            and the cluster comes ONLINE again;
#   "fails": they stay stopped, as a container started without a restart policy does after a reboot
#            (vman's COMMON_PARAMS in the field log carry no --restart, inst §10), so `docker exec`
#            answers "container ... is not running" and start_vms.sh fails.
START_VMS_AFTER_REBOOT = ("works", "fails")
START_VMS_AFTER_REBOOT_DEFAULT = "works"
# What comes back with Docker after a reboot in either answer: the registry (started with
# --restart=always by the bootstrap). What never does: vast_vms, run with --rm (vast.md §3
# "Containers": stopping it deletes it), so the VMS API does not answer until VAST is restarted.
# mcvms (no restart policy, started by the bootstrap and by `vman.sh ... start`) stays stopped too.
PLATFORM_RESTART_POLICY = {"works": "unless-stopped", "fails": "no"}
# /vast/data/vms_image, the file start_vms.sh copies into cnode-1: it exists on the guest after the
# install (jv start_vms.sh copies it without creating it). Its content is not known; the lab writes
# the VMS image's name (inferred).
VMS_IMAGE_FILE = "/vast/data/vms_image"
# `vms-bringup start` inside cnode-1, and `vman.sh <build> <pem> start`: modelled (no field log of a
# restart exists). VMS answers after a minute, the cluster reports ACTIVATING from the moment VMS is
# back (never the ONLINE it had before the reboot) and is ONLINE again after about four minutes.
RESTART_VMS_UP_S = 60.0
RESTART_ONLINE_S = 240.0

# A VTask's `messages`: the 5.4 OpenAPI types it as an object (vms54, §11); go-vast-client reads it
# as a list of strings (go-vast-client core/async_result.go, §11). Nobody has a real sample (§16), so
# the lab answers either, chosen in the lab's answers (`lab.vtask_messages`): "list" (a list of
# strings) or "object" (the messages keyed by their numbers, "1", "2"...; the keys are modelled).
VTASK_MESSAGES = ("list", "object")
VTASK_MESSAGES_DEFAULT = "list"

# EXTRA_VOLUME_MOUNTS: the field's script exported `-v /file_server:/file_server`; vman.sh added it to
# its volume mounts and said so: "WARNING! - added extra volume mounts to common params: -v
# /file_server:/file_server" (inst, §10; jv vast_proxmox_install.sh). Without it, vman.sh's
# VOLUME_MOUNTS end at the docker socket and nothing is said (inferred from the warning's wording).
EXTRA_VOLUME_MOUNTS_WARNING = "WARNING! - added extra volume mounts to common params: "

# How vcli takes the VMS password. Known: the field ran `vman.sh <build> <pem> vcli -u admin -p 123456
# -c cluster create ...`, and vman.sh ran vcli in a container with `docker run ... -t <image> .../vman
# 'vcli -u admin -p 123456 ...'` [inst] (vast_install_final.log lines 77, 82): the password was in the
# command line of vman.sh, of the docker client and of vcli (/proc/<pid>/cmdline, readable by every
# user of the guest), and the container's stdin is not attached (-t without -i). vman.sh passes some
# of its environment into the container (`-e DISABLE_IPV6_FOR_LOOPBACK=yes` [inst] §10). Not known:
# any other way vcli takes a password; no public source documents one. VAST's own Python CLI,
# vastpy-cli, reads VMS_USER / VMS_PASSWORD from the environment (research vast.md §1), and a
# process's environment is readable by its owner only. So the lab's vcli takes the password from
# VMS_PASSWORD and refuses `-p` (the one place it must never be); a real vcli that ignores
# VMS_PASSWORD fails the login, which the tool reports with that explanation (backend/steps/install.py).
VCLI_PASSWORD = "env:VMS_PASSWORD"

# The VMS's TLS certificate: self-signed, made by the VMS at its first start (the bootstrap prints
# "please connect at https://<ip>", jv install log, and no CA is involved on a fresh OVA), kept on
# the guest's disk so it survives the container's restarts. Where VAST 5.4 keeps it is not public:
# `vast_vms` runs with `--rm` (anything kept only inside it is gone at each restart) and its only
# persistent mount of its own is /vast/vman (its logs are /vast/vman/vms/log/*, research/vast.md
# §3; `-v /vast/vman:/vast/vman`, jv docker_ps). The file names below are the lab's guess: the
# product's `vast.cert_path` defaults to the same path and is configurable, and the lab can keep it
# elsewhere (`VastGuestLab(vms_cert_path=...)`) to play a guest where the product does not find it.
VMS_CERT_PATH = "/vast/vman/vms/ssl/vms.crt"
VMS_CERT_DAYS = 3650  # modelled: a self-signed appliance certificate made for years
