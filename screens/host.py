"""Step 2, Host: the nodes with their physical cores, threads, RAM and VM storage; pick one
(Enter) or let the wizard pick the best one (a), as backend.model.sizing.pick_node ranks them."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from backend.model.guestmemory import sized
from backend.model.hostfacts import NodeFacts
from backend.model.sizing import recommend
from screens.base import WizardScreen
from tui.messages import HostChosen
from tui.widgets.wizard.hosttable import HostTable


def node_details(node: NodeFacts) -> Text:
    """The highlighted node in a few lines: CPU, memory, storages, bridges, what it could run."""
    rec = recommend(node)
    text = Text()
    text.append(f"{node.node}", style="bold")
    text.append(f"  {node.cpu_model}\n", style="dim")
    smt = f", {node.threads} threads (hyperthreads do not count as cores)" if node.smt else ""
    text.append(f"{node.sockets} socket{'s' if node.sockets != 1 else ''}, {node.cores} physical cores{smt}\n")
    text.append(f"Host RAM {node.mem_total_gib:.1f} GiB, {node.mem_available_gib:.1f} GiB free, "
                f"{node.running_vms} VMs running; PVE {node.pve_version or '?'}\n")
    storages = ", ".join(f"{s.storage} ({s.type}, {s.avail_gib:,.0f} GiB free: {','.join(s.content)})"
                         for s in node.storages)
    text.append(f"storage {storages or 'none'}\n")
    text.append(f"bridges {', '.join(node.bridges) or 'none'}\n")
    if rec.feasible:
        text.append(f"✓ can host it: {rec.vcpus} vCPUs, VM RAM {sized(rec.memory_gib)}, {rec.disk_gib} GiB disk",
                    style="green")
    else:
        text.append(f"✖ cannot host it: {rec.reason}", style="red")
    return text


class HostScreen(WizardScreen):
    STEP = "host"
    TITLE = "Choose the Proxmox node"
    CSS_PATH = "host.tcss"
    HELP = """\
Every node of the host or cluster, with its physical cores (all sockets; hyperthreads are not
cores), threads, RAM, the free space of its VM storage, and whether it can host the loopback
cluster (12 physical cores and 128 GiB validated; at least 112 GiB for the VM after the host's
reserve).

↑/↓ highlight a node and show its details; Enter chooses it; a lets the wizard choose the best
node (online, able to host it, most cores, then most free RAM) and writes node: auto."""

    BINDINGS = [
        *WizardScreen.BINDINGS,
        Binding("a", "auto", "Auto-pick best"),
    ]

    choice: reactive[str] = reactive("auto")

    def compose_body(self) -> ComposeResult:
        yield HostTable(id="nodes")
        yield Static("", id="chosen")
        yield Static("", id="details", classes="panel")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one(HostTable)
        inventory = self.wizard.inventory
        assert inventory is not None, "the host screen comes after a connection test"
        best = self.wizard.best_node
        table.show(inventory, best.node if best else None)
        self.choice = self.wizard.answers.proxmox.node
        chosen = self.wizard.node or best
        if chosen is not None:
            table.move_to(chosen.node)
        table.focus()

    def watch_choice(self, choice: str) -> None:
        best = self.wizard.best_node
        if choice == "auto":
            text = f"Chosen: auto → [b]{best.node}[/b] (the best node)" if best else "Chosen: auto (no node online)"
        else:
            text = f"Chosen: [b]{choice}[/b]   (a: let the wizard pick)"
        for widget in self.query("#chosen"):
            assert isinstance(widget, Static)
            widget.update(text)
        self.next_enabled = choice != "auto" or best is not None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        inventory = self.wizard.inventory
        node = inventory.node(str(event.row_key.value)) if inventory else None
        if node is not None:
            self.query_one("#details", Static).update(node_details(node))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.choice = str(event.row_key.value)
        self.say(f"{self.choice} chosen: Next (^n) for sizing")

    def action_auto(self) -> None:
        self.choice = "auto"
        best = self.wizard.best_node
        if best is not None:
            self.query_one(HostTable).move_to(best.node)
            self.say(f"auto: {best.node} is the best node")

    def commit(self) -> None:
        node = self.wizard.choose_node(self.choice)
        self.post_message(HostChosen(self.choice, node.node))
