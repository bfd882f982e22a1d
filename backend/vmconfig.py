"""The VM's Proxmox configuration, as the field report requires it: pure functions, no I/O.

Two stages:
- first boot: the OVA was built for VMware, so its CentOS boots only from an LSI 53C895A
  controller (`scsihw=lsi`) until virtio drivers are in its initramfs. q35, cpu host, 1 socket x N
  cores, ballooning off, guest agent enabled, a VirtIO NIC, the OVA's disk imported onto the VM
  storage (`import-from`), tagged `vast-loopback`, and claimed by the run that creates it: the
  run id goes into the create request's description (`vast-loopback run: <id>`), so a resume of
  that run finds its VM and another run with the same VM name can tell it is not its own.
- after preparation: VirtIO SCSI single with an IO thread on the same volume (the configuration
  that gave 21.65 ms / 36.02 ms max r/w await in the successful run).

Every value that ends up inside a Proxmox property string is checked here again, so nothing can
smuggle a `,key=value` into one (the answers model already validates them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

TAG = "vast-loopback"
# The claim goes into the description, not a tag: a tag per run would have to fit pve-tag
# (`[a-z0-9_][a-z0-9_+.-]*`), could be refused by the datacenter's tag policy (`user-tag-access`)
# and would stay in every tag list; the description is free text (8192 characters), in the create
# request itself, and shown as the VM's notes.
CLAIM_PREFIX = "vast-loopback run: "
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CLAIM = re.compile(r"^" + re.escape(CLAIM_PREFIX) + r"(\S+)\s*$", re.MULTILINE)
FIRST_BOOT_CONTROLLER = "lsi"
FINAL_CONTROLLER = "virtio-scsi-single"
OS_DISK = "scsi0"
MIB_PER_GIB = 1024

# Storage types whose volumes are files (an OVA's disk can only be extracted onto one of these).
FILE_BASED_STORAGE_TYPES = frozenset({"dir", "nfs", "cifs", "cephfs", "glusterfs", "btrfs"})

_STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
_BRIDGE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.\-]{0,14}$")
_DNS_NAME = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?$")
# A volume id as Proxmox prints it: storage:volname, with a conservative character set for the
# volname (no ',', '=', ';' or whitespace, which would change the meaning of a property string).
_VOLID = re.compile(r"^(?P<storage>[a-z][a-z0-9\-_.]*[a-z0-9]):(?P<volname>[A-Za-z0-9_.+/\-]+)$", re.IGNORECASE)
_MAC = re.compile(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}")
_SIZE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>[KMGT]?)$")
_UNIT_GIB = {"": 1 / 1024**3, "K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}


@dataclass(frozen=True)
class VmSpec:
    """The concrete VM the sizing step settled on."""

    name: str
    vcpus: int
    memory_gib: int
    storage: str
    bridge: str
    numa: bool = False
    vmid: int | None = None
    run_id: str = ""  # the run that creates the VM: its claim on it


def claim_note(run_id: str) -> str:
    """The VM's description naming the run that created it (one line a resume reads back)."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return f"Created by vast-loopback.\n{CLAIM_PREFIX}{run_id}\n"


def claimed_by(description: object) -> str | None:
    """The run id a VM's description names, or None (no claim: another tool, an older version,
    or notes edited by hand)."""
    match = _CLAIM.search(str(description or ""))
    return match.group(1) if match else None


def check_storage_id(value: str) -> str:
    if not isinstance(value, str) or not _STORAGE_ID.match(value):
        raise ValueError(f"not a Proxmox storage id: {value!r}")
    return value


def check_bridge(value: str) -> str:
    if not isinstance(value, str) or not _BRIDGE.match(value):
        raise ValueError(f"not a bridge name: {value!r}")
    return value


def check_volid(value: str) -> str:
    """A volume id safe to place inside a property string (`import-from=<volid>`)."""
    match = _VOLID.match(value) if isinstance(value, str) else None
    if not match or ".." in match.group("volname").split("/"):
        raise ValueError(f"not a safe Proxmox volume id: {value!r}")
    return value


def split_volid(volid: str) -> tuple[str, str]:
    """'local:import/x.ova' -> ('local', 'import/x.ova')."""
    match = _VOLID.match(volid)
    if not match:
        raise ValueError(f"not a Proxmox volume id: {volid!r}")
    return match.group("storage"), match.group("volname")


def _flag(value: bool) -> int:
    """Proxmox booleans are the literal 1 or 0 (a Python True would be sent as 'True')."""
    return 1 if value else 0


