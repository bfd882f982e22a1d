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
{vmid}) and answers one line each; each guest NIC's namespace is held by a forked child, which
runs the `ip` commands meant for that namespace and ends at EOF on its pipe. When the lab process ends, however it ends, the
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
import ctypes, json, os, subprocess, sys
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)
spec = json.loads(sys.argv[1])
IP, BRIDGE = spec["ip"], spec["bridge"]
os.nice(10)  # background work: never in the way of a guest's boot
children = {}  # vmid -> (pid, to_child, from_child): one per guest NIC, holding its namespace

def batch(commands, run=subprocess.run):
    done = run([IP, "-batch", "-"], input="\n".join(commands) + "\n", capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr.strip() or "ip -batch failed")

def nic_namespace():
    # A child in a network namespace of its own (the guest's NIC) that runs the `ip` batches it is
    # sent there, and ends (and its namespace with it) at EOF: unplugged, or the keeper is gone.
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(down_w); os.close(up_r); os.close(0); os.close(1)
        for _, other, back in children.values():
            other.close(); back.close()
        answers = os.fdopen(up_w, "w", buffering=1)
        answers.write("ready\n" if libc.unshare(CLONE_NEWNET) == 0 else "unshare failed\n")
        for line in os.fdopen(down_r):
            try:
                batch(json.loads(line))
                answers.write("ok\n")
            except Exception as exc:
                answers.write(json.dumps(str(exc)) + "\n")
        os._exit(0)
    os.close(down_r); os.close(up_w)
    to_child, from_child = os.fdopen(down_w, "w", buffering=1), os.fdopen(up_r)
    if from_child.readline().strip() != "ready":
        to_child.close(); os.waitpid(pid, 0)
        raise RuntimeError("unshare(CLONE_NEWNET) failed")
    return pid, to_child, from_child

def in_nic(vmid, commands):
    _, to_child, from_child = children[vmid]
    to_child.write(json.dumps(commands) + "\n")
    answer = from_child.readline().strip()
    if answer != "ok":
        raise RuntimeError(answer or "the NIC's namespace is gone")

def unplug(vmid):
    held = children.pop(vmid, None)
    if held is None:
        return
    subprocess.run([IP, "link", "del", "vh%s" % vmid], capture_output=True)
    held[1].close(); held[2].close(); os.waitpid(held[0], 0)

def plug(vmid, mac):
    unplug(vmid)
    children[vmid] = nic_namespace()
    host_end, guest_end = "vh%s" % vmid, "vg%s" % vmid
    batch(["link add %s type veth peer name %s" % (host_end, guest_end),
           "link set %s netns %d" % (guest_end, children[vmid][0]),
           "link set %s master %s" % (host_end, BRIDGE), "link set %s up" % host_end])
    in_nic(vmid, ["link set %s name eth0" % guest_end, "link set eth0 address %s" % mac,
                  "link set lo up", "link set eth0 up"])

def address(vmid, cidr):
    if vmid not in children:
        raise RuntimeError("guest %s has no NIC on the LAN" % vmid)
    in_nic(vmid, ["addr replace %s dev eth0" % cidr])

def reply(answer):
    sys.stdout.write(json.dumps(answer) + "\n"); sys.stdout.flush()

try:
    batch(["link set lo up", "link add %s type bridge" % BRIDGE, "addr add %s dev %s" % (spec["address"], BRIDGE),
           "link set %s up" % BRIDGE])
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
            unplug(str(command["vmid"]))
        reply({"ok": True})
    except Exception as exc:
        reply({"error": str(exc)})
for vmid in list(children):
    unplug(vmid)
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
        tools = {name: shutil.which(name) for name in ("ip", "unshare", "nsenter")}  # nsenter: probe_prefix
        missing = [name for name, path in tools.items() if path is None]
        if missing:
            raise SegmentUnavailable(f"the lab's network needs {', '.join(missing)} (iproute2, util-linux)")
        spec = {"ip": tools["ip"], "bridge": BRIDGE, "address": self.address}
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
