"""Step 4, Storage & network: the VM's name, the storage for its disk (with free space), the bridge,
the OVA's volid, and how the guest is reached (dhcp or a fixed IP).

`dhcp` needs a source of the guest's address that works from here (backend/steps/guestaddr.py: an SDN
VNet with IPAM and DHCP, or this machine on the bridge's layer 2); when none does, the step says so
with `check`'s own finding (backend.steps.provision.evaluate) and asks for the guest's address."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Select, Static

from backend.model.answers import Answers, GuestAnswers, VmAnswers
from backend.model.hostfacts import NodeFacts
from screens.base import WizardScreen
from tui.messages import StorageNetworkChosen
from tui.widgets.wizard.findings import FindingsList
from tui.wizardstate import validated

STORAGE_FINDINGS = ("storage-missing", "storage-no-images", "storage-too-small")


def storage_options(node: NodeFacts) -> list[tuple[str, str]]:
    """Storages that hold VM disks, labelled with their free space."""
    return [(f"{s.storage}  ({s.type}, {s.avail_gib:,.0f} GiB free)", s.storage)
            for s in node.storages if s.holds("images")]


def import_storages(node: NodeFacts) -> str:
    names = [s.storage for s in node.storages if s.holds("import")]
    return ", ".join(names) if names else "none (OVA import needs a storage with content 'import')"


class StorageNetworkScreen(WizardScreen):
    STEP = "storage_network"
    TITLE = "Storage & network"
    CSS_PATH = "storage_network.tcss"
    HELP = """\
• VM name: what Proxmox shows (DNS name rules). A rerun finds its VM by this name and a tag.
• Storage: where the VM's disk goes; only storages with content 'images' are offered, with
  their free space. The disk size from the Sizing step must fit.
• Bridge: the network bridge of the VM's NIC (vmbr0 on most hosts).
• OVA: the volid of vast-5.4.0-loopback.ova on a storage with content 'import'
  (STORAGE:import/FILE.ova), imported through the API (Proxmox VE 8.3+).
• Guest address: dhcp or a fixed IP. With dhcp the address is read from Proxmox's IPAM (an SDN
  VNet with IPAM and DHCP), or from this machine's neighbour table by the VM's MAC (only when this
  machine shares the bridge's layer 2), or later from the guest agent. When none of these can work
  from here, give the IP the guest will get."""

    def compose_body(self) -> ComposeResult:
        node = self.wizard.node
        assert node is not None
        answers = self.wizard.answers
        storages = storage_options(node)
        storage_value = answers.vm.storage if any(v == answers.vm.storage for _, v in storages) else Select.BLANK
        bridges = [(b, b) for b in node.bridges] or [(answers.vm.bridge, answers.vm.bridge)]
        bridge_value = answers.vm.bridge if any(v == answers.vm.bridge for _, v in bridges) else bridges[0][1]
        rows = (
            ("VM name", Input(self.wizard.shown("vm.name", answers.vm.name), id="name", compact=True)),
            ("Storage", Select(storages, value=storage_value, id="storage", compact=True,
                               prompt="no storage holds VM disks")),
            ("Bridge", Select(bridges, value=bridge_value, allow_blank=False, id="bridge", compact=True)),
            ("OVA", Input(self.wizard.shown("ova", answers.ova), id="ova", compact=True)),
            ("Guest address", Input(self.wizard.shown("guest.address", answers.guest.address), placeholder="dhcp or an IP address", id="address",
                                    compact=True, disabled=self.wizard_app.kiosk)),  # the web demo: the lab's own
        )
        for label, field in rows:
            with Horizontal(classes="form-row"):
                yield Label(label, classes="label")
                yield field
        yield Static(f"OVA storages on {node.node}: {import_storages(node)}", classes="hint")
        yield FindingsList(id="storage-findings")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(FindingsList).show_info = False
        self._check_storage()
        self.query_one("#name", Input).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        self._check_storage()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "address":
            self._check_storage()

    def _chosen(self, widget_id: str) -> str | None:
        value = self.query_one(f"#{widget_id}", Select).value
        return None if value is Select.BLANK else str(value)

    def _check_storage(self) -> None:
        """Findings about the chosen storage with the sizes from the previous step."""
        storage = self._chosen("storage")
        findings = self.query_one(FindingsList)
        if storage is None:
            findings.findings = ()
            self.say("choose a storage for the VM disk", error=True)
            return
        saved = self.wizard.answers.vm.storage
        self.wizard.answers.vm.storage = storage
        try:
            result = self.wizard.sizing()
        finally:
            self.wizard.answers.vm.storage = saved
        storage_findings = tuple(f for f in result.findings if f.id in STORAGE_FINDINGS)
        address = self._address_findings()
        findings.findings = storage_findings + address
        if storage_findings:
            self.say("the storage does not fit the disk", error=True)
        elif any(f.severity == "blocker" for f in address):
            self.say("dhcp cannot work from here: type the guest's IP address", error=True)
        else:
            self.say("")

    def _address_findings(self) -> tuple:
        bridge = self._chosen("bridge") or self.wizard.answers.vm.bridge
        return self.wizard.address_findings(bridge, self.query_one("#address", Input).value.strip())

    def commit(self) -> None:
        answers = self.wizard.answers
        storage = self._chosen("storage")
        if storage is None:
            from backend.errors import BadInput

            raise BadInput("vm.storage: choose a storage for the VM disk")
        bridge = self._chosen("bridge") or answers.vm.bridge
        blocked = next((f for f in self._address_findings() if f.severity == "blocker"), None)
        if blocked is not None and not self.wizard.force:
            from backend.errors import BadInput

            self.query_one("#address", Input).focus()
            raise BadInput(f"guest.address: dhcp cannot work from here; type the IP the guest will get. {blocked.remedy}")
        vm = validated(VmAnswers, {**answers.vm.model_dump(), "name": self.query_one("#name", Input).value.strip(),
                                   "storage": storage, "bridge": bridge}, "vm")
        guest = validated(GuestAnswers, {**answers.guest.model_dump(mode="json"),
                                         "address": self.query_one("#address", Input).value.strip()}, "guest")
        ova = self.query_one("#ova", Input).value.strip()
        checked = validated(Answers, {**answers.model_dump(mode="json"), "ova": ova}, "answers")
        answers.vm, answers.guest, answers.ova = vm, guest, checked.ova
        self.post_message(StorageNetworkChosen(vm.storage, vm.bridge, answers.ova, guest.address))
