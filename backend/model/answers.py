"""The answers file: what the wizard asks, what `--auto` replays, validated in one model.

The model is the single source of truth for the wizard's inputs, headless runs and the JSON Schema
(`vast-loopback schema`). Secrets are references only (`env:NAME` / `file:PATH`), so a saved
answers file never holds one. Errors name the file, line and column, the field, what was wrong and a
hint ("did you mean ...?").
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from backend.errors import BadInput
from backend.model import yamlsafe
from backend.run.safefiles import read_small, write_private
from backend.secrets import SecretRef

# Proxmox's `dns-name` format for a VM name (pve-common JSONSchema.pm).
_DNS_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?"
DNS_NAME = re.compile(rf"^(?:{_DNS_LABEL}\.)*{_DNS_LABEL}$")
# Proxmox's `pve-storage-id` format.
STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
# An API token id: USER@REALM!TOKENID.
TOKEN_ID = re.compile(r"^[A-Za-z0-9._\-]+@[A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]*$")
BRIDGE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.\-]{0,14}$")
VOLID = re.compile(r"^(?P<storage>[a-z][a-z0-9\-_.]*[a-z0-9]):import/(?P<file>[a-zA-Z0-9_.\-]+\.ova)$", re.I)
SHA256_COLON = re.compile(r"^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$")
SSH_FP = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")
GUEST_PATH = re.compile(r"^/[A-Za-z0-9._+\-/]{1,255}$")
# The type of the error for a field required only with other values (a real host's token fields).
REQUIRED_HERE = "required_here"
# Where the VMS keeps its TLS certificate on the guest. No public source names it for VAST 5.4: a
# guess under /vast/vman, the VMS container's persistent mount (see backend/clients/vmstrust.py), and
# configurable; a guest without it is handled (the wizard asks, headless needs vast.fingerprint).
VMS_CERT_PATH = "/vast/vman/vms/ssl/vms.crt"
BUILD = re.compile(r"^release-\d+-\d+-\d+-\d+$")
CLUSTER_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-_]{0,31}$")


def _to_ref(value: Any) -> Any:
    if isinstance(value, SecretRef):
        return value
    if not isinstance(value, str):
        raise ValueError("a secret must be a reference, 'env:NAME' or 'file:PATH'")
    return SecretRef.parse(value)


SecretRefField = Annotated[
    SecretRef,
    BeforeValidator(_to_ref),
    PlainSerializer(lambda ref: str(ref), return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": r"^(env|file):.+$",
         "description": "A reference to a secret, never the secret: env:NAME or file:PATH."}
    ),
]

IntOrAuto = int | Literal["auto"]


def _numeric(annotation: Any) -> bool:
    """Whether a field's type takes a number (int, float, int | 'auto', int | None, Literal[1])."""
    if annotation in (int, float) or (isinstance(annotation, int | float) and not isinstance(annotation, bool)):
        return True
    return any(_numeric(arg) for arg in get_args(annotation))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """`vcpus: true` is a mistake, not 1 vCPU: YAML booleans are refused where numbers go."""
        if isinstance(value, bool) and info.field_name and _numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"must be a number, not {str(value).lower()}")
        return value


_HTTPS_URL = re.compile(r"https://(?P<host>\[[^\]/]*\]|[^:/\[\]]+)(?::(?P<port>\d{1,5}))?/?")


def _https_url(value: str) -> str:
    """https://HOST[:PORT] without its trailing slash: HOST a host name, an IPv4 address or an IPv6
    address in brackets, PORT 1 to 65535; ValueError saying what is wrong otherwise."""
    match = _HTTPS_URL.fullmatch(value)
    if not match:
        named = "".join(f"'{name}' or " for name in provider_names())
        raise ValueError(f"must be {named}https://HOST[:PORT] (e.g. https://pve.example:8006)")
    host, port = match.group("host"), match.group("port")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{yamlsafe.shown(host)} is not an IPv6 address in brackets") from None
    elif not DNS_NAME.match(host):
        raise ValueError(f"{yamlsafe.shown(host)} is not a host name or an IP address")
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port} is out of range (1 to 65535)")
    return value.rstrip("/")


