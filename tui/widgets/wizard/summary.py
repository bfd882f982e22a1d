"""The answers summary: every answer the run will use, secrets shown as their references."""

from __future__ import annotations

from rich.table import Table
from textual.reactive import reactive
from textual.widget import Widget

from backend.model.answers import Answers
from backend.model.guestmemory import sized
from backend.model.hostfacts import NodeFacts
from backend.model.sizing import topology
from backend.target import describe_target


def summary_rows(answers: Answers, node: NodeFacts | None, fingerprint: str = "") -> list[tuple[str, str]]:
    p, vm, guest = answers.proxmox, answers.vm, answers.guest
    target = describe_target(answers)
    node_text = p.node if node is None else (node.node if p.node != "auto" else f"auto → {node.node}")
    rows = [
        ("Proxmox", target),
        ("Token", f"{p.token_id}, secret {p.token_secret}" if p.token_id and p.token_secret else "none given"),
        ("Certificate", _short(fingerprint or p.fingerprint or "-")),
        ("Node", node_text),
        ("VM", f"{vm.name}: {vm.vcpus} vCPUs ({_sockets(vm.vcpus, vm.memory_gib, node)}), {_memory(vm.memory_gib)}, "
               f"{vm.disk_gib} GiB disk"),
        ("Storage", f"{vm.storage}, bridge {vm.bridge}"),
        ("OVA", answers.ova),
        ("Guest", f"{guest.user}@{guest.address}, {_login(guest.password, guest.key)}"),
        ("Host key", f"pinned {guest.host_key}" if guest.host_key else "known_hosts, else asked before connecting"),
        ("VAST", f"{answers.vast.build}, cluster {answers.vast.cluster_name}, "
                 + ("reboot test on" if answers.vast.reboot_test else "reboot test off")),
        ("VMS", f"{answers.vast.admin_user}, " + (f"password {answers.vast.admin_password}"
                                                   if answers.vast.admin_password else "the OVA's default password")),
        ("Tuning", "the field report's, limits raised" if answers.tuning.limits else "the field report's, limits as they are"),
    ]
    return rows


def _memory(memory_gib: int | str) -> str:
    """The VM's RAM with what its guest sees ('auto' stays the recommendation's)."""
    if isinstance(memory_gib, int):
        return f"VM RAM {sized(memory_gib)}"
    return f"VM RAM {memory_gib} GiB"


def _sockets(vcpus: object, memory_gib: object, node: NodeFacts | None) -> str:
    """The VM's sockets as the plan lays them out on this node (backend.model.sizing.topology)."""
    if node is None or not isinstance(vcpus, int) or not isinstance(memory_gib, int):
        return "1 socket"
    layout = topology(node, vcpus, memory_gib)
    return f"{layout.sockets} sockets x {layout.cores}, NUMA" if layout.numa else "1 socket"


def _login(password: object, key: object) -> str:
    """How the guest login works, as references (never a value)."""
    parts = [f"key {key}"] if key else []
    parts.append(f"password {password}" if password else ("the OVA's default password" if not key else ""))
    return ", ".join(p for p in parts if p)


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
