"""A QEMU VM's configuration as Proxmox stores and prints it: drives, NICs, memory, CPU, digest.

Values are kept as the strings of the config file (`/etc/pve/qemu-server/<vmid>.conf`); the GET
config answer turns the integer and boolean keys into JSON numbers as Proxmox does. Drives and
NICs are printed the way qemu-server's print_drive/print_net do (default key first, then the rest
sorted), with sizes in Proxmox's short form (`600G`).
"""

from __future__ import annotations

import hashlib
import re
import secrets

from backend.lab.pve.formats import format_size, parse_size

DRIVE_KEY = re.compile(r"^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$")
NET_KEY = re.compile(r"^net\d+$")
NIC_MODELS = ("e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b",
              "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3")
# Options that change at once even on a running VM (qemu-server's $fast_plug_option), and the
# default hotplug set (network, disk, usb); everything else waits in `pending` until a cold start.
FAST_PLUG = {"lock", "name", "onboot", "shares", "startup", "description", "protection", "vmstatestorage",
             "hookscript", "tags"}
# Config keys that GET /config returns as JSON numbers (integer and boolean options).
NUMERIC_KEYS = {"acpi", "autostart", "balloon", "cores", "cpulimit", "cpuunits", "freeze", "kvm", "localtime",
                "migrate_downtime", "migrate_speed", "numa", "onboot", "protection", "reboot", "shares",
                "sockets", "tablet", "template", "tdf", "vcpus", "keephugepages", "allow-ksm"}


def is_drive(key: str) -> bool:
    return bool(DRIVE_KEY.match(key))


def parse_drive(value: str) -> dict[str, str]:
    """'local-lvm:vm-100-disk-0,iothread=1,size=600G' -> {'file': ..., 'iothread': '1', 'size': '600G'}."""
    drive: dict[str, str] = {}
    for part in value.split(","):
        if not part:
            continue
        if "=" in part:
            key, val = part.split("=", 1)
            drive[key] = val
        else:
            drive["file"] = part
    return drive


def print_drive(drive: dict[str, str]) -> str:
    parts = [drive["file"]] if drive.get("file") else []
    for key in sorted(drive):
        if key == "file":
            continue
        value = drive[key]
        if key == "size":
            value = format_size(int(value)) if str(value).isdigit() else value
        parts.append(f"{key}={value}")
    return ",".join(parts)


def drive_size(drive: dict[str, str]) -> int:
    return parse_size(drive.get("size", "0")) or 0


def parse_net(value: str) -> dict[str, str]:
    """'virtio=BC:24:11:00:00:01,bridge=vmbr0' -> {'model': 'virtio', 'macaddr': ..., 'bridge': 'vmbr0'}."""
    net: dict[str, str] = {}
    for part in value.split(","):
        if not part:
            continue
        key, _, val = part.partition("=")
        if key in NIC_MODELS:
            net["model"] = key
            if val:
                net["macaddr"] = val
        elif key == "model" or key == "macaddr":
            net[key] = val
        elif not val and "model" not in net:
            net["model"] = key
        else:
            net[key] = val
    return net


def print_net(net: dict[str, str]) -> str:
    parts = [f"{net['model']}={net['macaddr']}" if net.get("macaddr") else net.get("model", "virtio")]
    parts += [f"{k}={v}" for k, v in sorted(net.items()) if k not in ("model", "macaddr")]
    return ",".join(parts)


def new_mac() -> str:
    """Proxmox's default MAC prefix BC:24:11 (its OUI) plus three random octets."""
    return "BC:24:11:" + ":".join(f"{b:02X}" for b in secrets.token_bytes(3))


def memory_mib(config: dict[str, str]) -> int:
    value = str(config.get("memory", "512"))
    match = re.search(r"(?:^|current=)(\d+)", value)
    return int(match.group(1)) if match else 512