def sha256_fingerprint(value: str | None) -> str | None:
    """A certificate pin: 32 hex pairs separated by ':' (upper case), or None."""
    if value is None:
        return value
    value = value.strip().upper()
    if not SHA256_COLON.match(value):
        raise ValueError("must be a SHA-256 fingerprint written as 32 hex pairs separated by ':'")
    return value


class ProxmoxAnswers(_Section):
    """How to reach the Proxmox VE API."""

    url: str = Field(description="https://HOST:8006, or the name of a registered target provider "
                     "(the built-in one: see the provider's own section)")
    token_id: str | None = Field(None, description="API token id, USER@REALM!TOKENID (e.g. root@pam!vlb)")
    token_secret: SecretRefField | None = Field(None, description="env:NAME or file:PATH holding the token secret")
    node: str = Field("auto", description="the node to place the VM on, or 'auto' for the best one")
    fingerprint: str | None = Field(
        None, description="SHA-256 fingerprint of the host's TLS certificate (AA:BB:...), pinned"
    )
    keep_host_changes: bool = Field(
        False, description="keep what the run changes on the host beyond its VM (the 'images' content type it "
        "adds to the OVA's storage so Proxmox can extract the disk); by default it is reverted after the import"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if value in _PROVIDERS:
            return value
        return _https_url(value)

    @field_validator("token_id")
    @classmethod
    def _token_id(cls, value: str | None) -> str | None:
        if value is not None and not TOKEN_ID.match(value):
            raise ValueError("must look like USER@REALM!TOKENID, e.g. root@pam!vlb")
        return value

    @field_validator("node")
    @classmethod
    def _node(cls, value: str) -> str:
        if value != "auto" and not DNS_NAME.match(value):
            raise ValueError("must be 'auto' or a node name")
        return value

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        return sha256_fingerprint(value)

    @model_validator(mode="after")
    def _credentials(self) -> ProxmoxAnswers:
        """A real host's token id and secret are required: each one missing is named by its field."""
        if self.url in _PROVIDERS:
            return self
        missing = [InitErrorDetails(type=PydanticCustomError(REQUIRED_HERE, "required for a real Proxmox host: "
                                                             "{what}", {"what": what}), loc=(name,), input=None)
                   for name, what in (("token_id", "its API token id, USER@REALM!TOKENID"),
                                      ("token_secret", "env:NAME or file:PATH of the token secret"))
                   if getattr(self, name) is None]
        if missing:
            raise ValidationError.from_exception_data(type(self).__name__, missing)
        return self


class VmAnswers(_Section):
    """The VM to create. 'auto' takes the sizing recommendation for the chosen node."""

    name: str = Field("vast-loopback", description="VM name (DNS name rules, as Proxmox requires)")
    vcpus: IntOrAuto = Field("auto", description="vCPUs (1 socket x N cores, or the host's sockets with NUMA when "
                          "they span them); never more than physical cores")
    memory_gib: IntOrAuto = Field("auto", description="RAM in GiB; at least 112, 128+ recommended")
    disk_gib: IntOrAuto = Field("auto", description="OS disk size in GiB; at least 500, 1000 recommended")
    storage: str = Field("local-lvm", description="storage for the VM disk")
    bridge: str = Field("vmbr0", description="network bridge for the VM's NIC")
    vmid: int | None = Field(None, ge=100, le=999_999_999, description="fixed VMID; default: next free")
    first_boot_controller: Literal["auto", "pvscsi", "sata", "ide", "virtio-scsi-single"] = Field(
        "auto", description="disk controller of the OVA's first boot: 'auto' follows the OVA's disk bus (VMware "
        "PVSCSI for a SCSI disk), then the others until the guest comes up; 'virtio-scsi-single' boots an OVA whose "
        "initramfs holds the VirtIO drivers straight on its final controller")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > 63 or not DNS_NAME.match(value):
            raise ValueError(
                "must be a DNS name: letters, digits and '-', not starting or ending with '-', at most 63"
            )
        return value

    @field_validator("vcpus")
    @classmethod
    def _vcpus(cls, value: IntOrAuto) -> IntOrAuto:
        if value != "auto" and not 1 <= value <= 512:
            raise ValueError("must be between 1 and 512, or 'auto'")
        return value

    @field_validator("memory_gib")
    @classmethod
    def _memory(cls, value: IntOrAuto) -> IntOrAuto:
        if value != "auto" and not 1 <= value <= 16384:
            raise ValueError("must be between 1 and 16384 GiB, or 'auto'")
        return value

    @field_validator("disk_gib")
    @classmethod
    def _disk(cls, value: IntOrAuto) -> IntOrAuto:
        if value != "auto" and not 1 <= value <= 1_048_576:
            raise ValueError("must be between 1 and 1048576 GiB, or 'auto'")
        return value

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        if not STORAGE_ID.match(value):
            raise ValueError("must be a Proxmox storage id such as local-lvm")
        return value

    @field_validator("bridge")
    @classmethod
    def _bridge(cls, value: str) -> str:
        if not BRIDGE.match(value):
            raise ValueError("must be a bridge name such as vmbr0")
        return value


class GuestAnswers(_Section):
    """How to reach the guest over SSH."""

    address: str = Field("dhcp", description="'dhcp' (as seen by the host / guest agent) or an IP address")
    user: str = Field("centos", description="SSH user in the guest (the OVA's is centos)")
    port: int = Field(22, ge=1, le=65535)
    password: SecretRefField | None = Field(None, description="env:NAME or file:PATH with the SSH password")
    key: SecretRefField | None = Field(None, description="file:PATH of a private key (or env:NAME holding one)")
    host_key: str | None = Field(None, description="pinned SSH host key fingerprint, SHA256:...")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value == "dhcp":
            return value
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be 'dhcp' or an IPv4 address") from None
        if address.version != 4:  # ground-truth.md, install: start_vms.sh, DISABLE_IPV6_FOR_LOOPBACK=yes
            raise ValueError("must be an IPv4 address: the VAST loopback's management network is IPv4 only "
                             "(its start_vms.sh disables IPv6 on the management NIC)")
        return str(address)

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_\-]{0,31}", value):
            raise ValueError("must be a Linux user name")
        return value

    @field_validator("host_key")
    @classmethod
    def _host_key(cls, value: str | None) -> str | None:
        if value is not None and not SSH_FP.match(value.strip()):
            raise ValueError("must be an OpenSSH SHA256 fingerprint, SHA256:<43 base64 characters>")
        return value.strip() if value else value


