"""The namespace that is a booted guest: started, found again after a lab restart, entered, ended.

A booted guest is a PID 1 (`init.py`) in its own user, mount, PID, UTS, IPC and time namespaces
(the time namespace starts the guest's CLOCK_BOOTTIME/MONOTONIC at boot, so /proc/uptime, process
start times and `ps` agree with a guest that just booted),
started setsid'd through `unshare` so that it outlives the lab process. It is identified by its
host pid, the start time the kernel records for that pid, and the inode of its PID namespace
(`Holder`); the three together survive in `guest.json`, so a restarted lab finds the same guest,
and a recycled pid is never mistaken for it.

Commands enter it with `nsenter --target <pid> --user --mount --uts --ipc --pid --root --wd
--preserve-credentials` (the namespace's root is the guest's root after its pivot_root), run as
the guest's unprivileged user (see support.py), so inside they are root of the namespace.

Ending it: SIGKILL to its PID 1 ends every process of the PID namespace, including setsid'd and
nohup'd jobs (the kernel does it). A graceful power-off sends SIGTERM first (init.py then sends
SIGTERM to everything, waits a second, and SIGKILLs the rest).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from backend.lab.guest.support import as_guest_kwargs, guest_gid, guest_uid, host_python

INIT_SOURCE = (Path(__file__).resolve().parent / "init.py").read_text()
UPTIME_AT_BOOT = 25  # seconds: the guest's uptime when its userspace starts (kernel and initramfs before)
# Reads init.py's source and the spec from descriptor N (given through a pipe) and runs it.
LOADER = ("import os;f=os.fdopen({fd},'rb');s,j=f.read().split(b'\\0');f.close();"
          "exec(compile(s,'lab-init','exec'),{{'__name__':'__main__','SPEC':j.decode()}})")


class GuestBootError(RuntimeError):
    """The guest's namespace could not be set up (the init log says why)."""


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


@dataclass
class Holder:
    pid: int  # host pid of the guest's PID 1
    start_time: int  # /proc/<pid>/stat starttime: tells a recycled pid apart
    pidns: str  # "pid:[inode]" of the guest's PID namespace

    def alive(self) -> bool:
        if _start_time(self.pid) != self.start_time:
            return False
        try:
            return os.readlink(f"/proc/{self.pid}/ns/pid_for_children") == self.pidns or \
                os.readlink(f"/proc/{self.pid}/ns/pid") == self.pidns
        except OSError:
            return False

    def processes(self) -> list[int]:
        """Host pids of every process of the guest but its PID 1."""
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == self.pid:
                continue
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == self.pidns:
                    found.append(int(name))
            except OSError:
                continue
        return found

    def commands(self) -> list[str]:
        """The command names (comm) of the guest's processes."""
        names = []
        for pid in self.processes():
            try:
                names.append(Path(f"/proc/{pid}/comm").read_text().strip())
            except OSError:
                continue
        return names

    def signal_all(self, sig: int, pids: list[int] | None = None) -> list[int]:
        sent = []
        for pid in self.processes() if pids is None else pids:
            try:
                os.kill(pid, sig)
                sent.append(pid)
            except OSError:
                continue
        return sent

    def end(self, graceful: bool, timeout: float = 3.0) -> None:
        """Stop the guest: SIGTERM first when graceful, SIGKILL in any case; returns once it is gone."""
        if not self.alive():
            return
        if graceful:
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.alive():
                time.sleep(0.02)
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and self.alive():
                time.sleep(0.01)

    def entering(self) -> list[int]:
        """Host pids of the `nsenter --target <pid>` processes that entered this guest (its sessions,
        the lab's own commands). They live outside the guest's PID namespace."""
        marker = f"\0--target\0{self.pid}\0".encode()
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"nsenter\0") and marker in cmdline:
                found.append(int(name))
        return found

    def enter(self, argv: list[str]) -> list[str]:
        """The command line that runs `argv` inside the guest."""
        return ["nsenter", "--target", str(self.pid), "--user", "--mount", "--uts", "--ipc", "--pid", "--time",
                "--root", "--wd", "--preserve-credentials", "--", *argv]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Holder | None:
        if not data:
            return None
        try:
            return cls(int(data["pid"]), int(data["start_time"]), str(data["pidns"]))
        except (KeyError, TypeError, ValueError):
            return None


