"""The guest's disk: a Rocky Linux 8.10 root filesystem seeded once, and its curated /usr/bin.

`seed_disk(disk, hw, image)` creates the directory tree a fresh OVA import has: /etc as Rocky 8.10 ships
it (release files, accounts with `centos` (uid 1000) in wheel, hosts, resolv.conf, nsswitch,
sudoers, tuned, dracut, sysctl, yum repositories, enabled units), /home/centos, /root, /boot with
the OVA's initramfs, /vast/bundles with `vast_bootstrap.sh` and a small placeholder
`vastdata_release_2043819.vast.tar.gz`, /vast/deploy, /var, /tmp, /opt, and the lab's own state
(/var/lib/lab: the package database, the disk's layout: backend/lab/guest/blockdev.py, and its
kernel: backend/lab/guest/image.py). The initramfs, layout and kernel are the OVA's image's
(`backend.lab.guest.image`: a variant of the lab's OVA, or a guest recording).

/usr is assembled at boot: /usr/lib, /usr/lib64 and /usr/share are this machine's (read-only bind
mounts), while /usr/bin and /usr/sbin belong to the guest and hold only what a Rocky guest has:
symlinks to an allowlist of this machine's tools (through /usr/.host/bin, a read-only bind of the
host's /usr/bin) and to the lab's stub tools (/usr/.lab/stubs/bin), as listed in
`stubs/lib/tools.tsv`. Anything else is "command not found" (exit 127). `rebuild_bins` recreates
those links at every boot from the package database, keeping any file the guest put there itself.
"""

from __future__ import annotations

import io
import os
import shlex
import tarfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from backend.lab import facts
from backend.lab.guest import rocky
from backend.lab.guest.support import own_tree
from backend.lab.world import GuestHardware

if TYPE_CHECKING:
    from backend.lab.guest.image import GuestImage, GuestKernel

STUBS = Path(__file__).resolve().parent / "stubs"
HOST_PREFIXES = {"/usr/bin/": "/usr/.host/bin/", "/usr/sbin/": "/usr/.host/sbin/",
                 "/usr/libexec/": "/usr/.host/libexec/", "/usr/lib/": "/usr/lib/", "/usr/lib64/": "/usr/lib64/"}
LAB_LINK_PREFIXES = ("/usr/.host/", "/usr/.lab/", "/usr/lib/", "/usr/lib64/")
PY36 = Path(os.environ.get("VLB_LAB_PY36", "/root/.pyenv/versions/3.6.15"))


def py36_available() -> bool:
    """Whether a Python 3.6 (the guest's platform-python, as on Rocky 8) can be lent to the guest."""
    try:
        return os.access(PY36 / "bin/python3.6", os.X_OK)
    except OSError:
        return False

RPMDB = "var/lib/lab/rpmdb"
BUNDLE = "vastdata_release_2043819.vast.tar.gz"

DIRS = {
    "usr/bin": 0o755, "usr/sbin": 0o755, "usr/libexec/openssh": 0o755, "usr/libexec/coreutils": 0o755,
    "usr/local/bin": 0o755, "usr/local/sbin": 0o755, "usr/local/lib": 0o755, "usr/local/share": 0o755,
    "usr/lib": 0o755, "usr/lib64": 0o755, "usr/share": 0o755,
    "usr/.host/bin": 0o755, "usr/.host/sbin": 0o755, "usr/.host/libexec": 0o755,
    "usr/.lab/stubs": 0o755, "usr/.lab/python3.6": 0o755,
    "proc": 0o555, "sys": 0o555, "dev": 0o755, "run": 0o755, "tmp": 0o1777, "boot": 0o555,
    "root": 0o550, "home/centos": 0o700, "home/centos/.ssh": 0o700, "opt": 0o755, "srv": 0o755,
    "mnt": 0o755, "media": 0o755,
    "var/tmp": 0o1777, "var/log": 0o755, "var/cache": 0o755, "var/spool": 0o755, "var/empty/sshd": 0o711,
    "var/lib/lab": 0o755, "var/lib/docker": 0o710, "var/lib/tuned": 0o755,
    "etc/sysctl.d": 0o755, "etc/tuned": 0o755, "etc/dracut.conf.d": 0o755, "etc/udev/rules.d": 0o755,
    "etc/modprobe.d": 0o755, "etc/modules-load.d": 0o755, "etc/yum.repos.d": 0o755,
    "etc/sudoers.d": 0o750, "etc/ssh": 0o755, "etc/profile.d": 0o755, "etc/security/limits.d": 0o755,
    "etc/systemd/system/multi-user.target.wants": 0o755, "etc/sysconfig": 0o755, "etc/pki/rpm-gpg": 0o755,
    "vast/bundles": 0o755, "vast/deploy": 0o755,
}

