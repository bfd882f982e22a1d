"""Whether this machine can run the lab guest, and as which user the guest's processes run.

The lab guest is a Linux feature: it needs unprivileged user, mount, PID and network namespaces
(`unshare --user --map-root-user --mount --pid --net`), util-linux's `unshare`/`nsenter` and
iproute2's `ip` (the guests' LAN, backend/lab/segment.py). Where they
are missing, `guest_unavailable_reason()` says so in one sentence instead of failing obscurely.

Who the guest runs as: when the lab runs as an ordinary user, the guest's processes run as that
user (root inside their user namespace). When the lab runs as root, the guest's processes run as a
dedicated unprivileged uid (`GUEST_UID`, 60999 unless `VLB_LAB_GUEST_UID` says otherwise) that
the namespace maps to root. A namespace mapped to the host's root could still write host sysctls
(procfs checks the global root uid) and every root-owned file; an unprivileged uid cannot, so
"nothing of this machine changes" is enforced by the kernel, not by care. The guest's files on
disk are owned by that uid (`own()`).
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys

DEFAULT_GUEST_UID = 60999


class GuestUnavailable(RuntimeError):
    """The lab guest cannot run on this machine (the message says why, in one sentence)."""


def guest_uid() -> int:
    """The host uid the guest's processes run as (and that owns the guest's files)."""
    if os.geteuid() != 0:
        return os.geteuid()
    return int(os.environ.get("VLB_LAB_GUEST_UID", DEFAULT_GUEST_UID))


def guest_gid() -> int:
    if os.geteuid() != 0:
        return os.getegid()
    return guest_uid()


def as_guest_kwargs() -> dict:
    """subprocess keyword arguments that run a process as the guest's user (no-op when unprivileged)."""
    if os.geteuid() != 0:
        return {}
    return {"user": guest_uid(), "group": guest_gid(), "extra_groups": []}


def own(path: str | os.PathLike, *, follow: bool = False) -> None:
    """Give `path` to the guest's user (only needed, and only done, when the lab runs as root)."""
    if os.geteuid() != 0:
        return
    os.chown(path, guest_uid(), guest_gid(), follow_symlinks=follow)


def own_fd(fd: int) -> None:
    if os.geteuid() == 0:
        os.fchown(fd, guest_uid(), guest_gid())


def own_tree(path: str | os.PathLike) -> None:
    """Give what the lab (as root) created under `path` to the guest's user.

    Only entries owned by the lab's own uid change hands (symlinks themselves, never their
    targets), and never a file with several hard links (it could be a link to one of this
    machine's files). Called while the guest is not running, so nothing moves under the walk.
    """
    if os.geteuid() != 0:
        return
    uid, gid = guest_uid(), guest_gid()

    def give(entry: str) -> None:
        info = os.lstat(entry)
        if info.st_uid != 0 or (stat.S_ISREG(info.st_mode) and info.st_nlink > 1):
            return
        os.chown(entry, uid, gid, follow_symlinks=False)

    give(path)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            give(os.path.join(root, name))


def host_python() -> str:
    """A Python interpreter the guest's user may execute (the namespace's init runs on it)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


@functools.lru_cache(maxsize=1)
def guest_unavailable_reason() -> str | None:
    """None when the lab guest can run here, else one sentence saying what is missing."""
    if not sys.platform.startswith("linux"):
        return (f"The lab guest needs Linux user namespaces and this machine runs {sys.platform}; "
                "the lab guest is a Linux feature.")
    for tool, package in (("unshare", "util-linux"), ("nsenter", "util-linux"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            return (f"The lab guest needs {package}'s `{tool}`, which is not installed; "
                    "the lab guest is a Linux feature.")
    probe = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--uts", "--ipc", "--net",
             "--mount-proc", "true"]
    try:
        result = subprocess.run(probe, capture_output=True, text=True, timeout=20, cwd="/",
                                **as_guest_kwargs())
    except (OSError, subprocess.SubprocessError) as exc:
        return (f"The lab guest needs unprivileged Linux user namespaces and `unshare` failed here ({exc}); "
                "the lab guest is a Linux feature.")
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no detail"])[-1]
        return ("The lab guest needs unprivileged Linux user namespaces, which this system does not allow "
                f"(unshare: {detail}); the lab guest is a Linux feature.")
    return None


def require_guest_support() -> None:
    reason = guest_unavailable_reason()
    if reason:
        raise GuestUnavailable(reason)
