"""The answers summary: every answer the run will use, secrets shown as their references."""

from __future__ import annotations

from rich.table import Table
from textual.reactive import reactive
from textual.widget import Widget

from backend.answers import Answers
from backend.hostfacts import NodeFacts


def summary_rows(answers: Answers, node: NodeFacts | None, fingerprint: str = "") -> list[tuple[str, str]]:
    p, vm, guest = answers.proxmox, answers.vm, answers.guest
    target = p.url if p.url != "lab" else f"built-in lab ({answers.lab.host_profile} host)"
    node_text = p.node if node is None else (node.node if p.node != "auto" else f"auto → {node.node}")
    rows = [
        ("Proxmox", target),
        ("Token", f"{p.token_id or '-'}  secret {p.token_secret or '-'}"),
        ("Certificate", _short(fingerprint or p.fingerprint or "-")),
        ("Node", node_text),
        ("VM", f"{vm.name}: {vm.vcpus} vCPUs (1 socket), {vm.memory_gib} GiB RAM, {vm.disk_gib} GiB disk"),
        ("Storage", f"{vm.storage}, bridge {vm.bridge}"),
        ("OVA", answers.ova),
        ("Guest", f"{guest.user}@{guest.address}"),
        ("VAST", f"{answers.vast.build}, cluster {answers.vast.cluster_name}"),
    ]
    return rows


def _short(fingerprint: str) -> str:
    return fingerprint if len(fingerprint) <= 47 else fingerprint[:47] + "…"


class AnswersSummary(Widget):
    DEFAULT_CSS = """
    AnswersSummary { height: auto; width: 1fr; }
    """

    rows: reactive[tuple[tuple[str, str], ...]] = reactive((), layout=True)

    def render(self) -> Table:
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, value in self.rows:
            table.add_row(key, value)
        return table
