"""Step 3, Sizing: vCPUs, RAM and disk for the VM. The recommendation and the findings
(backend.model.sizing.evaluate) follow every keystroke; ^r applies the recommendation; a blocker
disables Next until it is fixed or overridden on purpose (^o), with its reason shown. A field that
is empty, not a whole number or out of the answers' range is itself the finding (never "no
blockers"), and Next stays off until it is fixed."""

from __future__ import annotations

from pydantic import ValidationError
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Input, Label, Static

from backend.model.answers import VmAnswers
from backend.model.guestmemory import guest_gib
from backend.model.sizing import Finding, SizingResult
from screens.base import WizardScreen
from tui.messages import BlockersOverridden, RecommendationApplied, SizingChanged
from tui.widgets.wizard.findings import FindingsList
from tui.widgets.wizard.override import OverrideDialog
from tui.wizardstate import validated

FIELDS = (("vcpus", "vCPUs"), ("memory", "VM RAM GiB"), ("disk", "Disk GiB"))
ANSWER_FIELDS = {"vcpus": "vcpus", "memory": "memory_gib", "disk": "disk_gib"}


def parse_size(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def input_problem(key: str, label: str, text: str) -> Finding | None:
    """What is wrong with one size field as typed, as a blocker finding (None when it is valid): the
    answers model's own check, so the wizard refuses what an answers file would."""
    shown = text.strip()
    value = parse_size(shown)
    if value is None:
        what = "is empty" if not shown else f"'{shown[:20]}' is not a whole number"
    else:
        field = ANSWER_FIELDS[key]
        try:
            VmAnswers.model_validate({field: value})
            return None
        except ValidationError as exc:
            what = f"{value} " + str(exc.errors()[0]["msg"]).removeprefix("Value error, ").replace(", or 'auto'", "")
    return Finding(id=f"input.{key}", severity="blocker", message=f"{label} {what}.",
                   remedy="type a whole number, or apply the recommendation", evidence="")


class SizingScreen(WizardScreen):
    STEP = "sizing"
    TITLE = "Size the VM"
    CSS_PATH = "sizing.tcss"
    HELP = """\
vCPUs, RAM and disk for the VM. Findings update as you type, each with its remedy and the field
report's evidence:

• vCPUs above the host's physical cores block (24 vCPUs on 12 cores died of a P653 PANIC in
  vmsg_keepalive_fiber); below 12 is a warning.
• RAM is the VM's (Proxmox's memory setting); the guest sees about 2.5 GiB less (the EL8 kernel's
  share): a 120 GiB VM's guest sees ≈117.5 GiB, the report's "117GB". A guest below the field
  run's peak use (116.3 GiB) blocks: a VM under 119 GiB; a guest below the report's 128 GB+ is a
  warning. The host keeps what Proxmox and QEMU need next to the VM (about 2.6 GiB).
• Disk below 500 GiB blocks; below 1000 GiB is a warning; the storage must have the space.

^r applies the recommendation. A blocker disables Next; ^o overrides it on purpose after showing
why it blocks (the run will most likely fail as the field report's did)."""

    BINDINGS = [
        *WizardScreen.BINDINGS,
        Binding("ctrl+r", "apply_recommendation", "Recommend", id="recommend"),
        Binding("ctrl+o", "override", "Override", id="override"),
    ]

    result: reactive[SizingResult | None] = reactive(None, init=False, always_update=True)

    def __init__(self) -> None:
        super().__init__()
        self._shown: dict[str, str] = {}
        self._problems: tuple[Finding, ...] = ()  # the size fields not valid as typed

    def compose_body(self) -> ComposeResult:
        node = self.wizard.node
        assert node is not None, "the sizing screen comes after a node is chosen"
        vcpus, memory, disk = self.wizard.sizes()
        demo = self.wizard_app.demo
        if demo is not None and demo.hint_for(self.STEP):
            yield Static(demo.hint_for(self.STEP), classes="demo-hint")
        yield Static(
            f"Node [b]{node.node}[/b]: {node.cores} physical cores / {node.threads} threads, "
            f"{node.mem_total_gib:.1f} GiB host RAM", id="node-line")
        with Horizontal(id="sizes"):
            for (key, label), value in zip(FIELDS, (vcpus, memory, disk), strict=True):
                yield Label(label, classes="size-label")
                # a reopened file's value that did not validate is shown as it was written, to be fixed here
                yield Input(self.wizard.shown(f"vm.{ANSWER_FIELDS[key]}", value), id=key, type="integer",
                            max_length=7, compact=True, classes="size")
        yield Static("", id="guest-memory")
        yield Static("", id="recommendation")
        yield Static("", id="override-banner")
        yield FindingsList(id="findings")

    def on_mount(self) -> None:
        super().on_mount()
        self.recompute()
        self.query_one("#vcpus", Input).focus()

    # --- live evaluation ----------------------------------------------------------------------

    def values(self) -> tuple[int | None, int | None, int | None]:
        return tuple(parse_size(self.query_one(f"#{key}", Input).value) for key, _ in FIELDS)  # type: ignore[return-value]

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.recompute()

    def input_problems(self) -> tuple[Finding, ...]:
        """The size fields that are not valid as typed, each as a blocker finding."""
        found = (input_problem(key, label, self.query_one(f"#{key}", Input).value) for key, label in FIELDS)
        return tuple(problem for problem in found if problem is not None)

    def recompute(self) -> None:
        vcpus, memory, disk = self.values()
        problems = self.input_problems()
        self._show("#guest-memory", f"[dim]VM RAM {memory} GiB: the guest sees ≈{guest_gib(memory):.1f} GiB "
                                    "(MemTotal)[/]" if memory and not any(p.id == "input.memory" for p in problems)
                   else "")
        for key, _ in FIELDS:
            self.query_one(f"#{key}", Input).set_class(any(p.id == f"input.{key}" for p in problems), "-invalid")
        self._problems = problems
        if problems or vcpus is None or memory is None or disk is None:
            self.result = None
        else:
            self.result = self.wizard.evaluate(vcpus, memory, disk)
        self.post_message(SizingChanged(vcpus, memory, disk, self.result))

    def watch_result(self, result: SizingResult | None) -> None:
        findings = self.query_one(FindingsList)
        if result is None:
            findings.overridden = frozenset()
            findings.findings = self._problems
            self.next_enabled = False
            first = self._problems[0].message if self._problems else "vCPUs, RAM and disk must be whole numbers"
            self.say(first.rstrip(".") + ": fix it to go on", error=True)
            self._show("#override-banner", "")
            return
        rec = result.recommendation
        storage = f" on {rec.storage}" if rec.storage else ""
        recommendation = (f"Recommended: [b]{rec.vcpus}[/b] vCPUs · VM [b]{rec.memory_gib}[/b] GiB "
                          f"(guest ≈{rec.guest_memory_gib:.1f}) · "
                          f"[b]{rec.disk_gib}[/b] GiB{storage}  ({self.wizard_app.keys_in('^r')} applies it)")
        if not rec.feasible:
            recommendation += f"\n[red]This node cannot host the cluster: {rec.reason}[/]"
        self._show("#recommendation", recommendation)
        findings.overridden = self.wizard.overridden
        findings.findings = result.findings
        unresolved = self.wizard.unresolved_blockers(result)
        overridden = [f for f in result.blockers if f.id not in unresolved]
        self._show("#override-banner", "[b magenta]Overridden on purpose:[/] " + "; ".join(
            f.message for f in overridden) if overridden else "")
        self.next_enabled = not unresolved
        if unresolved:
            self.say(f"{len(unresolved)} blocker{'s' if len(unresolved) > 1 else ''}: "
                     "^r recommends, ^o overrides", error=True)
        elif overridden:
            self.say("overridden on purpose: ^n goes on")
        else:
            warnings = len(result.warnings)
            self.say(f"{warnings} warning{'s' if warnings != 1 else ''}" if warnings else "no blockers")

    def _show(self, selector: str, markup: str) -> None:
        """Update a Static only when its text changes (markup parsing is most of a keystroke's cost)."""
        if self._shown.get(selector) != markup:
            self._shown[selector] = markup
            self.query_one(selector, Static).update(markup)

    # --- actions ------------------------------------------------------------------------------

    def action_apply_recommendation(self) -> None:
        result = self.result or self.wizard.sizing()
        rec = result.recommendation
        for (key, _), value in zip(FIELDS, (rec.vcpus, rec.memory_gib, rec.disk_gib), strict=True):
            self.query_one(f"#{key}", Input).value = str(value)
        self.recompute()
        self.post_message(RecommendationApplied(rec.vcpus, rec.memory_gib, rec.disk_gib))

    def action_override(self) -> None:
        result = self.result
        if result is None:
            self.say("fix the size fields first", error=True)
            return
        unresolved = self.wizard.unresolved_blockers(result)
        blockers = [f for f in result.blockers if f.id in unresolved]
        if not blockers:
            self.say("there is no blocker to override")
            return

        def decided(confirmed: bool | None) -> None:
            if not confirmed:
                self.say("not overridden: the blockers still stop the wizard", error=True)
                return
            self.wizard.overridden = self.wizard.overridden | {f.id for f in blockers}
            self.post_message(BlockersOverridden(tuple(f.id for f in blockers),
                                                 tuple(f.message for f in blockers)))
            self.recompute()

        self.app.push_screen(OverrideDialog(blockers), decided)

    def commit(self) -> None:
        vcpus, memory, disk = self.values()
        current = self.wizard.answers.vm.model_dump()
        vm = validated(VmAnswers, {**current, "vcpus": vcpus, "memory_gib": memory, "disk_gib": disk}, "vm")
        self.wizard.answers.vm = vm