class VastAnswers(_Section):
    """The VAST cluster to create."""

    build: str = Field("release-5-4-0-2043819", description="VAST build in the OVA's bundle")
    cluster_name: str = Field("lb-vast54", description="name of the loopback cluster")
    admin_user: str = Field("admin", description="VMS user")
    admin_password: SecretRefField | None = Field(
        None, description="env:NAME or file:PATH with the VMS password; default: the OVA's documented default"
    )
    reboot_test: bool = Field(
        True, description="after ONLINE, reboot the guest, run start_vms.sh and wait for ONLINE again before "
        "the vast-online snapshot (the seed's post-install checklist)")
    cert_path: str = Field(VMS_CERT_PATH, description="where the guest keeps the VMS's TLS certificate (PEM): "
                           "read over SSH (the pinned host key) and pinned before any VMS password is sent")
    fingerprint: str | None = Field(None, description="SHA-256 fingerprint of the VMS's TLS certificate "
                                    "(AA:BB:...), pinned; the guest's certificate must match it")
    ca_file: str | None = Field(None, description="instead of pinning: a CA bundle (PEM) on this machine that "
                                "signed the VMS's certificate (absolute path)")
    server_name: str | None = Field(None, description="with ca_file: the name the VMS's certificate is issued "
                                    "to (default: the guest's address)")

    @field_validator("build")
    @classmethod
    def _build(cls, value: str) -> str:
        if not BUILD.match(value):
            raise ValueError("must look like release-5-4-0-2043819")
        return value

    @field_validator("cluster_name")
    @classmethod
    def _cluster(cls, value: str) -> str:
        if not CLUSTER_NAME.match(value):
            raise ValueError("must start with a letter; letters, digits, '-' and '_'; at most 32")
        return value

    @field_validator("admin_user")
    @classmethod
    def _admin(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", value):
            raise ValueError("must be a VMS user name")
        return value

    @field_validator("cert_path")
    @classmethod
    def _cert_path(cls, value: str) -> str:
        if not GUEST_PATH.match(value) or ".." in value.split("/"):
            raise ValueError("must be an absolute path on the guest, e.g. " + VMS_CERT_PATH)
        return value

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        return sha256_fingerprint(value)

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        if value is None:
            return value
        path = os.path.expanduser(value.strip())
        if not os.path.isabs(path):
            raise ValueError("must be an absolute path (or ~/...) to a PEM file on this machine")
        return path

    @field_validator("server_name")
    @classmethod
    def _server_name(cls, value: str | None) -> str | None:
        if value is not None and not DNS_NAME.match(value):
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError("must be a DNS name or an IP address") from None
        return value

    @model_validator(mode="after")
    def _one_trust(self) -> VastAnswers:
        if self.fingerprint and self.ca_file:
            raise ValueError("give fingerprint (a pin) or ca_file (a CA), not both")
        if self.server_name and not self.ca_file:
            raise ValueError("server_name is checked against a CA-signed certificate: give ca_file too")
        return self


class TuningAnswers(_Section):
    """Optional tunings (the field report's are always applied)."""

    limits: bool = Field(True, description="raise file-descriptor and inotify limits for the VAST containers")


# --- targets named by a registered provider -------------------------------------------------------

# A target provider (backend/target.py registers its opener) may own a section of the answers, named
# as the provider is named in `proxmox.url`, validated by the provider's own model.
_PROVIDERS: dict[str, type[BaseModel] | None] = {}


def register_provider(name: str, section: type[BaseModel] | None = None) -> None:
    """`proxmox.url: NAME` names this provider's target (no https URL, no token needed); `section`
    is the model of its own answers section `NAME:` (its options), when it has one."""
    _PROVIDERS[name] = section


def provider_names() -> list[str]:
    return sorted(_PROVIDERS)


_BUILT_IN_ERRORS = frozenset(get_args(core_schema.ErrorType))


def _errors(exc: ValidationError, *within: str) -> list[InitErrorDetails]:
    """A validation's errors, placed under `within` (a provider's section); our own kinds of error
    (REQUIRED_HERE) keep their message."""
    return [InitErrorDetails(type=e["type"] if e["type"] in _BUILT_IN_ERRORS
                             else PydanticCustomError(e["type"], "{message}", {"message": e["msg"]}),
                             loc=(*within, *e["loc"]), input=e["input"], ctx=e.get("ctx") or {})
            for e in exc.errors()]


class Answers(_Section):
    """Everything a run needs. `vast-loopback schema` prints this model as JSON Schema."""

    version: Literal[1] = 1
    proxmox: ProxmoxAnswers
    vm: VmAnswers = Field(default_factory=VmAnswers)
    ova: str = Field("local:import/vast-5.4.0-loopback.ova", description="volid of the OVA on a storage with 'import'")
    guest: GuestAnswers = Field(default_factory=GuestAnswers)
    vast: VastAnswers = Field(default_factory=VastAnswers)
    tuning: TuningAnswers = Field(default_factory=TuningAnswers)
    _sections: dict[str, BaseModel] = PrivateAttr(default_factory=dict)  # providers' own sections, by name

    @model_validator(mode="wrap")
    @classmethod
    def _provider_sections(cls, data: Any, handler: Any) -> Answers:
        """A registered provider's section is validated by the provider's model; every problem of
        the file is reported at once, the sections' with their place (`NAME.key`)."""
        errors: list[InitErrorDetails] = []
        sections: dict[str, BaseModel] = {}
        if isinstance(data, dict):
            data = dict(data)
            if data.get("proxmox") is None:  # absent or empty: name the field that is required, proxmox.url
                data["proxmox"] = {}
            for name, model in _PROVIDERS.items():
                if model is not None and name in data:
                    try:
                        sections[name] = model.model_validate(data.pop(name))
                    except ValidationError as exc:
                        errors += _errors(exc, name)
        try:
            answers = handler(data)
        except ValidationError as exc:
            errors = _errors(exc) + errors
            answers = None
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        if isinstance(answers, Answers):
            answers._sections.update(sections)
        return answers

    def section(self, name: str) -> Any:
        """The provider `name`'s own section (its defaults when the answers hold none; None for a
        provider without one)."""
        model = _PROVIDERS.get(name)
        if model is None:
            return None
        if name not in self._sections:
            self._sections[name] = model()
        return self._sections[name]

    def with_section(self, name: str, section: BaseModel) -> Answers:
        """A copy of the answers with the provider `name`'s section replaced."""
        copy = self.model_copy(deep=True)
        copy._sections[name] = section
        return copy

    def sections(self) -> dict[str, BaseModel]:
        """The providers' sections these answers hold, their own provider's always (defaults explicit)."""
        own = self.proxmox.url
        if _PROVIDERS.get(own) is not None:
            self.section(own)
        return dict(self._sections)

    @field_validator("ova")
    @classmethod
    def _ova(cls, value: str) -> str:
        if not VOLID.match(value):
            raise ValueError("must be a volid like local:import/vast-5.4.0-loopback.ova")
        return value


def json_schema() -> dict[str, Any]:
    """The answers file's JSON Schema, generated from the model."""
    schema = Answers.model_json_schema()
    for name in provider_names():
        model = _PROVIDERS[name]
        if model is None:
            continue
        part = model.model_json_schema(ref_template="#/$defs/{model}")
        schema.setdefault("$defs", {}).update(part.pop("$defs", {}))
        schema["$defs"][model.__name__] = part
        schema["properties"][name] = {"$ref": f"#/$defs/{model.__name__}"}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "vast-loopback answers file"
    return schema


# --- loading ----------------------------------------------------------------------------------


def _hint_unknown(path: tuple, model: type[BaseModel]) -> str | None:
    """For an unknown key, suggest the closest known key at that level."""
    if not path:
        return None
    section: Any = model
    for part in path[:-1]:
        fields = getattr(section, "model_fields", {})
        if part not in fields:
            return None
        annotation = fields[part].annotation
        section = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if section is None:
            return None
    known = list(getattr(section, "model_fields", {}))
    close = difflib.get_close_matches(str(path[-1]), known, n=1, cutoff=0.5)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"known keys here: {', '.join(known)}"


def _kind_of(value: Any) -> str:
    """What a YAML value is, in YAML's words."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a section"
    if isinstance(value, list):
        return "a list"
    return repr(value)[:60] if isinstance(value, int | float) else f"'{yamlsafe.shown(value)}'"


def _describe(error: dict[str, Any]) -> tuple[str, str | None]:
    kind = error.get("type", "")
    message = error.get("msg", "invalid value")
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    given = error.get("input")
    if kind == "extra_forbidden":
        return "unknown key", None
    if kind == "missing":
        return "required but missing", None
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a section of keys and values (got {_kind_of(given)})", None
    if kind == "list_type":
        return f"must be a list (got {_kind_of(given)})", None
    if kind in ("int_parsing", "int_type", "float_parsing", "bool_parsing", "string_type", "int_from_float",
                "literal_error", "float_type", "bool_type"):
        shown = repr(given) if not isinstance(given, dict | list) else type(given).__name__
        return f"{message} (got {shown[:60]})", None
    return message, None


MAX_PROBLEMS = 12  # problems listed in one message; the rest are counted
MISSING = ("missing", REQUIRED_HERE)  # the error types of a required value not given


def missing_hint() -> str:
    """What to do about required answers not given: where a complete answers file comes from."""
    named = "".join(f"'{name}' or " for name in provider_names())
    return ("run the wizard (vast-loopback), whose Review saves a complete answers file (^s), or read "
            f"`vast-loopback schema`; proxmox.url is {named}https://HOST:8006")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the answers: where (its keys), what, a hint, and whether it is a required
    value not given."""

    loc: tuple
    message: str
    hint: str | None = None
    missing: bool = False

    @property
    def field(self) -> str:
        """Its dotted name, as the answers file nests it (proxmox.url)."""
        return ".".join(yamlsafe.shown(repr(p) if p == "" else p) for p in self.loc) or "(top level)"


def problems(exc: ValidationError) -> list[Problem]:
    """A validation's errors, one Problem per field, in the model's words."""
    by_path: dict[tuple, list[dict[str, Any]]] = {}
    for error in exc.errors():
        # pydantic adds union member names to loc ('int', "literal['auto']"); drop them (never a key
        # the user wrote: an unknown key's loc is all keys).
        loc = tuple(error.get("loc", ()))
        if error.get("type") != "extra_forbidden":
            loc = tuple(p for p in loc if not (isinstance(p, str) and (p == "int" or p.startswith("literal["))))
        by_path.setdefault(loc, []).append(error)
    found = []
    for loc, errors in by_path.items():
        kinds = {e.get("type") for e in errors}
        hint = None
        if "literal_error" in kinds and len(errors) > 1:
            # int | 'auto': one message for both halves of the union.
            given = errors[0].get("input")
            message = f"must be a whole number or 'auto' (got {given!r:.60})"
        else:
            message, hint = _describe(errors[0])
            if errors[0].get("type") == "extra_forbidden":
                hint = _hint_unknown(loc, Answers)
        found.append(Problem(loc, message, hint, missing=bool(kinds & set(MISSING))))
    return found


def errors_to_message(exc: ValidationError, source: str, located: yamlsafe.Located | None) -> str:
    found = problems(exc)
    lines = []
    for problem in found[:MAX_PROBLEMS]:
        position = located.where(problem.loc) if located else None
        where = f"{source}:{position[0]}:{position[1]}" if position else source
        lines.append(f"{where}: {problem.field}: {problem.message}" + (f"\n  hint: {problem.hint}" if problem.hint else ""))
    if len(found) > MAX_PROBLEMS:
        lines.append(f"{source}: and {len(found) - MAX_PROBLEMS} more problems")
    return "\n".join(lines)


def parse(text: str | bytes, source: str = "answers") -> Answers:
    """Parse and validate answers text. Raises BadInput with file:line:col messages, every problem
    at once; required answers not given get the hint where a complete file comes from."""
    located = read(text, source)
    try:
        return Answers.model_validate(located.data)
    except ValidationError as exc:
        missing = any(problem.missing for problem in problems(exc))
        raise BadInput(errors_to_message(exc, source, located), hint=missing_hint() if missing else None) from None


def read(text: str | bytes, source: str = "answers") -> yamlsafe.Located:
    """Answers text as YAML data with positions, a mapping (not yet validated); BadInput otherwise."""
    located = yamlsafe.load(text, source)
    if not isinstance(located.data, dict):
        raise BadInput(f"{source}: the answers file must be a mapping of sections (proxmox, vm, ...)")
    return located


def read_file(path: str | os.PathLike[str]) -> bytes:
    """An answers file's bytes; BadInput saying why it cannot be read."""
    p = Path(path)
    try:
        if p.is_dir():
            raise BadInput(f"{p}: is a directory, not an answers file")
        size = p.stat().st_size
        if size > yamlsafe.MAX_BYTES:
            raise BadInput(f"{p}: file is {size} bytes; answers files are limited to {yamlsafe.MAX_BYTES}")
        return p.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{p}: no such answers file") from None
    except PermissionError:
        raise BadInput(f"{p}: permission denied") from None
    except OSError as exc:
        raise BadInput(f"{p}: cannot read: {exc.strerror or exc.__class__.__name__}") from None


def load(path: str | os.PathLike[str]) -> Answers:
    """Read and validate an answers file."""
    return parse(read_file(path), str(path))


def load_saved(path: str | os.PathLike[str]) -> Answers:
    """The answers a run directory saved: a regular file there, read without following a symlink
    or waiting on a FIFO (a crafted run directory gets a message, not a hang)."""
    try:
        data = read_small(path, yamlsafe.MAX_BYTES)
    except FileNotFoundError:
        raise BadInput(f"{path}: the run's answers file is missing") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc.__class__.__name__}") from None
    return parse(data, str(path))