def _child_of(pid: int, timeout: float = 2.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.005)
    raise GuestBootError("the guest's init did not start")


# Run as root only: a private mount namespace in which the guest's directories are bound under a
# world-searchable tmpfs, so that the unprivileged guest user can reach them even when the run
# directory above them is 0700 and root's; then drop to that user and create the guest's namespaces.
STAGE = """set -e
stage=$1; uid=$2; gid=$3; shift 3
mount -t tmpfs -o mode=755,size=64k lab-stage "$stage"
while [ "$1" != "--" ]; do
    mkdir "$stage/$1"
    mount --bind "$2" "$stage/$1"
    shift 2
done
shift
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
"""


def start(disk: Path, runtime: Path, log: Path, *, hostname: str, py36: Path | None,
          mounts: list[dict], boot: list[str], timeout: float = 60.0) -> Holder:
    """Create the guest's namespaces, mount its tree, run its boot script; returns once it is up."""
    sources = {"disk": str(disk), "runtime": str(runtime)}
    if py36 is not None:
        sources["py36"] = str(py36)
    staged = os.geteuid() == 0
    if staged:
        stage = _stage_dir(list(sources.values()))
        sources = {name: f"{stage}/{name}" for name in sources}
    ready_r, ready_w = os.pipe()
    code_r, code_w = os.pipe()
    try:
        spec = {"root": sources["disk"], "sources": sources, "ready_fd": ready_w, "hostname": hostname,
                "mounts": mounts, "boot": boot}
        os.write(code_w, INIT_SOURCE.encode() + b"\0" + json.dumps(spec).encode())
        os.close(code_w)
        code_w = -1
        offset = str(UPTIME_AT_BOOT - int(float(Path("/proc/uptime").read_text().split()[0])))
        argv = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--uts", "--ipc", "--time",
                "--monotonic", offset, "--boottime", offset, "--propagation", "private", "--", host_python(), "-I", "-c", LOADER.format(fd=code_r)]
        kwargs: dict = {}
        if staged:
            pairs = [("disk", disk), ("runtime", runtime)] + ([("py36", py36)] if py36 is not None else [])
            argv = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", STAGE, "lab-stage",
                    stage, str(guest_uid()), str(guest_gid()), *[str(x) for pair in pairs for x in pair], "--", *argv]
        else:
            kwargs = as_guest_kwargs()
        # Only PATH: the guest's pid 1 must not hold our environment (secrets given as env:NAME
        # references among it), as no real guest could see the jump host's.
        env = {"PATH": os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin"}
        with open(log, "ab") as log_file:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
                                       pass_fds=(ready_w, code_r), start_new_session=True, cwd="/", env=env,
                                       **kwargs)
        os.close(ready_w)
        os.close(code_r)
        ready_w = code_r = -1
        threading.Thread(target=process.wait, name=f"guest-unshare-{process.pid}", daemon=True).start()
        status = _read_ready(ready_r, timeout)
        if not status.startswith("ready"):
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            _kill_quietly(process.pid)
            raise GuestBootError("the guest's namespace did not come up: " + (" / ".join(tail) or status or "no reply"))
        pid = _child_of(process.pid)
        start_time = _start_time(pid)
        if start_time is None:
            raise GuestBootError("the guest's init ended right after booting")
        return Holder(pid, start_time, os.readlink(f"/proc/{pid}/ns/pid"))
    finally:
        for fd in (ready_r, ready_w, code_r, code_w):
            if fd >= 0:
                os.close(fd)


def _stage_dir(sources: list[str]) -> str:
    """An existing directory of this machine to cover (privately) with the staging tmpfs: one that
    holds none of the guest's directories."""
    for candidate in ("/mnt", "/media", "/srv", "/opt", "/tmp", "/var/tmp"):
        inside = any(os.path.realpath(src).startswith(candidate + "/") for src in sources)
        if os.path.isdir(candidate) and not os.path.islink(candidate) and not inside:
            return candidate
    raise GuestBootError("no directory of this machine can hold the guest's staging mount")


def _read_ready(fd: int, timeout: float) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            continue
        chunk = os.read(fd, 256)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
