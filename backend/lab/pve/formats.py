"""Proxmox's named parameter formats and its property-string parser, with its own error messages.

Mirrors `pve-common: src/PVE/JSONSchema.pm` (check_format, parse_property_string, the format
verifiers) plus the few formats registered elsewhere that our requests use (pve-volume-id from
pve-storage, the drive and CPU formats from qemu-server). Every message is the one Proxmox
raises, trailing newline included, so an error reaches the client exactly as it would in the field.

A named format this module does not know is accepted: the lab never refuses a value a real host
might accept.
"""

from __future__ import annotations

import re
from collections.abc import Callable


class FormatError(Exception):
    """A value failed its format. `text` is what Proxmox's `$@` stringifies to."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _die(message: str) -> FormatError:
    return FormatError(message + "\n")


CONFIGID = re.compile(r"^[a-z][a-z0-9_-]+$", re.I)
_DNS_LABEL = r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)"
_DNS_NAME = re.compile(rf"^({_DNS_LABEL}\.)*{_DNS_LABEL}$")
_STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.I)
_NODE = re.compile(r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$")
_VMID = re.compile(r"^[1-9][0-9]{2,8}$")
_TAG = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.I)
_BRIDGE = re.compile(r"^[-_.\w\d]+$")
_MAC = re.compile(r"^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$", re.I)
_IFACE = re.compile(r"^[a-z][a-z0-9_]{1,20}([:.]\d+)?$", re.I)
_VOLUME_ID = re.compile(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$", re.I)
_SIZE = re.compile(r"^(\d+(\.\d+)?)([KMGT])?$")
_IPV4 = re.compile(r"^((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)$")
CONTENT_TYPES = ("images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none")


def parse_size(value: str) -> int | None:
    """JSONSchema.pm parse_size: '600G' -> bytes, None when it is not a size."""
    match = _SIZE.match(value)
    if not match:
        return None
    size = float(match.group(1))
    factor = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}.get(match.group(3) or "", 1)
    return int(size * factor)


def format_size(size: int) -> str:
    """JSONSchema.pm format_size: the shortest exact unit (644245094400 -> '600G')."""
    size = int(size)
    for unit in ("", "K", "M", "G"):
        if size % 1024:
            return f"{size}{unit}"
        size //= 1024
    return f"{size}T"


def parse_boolean(value: str) -> int | None:
    if re.fullmatch(r"1|on|yes|true", value, re.I):
        return 1
    if re.fullmatch(r"0|off|no|false", value, re.I):
        return 0
    return None


def split_list(text: str) -> list[str]:
    """PVE::Tools::split_list: NUL-separated, else separated by commas, semicolons and blanks."""
    if "\0" in text:
        return text.split("\0")
    return re.sub(r"[,;]", " ", text).split()


def _regex_check(pattern: re.Pattern[str], message: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if not pattern.match(value):
            raise _die(message.format(value=value))

    return check


def _ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _check_ipv4(value: str) -> None:
    if not _IPV4.match(value):
        raise _die("value does not look like a valid IPv4 address")


def _check_ip(value: str) -> None:
    if not _ip(value):
        raise _die("value does not look like a valid IP address")


def _check_volume_id(value: str) -> None:
    if not _VOLUME_ID.match(value):
        raise _die(f"unable to parse volume ID '{value}'")


def _check_volume_or_path(value: str) -> None:
    if value.startswith("/"):
        return
    _check_volume_id(value)


def _check_volume_or_qm_path(value: str) -> None:
    if value in ("none", "cdrom"):
        return
    _check_volume_or_path(value)


def _check_disk_size(value: str) -> None:
    if parse_size(value) is None:
        raise _die(f"value does not look like a valid disk size: {value}")


def _check_content(value: str) -> None:
    if value not in CONTENT_TYPES:
        raise _die(f"invalid content type '{value}'")


def _check_address(value: str) -> None:
    if not (_ip(value) or _DNS_NAME.match(value)):
        raise _die(f"value does not look like a valid address: {value}")


def _check_storage_id(value: str) -> None:
    if not _STORAGE_ID.match(value):
        raise _die(f"storage ID '{value}' contains illegal characters")


# Named formats backed by a verifier function (JSONSchema.pm register_format with a code ref).
CODE_FORMATS: dict[str, Callable[[str], None]] = {
    "pve-configid": _regex_check(CONFIGID, "invalid configuration ID '{value}'"),
    "pve-storage-id": _check_storage_id,
    "pve-bridge-id": _regex_check(_BRIDGE, "invalid bridge ID '{value}'"),
    "pve-vmid": _regex_check(_VMID, "value does not look like a valid VM ID"),
    "pve-node": _regex_check(_NODE, "value does not look like a valid node name"),
    "mac-addr": _regex_check(_MAC, "value does not look like a valid unicast MAC address"),
    "ipv4": _check_ipv4,
    "ip": _check_ip,
    "dns-name": _regex_check(_DNS_NAME, "value does not look like a valid DNS name"),
    "address": _check_address,
    "disk-size": _check_disk_size,
    "pve-tag": _regex_check(_TAG, "invalid characters in tag"),
    "pve-iface": _regex_check(_IFACE, "invalid network interface name '{value}'"),
    "pve-volume-id": _check_volume_id,
    "pve-volume-id-or-absolute-path": _check_volume_or_path,
    "pve-volume-id-or-qm-path": _check_volume_or_qm_path,
    "pve-storage-content": _check_content,
}

# Named property-string formats that the schema file only shows as typetext (qemu-server).
HASH_FORMATS: dict[str, dict] = {
    "pve-vm-cpu-conf": {
        "cputype": {"type": "string", "default_key": 1, "optional": 1},
        "flags": {"type": "string", "optional": 1, "pattern": r"(\+|-)?[a-zA-Z0-9\-_.]+(;(\+|-)?[a-zA-Z0-9\-_.]+)*"},
        "hidden": {"type": "boolean", "optional": 1},
        "hv-vendor-id": {"type": "string", "optional": 1, "pattern": r"[a-zA-Z0-9]{1,12}"},
        "phys-bits": {"type": "string", "optional": 1},
        "guest-phys-bits": {"type": "integer", "optional": 1, "minimum": 32, "maximum": 64},
        "reported-model": {"type": "string", "optional": 1},
    },
    "pve-qm-boot": {
        "legacy": {"type": "string", "default_key": 1, "optional": 1, "pattern": "[acdn]{1,4}"},
        "order": {"type": "string", "optional": 1},
    },
}


def check_named_format(name: str, value: str, path: str) -> None:
    """JSONSchema.pm check_format for a named format (with its -list and -opt variants)."""
    if name in HASH_FORMATS:
        parse_property_string(HASH_FORMATS[name], value, path)
        return
    base, kind = name, "none"
    match = re.match(r"^(.*?)(?:-(list|opt))?$", name)
    if match:
        base, kind = match.group(1), match.group(2) or "none"
    verify = CODE_FORMATS.get(base) if base in CODE_FORMATS else CODE_FORMATS.get(name)
    if verify is None:
        return  # a format the lab does not model: accepted
    if base not in CODE_FORMATS:
        kind = "none"
    if kind == "list":
        for item in split_list(value):
            verify(item)
    elif kind == "opt":
        if value:
            verify(value)
    else:
        verify(value)


def check_format(fmt: str | dict, value: str, path: str) -> None:
    if isinstance(fmt, dict):
        parse_property_string(fmt, value, path)
    elif fmt != "regex":
        check_named_format(fmt, value, path)


def parse_property_string(fmt: dict, data: str, path: str) -> dict[str, str]:
    """JSONSchema.pm parse_property_string: 'local-lvm:0,iothread=1' -> {'file': ..., 'iothread': '1'}."""
    from backend.lab.pve.schema import check_object  # the object check is shared with parameters

    result: dict[str, str] = {}
    default_key: str | None = None
    for part in data.split(","):
        if not part.strip():
            continue
        keyed = re.match(r"^([^=]+)=(.+)$", part, re.S)
        if keyed:
            key, value = keyed.group(1), keyed.group(2)
            if key in result:
                raise _die(f"duplicate key in comma-separated list property: {key}")
            schema = fmt.get(key)
            if schema and schema.get("alias"):
                key = schema["alias"]
                schema = fmt.get(key)
            if not schema:
                raise _die(f"invalid key in comma-separated list property: {key}")
            if schema.get("type") == "boolean":
                parsed = parse_boolean(value)
                value = str(parsed) if parsed is not None else value
            result[key] = value
        elif "=" not in part:
            if default_key:
                raise _die(f"duplicate key in comma-separated list property: {default_key}")
            default_key = next((k for k, s in fmt.items() if s.get("default_key")), None)
            if default_key is None:
                raise _die("value without key, but schema does not define a default key")
            if result.get(default_key):
                raise _die(f"duplicate key in comma-separated list property: {default_key}")
            result[default_key] = part
        else:
            raise _die("missing key in comma-separated list property")
    errors: dict[str, str] = {}
    check_object(path, fmt, result, False, errors)
    if errors:
        raise FormatError("format error\n" + "".join(f"{k}: {v}\n" for k, v in errors.items()))
    return result


