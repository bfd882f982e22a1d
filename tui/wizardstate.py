"""What the wizard knows while the user edits it: the answers, the host's facts, the chosen node and
the sizing blockers overridden on purpose.

Plain Python, no Textual: the screens read and change it, tests and benches use it directly. Every
change to the answers goes through the pydantic model, so the wizard refuses exactly what an
answers file would refuse, with the same messages; every finding comes from the engine's front
door (`backend.run.service.evaluate`, what `check` and the run use), on what the probe read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

import backend.lab  # noqa: F401  - the wizard's default target, the built-in lab, registered
from backend.errors import BadInput
from backend.model.answers import Answers, errors_to_message
from backend.model.hostfacts import HostInventory, NodeFacts
from backend.model.partial import load_partial
from backend.model.sizing import Finding, SizingResult, pick_node, recommend
from backend.run.service import evaluate
from backend.steps import guestaddr
from backend.steps.guestaddr import LocalNetworks
from backend.steps.hostcheck import HOST_FINDINGS, HostView
from backend.target import provider_scheme

DEFAULT_TARGET = "lab"  # the wizard starts on the built-in lab (backend/lab registers it: imported above)

# The answers each step edits, by dotted field or by section ("lab": every field of the lab's own
# section); a field no step edits is the Review's to show. Reopened answers with a problem in a step's
# fields open that step.
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "connect": ("proxmox", "lab"),
    "host": ("proxmox.node",),
    "sizing": ("vm.vcpus", "vm.memory_gib", "vm.disk_gib"),
    "storage_network": ("vm.name", "vm.storage", "vm.bridge", "ova", "guest.address"),
    "guest": ("guest.user", "guest.password", "guest.key", "guest.host_key", "vast.admin_user",
              "vast.admin_password", "tuning"),
}


def step_of(dotted: str) -> str:
    """The wizard step where a field of the answers is edited ('review' for one no step edits)."""
    for step, fields in STEP_FIELDS.items():
        if dotted in fields:
            return step
    for step, fields in STEP_FIELDS.items():
        if dotted.split(".")[0] in fields:
            return step
    return "review"


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
    source: str = ""  # the answers file the wizard was reopened from (`--answers FILE`)
    problems: dict[str, str] = field(default_factory=dict)  # dotted field -> what is wrong with its value
    raw: dict[str, str] = field(default_factory=dict)  # dotted field -> the file's text for a value not loaded

    @classmethod
    def reopen(cls, path: str | os.PathLike[str], **options: Any) -> WizardState:
        """The wizard on a saved answers file: what validates loaded, each value that does not set
        aside with its problem and its text (backend.model.partial); BadInput when the file cannot
        be read at all."""
        partial = load_partial(path, {"proxmox": {"url": DEFAULT_TARGET}})
        return cls(answers=partial.answers, source=partial.source, problems=dict(partial.problems),
                   raw=dict(partial.raw), **options)

    # --- reopened answers ------------------------------------------------------------------------

    def shown(self, dotted: str, value: object) -> str:
        """What an input for this field shows: the file's text when its value was not loaded, else
        the value (secrets are references: their text, never what they hold)."""
        if dotted in self.raw:
            return self.raw[dotted]
        return "" if value is None else str(value)

    def problems_of(self, step: str) -> dict[str, str]:
        """The problems with the answers a step edits (the Review's: those no step edits)."""
        return {dotted: message for dotted, message in self.problems.items() if step_of(dotted) == step}

    def settled(self, step: str) -> None:
        """A step's answers were written from its form: its problems and set-aside texts are gone."""
        for dotted in [*self.problems, *self.raw]:
            if step_of(dotted) == step:
                self.problems.pop(dotted, None)
                self.raw.pop(dotted, None)

    @property
    def tests_alone(self) -> bool:
        """Whether the connection can be tested without the user: the Connect step's answers have
        no problem, and the certificate is vouched for (a pin in the answers, or a registered
        provider's own target); a real host's unpinned certificate is the user's to trust."""
        proxmox = self.answers.proxmox
        return not self.problems_of("connect") and (provider_scheme(proxmox.url) != "https" or bool(proxmox.fingerprint))

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
            if wanted != "auto":
                self.problems["proxmox.node"] = f"node {wanted} is not in this cluster: choose one"
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
        vm = self.answers.vm
        if self.node.storage(vm.storage) is None:
            self._replaced("vm.storage", vm.storage, "storage", recommend(self.node).storage or vm.storage)
            vm.storage = recommend(self.node).storage or vm.storage
        if self.node.bridges and vm.bridge not in self.node.bridges:
            self._replaced("vm.bridge", vm.bridge, "bridge", self.node.bridges[0])
            vm.bridge = self.node.bridges[0]
        return chosen

    def _replaced(self, dotted: str, wanted: str, what: str, chosen: str) -> None:
        """A value of the reopened file the chosen node does not have is said on its step."""
        if self.source and wanted != chosen:
            assert self.node is not None
            self.problems[dotted] = f"node {self.node.node} has no {what} {wanted}: {chosen} is chosen, check it"

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
