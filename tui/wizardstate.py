"""What the wizard knows while the user edits it: the answers, the host's facts, the chosen node and
the sizing blockers overridden on purpose.

Plain Python, no Textual: the screens read and change it, tests and benches use it directly. Every
change to the answers goes through the pydantic model, so the wizard refuses exactly what an
answers file would refuse, with the same messages; every finding comes from the engine's front
door (`backend.run.service.evaluate`, what `check` and the run use), on what the probe read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

import backend.lab  # noqa: F401  - the wizard's default target, the built-in lab, registered
from backend.errors import BadInput
from backend.model.answers import Answers, errors_to_message
from backend.model.hostfacts import HostInventory, NodeFacts
from backend.model.sizing import Finding, SizingResult, pick_node, recommend
from backend.run.service import evaluate
from backend.steps import guestaddr
from backend.steps.guestaddr import LocalNetworks
from backend.steps.hostcheck import HOST_FINDINGS, HostView

DEFAULT_TARGET = "lab"  # the wizard starts on the built-in lab (backend/lab registers it: imported above)


def validated(model: type[BaseModel], data: dict[str, Any], section: str) -> Any:
    """A section of the answers built from form values, or BadInput naming the field and the problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadInput(errors_to_message(exc, section, None).replace(f"{section}: ", f"{section}.", 1)) from None


def first_line(error: BaseException) -> str:
    """The one line a screen shows for an error (hints follow on the next lines of VlbErrors)."""
    text = str(error).strip() or error.__class__.__name__
    return text.splitlines()[0]


@dataclass
class WizardState:
    answers: Answers = field(default_factory=lambda: Answers.model_validate({"proxmox": {"url": DEFAULT_TARGET}}))
    host: HostView | None = None  # what the connection test read (backend.steps.hostcheck.read_host)
    fingerprint: str = ""  # the certificate fingerprint the user trusted
    node: NodeFacts | None = None
    overridden: frozenset[str] = frozenset()  # blocker ids the user went past on purpose
    force: bool = False  # --force on the command line: every blocker is overridden up front
    speed: float | None = None
    run_dir: str | None = None
    fleet_count: int = 1  # loopback clusters to bring up (more than one: a class across the nodes)
    target: str = ""  # where the wizard points, once connected (the Target's description): its header

    # --- connection and host -----------------------------------------------------------------

    @property
    def inventory(self) -> HostInventory | None:
        return self.host.inventory if self.host else None

    @property
    def local(self) -> LocalNetworks | None:
        """This machine's own networks, read when the connection was tested."""
        return self.host.local if self.host else None

    def connected(self, host: HostView, fingerprint: str, pin: str | None, target: str = "") -> None:
        """A connection was tested and its certificate trusted; a pin to save goes into the answers.
        `target`: where it points, in words (the Target's description)."""
        self.host = host
        self.target = target
        inventory = host.inventory
        self.fingerprint = fingerprint
        if pin:
            self.answers.proxmox.fingerprint = pin
        wanted = self.answers.proxmox.node
        self.node = inventory.node(wanted) if wanted != "auto" else None
        if self.node is None:
            self.node = pick_node(inventory)
            self.answers.proxmox.node = "auto"

    def choose_node(self, name: str) -> NodeFacts:
        """Pick a node by name, or 'auto' for the best one (backend.model.sizing.pick_node)."""
        assert self.inventory is not None, "choose a node after connecting"
        chosen = pick_node(self.inventory) if name == "auto" else self.inventory.node(name)
        if chosen is None:
            raise BadInput("no node is online" if name == "auto" else f"node {name} is not in this cluster")
        self.answers.proxmox.node = name
        self.node = chosen
        if self.node.storage(self.answers.vm.storage) is None:
            self.answers.vm.storage = recommend(self.node).storage or self.answers.vm.storage
        if self.node.bridges and self.answers.vm.bridge not in self.node.bridges:
            self.answers.vm.bridge = self.node.bridges[0]
        return chosen

    @property
    def best_node(self) -> NodeFacts | None:
        return pick_node(self.inventory) if self.inventory else None

    # --- sizing ----------------------------------------------------------------------------------

    def sizes(self) -> tuple[int, int, int]:
        """The VM's vCPUs, RAM GiB and disk GiB, 'auto' resolved to the node's recommendation."""
        assert self.node is not None
        rec = recommend(self.node, self.disk_storage())
        vm = self.answers.vm
        return (
            rec.vcpus if vm.vcpus == "auto" else vm.vcpus,
            rec.memory_gib if vm.memory_gib == "auto" else vm.memory_gib,
            rec.disk_gib if vm.disk_gib == "auto" else vm.disk_gib,
        )

    def disk_storage(self) -> str | None:
        """The storage the sizing checks against: the chosen one when the node has it."""
        if self.node is None:
            return None
        wanted = self.answers.vm.storage
        return wanted if self.node.storage(wanted) is not None else recommend(self.node).storage

    def _evaluate(self, answers: Answers) -> SizingResult:
        assert self.host is not None and self.node is not None
        answers.proxmox.node = self.node.node
        if self.node.storage(answers.vm.storage) is None:
            answers.vm.storage = self.disk_storage() or answers.vm.storage
        return evaluate(answers, self.host)

    def evaluate(self, vcpus: int, memory_gib: int, disk_gib: int) -> SizingResult:
        """The Sizing step's findings (the front door's `evaluate`, as `check`, without the ones about
        the host: backend.steps.hostcheck.HOST_FINDINGS) with these sizes typed in."""
        answers = self.answers.model_copy(deep=True)
        answers.vm.vcpus, answers.vm.memory_gib, answers.vm.disk_gib = vcpus, memory_gib, disk_gib
        result = self._evaluate(answers)
        return SizingResult(result.recommendation, tuple(f for f in result.findings if f.id not in HOST_FINDINGS),
                            result.proposal)

    def sizing(self) -> SizingResult:
        """Every finding for the answers as they are (`check`'s, for the same answers)."""
        return self._evaluate(self.answers.model_copy(deep=True))

    def address_findings(self, bridge: str, address: str) -> tuple[Finding, ...]:
        """What `check` says about learning the guest's address with this bridge and guest.address
        (backend.run.service.evaluate, the same evaluation); nothing while this machine's networks are
        unknown or the address does not parse."""
        if self.node is None or self.local is None:
            return ()
        answers = self.answers.model_copy(deep=True)
        try:
            answers.vm.bridge = bridge
            answers.guest.address = address
        except ValidationError:
            return ()
        result = self._evaluate(answers)
        return tuple(f for f in result.findings if f.id in guestaddr.FINDINGS)

    def unresolved_blockers(self, result: SizingResult) -> list[str]:
        """Blocker ids that stop the wizard: not overridden on purpose (and no --force)."""
        if self.force:
            return []
        return [f.id for f in result.blockers if f.id not in self.overridden]

    @property
    def forced(self) -> bool:
        """Whether the run must go past sizing blockers (the engine's RunOptions.force)."""
        return self.force or bool(self.overridden & {f.id for f in self.sizing().blockers})