SYMLINKS = {
    "bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64",
    "var/run": "../run", "var/lock": "../run/lock",
    "etc/system-release": "rocky-release", "etc/sysctl.d/99-sysctl.conf": "../sysctl.conf",
    "etc/localtime": "../usr/share/zoneinfo/UTC",
}


def _write(disk: Path, rel: str, text: str | bytes, mode: int = 0o644) -> None:
    path = disk / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    path.chmod(mode)


def read_table(name: str) -> list[list[str]]:
    """A tab-separated table of stubs/lib (comments and blank lines skipped)."""
    rows = []
    for line in (STUBS / "lib" / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


def _gateway(ip: str) -> str:
    parts = ip.split(".")
    return ".".join(parts[:3] + ["1"]) if len(parts) == 4 else "192.168.30.1"


def _bundle_placeholder() -> bytes:
    """A tiny gzip'd tar standing in for the 20 GB release bundle."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"release-5-4-0-2043819\nThis is the lab's placeholder for the VAST 5.4 release bundle.\n"
        info = tarfile.TarInfo("VERSION")
        info.size = len(data)
        info.mtime = 1767032400
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def initramfs_text(drivers: list[str] | tuple[str, ...], arguments: str) -> str:
    """The lab's initramfs image: a text record of what dracut put in it (lsinitrd reads it)."""
    lines = ["# lab initramfs image (what dracut recorded)", f"kernel={rocky.KERNEL_RELEASE}",
             f"arguments={arguments}"]
    lines += [f"driver={d}" for d in sorted(set(drivers))]
    return "\n".join(lines) + "\n"


def initramfs_drivers(text: str | None) -> set[str]:
    return {line[7:] for line in (text or "").splitlines() if line.startswith("driver=")}


def seed_disk(disk: Path, hw: GuestHardware, image: GuestImage) -> None:
    """Create a freshly imported OVA's root filesystem in `disk` (which must not exist yet) from the
    OVA's `image`: its initramfs, its kernel, and its disk layout fitted to the VM's disk."""
    disk.mkdir(parents=True)
    for rel in DIRS:
        (disk / rel).mkdir(parents=True, exist_ok=True)
    for rel, target in SYMLINKS.items():
        os.symlink(target, disk / rel)
    etc = {
        "etc/os-release": rocky.OS_RELEASE, "etc/redhat-release": rocky.RELEASE,
        "etc/rocky-release": rocky.RELEASE, "etc/centos-release": rocky.RELEASE,
        "etc/hostname": rocky.HOSTNAME + "\n", "etc/hosts": rocky.HOSTS,
        "etc/resolv.conf": f"# Generated by NetworkManager\nsearch localdomain\nnameserver {_gateway(hw.ip)}\n",
        "etc/nsswitch.conf": rocky.NSSWITCH, "etc/passwd": rocky.PASSWD, "etc/group": rocky.GROUP,
        "etc/fstab": rocky.FSTAB, "etc/sysctl.conf": rocky.SYSCTL_CONF, "etc/dracut.conf": rocky.DRACUT_CONF,
        "etc/bashrc": rocky.ETC_BASHRC, "etc/profile": rocky.ETC_PROFILE,
        "etc/ssh/sshd_config": rocky.SSHD_CONFIG, "etc/locale.conf": 'LANG="en_US.UTF-8"\n',
        "etc/machine-id": uuid.uuid4().hex + "\n", "etc/shells": "/bin/sh\n/bin/bash\n/usr/bin/sh\n/usr/bin/bash\n",
        "etc/tuned/active_profile": "virtual-guest\n", "etc/tuned/profile_mode": "auto\n",
        "etc/tuned/tuned-main.conf": rocky.TUNED_MAIN,
        "etc/ld.so.conf": "include ld.so.conf.d/*.conf\n",
        "etc/ld.so.conf.d/lab-host.conf": "/usr/lib/x86_64-linux-gnu\n/usr/lib64\n/usr/lib\n/usr/.lab/python3.6/lib\n",
        "etc/sysconfig/network-scripts/ifcfg-eth0": "TYPE=Ethernet\nBOOTPROTO=dhcp\nNAME=eth0\nDEVICE=eth0\nONBOOT=yes\n",
        "etc/sysconfig/docker-storage": "",
        "home/centos/.bashrc": rocky.BASHRC_USER, "home/centos/.bash_profile": rocky.BASH_PROFILE,
        "home/centos/.bash_logout": "# ~/.bash_logout\n",
        "root/.bashrc": rocky.BASHRC_USER, "root/.bash_profile": rocky.BASH_PROFILE,
    }
    for rel, text in etc.items():
        _write(disk, rel, text)
    for rel, text in rocky.REPOS.items():
        _write(disk, f"etc/yum.repos.d/{rel}", text)
    _write(disk, "etc/sudoers", rocky.SUDOERS, 0o440)
    _write(disk, "etc/sudoers.d/90-centos", rocky.SUDOERS_CENTOS, 0o440)
    _write(disk, "etc/shadow", "".join(f"{line.split(':')[0]}:*:19000:0:99999:7:::\n"
                                         for line in rocky.PASSWD.splitlines()), 0o000)
    _write(disk, "boot/vmlinuz-" + rocky.KERNEL_RELEASE, b"", 0o755)
    for rel, (text, mode) in image.disk_files(hw.disk_gib).items():
        _write(disk, rel, text, mode)
    _write(disk, "vast/bundles/" + BUNDLE, _bundle_placeholder())
    bootstrap = STUBS / "vast" / "vast_bootstrap.sh"
    _write(disk, "vast/bundles/vast_bootstrap.sh", bootstrap.read_text(), 0o755)
    installed = [row for row in read_table("packages.tsv") if row[5] == "yes"]
    _write(disk, RPMDB, "".join(f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t1767030000\n" for r in installed))
    for unit, package, *_rest in read_table("units.tsv"):
        wanted_by, preset = _rest[2], _rest[4]
        if preset == "enabled" and any(r[0] == package for r in installed):
            wants = disk / "etc/systemd/system" / f"{wanted_by}.wants"
            wants.mkdir(parents=True, exist_ok=True)
            os.symlink(f"/usr/lib/systemd/system/{unit}", wants / unit)
    rebuild_bins(disk)
    for rel, mode in sorted(DIRS.items(), key=lambda item: -item[0].count("/")):
        (disk / rel).chmod(mode)  # last: a 0550 /root must not stop an unprivileged lab writing into it
    own_tree(disk)


def installed_packages(disk: Path) -> set[str]:
    from backend.lab.guest.fsutil import read_beneath

    text = read_beneath(disk, RPMDB, "") or ""
    return {line.split("\t", 1)[0] for line in text.splitlines() if line.strip()}


def _host_target(name: str) -> str | None:
    """Where this machine's tool `name` is reachable inside the guest, or None when it has none."""
    for folder in ("/usr/bin/", "/usr/sbin/"):
        path = folder + name
        if os.path.lexists(path):
            real = os.path.realpath(path)
            if not os.access(real, os.X_OK):
                return None
            for prefix, inside in HOST_PREFIXES.items():
                if real.startswith(prefix):
                    return inside + real[len(prefix):]
            return None
    return None


def link_table() -> list[tuple[str, str, str, str]]:
    """(name, guest dir, package, link target) of every command the guest can have."""
    rows = []
    for name, folder, package, source in read_table("tools.tsv"):
        if source == "stub":
            target = f"/usr/.lab/stubs/bin/{name}"
        elif source.startswith("stub:"):
            target = f"/usr/.lab/stubs/bin/{source[5:]}"
        else:
            target = _host_target(name if source == "host" else source[5:])
            if target is None:
                continue
        rows.append((name, folder, package, target))
    python = "/usr/.lab/python3.6/bin/python3.6" if py36_available() else _host_target("python3")
    if python:
        for name in ("python3", "python3.6"):
            rows.append((name, "/usr/bin", "-", python))
        rows.append(("platform-python", "/usr/libexec", "-", python))
    rows.append(("sftp-server", "/usr/libexec/openssh", "-", "/usr/.lab/stubs/bin/sftp-server"))
    if os.path.exists("/usr/libexec/coreutils/libstdbuf.so"):
        rows.append(("libstdbuf.so", "/usr/libexec/coreutils", "-", "/usr/.host/libexec/coreutils/libstdbuf.so"))
    return rows


def link_table_text() -> str:
    """The link table as the dnf stub reads it (tab-separated)."""
    return "".join("\t".join(row) + "\n" for row in link_table())


def rebuild_bins(disk: Path) -> None:
    """Recreate the lab's links in /usr/bin, /usr/sbin and /usr/libexec for the installed packages."""
    installed = installed_packages(disk)
    for folder in ("usr/bin", "usr/sbin", "usr/libexec", "usr/libexec/openssh", "usr/libexec/coreutils"):
        path = disk / folder
        if path.is_symlink() or not path.is_dir():
            continue
        for entry in os.scandir(path):
            if entry.is_symlink() and os.readlink(entry.path).startswith(LAB_LINK_PREFIXES):
                os.unlink(entry.path)
    for name, folder, package, target in link_table():
        if package != "-" and package not in installed:
            continue
        link = disk / folder.lstrip("/") / name
        if link.parent.is_symlink() or not link.parent.is_dir() or os.path.lexists(link):
            continue
        os.symlink(target, link)


def hw_env(hw: GuestHardware, speed: float, kernel: GuestKernel) -> str:
    """/run/lab/hw.env: what the stubs know of their VM and of the kernel on its disk (shell-quoted
    assignments)."""
    values = {
        "LAB_VMID": hw.vmid, "LAB_NAME": hw.name, "LAB_VCPUS": hw.vcpus, "LAB_SOCKETS": hw.sockets,
        "LAB_CORES": hw.cores, "LAB_MEMORY_MIB": hw.memory_mib, "LAB_MEMTOTAL_KIB": kernel.memtotal_kib(hw.memory_mib),
        "LAB_CPU_TYPE": hw.cpu_type, "LAB_SCSIHW": hw.scsihw, "LAB_IOTHREAD": int(hw.disk_iothread),
        "LAB_DISK_GIB": hw.disk_gib, "LAB_MAC": hw.mac.lower(), "LAB_IP": hw.ip, "LAB_GATEWAY": _gateway(hw.ip),
        "LAB_CPU_MODEL": cpu_model(hw), "LAB_KERNEL": rocky.KERNEL_RELEASE, "LAB_SPEED": speed,
        "LAB_CONTROLLER_DRIVER": rocky.controller_driver(hw), "LAB_MACHINE": hw.machine,
        "LAB_DRACUT_ALWAYS": " ".join(facts.INITRAMFS_ALWAYS),
        "LAB_KERNEL_STORAGE_MODULES": " ".join(sorted(kernel.modules)),
        "LAB_KERNEL_MISSING": " ".join(sorted(kernel.missing)),
        "LAB_LOADED_AT_BOOT": " ".join(kernel.loaded),
    }
    return "".join(f"{key}={shlex.quote(str(value))}\n" for key, value in values.items())


def cpu_model(hw: GuestHardware) -> str:
    if hw.cpu_type == "host":
        return hw.host_cpu_model
    if hw.cpu_type in ("kvm64", "kvm32"):
        return "Common KVM processor"
    return "QEMU Virtual CPU version 2.5+"