def balloon_mib(config: dict[str, str]) -> int:
    """0 disables the balloon device; unset means the device is on with target = memory."""
    return int(config["balloon"]) if "balloon" in config else memory_mib(config)


def vcpus(config: dict[str, str]) -> int:
    total = int(config.get("sockets", 1)) * int(config.get("cores", 1))
    return int(config.get("vcpus", total))


def cpu_type(config: dict[str, str]) -> str:
    value = config.get("cpu", "")
    first = value.split(",")[0] if value else ""
    if first.startswith("cputype="):
        first = first[len("cputype="):]
    return first if first and "=" not in first else "kvm64"


def agent_enabled(config: dict[str, str]) -> bool:
    value = config.get("agent")
    if value is None:
        return False
    first = value.split(",")[0]
    first = first.split("=", 1)[1] if first.startswith("enabled=") else first
    return first.lower() in ("1", "on", "yes", "true")


def default_boot_order(config: dict[str, str]) -> str:
    disks = sorted((k for k in config if is_drive(k) and not k.startswith(("efidisk", "tpmstate"))),
                   key=lambda k: (("ide", "sata", "scsi", "virtio").index(re.sub(r"\d+", "", k)),
                                  int(re.sub(r"\D", "", k))))
    nets = sorted((k for k in config if NET_KEY.match(k)), key=lambda k: int(k[3:]))
    return "order=" + ";".join(disks[:1] + nets[:1]) if disks or nets else ""


def boot_order(config: dict[str, str]) -> list[str]:
    """The devices of `boot: order=a;b` (legacy `boot: c` / `bootdisk` are read as the boot disk)."""
    value = config.get("boot", "")
    if value.startswith("order="):
        return [k for k in value[len("order="):].split(";") if k]
    return [config["bootdisk"]] if config.get("bootdisk") else []


def machine_type(config: dict[str, str]) -> str:
    """'q35' or 'pc' (i440fx, Proxmox's default when `machine` is not set); versions are dropped
    ('pc-q35-9.2+pve0' -> 'q35')."""
    parts = config.get("machine", "").split(",")
    value = next((p[len("type="):] for p in parts if p.startswith("type=")), parts[0])
    return "q35" if "q35" in value else "pc"


def drop_reattached_unused(config: dict[str, str]) -> None:
    """An `unusedN` whose volume a drive uses again is dropped, as qemu-server's write_vm_config
    does ("remove 'unusedX' settings if we re-add a volume"): moving a disk between buses in one
    update (delete sata0, set scsi0 to its volume) leaves no unused entry."""
    used = {parse_drive(v).get("file") for k, v in config.items() if is_drive(k)}
    for key in [k for k in config if k.startswith("unused") and config[k] in used]:
        del config[key]


def render(config: dict[str, str], snapshots: dict[str, dict] | None = None) -> str:
    """The config file's text (what its digest is computed over)."""
    lines = [f"{k}: {v}" for k, v in sorted(config.items()) if k != "description"]
    if config.get("description"):
        lines.insert(0, "#" + str(config["description"]).replace("\n", "\n#"))
    for name, snap in sorted((snapshots or {}).items()):
        lines.append("")
        lines.append(f"[{name}]")
        lines += [f"{k}: {v}" for k, v in sorted(snap.get("config", {}).items())]
    return "\n".join(lines) + "\n"


def digest(config: dict[str, str], snapshots: dict[str, dict] | None = None) -> str:
    return hashlib.sha1(render(config, snapshots).encode()).hexdigest()


def as_json(config: dict[str, str]) -> dict[str, object]:
    """Config values as the GET answer types them: integers and booleans as numbers."""
    out: dict[str, object] = {}
    for key, value in config.items():
        if key in NUMERIC_KEYS and re.fullmatch(r"-?\d+", str(value)):
            out[key] = int(value)
        elif key in NUMERIC_KEYS and re.fullmatch(r"-?\d+\.\d+", str(value)):
            out[key] = float(value)
        else:
            out[key] = value
    return out
