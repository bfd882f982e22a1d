"""What the wizard knows while the user edits it: the answers, the host's facts, the chosen node and
the sizing blockers overridden on purpose.

Plain Python, no Textual: the screens read and change it, tests and benches use it directly. Every
change to the answers goes through the pydantic model, so the wizard refuses exactly what an
answers file would refuse, with the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from backend.errors import BadInput
from backend.model.answers import Answers, errors_to_message
from backend.model.hostfacts import HostInventory, NodeFacts
from backend.model.sizing import Finding, Proposal, SizingResult, evaluate, pick_node, recommend
from backend.steps import guestaddr, provision
from backend.steps.guestaddr import LocalNetworks


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
    answers: Answers = field(default_factory=Answers)
    inventory: HostInventory | None = None
    fingerprint: str = ""  # the certificate fingerprint the user trusted
    node: NodeFacts | None = None
    overridden: frozenset[str] = frozenset()  # blocker ids the user went past on purpose
    force: bool = False  # --force on the command line: every blocker is overridden up front
    speed: float | None = None
    run_dir: str | None = None
    local: LocalNetworks | None = None  # this machine's own networks, read when the connection was tested

    # --- connection and host -----------------------------------------------------------------

    def connected(self, inventory: HostInventory, fingerprint: str, pin: str | None,
                  local: LocalNetworks | None = None) -> None:
        """A connection was tested and its certificate trusted; a pin to save goes into the answers."""
        self.inventory = inventory
        self.fingerprint = fingerprint
        self.local = local
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

    def evaluate(self, vcpus: int, memory_gib: int, disk_gib: int) -> SizingResult:
        assert self.node is not None
        return evaluate(self.node, Proposal(vcpus, memory_gib, disk_gib, storage=self.disk_storage()))

    def sizing(self) -> SizingResult:
        return self.evaluate(*self.sizes())

    def address_findings(self, bridge: str, address: str) -> tuple[Finding, ...]:
        """What `check` says about learning the guest's address with this bridge and guest.address
        (backend.steps.provision.evaluate, the same evaluation); nothing while this machine's networks are
        unknown or the address does not parse."""
        if self.node is None or self.local is None:
            return ()
        answers = self.answers.model_copy(deep=True)
        try:
            answers.vm.bridge = bridge
            answers.guest.address = address
        except ValidationError:
            return ()
        result = provision.evaluate(self.node, answers, self.local)
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
