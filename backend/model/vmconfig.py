"""The VM's Proxmox configuration, as the field report requires it: pure functions, no I/O.

Two stages:
- first boot: the OVA was built for VMware and its initramfs holds only the drivers of the hardware
  it was built on (dracut's host-only mode), so it boots on a controller whose driver the Rocky 8.10
  kernel builds and the initramfs likely holds, chosen from the bus the OVA declares for its disk
  (`boot_candidates`): VMware PVSCSI (`pvscsi`, vmw_pvscsi) for a SCSI disk, SATA (`ahci`),
  i440fx IDE (`ata_piix`, which dracut always adds), and VirtIO SCSI single (`virtio_scsi`) for an
  initramfs built without host-only. Never QEMU's LSI 53C895A (`lsi`): its driver, sym53c8xx, is not
  built by that kernel (CONFIG_SCSI_SYM53C8XX_2 is not set). q35 (i440fx for IDE), cpu host,
  1 socket x N cores (or the host's sockets with NUMA, when the vCPUs span them: sizing.topology),
  ballooning off, guest agent enabled, a VirtIO NIC, the OVA's disk imported
  onto the VM storage (`import-from`), tagged `vast-loopback` so a rerun finds its VM, and claimed by the run that
  creates it: the run id goes into the create request's description (`vast-loopback run: <id>`),
  so a resume of that run finds its VM and another run with the same VM name can tell it is not
  its own.
- after preparation: VirtIO SCSI single with an IO thread on the same volume (the configuration
  that gave 21.65 ms / 36.02 ms max r/w await in the successful run), on q35.

Moving between controllers of different buses moves the OS disk's volume (delete the old key, set
the new one to the same volume, in one update; Proxmox drops the `unusedN` that leaves) and its
place in the boot order.

Every value that ends up inside a Proxmox property string is checked here again, so nothing can
smuggle a `,key=value` into one (the answers model already validates them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TAG = "vast-loopback"
# The claim goes into the description, not a tag: a tag per run would have to fit pve-tag
# (`[a-z0-9_][a-z0-9_+.-]*`), could be refused by the datacenter's tag policy (`user-tag-access`)
# and would stay in every tag list; the description is free text (8192 characters), in the create
# request itself, and shown as the VM's notes.
CLAIM_PREFIX = "vast-loopback run: "
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CLAIM = re.compile(r"^" + re.escape(CLAIM_PREFIX) + r"(\S+)\s*$", re.MULTILINE)
FINAL_CONTROLLER = "virtio-scsi-single"
OS_DISK = "scsi0"  # the OS disk on the final controller
MIB_PER_GIB = 1024
DISK_BUSES = ("scsi", "sata", "ide", "virtio")
BUS_SLOTS = {"scsi": 31, "sata": 6, "ide": 4, "virtio": 16}


@dataclass(frozen=True)
class Controller:
    """A disk controller a VM can boot its OS disk from, and the EL8 kernel module that drives it."""

    name: str  # as the answers and the events name it
    bus: str  # the OS disk's key prefix
    scsihw: str | None  # Proxmox's `scsihw` for a SCSI disk
    machine: str  # "q35" | "pc" (i440fx)
    module: str


CONTROLLERS = {c.name: c for c in (
    Controller(FINAL_CONTROLLER, "scsi", FINAL_CONTROLLER, "q35", "virtio_scsi"),
    Controller("pvscsi", "scsi", "pvscsi", "q35", "vmw_pvscsi"),
    Controller("sata", "sata", None, "q35", "ahci"),  # q35's ICH9 AHCI
    Controller("ide", "ide", None, "pc", "ata_piix"),  # i440fx's PIIX IDE; dracut always adds ata_piix
)}
# QEMU controllers whose driver the Rocky 8.10 kernel does not build: a guest never finds its disk.
EL8_UNBOOTABLE = {"lsi": "sym53c8xx", "lsi53c810": "sym53c8xx"}
# The first-boot order by the bus the OVA declares for its disk: the controller an initramfs built on
# VMware most likely holds the driver of first (a VMware SCSI disk of a RHEL 8 guest is PVSCSI by
# default), VirtIO last (only an initramfs built without host-only holds it).
BOOT_ORDER = {
    "scsi": ("pvscsi", "sata", "ide", FINAL_CONTROLLER),
    "sata": ("sata", "pvscsi", "ide", FINAL_CONTROLLER),
    "ide": ("ide", "sata", "pvscsi", FINAL_CONTROLLER),
}

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
    sockets: int = 1  # more than one only with NUMA on, matching the host's sockets (sizing.topology)
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


def check_controller(name: str) -> str:
    """A controller the Rocky 8.10 kernel can boot from, else ValueError (LSI: no driver at all)."""
    if name in EL8_UNBOOTABLE:
        raise ValueError(f"the Rocky 8.10 kernel cannot boot from {name}: it does not build {EL8_UNBOOTABLE[name]}")
    if name not in CONTROLLERS:
        raise ValueError(f"not a controller the Rocky 8.10 kernel can boot from: {name!r}")
    return name


def ova_disk_bus(disk_keys: Sequence[str]) -> str:
    """The bus the OVA declares for its first disk (import-metadata's disk keys: scsi0, sata0, ide0)."""
    for key in sorted(disk_keys):
        bus = re.sub(r"\d+$", "", key)
        if bus in BOOT_ORDER:
            return bus
    return "scsi"


def boot_candidates(ova_bus: str, preferred: str = "auto") -> list[str]:
    """The controllers to try for the first boot, in order: `preferred` (the answers'
    `vm.first_boot_controller`) first unless 'auto', then the order for the OVA's disk bus."""
    order = list(BOOT_ORDER.get(ova_bus, BOOT_ORDER["scsi"]))
    if preferred in CONTROLLERS:
        order = [preferred, *(name for name in order if name != preferred)]
    return order


def machine_type(config: dict) -> str:
    """'q35' or 'pc' (i440fx: Proxmox's default when `machine` is not set)."""
    parts = str(config.get("machine") or "").split(",")
    value = next((p[len("type="):] for p in parts if p.startswith("type=")), parts[0])
    return "q35" if "q35" in value else "pc"


def boot_order(config: dict) -> list[str]:
    value = str(config.get("boot") or "")
    return [k for k in value[len("order="):].split(";") if k] if value.startswith("order=") else []


def os_disk_key(config: dict) -> str | None:
    """The key of the VM's OS disk: the first disk of the boot order, else the first disk."""
    disks = [k for k in config if re.fullmatch(r"(scsi|sata|ide|virtio)\d+", k)
             and "media=cdrom" not in str(config[k])]
    ordered = [k for k in boot_order(config) if k in disks]
    if ordered:
        return ordered[0]
    return min(disks, key=lambda k: (DISK_BUSES.index(re.sub(r"\d+$", "", k)), int(re.sub(r"\D", "", k))),
               default=None)


def controller_of(config: dict) -> str:
    """The controller the VM's OS disk is on: a `CONTROLLERS` name, else what Proxmox calls it
    (e.g. 'lsi', Proxmox's default `scsihw`)."""
    key = os_disk_key(config)
    bus = re.sub(r"\d+$", "", key) if key else "scsi"
    scsihw = str(config.get("scsihw") or "lsi") if bus == "scsi" else None
    machine = machine_type(config)
    for controller in CONTROLLERS.values():
        if (controller.bus, controller.scsihw) == (bus, scsihw) and (bus == "scsi" or controller.machine == machine):
            return controller.name
    return scsihw or f"{bus} ({machine})"


def first_boot_config(spec: VmSpec, disks: Sequence[str], working_storage: str | None = None,
                      controller: str = "pvscsi") -> dict:
    """Parameters of POST /nodes/{node}/qemu for the OVA's first boot on `controller`.

    `disks` are the OVA's disk volids from import-metadata, OS disk first; each is imported onto
    `spec.storage` on the controller's bus (scsi0, scsi1, ... or sata0, ...). `working_storage`
    is the file-based storage the OVA is extracted onto when the OVA's own storage cannot hold
    images.
    """
    check_controller(controller)
    chosen = CONTROLLERS[controller]
    if not disks:
        raise ValueError("the OVA has no disk to import")
    if len(disks) > BUS_SLOTS[chosen.bus]:
        raise ValueError(f"the OVA has {len(disks)} disks, more than the {chosen.bus} bus holds")
    if not _DNS_NAME.match(spec.name) or len(spec.name) > 63:
        raise ValueError(f"not a valid VM name: {spec.name!r}")
    if not 1 <= spec.vcpus <= 512 or spec.memory_gib < 1:
        raise ValueError(f"impossible VM size: {spec.vcpus} vCPUs, {spec.memory_gib} GiB")
    if spec.sockets < 1 or spec.vcpus % spec.sockets:
        raise ValueError(f"{spec.vcpus} vCPUs do not split over {spec.sockets} sockets")
    storage = check_storage_id(spec.storage)
    config: dict = {
        "name": spec.name,
        "machine": chosen.machine,
        "ostype": "l26",
        **({"scsihw": chosen.scsihw} if chosen.scsihw else {}),
        "cpu": "host",
        **cpu_layout(spec.vcpus, spec.sockets),
        "memory": int(spec.memory_gib) * MIB_PER_GIB,
        "balloon": 0,
        "numa": _flag(spec.numa),
        "agent": "1",
        "net0": f"virtio,bridge={check_bridge(spec.bridge)}",
        "boot": f"order={chosen.bus}0",
        "tags": TAG,
    }
    if spec.run_id:
        config["description"] = claim_note(spec.run_id)
    iothread = ",iothread=1" if controller == FINAL_CONTROLLER else ""
    for index, volid in enumerate(disks):
        config[f"{chosen.bus}{index}"] = f"{storage}:0,import-from={check_volid(volid)}{iothread}"
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


def controller_changes(config: dict, controller: str) -> dict:
    """The update (for a stopped VM) that puts the OS disk on `controller`: `scsihw`, `machine`, and,
    when the bus changes, the same volume under the new bus's first free key, the old key in
    `delete` and the boot order on the new key. An IO thread on the final controller, none where
    Proxmox allows none (SATA, IDE). Returns {} when the VM is on it already (idempotent)."""
    check_controller(controller)
    target = CONTROLLERS[controller]
    key = os_disk_key(config)
    if not key:
        raise ValueError("the VM has no OS disk")
    volume, options = parse_drive(config[key])
    if "import-from" in options:
        raise ValueError(f"{key} is still being imported ({config[key]})")
    changes: dict = {}
    if machine_type(config) != target.machine:
        changes["machine"] = target.machine
    if target.scsihw and config.get("scsihw") != target.scsihw:
        changes["scsihw"] = target.scsihw
    wanted = dict(options)
    if controller == FINAL_CONTROLLER:
        wanted["iothread"] = "1" if options.get("iothread") not in ("1", "on", "yes", "true") else options["iothread"]
    elif target.bus in ("sata", "ide"):
        wanted.pop("iothread", None)
    if re.sub(r"\d+$", "", key) != target.bus:
        taken = {k for k in config if k.startswith(target.bus)}
        new_key = next(f"{target.bus}{n}" for n in range(BUS_SLOTS[target.bus]) if f"{target.bus}{n}" not in taken)
        changes[new_key] = print_drive(volume, wanted)
        changes["delete"] = key
        changes["boot"] = f"order={new_key}"
    elif wanted != options:
        changes[key] = print_drive(volume, wanted)
    return changes


def final_controller_changes(config: dict) -> dict:
    """The second stage: VirtIO SCSI single, an IO thread on the same OS volume, q35.

    Returns {} when the VM already has them (so the step is idempotent).
    """
    return controller_changes(config, FINAL_CONTROLLER)


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


def bridge_of(net: str | None) -> str | None:
    """The bridge in a net[n] value ('virtio=BC:24:11:00:00:01,bridge=vmbr0' -> 'vmbr0')."""
    for part in str(net or "").split(",")[1:]:
        key, _, value = part.partition("=")
        if key == "bridge" and _BRIDGE.fullmatch(value):
            return value
    return None


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


# --- vCPUs and cores: the one place one becomes the other --------------------------------------

def cpu_layout(vcpus: int, sockets: int = 1) -> dict[str, int]:
    """A VM's vCPUs as Proxmox's `sockets` and `cores` (the one place vCPUs become cores)."""
    sockets = max(1, int(sockets))
    return {"sockets": sockets, "cores": max(1, int(vcpus) // sockets)}


def _count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def vcpus_of(config: Mapping[str, Any]) -> int | None:
    """A VM config's vCPUs (`vcpus` when set, else sockets x cores); None when it names no cores."""
    explicit = _count(config.get("vcpus"))
    if explicit:
        return explicit
    cores = _count(config.get("cores"))
    if cores is None:
        return None
    return cores * max(1, _count(config.get("sockets", 1)) or 1)
