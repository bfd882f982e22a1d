"""The lab's guests: `GuestLab` implements `backend.lab.world.GuestHooks` for the Proxmox side.

It owns a thread with its own asyncio loop, where the guests' SSH listeners and the world ticker
run; the hooks may be called from any thread (including that loop, e.g. from `PowerHooks`
callbacks) and never block on a boot. `power_on` returns at once with the guest "booting"; after
`boot_seconds` of lab time (40 by default) the guest is up (namespace running, SSH listening) or
"unbootable". `power_off` returns once every process of the guest has ended (when called from
the lab's loop it only schedules that).

The world ticker (every `tick_seconds` of wall time) advances each running guest's counters by its
load (`set_load`), rewrites the fake /proc and cgroup files, normalises sysfs/sysctl files the
guest wrote, notices a reboot or poweroff asked from inside the guest (`reboot`, `shutdown`,
`systemctl reboot`...: reported to the Proxmox side through `PowerHooks.guest_initiated`, then
done: the guest goes down and, for a reboot, boots again with the same hardware, as QEMU keeps
running), and re-boots a guest whose namespace died under it.

Hooks for the rest of the lab: `on_boot(disk, runtime, hw)` runs at every boot before the guest's
own boot (the VAST side writes its tools, clock and scenario there), `load_factory(hw)` gives each
boot's load model (`set_load` changes it), `pause(vmid, lab_ms)` stops the guest for a stall,
`kmsg` appends kernel messages, `exec` runs a command inside without SSH, `target_fields()` and
`resume(running)` serve the provider and the Proxmox side after a restart. `ova` names the OVA a
new VM's disk is imported from (`lab.ova`: a variant of `backend.lab.facts.OVA_INITRAMFS` or a
guest recording; backend/lab/guest/image.py): its initramfs, kernel, disk layout and memory overhead.

After a lab restart (`GuestLab(...).start()` on the same state directory) every guest that was up
is found again when its namespace still runs (detached jobs included), else booted again.

The guests' LAN: a `LabSegment` (backend/lab/segment.py) is the jump host's network, in real
network namespaces; a running VM's NIC is on it with the VM's MAC from the boot's start, and
answers ARP with its DHCP address exactly while the guest is up, never while it boots, is
unbootable or off (facts.NO_ADDRESS_IN_EMERGENCY_SHELL). `jump_host` says where the jump host is: "on-lan" (it
shares vmbr0's layer 2) or "elsewhere" (another subnet). `target_fields()` hands the product the
segment's `probe_prefix` behind the lab's probe gate (backend/lab/probegate.py), so its network
probes run in the jump host's network, on real time while they run.

Routing: `route(host, port)` maps a guest's DHCP address and port 22 to its SSH listener on
127.0.0.1 (its port is allocated once per guest and kept), and any (address, port) registered
with `add_route` (the VMS's 443) to its local endpoint; other addresses pass through unchanged.
`known_hosts_path()` is an OpenSSH known_hosts file naming the lab's host key for every guest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncssh

from backend.clock import Clock
from backend.lab import facts
from backend.lab.faults import Fault, FaultPlan
from backend.lab.guest.fsutil import open_beneath, read_beneath, remove_tree
from backend.lab.guest.image import guest_image
from backend.lab.guest.load import GuestLoad, IdleLoad
from backend.lab.guest.machine import BootHook, LabGuest
from backend.lab.guest.namespace import GuestBootError
from backend.lab.guest.sshd import GuestSSHServer, load_host_key
from backend.lab.guest.support import GuestUnavailable, own, require_guest_support
from backend.lab.probegate import ProbeGate
from backend.lab.segment import LabSegment, SegmentUnavailable
from backend.lab.world import GuestHardware, PowerHooks
from backend.lab.worldclock import as_world_clock, hold, release
from backend.run.safefiles import write_private

log = logging.getLogger("vlb.lab.guest")
DEFAULT_PASSWORDS = {"centos": "centos"}
DROP_WITHIN_LAB_S = 3.0  # an `ssh_drop` cuts the connections at a random moment this soon after its session opened
SESSION_SWEEP_S = 1.0  # wall seconds after a stall during which stopped sessions are continued (see pause)


async def _call_soon(function: Callable[[], Any]) -> Any:
    return function()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GuestLab:
    """Every guest of one lab state directory."""

    def __init__(self, state_dir: Path, clock: Clock, *, power: PowerHooks | None = None,
                 boot_seconds: float = 40.0, tick_seconds: float = 0.1,
                 passwords: dict[str, str] | None = None,
                 load_factory: Callable[[GuestHardware], GuestLoad] | None = None,
                 on_boot: BootHook | None = None, faults: FaultPlan | None = None,
                 ova: str = facts.OVA_DEFAULT_VARIANT,
                 jump_host: str = "on-lan") -> None:
        self.state_dir = Path(state_dir).resolve()  # the guests' mounts need absolute paths
        self.guests_dir = self.state_dir / "guests"
        self.ssh_dir = self.state_dir / "ssh"
        self.clock = as_world_clock(clock)  # the lab holds it while it boots a guest
        self.power = power
        self.boot_seconds = boot_seconds
        self.tick_seconds = tick_seconds
        self.passwords = dict(DEFAULT_PASSWORDS if passwords is None else passwords)
        self.load_factory = load_factory or (lambda hw: IdleLoad())
        self.on_boot = on_boot
        self.faults = faults
        self.image = guest_image(ova)  # the OVA a new VM's disk is imported from (RecordingError if unusable)
        self.extra_keys: list[asyncssh.SSHKey] = []
        self._guests: dict[int, LabGuest] = {}
        self._routes: dict[tuple[str, int], tuple[str, int]] = {}
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._guest_locks: dict[int, asyncio.Lock] = {}
        self._ticker: asyncio.Task | None = None
        self._host_key: asyncssh.SSHKey | None = None
        self._pausing: dict[int, int] = {}  # vmid -> stalls under way (touched in the lab's loop only)
        self._sweep_until: dict[int, float] = {}  # vmid -> monotonic time until which sessions are swept
        self._boot_holds: dict[int, tuple[int, int]] = {}  # vmid -> (generation, token of its clock hold)
        self.segment = LabSegment(on_lan=jump_host == "on-lan")
        self.probe_gate = ProbeGate(self.clock)  # the segment runs on real time while it is probed

    # -- life of the lab process --------------------------------------------------------------------
    def start(self) -> GuestLab:
        """Check this machine can run guests, start the lab's loop, find the guests of the state dir."""
        require_guest_support()
        self.guests_dir.mkdir(parents=True, exist_ok=True)
        self._host_key = load_host_key(self.ssh_dir)
        try:
            self.segment.start()
        except SegmentUnavailable as exc:
            raise GuestUnavailable(f"The lab guest's network cannot be made here ({exc}).") from None
        self.probe_gate.start()
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            # A boot still starting its namespace in a worker thread finishes (and records its
            # holder) before close() returns, so that end_guests after it finds the guest.
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

        self._thread = threading.Thread(target=run, name="vlb-lab-guests", daemon=True)
        self._thread.start()
        ready.wait()
        self._call(self._restore())
        return self

    def close(self) -> None:
        """Stop serving (listeners, ticker, loop). Running guests keep running: the world outlives us."""
        if self._loop is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._close(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = None
        self.segment.close()
        self.probe_gate.close()

    def shutdown(self) -> None:
        """Power every guest off (hard) and close: nothing of the lab keeps running."""
        if self._loop is not None:
            for vmid in list(self._guests):
                self.power_off(vmid, graceful=False)
        self.close()

    def __enter__(self) -> GuestLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    async def _close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for vmid in list(self._boot_holds):
            self._release_boot(vmid)
        for guest in list(self._guests.values()):
            if guest.ssh is not None:
                await guest.ssh.stop()
                guest.ssh = None
            if guest.runtime is not None:
                guest.runtime.close()
                guest.runtime = None

    def _in_loop(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float | None = 120) -> Any:
        """Run a coroutine on the lab's loop; wait for it unless we are on that loop already."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("the lab's guests are not started")
        if self._in_loop():
            self._loop.create_task(coro)
            return None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _submit(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the lab's guests are not started")
        if self._in_loop():
            self._loop.create_task(coro)
        else:
            asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _glock(self, vmid: int) -> asyncio.Lock:
        if vmid not in self._guest_locks:
            self._guest_locks[vmid] = asyncio.Lock()
        return self._guest_locks[vmid]

    async def _restore(self) -> None:
        for path in sorted(self.guests_dir.iterdir()):
            if not (path / "guest.json").exists():
                continue
            try:
                guest = LabGuest.load_from(path)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("guest %s: unreadable state (%s)", path.name, exc)
                continue
            self._adopt(guest)
            if guest.state == "up":
                if guest.reattach(self.clock.scale):
                    await self._listen(guest)
                    self.segment.plug(guest.vmid, guest.hw.mac, guest.hw.bridge)
                    self.segment.configure(guest.vmid, guest.hw.ip, guest.hw.prefix)
                    log.info("guest %s: found running (pid %s)", guest.vmid, guest.holder and guest.holder.pid)
                    continue
                guest.state, guest.boot_lab = "booting", self.clock.now()
                guest.save()
            if guest.state == "booting":
                with self._lock:
                    self._hold_boot(guest)
                if guest.holder is not None and guest.holder.alive():  # a boot cut off half-way
                    await asyncio.to_thread(guest.stop_namespace, False)
                asyncio.get_running_loop().create_task(self._boot(guest, guest.generation))
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())

    def _adopt(self, guest: LabGuest) -> None:
        guest.load = self.load_factory(guest.hw)
        guest.passwords = self.passwords
        guest.extra_keys = self.extra_keys
        self._guests[guest.vmid] = guest

    # -- GuestHooks -----------------------------------------------------------------------------------
    def power_on(self, hw: GuestHardware) -> None:
        require_guest_support()
        with self._lock:
            guest = self._guests.get(hw.vmid)
            if guest is None:
                guest = LabGuest(vmid=hw.vmid, path=self.guests_dir / str(hw.vmid), hw=hw)
                guest.ensure_disk(self.image)
                own(guest.path)
                guest.ssh_port = _free_port()
                self._adopt(guest)
            if guest.state in ("booting", "up", "unbootable"):
                return
            guest.hw = hw
            guest.load = self.load_factory(hw)
            guest.state, guest.error = "booting", ""
            guest.boot_lab = self.clock.now()
            guest.generation += 1
            guest.save()
            generation = guest.generation
            self._hold_boot(guest)
        self._write_known_hosts()
        self._submit(self._boot(guest, generation))

    def power_off(self, vmid: int, graceful: bool) -> None:
        with self._lock:
            guest = self._guests.get(vmid)
            if guest is None:
                return
            guest.state = "off"
            guest.generation += 1
            guest.save()
            self._release_boot(vmid)
        self._call(self._stop(guest, graceful))

    def resume(self, running: list[GuestHardware]) -> None:
        """After a lab restart, the Proxmox side names the VMs it runs: a guest found running keeps
        running; one that is off although its VM runs boots afresh (as after a host crash)."""
        for hw in running:
            if self.boot_state(hw.vmid) == "off":
                self.power_on(hw)

    def target_fields(self) -> dict:
        """What the lab's Target gets from the guest side: known_hosts, route, default password and
        where this machine's network probes run."""
        from backend.secrets import Secret

        password = self.passwords.get("centos")
        return {"known_hosts": self.known_hosts_path(), "route": self.route,
                "guest_password": Secret(password, public=password == "centos") if password else None,
                "probe_prefix": self.probe_gate.prefix(self.segment.probe_prefix())}

    def boot_state(self, vmid: int) -> str:
        guest = self._guests.get(vmid)
        return guest.state if guest is not None else "off"

    def agent_running(self, vmid: int) -> bool:
        guest = self._guests.get(vmid)
        return guest is not None and guest.agent_running()

    def agent_interfaces(self, vmid: int) -> list[dict]:
        guest = self._guests.get(vmid)
        if guest is None or not guest.agent_running():
            return []
        hw = guest.hw
        mac = hw.mac.lower()
        octets = [int(x, 16) for x in mac.split(":")]
        octets[0] ^= 2
        eui = f"fe80::{(octets[0] << 8) | octets[1]:x}:{(octets[2] << 8) | 0xFF:x}:{0xFE00 | octets[3]:x}:{(octets[4] << 8) | octets[5]:x}"
        stats = {"rx-bytes": 1_837_562, "rx-dropped": 0, "rx-errs": 0, "rx-packets": 12_873,
                 "tx-bytes": 2_114_908, "tx-dropped": 0, "tx-errs": 0, "tx-packets": 9_622}
        interfaces = [
            {"name": "lo", "hardware-address": "00:00:00:00:00:00",
             "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
                              {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128}],
             "statistics": dict.fromkeys(stats, 0)},
            {"name": "eth0", "hardware-address": mac,
             "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": hw.ip, "prefix": hw.prefix},
                              {"ip-address-type": "ipv6", "ip-address": eui, "prefix": 64}],
             "statistics": stats},
        ]
        if guest.holder is not None and "dockerd" in guest.holder.commands():
            interfaces.append({"name": "docker0", "hardware-address": "02:42:5c:3a:11:7e",
                               "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "172.17.0.1",
                                                 "prefix": 16}],
                               "statistics": dict.fromkeys(stats, 0)})
        return interfaces

    def snapshot(self, vmid: int, name: str) -> None:
        with self._lock:
            self._guest(vmid).snapshot(name)

    def rollback(self, vmid: int, name: str) -> None:
        with self._lock:
            guest = self._guest(vmid)
            if guest.state != "off":
                raise RuntimeError(f"guest {vmid} must be off to roll back (it is {guest.state})")
            guest.rollback(name)

    def delete_snapshot(self, vmid: int, name: str) -> None:
        with self._lock:
            self._guest(vmid).delete_snapshot(name)

    def destroy(self, vmid: int) -> None:
        if vmid not in self._guests:
            return
        self.power_off(vmid, graceful=False)
        with self._lock:
            guest = self._guests.pop(vmid)
            remove_tree(guest.path)
        self._write_known_hosts()

    # -- boot and stop (on the lab's loop) ------------------------------------------------------------
    def _hold_boot(self, guest: LabGuest) -> None:
        """A guest boots in `boot_seconds` of lab time, whatever the lab's own work to start it costs
        on this machine's wall: lab time does not pass the end of its boot delay until that work
        is done (the boot's outcome is known). Called under self._lock."""
        self._release_boot(guest.vmid)
        token = hold(self.clock, guest.boot_lab + self.boot_seconds, f"the boot of guest {guest.vmid}")
        if token is not None:
            self._boot_holds[guest.vmid] = (guest.generation, token)

    def _release_boot(self, vmid: int, generation: int | None = None) -> None:
        """End the clock hold of this guest's boot (of that generation only, when given)."""
        with self._lock:
            entry = self._boot_holds.get(vmid)
            if entry is None or (generation is not None and entry[0] != generation):
                return
            del self._boot_holds[vmid]
        release(self.clock, entry[1])

    async def _boot(self, guest: LabGuest, generation: int) -> None:
        try:
            await self._boot_work(guest, generation)
        finally:
            self._release_boot(guest.vmid, generation)

    async def _boot_work(self, guest: LabGuest, generation: int) -> None:
        self.segment.plug(guest.vmid, guest.hw.mac, guest.hw.bridge)  # QEMU's tap is on the bridge from its start
        await self.clock.sleep_until(guest.boot_lab + self.boot_seconds)
        async with self._glock(guest.vmid):
            if guest.generation != generation or guest.state != "booting":
                return
            ok, why = guest.bootable()
            if not ok:
                with self._lock:
                    guest.state, guest.error = "unbootable", why
                    guest.save()
                log.info("guest %s: unbootable: %s", guest.vmid, why)
                return
            try:
                await asyncio.to_thread(self._start_namespace, guest)
            except Exception as exc:  # the namespace or a boot hook failed: the VM never comes up
                with self._lock:
                    guest.state, guest.error = "unbootable", f"the lab could not start the guest: {exc}"
                    guest.save()
                log.error("guest %s: %s", guest.vmid, guest.error, exc_info=not isinstance(exc, GuestBootError))
                await asyncio.to_thread(guest.stop_namespace, False)
                return
            if guest.generation != generation:
                await asyncio.to_thread(guest.stop_namespace, False)
                return
            await self._listen(guest)
            self.segment.configure(guest.vmid, guest.hw.ip, guest.hw.prefix)  # NetworkManager got its lease
            with self._lock:
                guest.state = "up"
                guest.save()
            log.info("guest %s: up (ssh 127.0.0.1:%s)", guest.vmid, guest.ssh_port)

    def _start_namespace(self, guest: LabGuest) -> None:
        """Start the guest's namespace (in a worker thread) and record its holder at once: a lab
        closed while the guest boots leaves a record that end_guests, or the next boot, can end."""
        guest.start_namespace(self.clock.scale, self.on_boot)
        with self._lock:
            guest.save()

    async def _listen(self, guest: LabGuest) -> None:
        assert self._host_key is not None
        server = GuestSSHServer(guest, self._host_key, on_session=lambda what: self._session_opened(guest, what))
        port = await server.start(guest.ssh_port)
        guest.ssh = server
        if port != guest.ssh_port:
            guest.ssh_port = port
            guest.save()
            self._write_known_hosts()

    async def _stop(self, guest: LabGuest, graceful: bool) -> None:
        async with self._glock(guest.vmid):
            self.segment.unplug(guest.vmid)
            if guest.ssh is not None:
                await guest.ssh.stop()
                guest.ssh = None
            await asyncio.to_thread(guest.stop_namespace, graceful)
            with self._lock:
                guest.save()

    async def _reboot(self, guest: LabGuest) -> None:
        # The reboot's own work (ending the guest's processes) is part of its boot: held like it.
        token = hold(self.clock, self.clock.now(), f"the reboot of guest {guest.vmid}")
        try:
            with self._lock:
                guest.state = "off"
                guest.generation += 1
                guest.save()
                self._release_boot(guest.vmid)
            await self._stop(guest, graceful=True)
            self.power_on(guest.hw)
        finally:
            release(self.clock, token)

    # -- faults -------------------------------------------------------------------------------------
    def _session_opened(self, guest: LabGuest, what: str) -> None:
        """A client opened an SSH session on the guest (on the lab's loop): a chance for `ssh_drop`.
        The connections are cut a random moment later (within DROP_WITHIN_LAB_S of lab time), so
        the cut lands in the middle of a command or just after it, as a network fault would.
        Scheduled rules may match the session's command (`path`); it is never recorded."""
        if self.faults is None:
            return
        fault = self.faults.decide("ssh", "session", what)
        if fault is None or fault.kind != "ssh_drop":
            return
        delay = self.faults.uniform("ssh", 0.0, DROP_WITHIN_LAB_S)
        asyncio.get_running_loop().call_later(self.clock.wall_seconds(delay), self._drop_for_fault, guest, fault,
                                              delay)

    def _drop_for_fault(self, guest: LabGuest, fault: Fault, delay: float) -> None:
        if guest.ssh is None or guest.state != "up" or self.faults is None:
            return  # the guest went down meanwhile: nothing left to cut
        cut = guest.ssh.drop_connections()
        self.faults.record("ssh", fault, vmid=guest.vmid, connections=cut, after_s=round(delay, 3))

    # -- the world ticker -----------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            for guest in list(self._guests.values()):
                if guest.state == "up" and guest.runtime is not None and not self._glock(guest.vmid).locked():
                    try:
                        self._tick(guest)
                    except OSError as exc:
                        log.warning("guest %s: tick failed: %s", guest.vmid, exc)

    def _tick(self, guest: LabGuest) -> None:
        assert guest.runtime is not None
        if guest.holder is None or not guest.holder.alive():
            log.warning("guest %s: its namespace ended unexpectedly; booting it again", guest.vmid)
            with self._lock:
                guest.state = "off"
                guest.generation += 1
            asyncio.get_running_loop().create_task(self._restart(guest))
            return
        runtime = guest.runtime
        point = guest.load.at(self.clock.now())
        runtime.proc.advance(point, time.time())
        runtime.normalise()
        runtime.write_proc()
        runtime.write_containers(guest.disk, point.containers)
        self._continue_sessions(guest)
        self._power_request(guest)

    async def _restart(self, guest: LabGuest) -> None:
        await self._stop(guest, graceful=False)
        self.power_on(guest.hw)

    def _power_request(self, guest: LabGuest) -> None:
        request = read_beneath(guest.runtime_dir, "run/lab/power-request")
        if request is None:
            return
        fd = open_beneath(guest.runtime_dir, "run/lab", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.unlink("power-request", dir_fd=fd)
        finally:
            os.close(fd)
        action = "reboot" if request.strip().startswith("reboot") else "poweroff"
        log.info("guest %s: %s asked from inside the guest", guest.vmid, action)
        if self.power is not None:
            try:
                self.power.guest_initiated(guest.vmid, action)
            except Exception:  # the Proxmox side's trouble must not keep the guest up
                log.exception("guest %s: telling the Proxmox side about the %s failed", guest.vmid, action)
        if action == "reboot":
            asyncio.get_running_loop().create_task(self._reboot(guest))
        else:
            with self._lock:
                guest.state = "off"
                guest.generation += 1
                guest.save()
            asyncio.get_running_loop().create_task(self._stop(guest, graceful=True))

    # -- what else the lab (Proxmox side, scenarios, tests) uses --------------------------------------
    def _guest(self, vmid: int) -> LabGuest:
        guest = self._guests.get(vmid)
        if guest is None:
            raise KeyError(f"the lab has no guest {vmid}")
        return guest

    def guests(self) -> list[LabGuest]:
        """Every guest of this lab, by VMID."""
        with self._lock:
            return [self._guests[vmid] for vmid in sorted(self._guests)]

    def guest(self, vmid: int) -> LabGuest:
        return self._guest(vmid)

    def route(self, host: str, port: int) -> tuple[str, int]:
        """Where (host, port) of the guests' network is reached from this machine."""
        if (host, port) in self._routes:
            return self._routes[(host, port)]
        if port == 22:
            for guest in self._guests.values():
                if guest.hw.ip == host:
                    return "127.0.0.1", guest.ssh_port
        return host, port

    def add_route(self, host: str, port: int, local: tuple[str, int]) -> None:
        self._routes[(host, port)] = local

    def host_key(self) -> str:
        """The lab's SSH host key, as an OpenSSH public key line."""
        assert self._host_key is not None
        return self._host_key.export_public_key().decode().strip()

    def host_key_fingerprint(self) -> str:
        assert self._host_key is not None
        return self._host_key.get_fingerprint("sha256")

    def known_hosts_text(self) -> str:
        key = " ".join(self.host_key().split()[:2])
        lines = []
        for guest in sorted(self._guests.values(), key=lambda g: g.vmid):
            lines.append(f"{guest.hw.ip} {key}")
            lines.append(f"[127.0.0.1]:{guest.ssh_port} {key}")
        return "".join(line + "\n" for line in lines)

    def known_hosts_path(self) -> Path:
        self._write_known_hosts()
        return self.ssh_dir / "known_hosts"

    def _write_known_hosts(self) -> None:
        with self._lock:  # written from the API's threads and the lab's loop: one writer at a time
            write_private(self.ssh_dir / "known_hosts", self.known_hosts_text())

    def set_load(self, vmid: int, load: GuestLoad) -> None:
        self._guest(vmid).load = load

    def drop_connections(self, vmid: int) -> int:
        """Cut every SSH connection to the guest now (fault injection); returns how many were cut."""
        guest = self._guest(vmid)
        if guest.ssh is None or self._loop is None:
            return 0
        server = guest.ssh
        if self._in_loop():
            return server.drop_connections()
        return asyncio.run_coroutine_threadsafe(_call_soon(server.drop_connections), self._loop).result(10)

    def kmsg(self, vmid: int, text: str, level: int = 6) -> None:
        """Append a kernel message to the guest's /dev/kmsg."""
        guest = self._guest(vmid)
        if guest.runtime is not None:
            guest.runtime.kmsg(text, level)

    def pause(self, vmid: int, lab_ms: float) -> int:
        """Stop every process of the guest (SIGSTOP) for `lab_ms` of lab time, then SIGCONT them.
        Returns how many processes were stopped.

        A session's `nsenter` (outside the guest) sees its child stop and stops itself (util-linux's
        continue_as_child), and nothing inside the guest continues it: its command would end, but
        the session would never report it. A frozen VM does not freeze sshd, so once the stall is
        over the sessions stopped this way are continued too, at once and at the ticks of the next
        second (an nsenter may stop itself after the guest was continued)."""
        guest = self._guest(vmid)
        if guest.holder is None or guest.state != "up":
            return 0
        holder = guest.holder
        pids = holder.signal_all(signal.SIGSTOP)
        wall = self.clock.wall_seconds(lab_ms / 1000.0)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._paused, guest, pids, wall)
        return len(pids)

    def _paused(self, guest: LabGuest, pids: list[int], wall: float) -> None:
        self._pausing[guest.vmid] = self._pausing.get(guest.vmid, 0) + 1
        asyncio.get_running_loop().call_later(wall, self._unpause, guest, pids)

    def _unpause(self, guest: LabGuest, pids: list[int]) -> None:
        self._pausing[guest.vmid] -= 1
        if guest.holder is None:
            return
        guest.holder.signal_all(signal.SIGCONT, pids)
        self._sweep_until[guest.vmid] = time.monotonic() + SESSION_SWEEP_S
        self._continue_sessions(guest)

    def _continue_sessions(self, guest: LabGuest) -> None:
        """Continue the sessions a stall stopped (see pause), unless another stall is under way."""
        if guest.holder is None or self._pausing.get(guest.vmid):
            return
        if time.monotonic() > self._sweep_until.get(guest.vmid, 0.0):
            return
        guest.holder.signal_all(signal.SIGCONT, guest.holder.entering())

    def exec(self, vmid: int, command: str, *, user: str = "root", timeout: float = 60.0,
             input: str | None = None) -> subprocess.CompletedProcess:
        """Run `bash -c command` in the guest as `user`, without SSH (the lab's own use, tests)."""
        return self._guest(vmid).exec(command, user=user, timeout=timeout, input=input)

    def wait_state(self, vmid: int, states: tuple[str, ...] | str, timeout: float = 30.0) -> str:
        """Wait (wall seconds) until the guest's boot state is one of `states`; returns it."""
        wanted = (states,) if isinstance(states, str) else states
        deadline = time.monotonic() + timeout
        while True:
            state = self.boot_state(vmid)
            if state in wanted or time.monotonic() > deadline:
                return state
            time.sleep(0.01)


def guest_factory(**options: Any) -> Callable[[Path, Clock, PowerHooks], GuestLab]:
    """A `backend.lab.world.GuestFactory` that serves the world's guests with a started `GuestLab`
    (`options` are GuestLab's: boot_seconds, passwords, load_factory, on_boot...)."""

    def factory(state_dir: Path, clock: Clock, power: PowerHooks) -> GuestLab:
        return GuestLab(state_dir, clock, power=power, **options).start()

    return factory
