"""The lab's own section of the answers file (`lab:`), registered with its target provider.

`proxmox.url: lab` names the built-in lab; these options shape its world (the host profile, its
network, the OVA's variant, injected faults, the readings the sources leave open). The engine's
answers model knows only that a registered provider validates its own section
(backend/model/answers.py `register_provider`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from backend.lab.profiles import BUILT_IN
from backend.model.answers import GUEST_PATH, VMS_CERT_PATH, _Section

FaultKind = Literal["ssh_drop", "pve_500", "pve_503", "pve_timeout", "pve_reset", "pve_ticket", "vms_restart"]


class FaultRuleAnswers(_Section):
    """One scheduled lab fault: the `nth` opportunity of its part (a Proxmox request, an SSH session,
    a VMS request) and the `count - 1` after it, or every `every`-th from the `nth` on."""

    kind: FaultKind
    nth: int = Field(1, ge=1, le=1_000_000, description="the first matching opportunity that strikes (1-based)")
    count: int = Field(1, ge=1, le=1_000_000, description="how many in a row strike")
    every: int = Field(0, ge=0, le=1_000_000, description="strike every N-th matching opportunity (0: off)")
    method: Literal["GET", "POST", "PUT", "DELETE"] | None = Field(None, description="only requests of this method")
    path: str | None = Field(None, max_length=200, description="only requests whose path matches this regex")
    after: bool = Field(False, description="strike after the request was handled (its answer is lost)")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


class FaultAnswers(_Section):
    """Faults the lab injects (only with url: lab)."""

    rate: float = Field(0.0, ge=0.0, le=1.0, description="probability of a fault per opportunity: each Proxmox "
                        "request, SSH session opened on the guest and VMS request")
    seed: int = Field(1, description="random seed, so a faulty run can be replayed")
    kinds: list[FaultKind] = (
        Field(default_factory=lambda: ["ssh_drop", "pve_500", "pve_503", "pve_timeout", "pve_reset", "vms_restart"])
    )
    schedule: list[FaultRuleAnswers] = Field(default_factory=list, max_length=100,
                                             description="faults on a schedule, besides the random ones")


class LabNetworkAnswers(_Section):
    """The lab host's network, and where vast-loopback runs in it (only with url: lab)."""

    sdn_vnet: bool = Field(False, description="the host also has an SDN VNet in a Simple zone with IPAM and DHCP "
                           "(listed with the bridges; vm.bridge puts the VM on it)")
    jump_host: Literal["on-lan", "elsewhere"] = Field(
        "on-lan", description="where vast-loopback runs: on the LAN of the host's bridge vmbr0 (same layer 2: it "
        "sees the guests' MACs), or elsewhere (no interface on vmbr0's subnet)")


class LabAnswers(_Section):
    """The built-in lab (only with url: lab)."""

    host_profile: str = Field("seed", description="the lab's Proxmox host: "
                              f"{', '.join(BUILT_IN)}, or file:/PATH of a host recording "
                              "(`vast-loopback probe ANSWERS --record FILE`)")
    network: LabNetworkAnswers = Field(default_factory=LabNetworkAnswers)
    overcommit_memory: Literal["support-case", "field-ramp"] = Field(
        "support-case",
        description="the lab's reading of an overcommitted activation's memory, which the sources leave open: "
                    "attempt 2's figures (support-case) or the good run's ramp until the nodes fall out (field-ramp)")
    ova: str = Field(
        "host-only", description="the lab's OVA: 'host-only' (an initramfs dracut built on VMware: PVSCSI, no "
        "VirtIO drivers), 'generic' (built with --no-hostonly: VirtIO drivers included), or file:/PATH of a "
        "guest recording (`vast-loopback probe --guest`): the recorded guest's kernel drivers, initramfs, disk "
        "layout (partition sizes and filesystem types, fitted to the VM's disk) and memory overhead (MemTotal "
        "is the VM's memory less the recorded overhead)")
    faults: FaultAnswers = Field(default_factory=FaultAnswers)
    start_vms_after_reboot: Literal["works", "fails"] = Field(
        "works", description="the lab's answer to start_vms.sh after a reboot (never tried in the field): "
        "works (the VAST containers come back with Docker and VMS comes up) or fails (they stay stopped)")
    vtask_messages: Literal["list", "object"] = Field(
        "list", description="the shape of a VTask's messages in the lab's VMS: a list of strings (what clients "
        "read) or an object (what the 5.4 OpenAPI says)")
    vms_cert_path: str | None = Field(None, description="where the lab guest's VMS keeps its certificate "
                                      f"(default {VMS_CERT_PATH}); another path than vast.cert_path plays a guest "
                                      "that keeps it where the run does not look")

    @field_validator("ova")
    @classmethod
    def _ova_variant(cls, value: str) -> str:
        if value in ("host-only", "generic"):
            return value
        if not value.startswith("file:/") or len(value) > 4096 or ".." in value.split("/"):
            raise ValueError("must be host-only, generic or file:/ABSOLUTE/PATH of a guest recording")
        return value

    @field_validator("host_profile")
    @classmethod
    def _host_profile(cls, value: str) -> str:
        if value in BUILT_IN:
            return value
        if not value.startswith("file:/") or len(value) > 4096 or ".." in value.split("/"):
            raise ValueError(f"must be {', '.join(BUILT_IN)} or file:/ABSOLUTE/PATH of a host recording")
        return value

    @field_validator("vms_cert_path")
    @classmethod
    def _vms_cert_path(cls, value: str | None) -> str | None:
        if value is not None and (not GUEST_PATH.match(value) or ".." in value.split("/")):
            raise ValueError("must be an absolute path on the guest")
        return value
