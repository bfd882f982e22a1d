"""The official Proxmox VE API schema (`../shared/pve-api/apidata.json`) as a request validator.

Finds the method for a path the way Proxmox's router does (literal segments before `{param}`
segments), and checks parameters the way `PVE::JSONSchema::validate` does: unknown names, missing
required ones, types (booleans are only `1`/`0`), ranges, lengths, patterns, enums and formats,
including property strings like `scsi0`/`net0`. The messages are Proxmox's own.

The schema file is looked up at `$VLB_SHARED/pve-api/apidata.json`, else `<repo>/../shared/...`.
It is never copied into the repository; without it the lab runs unvalidated and says so.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from backend.lab.pve.formats import FormatError, check_format

REPO = Path(__file__).resolve().parents[3]

# Indexed properties the schema documents as 'name[n]' without naming their range.
_INDEX_LIMITS = {"net": 32, "ipconfig": 32, "unused": 256, "hostpci": 16, "numa": 8, "virtiofs": 10,
                 "usb": 15, "mp": 256, "dev": 256, "link": 8}
_INDEXED = re.compile(r"^([a-z][a-z\-_]*?)(\d+)$")

NOT_IN_SCHEMA = "property is not defined in schema and the schema does not allow additional properties"


def schema_path() -> Path:
    shared = os.environ.get("VLB_SHARED")
    base = Path(shared) if shared else REPO.parent / "shared"
    return base / "pve-api" / "apidata.json"


def _is_number(value: str) -> bool:
    return bool(re.match(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$", value))


def _is_integer(value: str) -> bool:
    return bool(re.match(r"^[+-]?\d+$", value))


def _perl_num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def add_error(errors: dict[str, str], path: str, message: str) -> None:
    path = path or "_root"
    errors[path] = f"{errors[path]}\\n{message}" if path in errors else message


def _check_type(path: str, kind: str | None, value: object, errors: dict[str, str]) -> bool:
    if not kind or kind in ("any", "string"):
        return True
    if kind in ("array", "object"):
        ok = isinstance(value, list if kind == "array" else dict)
        if not ok:
            add_error(errors, path, f"type check ('{kind}') failed")
        return ok
    text = str(value)
    if kind == "boolean" and text not in ("1", "0"):
        add_error(errors, path, f"type check ('{kind}') failed - got '{text}'")
        return False
    if kind == "integer" and not _is_integer(text):
        add_error(errors, path, f"type check ('{kind}') failed - got '{text}'")
        return False
    if kind == "number" and not _is_number(text):
        add_error(errors, path, f"type check ('{kind}') failed - got '{text}'")
        return False
    return True


def check_prop(value: object, schema: dict, path: str, errors: dict[str, str]) -> None:
    """JSONSchema.pm check_prop for the values a form-encoded request carries."""
    if value is None:
        if not schema.get("optional") and not schema.get("alias") and schema.get("type") != "null":
            add_error(errors, path, "property is missing and it is not optional")
        return
    if not _check_type(path, schema.get("type"), value, errors):
        return
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                check_prop(item, items, f"{path}[{index}]", errors)
        return
    if isinstance(value, dict):
        check_object(path, schema.get("properties") or {}, value, schema.get("additionalProperties"), errors)
        return
    text = str(value)
    fmt = schema.get("format")
    if fmt:
        try:
            check_format(fmt, text, path)
        except FormatError as exc:
            add_error(errors, path, f"invalid format - {exc.text}")
            return
    pattern = schema.get("pattern")
    if pattern and not re.fullmatch(f"(?:{pattern})", text):
        add_error(errors, path, "value does not match the regex pattern")
        return
    if schema.get("maxLength") is not None and len(text) > int(schema["maxLength"]):
        add_error(errors, path, f"value may only be {schema['maxLength']} characters long")
        return
    if schema.get("minLength") is not None and len(text) < int(schema["minLength"]):
        add_error(errors, path, f"value must be at least {schema['minLength']} characters long")
        return
    if _is_number(text):
        if schema.get("maximum") is not None and float(text) > float(schema["maximum"]):
            add_error(errors, path, f"value must have a maximum value of {_perl_num(schema['maximum'])}")
            return
        if schema.get("minimum") is not None and float(text) < float(schema["minimum"]):
            add_error(errors, path, f"value must have a minimum value of {_perl_num(schema['minimum'])}")
            return
    enum = schema.get("enum")
    if enum and text not in [str(e) for e in enum]:
        add_error(errors, path, f"value '{text}' does not have a value in the enumeration '{', '.join(map(str, enum))}'")


def property_schema(properties: dict, key: str) -> dict | None:
    """The schema of `key`, expanding documented 'scsi[n]' entries to scsi0..scsi30."""
    if key in properties:
        return properties[key]
    match = _INDEXED.match(key)
    if not match:
        return None
    base, index = match.group(1), int(match.group(2))
    schema = properties.get(f"{base}[n]")
    if schema is None:
        return None
    limit = re.search(r"\(n is 0 to (\d+)", schema.get("description", ""))
    top = int(limit.group(1)) if limit else _INDEX_LIMITS.get(base, 256) - 1
    if base == "usb":
        top = max(top, 14)
    return schema if index <= top and str(index) == match.group(2) else None


def check_object(path: str, properties: dict, value: dict, additional: object, errors: dict[str, str]) -> None:
    for key, schema in properties.items():
        if key.endswith("[n]"):
            continue
        check_prop(value.get(key), schema, f"{path}.{key}" if path else key, errors)
    for key in value:
        newpath = f"{path}.{key}" if path else key
        schema = properties.get(key)
        if schema is None and (sub := property_schema(properties, key)) is not None:
            check_prop(value[key], sub, newpath, errors)
            continue
        if schema is not None:
            requires = schema.get("requires")
            if isinstance(requires, str) and value.get(requires) is None:
                add_error(errors, f"{path}.{requires}" if path else requires,
                          f"missing property - '{newpath}' requires this property")
            continue
        if additional is not None and not additional:
            add_error(errors, newpath, NOT_IN_SCHEMA)
        elif isinstance(additional, dict):
            check_prop(value[key], additional, newpath, errors)


@dataclass(frozen=True)
class Route:
    template: str  # "/nodes/{node}/qemu/{vmid}/config"
    uri_params: dict[str, str]
    methods: dict[str, dict]  # method -> info from the schema


class ApiSchema:
    """The API tree of apidata.json, for routing and parameter verification."""

    def __init__(self, tree: list[dict]) -> None:
        self._root: dict = {"children": {}, "param": None, "info": {}, "path": "/"}
        for node in tree:
            self._add(node)

    @classmethod
    def load(cls, path: Path | None = None) -> ApiSchema | None:
        path = path or schema_path()
        if not path.is_file():
            return None
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def _add(self, node: dict) -> None:
        cursor = self._root
        for segment in node["path"].strip("/").split("/"):
            if segment.startswith("{"):
                if cursor["param"] is None:
                    cursor["param"] = {"name": segment[1:-1], "children": {}, "param": None, "info": {}, "path": ""}
                cursor = cursor["param"]
            else:
                cursor = cursor["children"].setdefault(
                    segment, {"children": {}, "param": None, "info": {}, "path": ""})
        cursor["info"] = node.get("info", {})
        cursor["path"] = node["path"]
        for child in node.get("children", ()):
            self._add(child)

    def route(self, path: str) -> Route | None:
        """The schema entry for a concrete path, e.g. /nodes/pve/qemu/100/config, or None."""
        segments = [unquote(s) for s in path.strip("/").split("/") if s]
        found = self._walk(self._root, segments, {})
        if found is None:
            return None
        node, params = found
        if not node["path"]:
            return None
        return Route(node["path"], params, node["info"])

    def _walk(self, node: dict, segments: list[str], params: dict[str, str]) -> tuple[dict, dict] | None:
        if not segments:
            return node, params
        head, rest = segments[0], segments[1:]
        child = node["children"].get(head)
        if child is not None:
            found = self._walk(child, rest, params)
            if found is not None:
                return found
        param = node["param"]
        if param is not None:
            if param["name"] == "volume" and not param["children"] and param["param"] is None:
                return param, {**params, "volume": "/".join([head, *rest])}
            return self._walk(param, rest, {**params, param["name"]: head})
        return None


def validate(info: dict, params: dict[str, object]) -> dict[str, str]:
    """Proxmox's parameter verification; an empty dict when the parameters pass."""
    schema = info.get("parameters") or {}
    errors: dict[str, str] = {}
    check_object("", schema.get("properties") or {}, params, schema.get("additionalProperties"), errors)
    return errors
