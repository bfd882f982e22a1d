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


def controller_module(bus: str, scsihw: str | None, machine: str) -> str:
    """The kernel module the guest needs to find a disk on `bus` of a `machine` ("q35" | "pc")."""
    if bus == "scsi":
        return SCSIHW_MODULE.get(scsihw or SCSIHW_DEFAULT, "sym53c8xx")
    return BUS_MODULE.get((bus, "pc" if machine.startswith("pc") or "i440fx" in machine else "q35"), "ahci")


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
# Exit codes of growpart: 0 CHANGED, 1 NOCHANGE, 2 FAILED (canonical/cloud-utils bin/growpart, §9).
GROWPART_CHANGED, GROWPART_NOCHANGE, GROWPART_FAILED = 0, 1, 2


def root_df_kib(root_sectors: int) -> int:
    """What df shows as the size of an XFS spanning `root_sectors` (1K-blocks)."""
    blocks = root_sectors * SECTOR_BYTES // XFS_BLOCK_BYTES
    return (blocks - XFS_LOG_BLOCKS) * XFS_BLOCK_BYTES // 1024


# --- VAST: the install's and the VMS's behaviour ---------------------------------------------------
