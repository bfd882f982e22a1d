"""The Proxmox VE client: proxmoxer in worker threads behind an async API.

Interface agreed between the engine, the screens and this module; bodies are filled in by the
foundation issue's provisioning work. Every call runs in a thread (`asyncio.to_thread`), with
timeouts long enough for slow calls, reads retried with backoff, creates checked before retry.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.bus import EventBus
from backend.hostfacts import HostInventory, NodeFacts
from backend.target import Target


@dataclass(frozen=True)
class VmRef:
    node: str
    vmid: int
    name: str = ""


class ProxmoxClient:
    """One connection to one Proxmox VE API (a host or a cluster)."""

    @classmethod
    async def connect(cls, target: Target, bus: EventBus | None = None) -> ProxmoxClient:
        """Connect and authenticate (token), verifying TLS or the pinned fingerprint."""
        raise NotImplementedError

    async def version(self) -> str:
        raise NotImplementedError

    async def inventory(self) -> HostInventory:
        """Every node's facts (physical cores, threads, RAM, storages, bridges)."""
        raise NotImplementedError

    async def node_facts(self, node: str) -> NodeFacts:
        raise NotImplementedError

    async def find_vm(self, name: str) -> VmRef | None:
        """The VM this tool created with that name (by name and tag), if any."""
        raise NotImplementedError

    async def ova_metadata(self, node: str, volid: str) -> dict:
        raise NotImplementedError

    async def create_vm(self, node: str, config: dict) -> VmRef:
        raise NotImplementedError

    async def vm_config(self, vm: VmRef) -> dict:
        raise NotImplementedError

    async def update_config(self, vm: VmRef, changes: dict, delete: tuple[str, ...] = ()) -> None:
        raise NotImplementedError

    async def status(self, vm: VmRef) -> dict:
        raise NotImplementedError

    async def start(self, vm: VmRef) -> None:
        raise NotImplementedError

    async def shutdown(self, vm: VmRef, timeout_s: int = 300) -> None:
        raise NotImplementedError

    async def stop(self, vm: VmRef) -> None:
        raise NotImplementedError

    async def snapshots(self, vm: VmRef) -> list[dict]:
        raise NotImplementedError

    async def snapshot(self, vm: VmRef, name: str, description: str = "") -> None:
        raise NotImplementedError

    async def rollback(self, vm: VmRef, name: str) -> None:
        raise NotImplementedError

    async def agent_ping(self, vm: VmRef) -> bool:
        raise NotImplementedError

    async def guest_addresses(self, vm: VmRef) -> list[str]:
        """IPv4 addresses the guest agent reports (loopback excluded)."""
        raise NotImplementedError

    async def dhcp_address(self, vm: VmRef) -> str | None:
        """The address the host's DHCP (SDN IPAM) gave the VM's NIC, before a guest agent exists."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError
