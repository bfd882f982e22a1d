"""The guest's PID 1: builds its mount tree, pivots into its root, boots it, and reaps orphans.

Run by the lab (`namespace.py`) with this machine's python3 under
`unshare --user --map-root-user --mount --pid --fork --uts --ipc`, setsid'd so it outlives the lab
process; its source and spec come through an inherited pipe (`LOADER`), which keeps the guest's
`ps` readable. Its command name is set to `systemd`. It must use the standard library only and import
everything before `pivot_root` (afterwards this machine's files are gone from view).

The spec (JSON) names the source directories (the guest's disk and runtime
directories, Python 3.6) and the mounts to make, in order: bind mounts (optionally read-only),
tmpfs, proc, devpts, device nodes bound from this machine's /dev, and symlinks. Then: pivot_root
into the disk, drop inherited descriptors (a descriptor of a host directory would be a way out),
set the hostname, run the boot script, report "ready" on the ready descriptor, and wait.
SIGTERM shuts the guest down (SIGTERM to every process, then SIGKILL); a SIGKILL of this process
ends every process of the guest (the kernel does that for a PID namespace). A guest whose disk
directory was deleted (its lab's state is gone for good) shuts itself down within seconds, so a
removed state directory never leaves a guest running forever.
"""

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155  # x86_64
ST_TO_MS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: MS_NOATIME, 2048: MS_NODIRATIME,
            4096: MS_RELATIME}

libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source, target, fstype, flags, data=None):
    _check(libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                      flags, data.encode() if data else None), f"mount {source} on {target}")


def bind(source, target, readonly=False, recursive=False):
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        locked = 0
        flags = os.statvfs(target).f_flag
        for st, ms in ST_TO_MS.items():
            if flags & st:
                locked |= ms
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | locked)


def source_path(spec, source):
    """'src:NAME/rel' -> <the source directory NAME>/rel; other sources are this machine's paths."""
    if source.startswith("src:"):
        name, _, rel = source[4:].partition("/")
        base = spec["sources"][name]
        return base + "/" + rel if rel else base
    return source


def build(spec):
    root = spec["root"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    bind(source_path(spec, "src:disk"), root)
    for item in spec["mounts"]:
        kind, target = item["kind"], root + item["target"]
        if kind == "bind":
            src = source_path(spec, item["source"])
            if item.get("optional") and not os.path.exists(src):
                continue
            if item.get("make"):
                if os.path.isdir(src):
                    os.makedirs(target, exist_ok=True)
                elif not os.path.exists(target):
                    open(target, "a").close()
            bind(src, target, item.get("ro", False), item.get("recursive", False))
        elif kind in ("tmpfs", "proc", "devpts"):
            mount(kind, target, kind, item.get("flags", 0), item.get("data"))
        elif kind == "symlink":
            if not os.path.lexists(target):
                os.symlink(item["source"], target)
        elif kind == "mkdir":
            os.makedirs(target, mode=item.get("mode", 0o755), exist_ok=True)
            os.chmod(target, item.get("mode", 0o755))
        else:
            raise ValueError(f"unknown mount kind {kind}")
    os.chdir(root)
    _check(libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    _check(libc.umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")


def close_inherited(keep):
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def unblock():
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD, signal.SIGTERM})


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def shutdown():
    for sig, pause in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 0.0)):
        try:
            os.kill(-1, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline:
            reap()
            if not any(n.isdigit() and n != "1" for n in os.listdir("/proc")):
                return
            time.sleep(0.02)


def main(spec_text):
    spec = json.loads(spec_text)
    ready = spec["ready_fd"]
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGTERM})
    build(spec)
    close_inherited({ready})
    libc.prctl(15, b"systemd", 0, 0, 0)  # PR_SET_NAME
    if spec.get("hostname"):
        libc.sethostname(spec["hostname"].encode(), len(spec["hostname"].encode()))
    env = {"PATH": "/usr/sbin:/usr/bin", "HOME": "/root", "LAB_USER": "root", "LAB_GROUPS": "0",
           "USER": "root", "LOGNAME": "root", "LANG": "C"}
    status = "ok"
    if spec.get("boot"):
        try:
            child = subprocess.Popen(spec["boot"], env=env, cwd="/", preexec_fn=unblock, stdin=subprocess.DEVNULL)
            while child.poll() is None:
                signal.sigtimedwait({signal.SIGCHLD}, 0.05)
            status = "ok" if child.returncode == 0 else f"boot-script-exit-{child.returncode}"
        except OSError as exc:
            status = f"boot-script-failed-{exc.errno}"
    os.write(ready, f"ready {status}\n".encode())
    os.close(ready)
    while True:
        reap()
        info = signal.sigtimedwait({signal.SIGCHLD, signal.SIGTERM}, 2.0)
        if info is not None and info.si_signo == signal.SIGTERM:
            shutdown()
            return
        if info is None and os.stat("/").st_nlink == 0:
            shutdown()  # the guest's disk was deleted under it (its lab is gone for good)
            return


if __name__ == "__main__":
    try:
        main(SPEC)  # noqa: F821  (given by the loader)
    except Exception as exc:  # the lab reads this from the init log
        print(f"lab init: {exc}", file=sys.stderr)
        sys.exit(1)
