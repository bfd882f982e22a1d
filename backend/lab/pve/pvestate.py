"""Everything the lab's Proxmox host knows, persisted in `<state>/pve/state.json`.

One lock guards the state; every request runs in a `transaction()`, which first finishes the tasks
whose end the lab clock has passed, then lets the handler read or change the state, writes the file
atomically when something changed, and only then (outside the lock) calls the guest side, so a
guest that calls back (`PowerHooks.guest_initiated`) never deadlocks. The next transaction waits
until those calls are done: a task is seen finished only once the guest did its part (the guest
powered on, its disk snapshotted), whichever thread finished it, and even when the request that
finished it failed.

The file holds the VMs (config, pending changes, snapshots, power state), the tasks, the storage
changes made through the API, the addresses handed out (by the LAN's DHCP server on vmbr0, by
Proxmox's IPAM on the SDN VNet) and the pid counter. A new server on the same state
directory continues exactly where the last one stopped.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from backend.clock import Clock
from backend.lab import facts
from backend.lab.profiles import OVA_NAME, HostProfile, NodeProfile, StorageProfile
from backend.lab.pve import tasks as tasklib
from backend.lab.pve.errors import ApiError, failed
from backend.lab.world import GuestHooks
from backend.run.safefiles import write_private

log = logging.getLogger("vlb.lab.pve")

STATE_VERSION = 1
MAX_TASKS = 1000
OVA_CTIME = 1766966400  # 2025-12-29, when the field engineer's OVA landed on the host
HOOKS_WAIT_S = 120.0  # wall seconds a request waits for the guest hooks of earlier transactions

Effect = Callable[[dict], None]


def profile_vms(profile: HostProfile, now: float) -> dict[str, dict]:
    """The VMs the profile says are already on its nodes: someone else's, so `foreign` (no lab
    guest boots in them; their memory and vCPUs count on their node like any VM's). A recording
    holds no VM's configuration beyond its sizing, so they have no disk here: the space their disks
    take is in the storages' recorded use."""
    vms: dict[str, dict] = {}
    for index, node in enumerate(profile.nodes):
        for number, vm in enumerate(node.vms):
            config = {"name": vm.name, "cores": str(vm.cores), "sockets": "1", "memory": str(vm.memory_mib),
                      "ostype": "l26",
                      "net0": f"virtio=BC:24:11:{index:02X}:{number:02X}:{vm.vmid % 256:02X},bridge=vmbr0"}
            if vm.tags:
                config["tags"] = ";".join(vm.tags)
            running = vm.status == "running"
            vms[str(vm.vmid)] = {
                "vmid": vm.vmid, "node": node.node, "config": config, "pending": {}, "pending_delete": [],
                "snapshots": {}, "status": "running" if running else "stopped",
                "started": now - 86400 if running else None, "qemu_pid": 4000 + vm.vmid if running else None,
                "foreign": True,
            }
    return vms


class PveState:
    """The lab host's state; mutate it only inside `transaction()`."""

    def __init__(self, state_dir: Path, profile: HostProfile, clock: Clock, guest: GuestHooks) -> None:
        self.state_dir = Path(state_dir)
        self.dir = self.state_dir / "pve"
        self.file = self.dir / "state.json"
        self.profile = profile
        self.clock = clock
        self.guest = guest
        self.lock = threading.RLock()
        self.effects: dict[str, Effect] = {}
        self._deferred: list[Callable[[], None]] = []
        self._hooks = threading.Condition()
        self._hooks_running = 0
        self._local = threading.local()
        self._inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._dirty = False
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.file.exists():
            self.data = json.loads(self.file.read_text(encoding="utf-8"))
            if self.data.get("profile") != profile.name:
                raise ValueError(
                    f"{self.state_dir} holds a lab of profile '{self.data.get('profile')}', not '{profile.name}'")
        else:
            now = clock.now()
            self.data = {
                "version": STATE_VERSION, "profile": profile.name, "created": now,
                "boot_time": now - 3 * 86400 - 4 * 3600 - 17 * 60, "next_pid": 180_000,
                "vms": profile_vms(profile, now), "tasks": {}, "storage_content": {}, "leases": {}, "ipam": {},
            }
            self._dirty = True
            self._save()

    # --- transactions and persistence ----------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PveState]:
        self._wait_for_hooks()
        self.lock.acquire()
        try:
            try:
                self.advance()
                self._drain_inbox()
                yield self
            finally:
                if self._dirty:
                    self._save()
        finally:
            deferred, self._deferred = self._deferred, []
            if deferred:
                with self._hooks:
                    self._hooks_running += 1
            self.lock.release()
            if deferred:
                self._run_hooks(deferred)

    def _run_hooks(self, deferred: list[Callable[[], None]]) -> None:
        self._local.in_hooks = getattr(self._local, "in_hooks", 0) + 1
        try:
            for call in deferred:
                try:
                    call()
                except Exception:  # the guest side must never take the API down
                    log.exception("guest hook failed")
        finally:
            self._local.in_hooks -= 1
            with self._hooks:
                self._hooks_running -= 1
                self._hooks.notify_all()

    def _wait_for_hooks(self) -> None:
        """Wait until the guest hooks of earlier transactions ran (not from inside a hook)."""
        if getattr(self._local, "in_hooks", 0):
            return
        with self._hooks:
            if not self._hooks.wait_for(lambda: self._hooks_running == 0, timeout=HOOKS_WAIT_S):
                log.warning("guest hooks still running after %.0f s; going on", HOOKS_WAIT_S)

    def post(self, change: Callable[[], None]) -> None:
        """Queue a change from another thread (the guest side); applied by the next transaction.

        Never blocks, so a guest that calls back while the API holds the lock cannot deadlock.
        """
        self._inbox.put(change)

    def _drain_inbox(self) -> None:
        while True:
            try:
                change = self._inbox.get_nowait()
            except queue.Empty:
                return
            change()

    def changed(self) -> None:
        self._dirty = True

    def defer(self, call: Callable[[], None]) -> None:
        """Run `call` after the transaction, outside the lock (guest hooks)."""
        self._deferred.append(call)

    def _save(self) -> None:
        write_private(self.file, json.dumps(self.data, sort_keys=True))
        self._dirty = False

    def now(self) -> float:
        return self.clock.now()

    # --- tasks ---------------------------------------------------------------------------------

    def start_task(self, *, node: str, kind: str, ident: str, user: str, duration: float,
                   lines: list[tuple[float, str]] | None = None, error: str | None = None,
                   op: str = "", args: dict | None = None) -> str:
        pid = self.data["next_pid"]
        self.data["next_pid"] = pid + 1 + (pid % 7)
        now = self.now()
        pstart = int((now - self.data["boot_time"]) * 100)
        task = tasklib.new_task(node=node, pid=pid, pstart=pstart, now=now, kind=kind, ident=ident, user=user,
                                duration=duration, lines=lines, error=error, op=op, args=args)
        self.data["tasks"][task["upid"]] = task
        self._trim_tasks()
        self.changed()
        return task["upid"]

    def _trim_tasks(self) -> None:
        tasks = self.data["tasks"]
        if len(tasks) > MAX_TASKS:
            done = sorted((t for t in tasks.values() if t["status"] == "stopped"), key=lambda t: t["start"])
            for task in done[: len(tasks) - MAX_TASKS]:
                del tasks[task["upid"]]

    def advance(self) -> None:
        """Finish every task whose end the lab clock has passed, in the order they end."""
        now = self.now()
        due = sorted((t for t in self.data["tasks"].values() if t["status"] == "running" and t["end"] <= now),
                     key=lambda t: t["end"])
        for task in due:
            self._finish(task)

    def _finish(self, task: dict) -> None:
        error = task.get("error")
        effect = self.effects.get(task.get("op") or "")
        if effect is not None:
            try:
                effect(task)
            except ApiError as exc:
                error = exc.message.strip()
        task["status"] = "stopped"
        task["exitstatus"] = error or "OK"
        task["endtime"] = task["end"]
        self.changed()

    def task(self, node: str, upid: str) -> dict:
        task = self.data["tasks"].get(upid)
        if task is None or task["node"] != node:
            if not tasklib.UPID_RE.match(upid):
                raise ApiError(400, "Parameter verification failed.\n", {"upid": "unable to parse worker upid"})
            raise failed(f"no such task '{upid}'")
        return task

    # --- nodes and storages --------------------------------------------------------------------

    def node(self, name: str) -> NodeProfile:
        for node in self.profile.nodes:
            if node.node == name:
                return node
        raise failed(f"hostname lookup '{name}' failed - failed to get address info for: {name}: "
                     "Name or service not known")

    def storage(self, node: NodeProfile, name: str) -> StorageProfile:
        for storage in node.storages:
            if storage.storage == name:
                return storage
        raise failed(f"storage '{name}' does not exist")

    def storage_content(self, storage: StorageProfile) -> tuple[str, ...]:
        override = self.data["storage_content"].get(storage.storage)
        return tuple(override) if override is not None else storage.content

    def storage_vm_bytes(self, node: NodeProfile, storage: str) -> int:
        """Space the VMs' disks take on a storage of a node (of every node, for a shared storage)."""
        from backend.lab.pve import vmconf

        shared = self.storage(node, storage).shared
        total = 0
        for vm in self.data["vms"].values():
            if vm["node"] != node.node and not shared:
                continue
            for key, value in vm["config"].items():
                if vmconf.is_drive(key) and value.startswith(f"{storage}:"):
                    total += vmconf.drive_size(vmconf.parse_drive(value))
        return total

    def ova_volumes(self, node: NodeProfile) -> list[dict]:
        """The OVA on the node's import storage (profile `ova_storage`), as storage content."""
        from backend.lab.profiles import OVA_SIZE

        if not node.ova_storage:
            return []
        return [{"volid": f"{node.ova_storage}:import/{OVA_NAME}", "format": "ova", "size": OVA_SIZE,
                 "ctime": OVA_CTIME, "content": "import"}]

    # --- addresses ------------------------------------------------------------------------------

    def lan_lease(self, mac: str) -> str:
        """The address the LAN's own DHCP server (its router, not Proxmox) gives this MAC on vmbr0.
        Proxmox never learns it (facts.IPAM_ONLY_ON_DHCP_VNETS)."""
        leases = self.data["leases"]
        mac = mac.upper()
        if mac not in leases:
            used = {int(ip.rsplit(".", 1)[1]) for ip in leases.values()}
            host = next(n for n in range(facts.LAN_DHCP_FIRST, facts.LAN_DHCP_LAST + 1) if n not in used)
            leases[mac] = f"{facts.LAN_PREFIX}.{host}"
            self.changed()
        return leases[mac]

    def ipam_entries(self) -> dict[str, dict]:
        """Proxmox's IPAM entries on the SDN VNet, by MAC: {ip, vmid, hostname}."""
        return self.data.setdefault("ipam", {})

    def ipam_lease(self, mac: str, vmid: int, hostname: str) -> str:
        """The VNet NIC's address, mapped when the NIC starts (facts.IPAM_LEASE_AT_NIC_START): the
        MAC's entry, else the next free address of the subnet's dhcp-range."""
        entries = self.ipam_entries()
        mac = mac.upper()
        if mac not in entries:
            first, last = (int(ipaddress.IPv4Address(a)) for a in facts.SDN_DHCP_RANGE)
            used = {e["ip"] for e in entries.values()}
            free = next(str(ipaddress.IPv4Address(n)) for n in range(first, last + 1)
                        if str(ipaddress.IPv4Address(n)) not in used)
            entries[mac] = {"ip": free, "vmid": str(vmid), "hostname": hostname}
            self.changed()
        return entries[mac]["ip"]

    def ipam_release(self, vmid: int) -> None:
        """A destroyed VM's IPAM entries go with it."""
        entries = self.ipam_entries()
        for mac in [m for m, e in entries.items() if e["vmid"] == str(vmid)]:
            del entries[mac]
            self.changed()
