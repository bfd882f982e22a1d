"""The host table: one row per node with physical cores, threads, RAM, free VM storage, and whether
it can host the cluster (backend.model.sizing.recommend)."""

from __future__ import annotations

import contextlib

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from backend.model.hostfacts import HostInventory, NodeFacts
from backend.model.sizing import recommend

COLUMNS = ("Node", "Cores", "Threads", "Host RAM GiB", "Free", "Disk free", "Fit")


def images_free_gib(node: NodeFacts) -> float:
    return max((s.avail_gib for s in node.storages if s.active and s.holds("images")), default=0.0)


def fit_text(node: NodeFacts, best: str | None) -> Text:
    if not node.online:
        return Text("offline", style="dim")
    rec = recommend(node)
    if not rec.feasible:
        return Text("✖ cannot host it", style="red")
    label = f"✓ {rec.vcpus} vCPU, VM {rec.memory_gib} GiB"
    return Text(label + (" ★ best" if node.node == best else ""), style="green")


class HostTable(DataTable):
    """Rows keyed by node name; the cursor moves by row."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        if not self.columns:
            self.add_columns(*COLUMNS)

    def show(self, inventory: HostInventory, best: str | None) -> None:
        if not self.columns:
            self.add_columns(*COLUMNS)
        self.clear()
        for node in inventory.nodes:
            self.add_row(
                node.node,
                str(node.cores),
                str(node.threads),
                f"{node.mem_total_gib:.1f}",
                f"{node.mem_available_gib:.1f}",
                f"{images_free_gib(node):,.0f} GiB",
                fit_text(node, best),
                key=node.node,
            )

    def move_to(self, name: str) -> None:
        with contextlib.suppress(RowDoesNotExist):  # an unknown node leaves the cursor where it is
            self.move_cursor(row=self.get_row_index(name))

    @property
    def highlighted_node(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
