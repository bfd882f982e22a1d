"""One lab guest: its directory, its power state, its namespace, its SSH endpoint.

    guests/<vmid>/guest.json   what survives the lab process: hardware, power state, the
                               namespace's identity (pid, start time, PID namespace), SSH port
    guests/<vmid>/disk/        the guest's root filesystem (persistent: the VM's disk)
    guests/<vmid>/runtime/     this boot's /proc, /sys, /dev/kmsg and /run (rebuilt at each boot)
    guests/<vmid>/snapshots/<name>/disk   disk states kept by `snapshot`
    guests/<vmid>/init.log     what the guest's PID 1 said (errors of the namespace setup)

Boot states: "off", "booting" (for the boot delay on the lab clock), "up" (namespace running, SSH
listening), "unbootable" (the VM runs but never reaches userspace: the controller's driver is not
in the initramfs, or the kernel on the disk does not have it at all, so dracut ends in its emergency
shell; no network, no SSH, no agent). What the console would show is kept in `error` (and guest.json).
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from backend.lab import facts
from backend.lab.guest import namespace, rocky
from backend.lab.guest.blockdev import read_layout
from backend.lab.guest.fsutil import copy_tree, read_beneath, remove_tree, write_beneath
from backend.lab.guest.image import GuestImage, read_kernel
from backend.lab.guest.load import GuestLoad, IdleLoad
from backend.lab.guest.rootfs import PY36, hw_env, initramfs_drivers, py36_available, rebuild_bins, seed_disk
from backend.lab.guest.runtime import Runtime, build_runtime, mount_plan, open_runtime
from backend.lab.guest.sshd import GuestSSHServer, Login
from backend.lab.guest.support import as_guest_kwargs, own_tree
from backend.lab.world import GuestHardware
from backend.run.safefiles import write_private

BOOT_SCRIPT = ["/usr/.lab/stubs/bin/lab-boot"]
TIOCSPTLCK, TIOCGPTPEER = 0x40045431, 0x5441
# Called at every boot before the guest's own boot: (disk directory, runtime directory, hardware).
BootHook = Callable[[Path, Path, GuestHardware], None]


@dataclass
class LabGuest:
    vmid: int
    path: Path
    hw: GuestHardware
    state: str = "off"
    holder: namespace.Holder | None = None
    ssh_port: int = 0
    boot_wall: float = 0.0
    boot_lab: float = 0.0
    generation: int = 0  # bumped by every power change: a pending boot of an older one is void
    error: str = ""
    runtime: Runtime | None = None
    ssh: GuestSSHServer | None = None
    load: GuestLoad = field(default_factory=IdleLoad)
    passwords: dict[str, str] = field(default_factory=dict)
    extra_keys: list[asyncssh.SSHKey] = field(default_factory=list)

    # -- files ------------------------------------------------------------------------------------
    @property
    def disk(self) -> Path:
        return self.path / "disk"

    @property
    def runtime_dir(self) -> Path:
        return self.path / "runtime"

    def save(self) -> None:
        data = {"vmid": self.vmid, "hw": self.hw.to_dict(), "state": self.state,
                "holder": self.holder.to_dict() if self.holder else None, "ssh_port": self.ssh_port,
                "boot_wall": self.boot_wall, "boot_lab": self.boot_lab, "generation": self.generation,
                "error": self.error}
        write_private(self.path / "guest.json", json.dumps(data, indent=1))

    @classmethod
    def load_from(cls, path: Path) -> LabGuest:
        data = json.loads((path / "guest.json").read_text())
        return cls(vmid=int(data["vmid"]), path=path, hw=GuestHardware(**data["hw"]), state=data["state"],
                   holder=namespace.Holder.from_dict(data.get("holder")), ssh_port=int(data.get("ssh_port", 0)),
                   boot_wall=float(data.get("boot_wall", 0)), boot_lab=float(data.get("boot_lab", 0)),
                   generation=int(data.get("generation", 0)), error=str(data.get("error", "")))

    def ensure_disk(self, image: GuestImage) -> None:
        """The VM's disk: a fresh import of the OVA's `image` the first time."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.disk.exists():
            seed_disk(self.disk, self.hw, image)

    # -- boot -------------------------------------------------------------------------------------
    def bootable(self) -> tuple[bool, str]:
        """Whether the initramfs on the disk holds the driver of the VM's disk controller (and the
        kernel on the disk has that driver at all)."""
        image = read_beneath(self.disk, rocky.INITRAMFS.lstrip("/"), "")
        needed = rocky.controller_driver(self.hw)
        in_kernel = read_kernel(self.disk).has(needed)
        if needed in initramfs_drivers(image) and in_kernel:
            return True, ""
        console = "; ".join(line.format(pid=392, root_uuid=facts.ROOT_UUID) for line in facts.DRACUT_NO_ROOT)
        controller = self.hw.scsihw if self.hw.disk_bus == "scsi" else f"{self.hw.disk_bus} on {self.hw.machine}"
        kernel = "" if in_kernel else ", nor in the kernel on the disk"
        return False, f"{console} ({needed} is not in the initramfs{kernel}; controller {controller})"

    def start_namespace(self, speed: float, on_boot: BootHook | None = None) -> None:
        """Build this boot's runtime files and start the guest's namespace (blocking, ~0.3 s).

        `on_boot(disk, runtime, hw)` runs before the guest's own boot (its files are then in place
        for the guest's first process); whatever it creates is given to the guest's user.
        """
        self.boot_wall = time.time()
        rebuild_bins(self.disk)
        self.runtime = build_runtime(self.runtime_dir, self.hw, self.boot_wall, speed, read_layout(self.disk),
                                     read_kernel(self.disk))
        if on_boot is not None:
            on_boot(self.disk, self.runtime_dir, self.hw)
            own_tree(self.disk)
            own_tree(self.runtime_dir)
        hostname = (read_beneath(self.disk, "etc/hostname", "") or "").strip() or rocky.HOSTNAME
        py36 = PY36 if py36_available() else None
        self.holder = namespace.start(self.disk, self.runtime_dir, self.path / "init.log", hostname=hostname,
                                      py36=py36, mounts=mount_plan(py36 is not None), boot=BOOT_SCRIPT)

    def reattach(self, speed: float) -> bool:
        """After a lab restart: whether the recorded namespace still runs (then continue with it,
        telling the guest's tools the lab's speed, which may have changed)."""
        if self.holder is None or not self.holder.alive() or not self.runtime_dir.exists():
            return False
        self.runtime = open_runtime(self.runtime_dir, self.hw, self.boot_wall, read_layout(self.disk),
                                    read_kernel(self.disk))
        write_beneath(self.runtime_dir, "run/lab/speed", f"{speed}\n")
        write_beneath(self.runtime_dir, "run/lab/hw.env", hw_env(self.hw, speed, read_kernel(self.disk)))
        return True

    def stop_namespace(self, graceful: bool) -> None:
        if self.holder is not None:
            self.holder.end(graceful)
        self.holder = None
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None

    def processes(self) -> list[int]:
        return self.holder.processes() if self.holder is not None and self.state == "up" else []

    def agent_running(self) -> bool:
        return self.state == "up" and self.holder is not None and "qemu-ga" in self.holder.commands()

    def exec(self, command: str, *, user: str = "root", timeout: float = 60.0,
             input: str | None = None) -> subprocess.CompletedProcess:
        """Run `bash -c command` inside the guest as `user` (for the lab's own use and tests)."""
        if self.holder is None or self.state != "up":
            raise RuntimeError(f"guest {self.vmid} is not running")
        login = self.lookup(user)
        home = login.home if login else "/root"
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin", "HOME": home, "USER": user,
               "LOGNAME": user, "LAB_USER": user, "LAB_GROUPS": " ".join(map(str, login.groups if login else (0,)))}
        argv = self.holder.enter(["/usr/.lab/stubs/bin/lab-session", command])
        result = subprocess.run(argv, env=env, capture_output=True, text=True, cwd="/", timeout=timeout,
                                input=input, **as_guest_kwargs())
        self.after_command()
        return result

    # -- snapshots ----------------------------------------------------------------------------------
    def snapshot(self, name: str) -> None:
        target = self.path / "snapshots" / _safe_name(name)
        remove_tree(target)
        target.mkdir(parents=True)
        copy_tree(self.disk, target / "disk")

    def rollback(self, name: str) -> None:
        source = self.path / "snapshots" / _safe_name(name) / "disk"
        if not source.exists():
            raise KeyError(f"guest {self.vmid} has no snapshot {name!r}")
        replaced = self.path / "disk.old"
        remove_tree(replaced)
        os.replace(self.disk, replaced)
        copy_tree(source, self.disk)
        own_tree(self.disk)
        remove_tree(replaced)

    def delete_snapshot(self, name: str) -> None:
        remove_tree(self.path / "snapshots" / _safe_name(name))

    # -- what the SSH server asks (sshd.GuestEndpoint) ---------------------------------------------
    def lookup(self, user: str) -> Login | None:
        passwd = read_beneath(self.disk, "etc/passwd", "") or ""
        for line in passwd.splitlines():
            fields = line.split(":")
            if len(fields) >= 7 and fields[0] == user:
                if fields[6].endswith("nologin") or fields[6].endswith("false"):
                    return None
                uid, gid = int(fields[2]), int(fields[3])
                groups = [gid] + [int(g[2]) for g in self._groups() if user in g[3].split(",") and int(g[2]) != gid]
                return Login(user, uid, gid, fields[5], fields[6], tuple(groups))
        return None

    def _groups(self) -> list[list[str]]:
        text = read_beneath(self.disk, "etc/group", "") or ""
        return [fields for fields in (line.split(":") for line in text.splitlines()) if len(fields) >= 4]

    def password_ok(self, user: str, password: str) -> bool:
        expected = self.passwords.get(user)
        return expected is not None and _same(expected, password)

    def authorized_keys(self, user: str) -> list[asyncssh.SSHKey]:
        login = self.lookup(user)
        keys = list(self.extra_keys)
        if login is None:
            return keys
        text = read_beneath(self.disk, f"{login.home.strip('/')}/.ssh/authorized_keys", "") or ""
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                keys.append(asyncssh.import_public_key(line))
            except (asyncssh.KeyImportError, ValueError):
                continue
        return keys

    def session_argv(self, argv: list[str]) -> list[str]:
        if self.holder is None:
            raise OSError("the guest is not running")
        return self.holder.enter(argv)

    def spawn_kwargs(self) -> dict:
        return as_guest_kwargs()

    def guest_address(self) -> str:
        return self.hw.ip

    def open_pty(self) -> tuple[int, int]:
        """A pseudo-terminal of the guest's own devpts (so `tty` inside names it), as sshd allocates."""
        if self.holder is None:
            raise OSError("the guest is not running")
        master = os.open(f"/proc/{self.holder.pid}/root/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
            slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        except OSError:
            os.close(master)
            raise
        return master, slave

    def after_command(self) -> None:
        if self.runtime is not None:
            self.runtime.normalise()


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def _safe_name(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad snapshot name {name!r}")
    return name