SECRET_FIELDS = ("proxmox.token_secret", "guest.password", "guest.key", "vast.admin_password")  # references only


def secret_refs(answers: Answers) -> dict[str, SecretRef]:
    """Every secret reference the answers give, by field ('guest.password': env:NAME, ...)."""
    refs = {field: getattr(getattr(answers, field.split(".")[0]), field.split(".")[1]) for field in SECRET_FIELDS}
    return {field: ref for field, ref in refs.items() if ref is not None}


# What an API token secret can carry through `Authorization: PVEAPIToken=USER@REALM!ID=SECRET`:
# Proxmox splits the header value at its last '=' (AccessControl.pm verify_token), stops it at ';'
# and URL-decodes it (Formatter.pm extract_auth_value); HTTP headers are ASCII. Its secrets are UUIDs.
_TOKEN_SECRET = re.compile(r"^[!-~]+$")
_TOKEN_SECRET_BREAKERS = "=;%"


def check_secrets(answers: Answers, *, strict: bool = False) -> list[str]:
    """Resolve every reference now, so a missing, unfit or unsafe secret is bad input before
    anything starts (not at the step that first needs it, minutes into a run). Returns the
    warnings about secret files (symlinked, not ours, open to others); `strict` refuses them.
    Raises BadInput, whose message never shows a secret."""
    warnings: list[str] = []
    for field, ref in secret_refs(answers).items():
        secret, said = ref.load(field, lines=field == "guest.key", strict=strict)
        warnings += said
        if field == "proxmox.token_secret":
            value = secret.reveal()
            if not _TOKEN_SECRET.match(value) or any(c in value for c in _TOKEN_SECRET_BREAKERS):
                raise BadInput(f"{field}: the secret in {yamlsafe.shown(ref, 200)} cannot be a Proxmox API "
                               "token secret: it holds a space, a non-ASCII character or one of '=', ';', "
                               "'%', which do not pass the PVEAPIToken header intact",
                               hint="Proxmox token secrets are UUIDs (Datacenter > Permissions > API Tokens)")
    ca_file = answers.vast.ca_file
    if ca_file and not Path(ca_file).is_file():
        raise BadInput(f"vast.ca_file: {ca_file} is not a file here",
                       hint="give the PEM bundle of the CA that signed the VMS's certificate, or leave it out "
                            "to pin the guest's own certificate")
    return warnings


def to_yaml(answers: Answers) -> str:
    """The answers as YAML, every value explicit (defaults included), secrets as references."""
    data = answers.model_dump(mode="json")
    data.update({name: section.model_dump(mode="json") for name, section in answers.sections().items()})
    header = "# vast-loopback answers file (secrets are references: env:NAME or file:PATH)\n"
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def save(answers: Answers, path: str | os.PathLike[str]) -> Path:
    """Write the answers file with mode 0600 (it holds no secret, only references, but may hold names)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_private(p, to_yaml(answers))
    return p


def schema_json() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False)