def first_boot_config(spec: VmSpec, disks: Sequence[str], working_storage: str | None = None) -> dict:
    """Parameters of POST /nodes/{node}/qemu for the OVA's first boot.

    `disks` are the OVA's disk volids from import-metadata, OS disk first; each is imported onto
    `spec.storage` as scsi0, scsi1, ... `working_storage` is the file-based storage the OVA is
    extracted onto when the OVA's own storage cannot hold images.
    """
    if not disks:
        raise ValueError("the OVA has no disk to import")
    if not _DNS_NAME.match(spec.name) or len(spec.name) > 63:
        raise ValueError(f"not a valid VM name: {spec.name!r}")
    if not 1 <= spec.vcpus <= 512 or spec.memory_gib < 1:
        raise ValueError(f"impossible VM size: {spec.vcpus} vCPUs, {spec.memory_gib} GiB")
    storage = check_storage_id(spec.storage)
    config: dict = {
        "name": spec.name,
        "machine": "q35",
        "ostype": "l26",
        "scsihw": FIRST_BOOT_CONTROLLER,
        "cpu": "host",
        "sockets": 1,
        "cores": int(spec.vcpus),
        "memory": int(spec.memory_gib) * MIB_PER_GIB,
        "balloon": 0,
        "numa": _flag(spec.numa),
        "agent": "1",
        "net0": f"virtio,bridge={check_bridge(spec.bridge)}",
        "boot": f"order={OS_DISK}",
        "tags": TAG,
    }
    if spec.run_id:
        config["description"] = claim_note(spec.run_id)
    for index, volid in enumerate(disks):
        config[f"scsi{index}"] = f"{storage}:0,import-from={check_volid(volid)}"
    if working_storage:
        config["import-working-storage"] = check_storage_id(working_storage)
    if spec.vmid is not None:
        config["vmid"] = int(spec.vmid)
    return config


def parse_drive(value: str) -> tuple[str, dict[str, str]]:
    """'local-lvm:vm-100-disk-0,iothread=1,size=600G' -> ('local-lvm:vm-100-disk-0', {...})."""
    parts = [p for p in str(value).split(",") if p]
    if not parts:
        raise ValueError("empty drive")
    volume, options = parts[0], {}
    if volume.startswith("file="):
        volume = volume[len("file="):]
    for part in parts[1:]:
        key, _, val = part.partition("=")
        options[key] = val
    return volume, options


def print_drive(volume: str, options: dict[str, str]) -> str:
    return ",".join([volume, *(f"{k}={v}" for k, v in options.items())])


def size_gib(size: str | None) -> float | None:
    """A Proxmox size ('600G', '1T', '512M', bytes without unit) in GiB, or None."""
    match = _SIZE.match(size or "")
    if not match:
        return None
    return float(match.group("number")) * _UNIT_GIB[match.group("unit")]


def drive_size_gib(value: str) -> float | None:
    return size_gib(parse_drive(value)[1].get("size"))


def final_controller_changes(config: dict) -> dict:
    """The second stage: VirtIO SCSI single and an IO thread on the same OS volume.

    Returns {} when the VM already has both (so the step is idempotent).
    """
    drive = config.get(OS_DISK)
    if not drive:
        raise ValueError(f"the VM has no {OS_DISK} disk")
    volume, options = parse_drive(drive)
    if "import-from" in options:
        raise ValueError(f"{OS_DISK} is still being imported ({drive})")
    changes: dict = {}
    if config.get("scsihw") != FINAL_CONTROLLER:
        changes["scsihw"] = FINAL_CONTROLLER
    if options.get("iothread") not in ("1", "on", "yes", "true"):
        options = {**options, "iothread": "1"}
        changes[OS_DISK] = print_drive(volume, options)
    return changes


def resize_to(config: dict, disk_gib: int, disk: str = OS_DISK) -> str | None:
    """The size argument for PUT .../resize when `disk_gib` is larger than the disk, else None."""
    drive = config.get(disk)
    if not drive:
        raise ValueError(f"the VM has no {disk} disk")
    current = drive_size_gib(drive)
    if current is not None and current >= disk_gib:
        return None
    return f"{int(disk_gib)}G"


def has_tag(tags: str | None, tag: str = TAG) -> bool:
    """Proxmox tags are separated by ';' (also ',' or spaces in older configs)."""
    return tag in re.split(r"[;,\s]+", tags or "")


def mac_of(net: str | None) -> str | None:
    """The MAC address in a net[n] value ('virtio=BC:24:11:00:00:01,bridge=vmbr0')."""
    if not net:
        return None
    parts = str(net).split(",")
    mac = parts[0].partition("=")[2]
    if not _MAC.fullmatch(mac):
        mac = next((p.partition("=")[2] for p in parts[1:] if p.startswith("macaddr=")), "")
    return mac.upper() if _MAC.fullmatch(mac) else None


def working_storage_for(ova_storage: str, storages: Sequence) -> tuple[str | None, str | None]:
    """Where Proxmox extracts the OVA's disk before importing it.

    Proxmox extracts onto the OVA's own storage unless `import-working-storage` names another;
    that storage must be file-based and hold 'images'. Returns (working storage to pass or None,
    storage that needs 'images' content added or None). `storages` are StorageFacts-like objects
    (storage, type, content, active).
    """
    by_name = {s.storage: s for s in storages}
    own = by_name.get(ova_storage)

    def usable(s) -> bool:  # noqa: ANN001 - StorageFacts
        return s.active and s.type in FILE_BASED_STORAGE_TYPES and "images" in s.content

    if own is not None and usable(own):
        return None, None
    others = [s for s in storages if s.storage != ova_storage and usable(s)]
    if others:
        return max(others, key=lambda s: s.avail).storage, None
    if own is not None and own.active and own.type in FILE_BASED_STORAGE_TYPES:
        return None, ova_storage
    return None, None
