"""Changes a run makes to the host beyond its own VM, shown before, recorded and undone.

Today there is one: Proxmox extracts an OVA's disk onto a file-based storage holding the 'images'
content type, and when none does, the run adds 'images' to the OVA's own storage. That changes
storage.cfg for every user of the host, so `check` and the wizard's Review warn about it
(`findings`), the run records it (HostChanged) and removes 'images' again once the import is done
(HostChangeReverted), unless `proxmox.keep_host_changes`. A change recorded and not reverted (a
crash in between) is found in the journal by the resume, which reverts it.

Proxmox's PUT /storage/{storage} replaces the whole content list (with the config's digest
refusing a concurrent edit), so a revert removes 'images' from the list as it is then, keeping
whatever else someone changed meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from backend.events import Event, HostChanged, HostChangeReverted
from backend.model import vmconfig
from backend.model.hostfacts import NodeFacts
from backend.model.sizing import Finding

if TYPE_CHECKING:
    from backend.clients.proxmox import ProxmoxClient
    from backend.run.engine import RunContext

CONTENT = "images"
EVIDENCE = "Proxmox extracts an OVA's disk onto a file-based storage with 'images' content."


def storage_to_open(node: NodeFacts, ova_storage: str) -> str | None:
    """The storage that needs 'images' added for the OVA's extraction, or None."""
    return vmconfig.working_storage_for(ova_storage, node.storages)[1]


def change_id(storage: str) -> str:
    return f"storage-content:{storage}:{CONTENT}"


def findings(node: NodeFacts, ova_storage: str, keep: bool) -> list[Finding]:
    """The warning `check` and Review show when the run will change the host's storage config."""
    storage = storage_to_open(node, ova_storage)
    if storage is None:
        return []
    after = ("it stays (proxmox.keep_host_changes)" if keep else
             "vast-loopback removes it again once the OVA's disk is imported")
    return [Finding(
        "host-change-storage-content", "warning",
        f"The run adds the '{CONTENT}' content type to storage '{storage}' (a change to the host's storage "
        f"configuration, for every user of this host) so Proxmox can extract the OVA's disk; {after}.",
        ("Nothing to do; " if not keep else "") + f"or give '{storage}' the '{CONTENT}' content type yourself "
        "beforehand" + ("" if keep else ", or set proxmox.keep_host_changes: true to keep it") + ".",
        EVIDENCE)]


def pending(events: Iterable[Event]) -> dict[str, HostChanged]:
    """Changes recorded and neither reverted nor kept, by change id, in the order made."""
    open_changes: dict[str, HostChanged] = {}
    for event in events:
        if isinstance(event, HostChanged) and not event.kept:
            open_changes[event.change] = event
        elif isinstance(event, HostChangeReverted):
            open_changes.pop(event.change, None)
    return open_changes


def storage_of(change: str) -> str | None:
    """The storage a storage-content change id names (None for another kind of change)."""
    kind, _, rest = change.partition(":")
    storage, _, content = rest.rpartition(":")
    return storage if kind == "storage-content" and content == CONTENT and storage else None


async def open_storage(ctx: RunContext, client: ProxmoxClient, node: NodeFacts, ova_storage: str) -> None:
    """Add 'images' to the OVA's storage when Proxmox needs it to extract the disk, recorded."""
    storage = storage_to_open(node, ova_storage)
    if storage is None:
        return
    before = ",".join(next((s.content for s in node.storages if s.storage == storage), ()))
    if await client.add_storage_content(storage, CONTENT):
        keep = ctx.answers.proxmox.keep_host_changes
        ctx.emit(HostChanged(change=change_id(storage),
                             what=f"added '{CONTENT}' to storage {storage}'s content (it was: {before or 'none'})",
                             why="so Proxmox can extract the OVA's disk", kept=keep))
        ctx.progress(f"added '{CONTENT}' to storage {storage}'s content so Proxmox can extract the OVA's disk"
                     + ("; kept (proxmox.keep_host_changes)" if keep else "; removed again after the import"))


async def revert(ctx: RunContext, client: ProxmoxClient) -> None:
    """Undo every change this run recorded and has not reverted (this pass's, or a crashed one's)."""
    for change in pending(ctx.run.events()).values():
        storage = storage_of(change.change)
        if storage is None:
            ctx.progress(f"cannot revert a host change of an unknown kind: {change.what}")
            continue
        removed = await client.remove_storage_content(storage, CONTENT)
        ctx.emit(HostChangeReverted(change=change.change,
                                    what=f"removed '{CONTENT}' from storage {storage}'s content",
                                    note="" if removed else "it was no longer there"))
        ctx.progress(f"removed '{CONTENT}' from storage {storage}'s content again (the OVA's disk is imported)"
                     if removed else f"storage {storage}'s content no longer had '{CONTENT}': nothing to revert")
