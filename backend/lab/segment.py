"""The LAN behind the lab host's plain bridge (vmbr0), as the jump host (where vast-loopback runs)
sees it: real network namespaces, so the real kernel answers ARP and keeps the neighbour table.

One unprivileged user + network namespace is the jump host's network: a Linux bridge `lan0`
carrying the jump host's own address (`facts.JUMP_HOST_ON_LAN`), and one veth per running VM, its
far end in a network namespace of its own (the guest's NIC) carrying the VM's MAC, and the guest's
address once its userspace is up (facts.NO_ADDRESS_IN_EMERGENCY_SHELL). With `on_lan=False` the jump host is elsewhere: its only address is on another
subnet (`facts.JUMP_HOST_ELSEWHERE`) and no guest NIC reaches it.

A keeper process inside the namespaces holds them. It reads one JSON command a line on stdin
(`plug` {vmid, mac}: the VM's NIC is on the bridge, as QEMU's tap is from its start, with no
address; `address` {vmid, cidr}: the guest's userspace configured its DHCP address; `unplug`
{vmid}) and answers one line each; each guest NIC's namespace is held by a forked child waiting on
a pipe. When the lab process ends, however it ends, the
keeper reads EOF and ends, and every namespace goes with it: nothing stays on this machine.

`probe_prefix()` is the command prefix that enters the jump host's network (`nsenter`); the lab's
Target hands it to the product, whose probes then run there exactly as on a real jump host.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import subprocess
import threading

from backend.lab import facts
from backend.lab.guest.support import as_guest_kwargs, host_python

log = logging.getLogger("vlb.lab.segment")

BRIDGE = "lan0"
REPLY_TIMEOUT_S = 20.0

# The keeper: runs as root of its own user namespace, in its own network namespace.
KEEPER = r'''
import ctypes, json, os, subprocess, sys, time
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)
spec = json.loads(sys.argv[1])
IP, NSENTER, BRIDGE = spec["ip"], spec["nsenter"], spec["bridge"]
children = {}  # vmid -> (pid, write end of the pipe the child waits on)

def ip(*args, netns=None):
    argv = [IP, *args] if netns is None else [NSENTER, "--target", str(netns), "--net", IP, *args]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(" ".join(args) + ": " + done.stderr.strip())

def hold_namespace():
    wait_r, wait_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(wait_w); os.close(ready_r); os.close(0); os.close(1)
        for _, other in children.values():
            os.close(other)
        ok = libc.unshare(CLONE_NEWNET) == 0
        os.write(ready_w, b"1" if ok else b"0")
        os.read(wait_r, 1)  # EOF: detached, or the keeper is gone
        os._exit(0)
    os.close(wait_r); os.close(ready_w)
    ok = os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    if not ok:
        os.close(wait_w); os.waitpid(pid, 0)
        raise RuntimeError("unshare(CLONE_NEWNET) failed")
    return pid, wait_w

def detach(vmid):
    held = children.pop(vmid, None)
    if held is None:
        return
    subprocess.run([IP, "link", "del", "vh%s" % vmid], capture_output=True)
    os.close(held[1]); os.waitpid(held[0], 0)

def plug(vmid, mac):
    detach(vmid)
    pid, wait_w = hold_namespace()
    children[vmid] = (pid, wait_w)
    host_end, guest_end = "vh%s" % vmid, "vg%s" % vmid
    ip("link", "add", host_end, "type", "veth", "peer", "name", guest_end)
    ip("link", "set", guest_end, "netns", str(pid))
    ip("link", "set", guest_end, "name", "eth0", netns=pid)
    ip("link", "set", "eth0", "address", mac, netns=pid)
    ip("link", "set", "lo", "up", netns=pid)
    ip("link", "set", "eth0", "up", netns=pid)
    ip("link", "set", host_end, "master", BRIDGE)
    ip("link", "set", host_end, "up")
    forwarding(host_end)

def address(vmid, cidr):
    held = children.get(vmid)
    if held is None:
        raise RuntimeError("guest %s has no NIC on the LAN" % vmid)
    ip("addr", "replace", cidr, "dev", "eth0", netns=held[0])

def forwarding(port, timeout=5.0):
    # A port's carrier reaches the bridge through the kernel's linkwatch, up to a second later; a
    # booted guest's NIC has been up long before anyone asks for its address, so wait for it here.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = subprocess.run([IP, "-j", "-d", "link", "show", port], capture_output=True, text=True).stdout
        link = (json.loads(shown or "[{}]") or [{}])[0]
        if ((link.get("linkinfo") or {}).get("info_slave_data") or {}).get("state") == "forwarding":
            return
        time.sleep(0.01)

def reply(answer):
    sys.stdout.write(json.dumps(answer) + "\n"); sys.stdout.flush()

try:
    ip("link", "set", "lo", "up")
    ip("link", "add", BRIDGE, "type", "bridge")
    ip("addr", "add", spec["address"], "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")
except Exception as exc:
    reply({"error": str(exc)}); sys.exit(1)
reply({"ok": True, "pid": os.getpid()})
for line in sys.stdin:
    command = json.loads(line)
    try:
        if command["op"] == "plug":
            plug(str(command["vmid"]), command["mac"])
        elif command["op"] == "address":
            address(str(command["vmid"]), command["cidr"])
        elif command["op"] == "unplug":
            detach(str(command["vmid"]))
        reply({"ok": True})
    except Exception as exc:
        reply({"error": str(exc)})
for vmid in list(children):
    detach(vmid)
'''


class SegmentUnavailable(RuntimeError):
    """The jump host's network could not be made here (the message says why)."""


