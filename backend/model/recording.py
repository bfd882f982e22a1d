"""The recording format: a Proxmox host, or a guest, written down as JSON by `vast-loopback probe`.

Shared data, no rules: the product writes recordings (backend/probe.py), the lab replays them as its
host and guest, and a bug report carries one. Everything in a recording is what the host or guest
said about itself, read-only, normalised into the dataclasses below; nothing in it is a secret (no
token, password, private key or certificate: the probe never reads one).

A file is one JSON object: `{"format": FORMAT, "schema": SCHEMA_VERSION, "kind": "host" | "guest",
...}`. A reader refuses another format, another schema version or a malformed file with a
`RecordingError` (bad input, exit 2) naming the file and the field.

Units: bytes for sizes and memory (as the Proxmox API gives them), except a VM's `memory_mib` and
the guest's `mem_total_kib` / `vm_memory_mib`, which keep the units their sources use (the VM's
config, /proc/meminfo).
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from backend.errors import BadInput

FORMAT = "vast-loopback-recording"
SCHEMA_VERSION = 1
MAX_BYTES = 16 * 1024 * 1024  # a recording of a large cluster stays far below this


class RecordingError(BadInput):
    """A recording that cannot be read: missing, malformed, another format or schema version."""


# --- the host ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuRecord:
    """GET /nodes/{node}/status `cpuinfo`: `cores` are physical cores over all sockets, `threads`
    logical CPUs (`cpus`)."""

    model: str
    sockets: int
    cores: int
    threads: int
    mhz: str = ""
    vendor: str = ""
    flags: str = ""
    hvm: bool = False


@dataclass(frozen=True)
class MemoryRecord:
    """GET /nodes/{node}/status `memory` (bytes). `used` is total - MemAvailable on PVE 8.4+;
    `available` exists from PVE 9 on (0 when the host did not say)."""

    total: int
    used: int
    free: int = 0
    available: int = 0


@dataclass(frozen=True)
class StorageRecord:
    """GET /nodes/{node}/storage, one row (bytes)."""

    storage: str
    type: str
    content: tuple[str, ...]
    total: int
    used: int
    avail: int
    shared: bool = False
    active: bool = True


@dataclass(frozen=True)
class BridgeRecord:
    """GET /nodes/{node}/network?type=any_bridge, one row: a bridge (the node's address on it) or an
    SDN VNet with its zone's IPAM and DHCP (GET /cluster/sdn/zones, /cluster/sdn/vnets)."""

    name: str
    kind: str  # "bridge" | "OVSBridge" | "vnet"
    cidr: str = ""
    zone: str = ""
    ipam: str = ""
    dhcp: str = ""


@dataclass(frozen=True)
class NodeRecord:
    node: str
    online: bool
    cpu: CpuRecord | None = None  # None when the node did not answer (offline)
    memory: MemoryRecord | None = None
    kernel: str = ""  # current-kernel.release, "6.8.12-9-pve"
    pveversion: str = ""  # "pve-manager/8.4.1/2a5fa54a8503f96f"
    boot_mode: str = ""  # "efi" | "legacy-bios"
    storages: tuple[StorageRecord, ...] = ()
    bridges: tuple[BridgeRecord, ...] = ()


@dataclass(frozen=True)
class VmRecord:
    """A VM already on the host (GET /cluster/resources?type=vm): sizing and state only, never its
    configuration. `name` is a placeholder ("vm-1") in an anonymised recording."""

    vmid: int
    node: str
    name: str
    cores: int  # vCPUs (maxcpu)
    memory_mib: int  # maxmem
    status: str  # "running" | "stopped" | ...
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class OvaRecord:
    """The OVA the answers name: where it is, its size and its import-metadata as Proxmox reads it."""

    volid: str
    nodes: tuple[str, ...] = ()  # the nodes whose storage holds it
    size: int = 0
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class HostRecording:
    name: str  # a short name for the host ("seed", the cluster's name, "host" when anonymised)
    pve_version: str  # GET /version `version`, "8.4.1"
    repoid: str = ""
    cluster_name: str = ""
    nodes: tuple[NodeRecord, ...] = ()
    vms: tuple[VmRecord, ...] = ()
    ova: OvaRecord | None = None
    notes: str = ""
    recorded_at: str = ""  # ISO 8601 UTC
    anonymised: bool = False

    kind = "host"

    def node(self, name: str) -> NodeRecord | None:
        return next((n for n in self.nodes if n.node == name), None)


# --- the guest -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskRecord:
    """One block device of `lsblk -J -b -o NAME,TYPE,SIZE,FSTYPE,MOUNTPOINT`, with its children."""

    name: str
    type: str  # "disk" | "part" | "lvm" | "rom" ...
    size: int  # bytes
    fstype: str = ""
    mountpoint: str = ""
    children: tuple[DiskRecord, ...] = ()


@dataclass(frozen=True)
class GuestRecording:
    kernel_release: str  # uname -r
    os_release: dict = field(default_factory=dict)  # /etc/os-release
    kernel_storage_modules: tuple[str, ...] = ()  # storage drivers the running kernel has loaded (lsmod)
    kernel_builtin_modules: tuple[str, ...] = ()  # storage drivers built into it (modules.builtin)
    # storage drivers it has as loadable modules (modules.dep; `modinfo` of the disk controllers'
    # drivers where modules.dep cannot be read): what modprobe and dracut find; () when not recorded
    kernel_modules: tuple[str, ...] = ()
    initramfs_modules: tuple[str, ...] = ()  # storage drivers in the initramfs (lsinitrd)
    disks: tuple[DiskRecord, ...] = ()
    mem_total_kib: int = 0  # /proc/meminfo MemTotal
    vm_memory_mib: int = 0  # the VM's `memory` (Proxmox), 0 when unknown
    free_bytes: dict = field(default_factory=dict)  # `free -b` Mem: total, used, free, shared, ...
    nics: tuple[str, ...] = ()
    vmid: int = 0
    recorded_at: str = ""
    notes: str = ""

    kind = "guest"

    @property
    def memory_overhead_kib(self) -> int:
        """What the guest's kernel keeps of its VM's RAM: the VM's memory less MemTotal."""
        return self.vm_memory_mib * 1024 - self.mem_total_kib if self.vm_memory_mib and self.mem_total_kib else 0


Recording = HostRecording | GuestRecording


# --- reading and writing -------------------------------------------------------------------------


def to_dict(recording: Recording) -> dict:
    return {"format": FORMAT, "schema": SCHEMA_VERSION, "kind": recording.kind, **_plain(asdict(recording))}


def to_json(recording: Recording) -> str:
    return json.dumps(to_dict(recording), indent=2, sort_keys=False) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def load(path: str | os.PathLike[str], kind: str | None = None) -> Recording:
    """Read a recording file (of `kind` when given): RecordingError when it cannot be used."""
    p = Path(path)
    try:
        if p.is_dir():
            raise RecordingError(f"{p}: is a directory, not a recording")
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise RecordingError(f"{p}: {size} bytes; a recording is at most {MAX_BYTES}")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordingError(f"{p}: no such recording") from None
    except PermissionError:
        raise RecordingError(f"{p}: permission denied") from None
    except UnicodeDecodeError:
        raise RecordingError(f"{p}: not a recording (not UTF-8 text)") from None
    except OSError as exc:
        raise RecordingError(f"{p}: cannot read: {exc.strerror or exc.__class__.__name__}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordingError(f"{p}: not a recording: malformed JSON at line {exc.lineno} column {exc.colno}",
                             hint="record it again with `vast-loopback probe ... --record FILE`") from None
    return parse(data, str(p), kind)


def parse(data: object, source: str = "recording", kind: str | None = None) -> Recording:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RecordingError(f"{source}: not a vast-loopback recording (no \"format\": \"{FORMAT}\")")
    schema = data.get("schema")
    if schema != SCHEMA_VERSION:
        raise RecordingError(f"{source}: recording schema {schema!r}; this vast-loopback reads schema "
                             f"{SCHEMA_VERSION}", hint="record the host again with this version's probe")
    found = data.get("kind")
    if found not in ("host", "guest"):
        raise RecordingError(f"{source}: kind {found!r} is neither 'host' nor 'guest'")
    if kind is not None and found != kind:
        raise RecordingError(f"{source}: a {found} recording, not a {kind} recording")
    body = {k: v for k, v in data.items() if k not in ("format", "schema", "kind")}
    try:
        return _build(HostRecording if found == "host" else GuestRecording, body, found)
    except _Bad as exc:
        raise RecordingError(f"{source}: {exc}") from None


class _Bad(Exception):
    pass


_NESTED: dict[tuple[type, str], type] = {
    (HostRecording, "nodes"): NodeRecord,
    (HostRecording, "vms"): VmRecord,
    (HostRecording, "ova"): OvaRecord,
    (NodeRecord, "cpu"): CpuRecord,
    (NodeRecord, "memory"): MemoryRecord,
    (NodeRecord, "storages"): StorageRecord,
    (NodeRecord, "bridges"): BridgeRecord,
    (GuestRecording, "disks"): DiskRecord,
    (DiskRecord, "children"): DiskRecord,
}


def _build(cls: type, data: object, where: str) -> Any:
    """`cls` from a JSON object, every field checked against its type (ints, strings, lists)."""
    if not isinstance(data, dict):
        raise _Bad(f"{where}: expected an object, found {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise _Bad(f"{where}: unknown field {unknown[0]!r}")
    values = {}
    for name, spec in known.items():
        if name not in data:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise _Bad(f"{where}: field {name!r} is missing")
            continue
        values[name] = _value(cls, name, str(spec.type), data[name], f"{where}.{name}")
    return cls(**values)



def _value(cls: type, name: str, hint: str, value: object, where: str) -> Any:
    nested = _NESTED.get((cls, name))
    if value is None and "None" in hint:
        return None
    if nested is not None:
        if hint.startswith("tuple"):
            if not isinstance(value, list):
                raise _Bad(f"{where}: expected a list")
            return tuple(_build(nested, item, f"{where}[{i}]") for i, item in enumerate(value))
        return _build(nested, value, where)
    if hint.startswith("tuple"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _Bad(f"{where}: expected a list of strings")
        return tuple(value)
    expected: tuple[type, ...] = {"int": (int,), "str": (str,), "bool": (bool,), "dict": (dict,)}.get(hint, ())
    if hint == "int" and isinstance(value, bool) or expected and not isinstance(value, expected):
        raise _Bad(f"{where}: expected {hint}, found {type(value).__name__}")
    return value


def write(path: str | os.PathLike[str], recording: Recording) -> None:
    """Write a recording with the private writer (0600, atomic)."""
    from backend.run.safefiles import write_private

    write_private(path, to_json(recording))
