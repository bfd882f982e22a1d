"""What the steps of a run learn, typed: the node, the VM's sizes, its vmid, the guest's address...

Each step declares the facts it `needs` and the ones it `produces` (backend/run/engine.py `Step`);
the engine refuses to start a step whose needs no earlier step produced, and a test walks the plan
to prove every need has a producer before it. A step returns its result as a dict (the journal's
form, in `StepFinished.result`); `Facts.learn` takes the typed fields from it and keeps everything
else (what a step reports for the report: `tuned_stage1`, `pem`, ...) in `extra`, so a journal
written before a field existed, or holding keys no field names, still loads for `--resume`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.model.hostfacts import NodeFacts


@dataclass
class Facts:
    # connect
    node: str | None = None  # the node the VM is on
    pve_version: str | None = None
    host: NodeFacts | None = None  # the node's facts as connect read them (journal: NodeFacts.to_dict())
    local_networks: dict | None = None  # this machine's networks (backend.steps.guestaddr.LocalNetworks.to_dict)
    # size: the VM spec
    vcpus: int | None = None
    memory_gib: int | None = None
    disk_gib: int | None = None
    storage: str | None = None
    bridge: str | None = None
    numa: bool = False
    sockets: int = 1
    # ova
    ova_disks: list[str] | None = None  # volids of the OVA's disks, the system disk first
    ova_disk_bytes: int | None = None
    ova_disk_bus: str | None = None
    import_working_storage: str | None = None
    # create_vm
    vmid: int | None = None
    vm_name: str | None = None
    boot_candidates: list[str] | None = None  # the controllers the first boot tries, in order
    # the boots
    guest_address: str | None = None
    address_source: str | None = None
    boot_controller: str | None = None  # the controller the first boot came up on
    os_disk: str | None = None  # the guest's OS disk (sda, ...)
    # prepare
    guest_host_key: str | None = None
    guest_user: str | None = None
    virtio_initramfs: bool | None = None
    # install
    mgmt_ip: str | None = None
    mgmt_iface: str | None = None
    outcome: str | None = None  # "online" once the install verified the cluster
    extra: dict[str, Any] = field(default_factory=dict)  # results no field names (kept for the journal)

    def learn(self, result: Mapping[str, Any]) -> None:
        """Take a step's result (its journal dict form)."""
        for key, value in result.items():
            if key == "extra" or key not in _FIELDS:
                self.extra[key] = value
            elif key == "host":
                self.host = NodeFacts.from_dict(value) if isinstance(value, dict) else value
            else:
                setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        """The facts known, in the journal's form (unset fields left out)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or value is None or value == f.default:
                continue
            out[f.name] = value.to_dict() if isinstance(value, NodeFacts) else value
        return {**self.extra, **out}

    @classmethod
    def from_results(cls, results: Iterable[Mapping[str, Any]]) -> Facts:
        """The facts of a run's finished steps, in order (RunDir.finished_steps().values())."""
        facts = cls()
        for result in results:
            facts.learn(result)
        return facts

    def missing(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if getattr(self, name, None) is None]


_FIELDS = frozenset(f.name for f in dataclasses.fields(Facts)) - {"extra"}
FACT_NAMES = _FIELDS