class LabSegment:
    """The jump host's network and the guest NICs on the LAN. Changes are queued and carried out in
    order by a worker thread, so a guest's boot never waits on them (`wait_idle` waits)."""

    def __init__(self, *, on_lan: bool = True) -> None:
        self.on_lan = on_lan
        self.address = facts.JUMP_HOST_ON_LAN if on_lan else facts.JUMP_HOST_ELSEWHERE
        self._proc: subprocess.Popen | None = None
        self._pid = 0
        self._plugged: set[int] = set()
        self._queue: queue.Queue[dict | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    def start(self) -> LabSegment:
        tools = {name: shutil.which(name) for name in ("ip", "unshare", "nsenter")}
        missing = [name for name, path in tools.items() if path is None]
        if missing:
            raise SegmentUnavailable(f"the lab's network needs {', '.join(missing)} (iproute2, util-linux)")
        spec = {"ip": tools["ip"], "nsenter": tools["nsenter"], "bridge": BRIDGE, "address": self.address}
        argv = [str(tools["unshare"]), "--user", "--map-root-user", "--net", "--", host_python(), "-c", KEEPER,
                json.dumps(spec)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, cwd="/", **as_guest_kwargs())
        answer = self._read()
        if "pid" not in answer:
            self.close()
            raise SegmentUnavailable(f"the lab's network could not be made: {answer.get('error', 'no answer')}")
        self._pid = int(answer["pid"])
        self._worker = threading.Thread(target=self._work, name="vlb-lab-segment", daemon=True)
        self._worker.start()
        log.info("jump host network: %s on %s (keeper pid %s)", self.address, BRIDGE, self._pid)
        return self

    def _read(self) -> dict:
        assert self._proc is not None and self._proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self._proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(REPLY_TIMEOUT_S)
        line = result[0] if result else ""
        if not line:
            error = ""
            if self._proc.poll() is not None and self._proc.stderr is not None:
                error = self._proc.stderr.read().strip()
            return {"error": error or "the keeper did not answer"}
        return json.loads(line)

    def _work(self) -> None:
        while True:
            command = self._queue.get()
            try:
                if command is None:
                    return
                self._send(command)
            finally:
                self._queue.task_done()

    def _send(self, command: dict) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None or proc.stdin is None:
            return
        try:
            proc.stdin.write(json.dumps(command) + "\n")
            proc.stdin.flush()
        except OSError as exc:
            log.warning("jump host network: %s failed: %s", command["op"], exc)
            return
        answer = self._read()
        if "error" in answer:
            log.warning("jump host network: %s of guest %s failed: %s", command["op"], command.get("vmid"),
                        answer["error"])

    def plug(self, vmid: int, mac: str, bridge: str) -> None:
        """The VM's NIC is on its bridge (QEMU started: its tap is a bridge port), with no address
        yet: nothing answers ARP for it. Only a NIC on the LAN's bridge reaches the jump host."""
        if not self.on_lan or bridge != facts.LAN_BRIDGE or not mac or vmid in self._plugged:
            return
        self._plugged.add(vmid)
        self._queue.put({"op": "plug", "vmid": vmid, "mac": mac})

    def configure(self, vmid: int, ip: str, prefix: int) -> None:
        """The guest's userspace is up and has its DHCP address: its NIC answers ARP from now on."""
        if vmid in self._plugged and ip:
            self._queue.put({"op": "address", "vmid": vmid, "cidr": f"{ip}/{prefix}"})

    def unplug(self, vmid: int) -> None:
        """The VM stopped (or reboots): its NIC is gone."""
        if vmid in self._plugged:
            self._plugged.discard(vmid)
            self._queue.put({"op": "unplug", "vmid": vmid})

    def wait_idle(self) -> None:
        """Return once every queued change is carried out."""
        self._queue.join()

    def probe_prefix(self) -> tuple[str, ...]:
        """The command prefix that runs a program in the jump host's network."""
        return ("nsenter", "--target", str(self._pid), "--user", "--net", "--preserve-credentials")

    def close(self) -> None:
        """End the keeper (and with it every namespace of the segment)."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=30)
            self._worker = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=10)
        finally:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
