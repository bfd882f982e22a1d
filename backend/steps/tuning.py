"""The tuning catalog: every fix of the field report as a step that checks, applies and verifies.

Each step has an id, a title, the reason (with the field report as evidence), the expected value,
`check` (read the current state from the guest: observed value, ok, persisted), `apply`
(idempotent; says whether it changed anything) and `verify` (read back, emit `TuningChecked`).
`persisted` says whether the setting survives a reboot (the sysctl file sets it, the tuned profile
is active, the udev rule exists, the service is enabled): a value set at run time only is reported
as not persisted, and after the reboot it is gone.

Both stages run on the first-boot controller (PVSCSI for the VAST OVA), before the switch to VirtIO
SCSI, whose boot then proves they persist. Stage 1: the guest agent, vmtoolsd off, VirtIO drivers
in the initramfs (what the switch needs). Stage 2: Docker, THP, I/O scheduler, sysctls and
(optional) limits.

Every command is built with `backend.clients.commands`; values that reach a command (the install user, the
disk name) are quoted, and the disk name is also checked because it ends up in a udev rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from backend.clients.commands import seq, sh, write_file
from backend.clients.guestssh import GuestClient
from backend.errors import RunFailed
from backend.events import TuningApplied, TuningChecked
from backend.run.bus import EventBus

REPORT = "VAST 5.4 Deployment Analysis (field report)"

# Files we own on the guest.
SYSCTL_FILE = "/etc/sysctl.d/99-vast-loopback.conf"  # sorts after 99-sysctl.conf, so it wins
TUNED_PROFILE = "vast-loopback"
TUNED_DIR = f"/etc/tuned/{TUNED_PROFILE}"
TUNED_FILE = f"{TUNED_DIR}/tuned.conf"
TUNED_ACTIVE = "/etc/tuned/active_profile"
UDEV_RULE = "/etc/udev/rules.d/60-vast-loopback-io-scheduler.rules"
DRACUT_CONF = "/etc/dracut.conf.d/virtio.conf"
THP_DIR = "/sys/kernel/mm/transparent_hugepage"
THP_OPTIONS = {"enabled": "transparent_hugepages", "defrag": "transparent_hugepage.defrag"}  # tuned [vm]
DOCKER_REPO = "https://download.docker.com/linux/centos/docker-ce.repo"
DOCKER_REPO_FILE = "/etc/yum.repos.d/docker-ce.repo"
LIMITS_DROPINS = {
    "docker": "/etc/systemd/system/docker.service.d/90-vast-loopback-limits.conf",
    "containerd": "/etc/systemd/system/containerd.service.d/90-vast-loopback-limits.conf",
}
NOFILE = 1048576
VIRTIO_DRIVERS = ("virtio_scsi", "virtio_blk")
SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d")
DISK_NAME = re.compile(r"^(sd[a-z]+|vd[a-z]+|xvd[a-z]+|nvme\d+n\d+)$")
ENABLED_STATES = ("enabled", "enabled-runtime", "static", "indirect", "alias", "generated")

HEADER = "# Written by vast-loopback ({why}); see the VAST 5.4 field report.\n"


# --- reading the guest -------------------------------------------------------------------------


def probe_command(values: dict[str, str], files: dict[str, str] | None = None,
                  globs: Iterable[str] = ()) -> str:
    """One command printing `name=<first line of command>` for each value, then each file as
    `==> name <==` + its text (files that do not exist are left out), then every file matching
    the glob patterns (sections named by path, shell-quoted with %q when the name is unusual)."""
    parts = [f"printf '%s=%s\\n' {sh(name)} \"$( {{ {command} ; }} 2>/dev/null | head -n 1)\""
             for name, command in values.items()]
    for name, path in (files or {}).items():
        parts.append(f"if [ -f {sh(path)} ]; then printf '==> %s <==\\n' {sh(name)}; cat {sh(path)}; echo; fi")
    for pattern in globs:
        # the pattern is ours (a constant); the file names it expands to are printed, never run
        parts.append(f"for vlb_f in {pattern}; do if [ -f \"$vlb_f\" ]; then "
                     "printf '==> %q <==\\n' \"$vlb_f\"; cat \"$vlb_f\"; echo; fi; done")
    return "; ".join(parts) + "; true"


def parse_probe(text: str) -> tuple[dict[str, str], dict[str, str]]:
    values: dict[str, str] = {}
    files: dict[str, str] = {}
    current: str | None = None
    for line in text.split("\n"):
        match = re.fullmatch(r"==> (.*) <==", line)
        if match:
            current = match.group(1)
            files[current] = ""
        elif current is not None:
            files[current] += line + "\n"
        elif "=" in line:
            name, _, value = line.partition("=")
            values[name] = value.strip()
    return values, files


def bracketed(text: str) -> str:
    """The selected word of a sysfs choice file: 'always madvise [never]' -> 'never'; a plain
    word is returned as it is."""
    match = re.search(r"\[([^\]]+)\]", text)
    if match:
        return match.group(1).strip()
    words = text.split()
    return words[0] if len(words) == 1 else text.strip()


def unit_probe(unit: str, package: str | None = None) -> dict[str, str]:
    probes = {
        "enabled": sh("systemctl", "is-enabled", unit),
        "active": sh("systemctl", "is-active", unit),
    }
    if package:
        probes["installed"] = f"{sh('rpm', '-q', package)} >/dev/null && echo yes || echo no"
    return probes


def sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def effective_sysctl(files: dict[str, str]) -> dict[str, str]:
    """What the sysctl configuration files set at boot (systemd-sysctl's rules): files are read in
    order of their names across the folders; a name in an earlier folder (/etc) hides the same name
    in a later one; a later assignment wins."""
    by_name: dict[str, str] = {}
    for folder in SYSCTL_DIRS:
        for path, text in files.items():
            if path.startswith(folder + "/"):
                by_name.setdefault(path.rsplit("/", 1)[1], text)
    values: dict[str, str] = {}
    for name in sorted(by_name):
        for raw in by_name[name].splitlines():
            line = raw.strip()
            if not line or line[0] in "#;" or "=" not in line:
                continue
            key, _, value = line.partition("=")
            key = key.strip().lstrip("-").replace("/", ".")
            values[key] = value.strip()
    return values


def set_assignment(text: str, key: str, value: str) -> str:
    """`text` (a sysctl file) with `key = value` set once: replaced in place or appended."""
    lines, done = [], False
    for line in text.splitlines():
        stripped = line.strip()
        current = stripped.partition("=")[0].strip().lstrip("-").replace("/", ".")
        if stripped and stripped[0] not in "#;" and "=" in stripped and current == key:
            if not done:
                lines.append(f"{key} = {value}")
                done = True
            continue
        lines.append(line)
    if not done:
        lines.append(f"{key} = {value}")
    return "\n".join(lines).strip("\n") + "\n"


def ini_value(text: str, section: str, key: str) -> str | None:
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == section and "=" in line:
            name, _, value = line.partition("=")
            if name.strip() == key:
                return value.strip()
    return None


def drivers_in(text: str) -> set[str]:
    """VirtIO drivers named in `add_drivers`/`force_drivers` lines of a dracut configuration."""
    found: set[str] = set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        match = re.match(r"\s*(add_drivers|force_drivers|drivers)\s*\+?=\s*[\"']?(.*?)[\"']?\s*$", line)
        if match:
            found.update(word for word in match.group(2).split() if word in VIRTIO_DRIVERS)
    return found


def udev_sets_scheduler(text: str, disk: str, scheduler: str) -> bool:
    """Whether a udev rules file sets `scheduler` for `disk` (KERNEL patterns with `|`)."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not re.search(r'ATTR\{queue/scheduler\}\s*=\s*"' + re.escape(scheduler) + '"', line):
            continue
        kernel = re.search(r'KERNEL\s*==\s*"([^"]*)"', line)
        if kernel is None or any(fnmatchcase(disk, p) for p in kernel.group(1).split("|")):
            return True
    return False


# --- the catalog -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """What `check` saw: the observed value (as read back), whether it is what we want, and whether
    it survives a reboot (None when that does not apply)."""

    observed: str
    ok: bool
    persisted: bool | None = None
    detail: str = ""

    @property
    def good(self) -> bool:
        return self.ok and self.persisted is not False


@dataclass
class TuningEnv:
    """What the steps work on: the guest, the install user, and facts read once (the OS disk)."""

    guest: GuestClient
    user: str
    disk: str | None = None
    cache: dict = field(default_factory=dict)

    async def os_disk(self) -> str:
        if self.disk is None:
            self.disk = await find_os_disk(self.guest)
        return self.disk


async def find_os_disk(guest: GuestClient) -> str:
    """The disk holding `/` (its parent block device), else the first disk in /sys/block."""
    result = await guest.run(
        "vlb_src=$(findmnt -n -o SOURCE / 2>/dev/null); "
        "[ -n \"$vlb_src\" ] && lsblk -n -o PKNAME \"$vlb_src\" 2>/dev/null | head -n 1; "
        "ls /sys/block 2>/dev/null")
    for word in result.stdout.split():
        if DISK_NAME.match(word):
            return word
    raise RunFailed("no OS disk (sdX or vdX) found in the guest's /sys/block",
                    hint="the VM's disk may be on a controller whose driver the guest lacks")


class TuningStep:
    """One tuning. Subclasses implement `check` and `apply`."""

    id: str = ""
    title: str = ""
    reason: str = ""
    evidence: str = ""
    expected: str = ""
    stage: int = 2
    persisted_by: str = ""

    async def check(self, env: TuningEnv) -> Reading:
        raise NotImplementedError

    async def apply(self, env: TuningEnv) -> bool:
        raise NotImplementedError

    async def verify(self, env: TuningEnv, bus: EventBus | None, *, after_reboot: bool = False) -> Reading:
        """Read back and record the result."""
        reading = await self.check(env)
        if bus is not None:
            bus.emit(TuningChecked(id=self.id, expected=self.expected, observed=reading.observed, ok=reading.ok,
                                   after_reboot=after_reboot, persisted=reading.persisted,
                                   reason=reading.detail or ("" if reading.good else self.reason)))
        return reading

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "reason": self.reason, "evidence": self.evidence,
                "expected": self.expected, "stage": self.stage, "persisted_by": self.persisted_by}


async def _probe(env: TuningEnv, values: dict[str, str], files: dict[str, str] | None = None,
                 globs: Iterable[str] = (), sudo: bool = False) -> tuple[dict[str, str], dict[str, str]]:
    result = await env.guest.run(probe_command(values, files, globs), sudo=sudo)
    return parse_probe(result.stdout)


async def _sudo(env: TuningEnv, command: str, timeout: float = 300.0) -> None:
    await env.guest.run(command, sudo=True, check=True, timeout=timeout)


def install_command(*packages: str) -> str:
    return sh("dnf", "install", "-y", *packages)


def write_root_file(path: str, text: str, mode: str = "0644") -> str:
    """Create the parent folder and write `text` to `path` exactly (run it with sudo)."""
    return seq(sh("mkdir", "-p", "--", path.rsplit("/", 1)[0]), write_file(path, text, mode))


def write_sysfs(path: str, value: str) -> str:
    return f"printf '%s\\n' {sh(value)} > {sh(path)}"


class ServiceRunning(TuningStep):
    """A package installed and its service enabled and running."""

    def __init__(self, step_id: str, unit: str, packages: tuple[str, ...], *, title: str, reason: str,
                 evidence: str, stage: int, before_install: tuple[str, ...] = ()) -> None:
        self.id, self.unit, self.packages, self.title = step_id, unit, packages, title
        self.reason, self.evidence, self.stage = reason, evidence, stage
        self.before_install = before_install
        self.expected = "active"
        self.persisted_by = f"systemctl enable {unit}"

    async def check(self, env: TuningEnv) -> Reading:
        values, _ = await _probe(env, unit_probe(self.unit, self.packages[0]))
        if values.get("installed") != "yes":
            return Reading("not installed", False, False, f"{self.packages[0]} is not installed")
        active = values.get("active") or "unknown"
        enabled = values.get("enabled") or "unknown"
        persisted = enabled in ENABLED_STATES
        detail = "" if persisted else f"{self.unit} is {enabled} (not started at boot)"
        return Reading(active, active == "active", persisted, detail)

    async def apply(self, env: TuningEnv) -> bool:
        before = await self.check(env)
        if before.good:
            return False
        if before.observed == "not installed":
            for command in self.before_install:
                await _sudo(env, command)
            await _sudo(env, install_command(*self.packages), timeout=1800)
        await _sudo(env, sh("systemctl", "enable", "--now", self.unit))
        return True


class ServiceOff(TuningStep):
    """A service stopped and disabled (or absent)."""

    def __init__(self, step_id: str, unit: str, *, title: str, reason: str, evidence: str, stage: int) -> None:
        self.id, self.unit, self.title, self.reason, self.evidence, self.stage = \
            step_id, unit, title, reason, evidence, stage
        self.expected = "inactive, disabled"
        self.persisted_by = f"systemctl disable {unit}"

    async def check(self, env: TuningEnv) -> Reading:
        values, _ = await _probe(env, unit_probe(self.unit))
        active = values.get("active") or "inactive"
        enabled = values.get("enabled") or "not installed"
        running = active in ("active", "activating", "reloading")
        starts_at_boot = enabled in ("enabled", "enabled-runtime")
        return Reading(f"{active}, {enabled}", not running, not starts_at_boot,
                       f"{self.unit} still starts at boot" if starts_at_boot else "")

    async def apply(self, env: TuningEnv) -> bool:
        before = await self.check(env)
        if before.good:
            return False
        await env.guest.run(sh("systemctl", "stop", self.unit), sudo=True)
        await env.guest.run(sh("systemctl", "disable", self.unit), sudo=True)
        return True


class InitramfsDrivers(TuningStep):
    id = "virtio-initramfs"
    title = "VirtIO drivers in the initramfs"
    reason = ("the OVA's initramfs was built on VMware (host-only); after the switch to VirtIO SCSI the guest "
              "finds its disk only if virtio_scsi and virtio_blk are in it")
    evidence = f"{REPORT}, fix 3: add_drivers+=\" virtio_scsi virtio_blk \" in /etc/dracut.conf.d, dracut -f"
    expected = " ".join(sorted(VIRTIO_DRIVERS))
    stage = 1
    persisted_by = DRACUT_CONF

    async def check(self, env: TuningEnv) -> Reading:
        listing = await env.guest.run("lsinitrd 2>/dev/null", sudo=True, timeout=300)
        in_image = {d for d in VIRTIO_DRIVERS if re.search(rf"\b{d}\.ko", listing.stdout)}
        _, files = await _probe(env, {}, globs=["/etc/dracut.conf.d/*.conf"])
        configured = set().union(*(drivers_in(text) for text in files.values())) if files else set()
        observed = " ".join(sorted(in_image)) or "none"
        missing_conf = sorted(set(VIRTIO_DRIVERS) - configured)
        detail = ""
        if not listing.ok:
            detail = "lsinitrd could not read the initramfs"
        elif missing_conf:
            detail = f"not in /etc/dracut.conf.d: {' '.join(missing_conf)} (lost at the next dracut run)"
        return Reading(observed, in_image == set(VIRTIO_DRIVERS), not missing_conf, detail)

    async def apply(self, env: TuningEnv) -> bool:
        """Name the drivers in dracut.conf.d (so every later rebuild keeps them) and rebuild the
        initramfs, unless it holds them already (an OVA built without host-only): then no dracut."""
        before = await self.check(env)
        if before.good:
            return False
        if before.persisted is False:
            text = HEADER.format(why="VirtIO drivers for the VirtIO SCSI controller") + \
                'add_drivers+=" ' + " ".join(VIRTIO_DRIVERS) + ' "\n'
            await _sudo(env, write_root_file(DRACUT_CONF, text))
        if not before.ok:
            await _sudo(env, sh("dracut", "-f"), timeout=1800)
        return True


class DockerGroup(TuningStep):
    id = "docker-group"
    title = "Install user in the docker group"
    reason = "the VAST tools run docker as the install user"
    evidence = f"{REPORT}, fix 1: usermod -aG docker centos"
    expected = "member of docker"
    stage = 2
    persisted_by = "/etc/group"

    async def check(self, env: TuningEnv) -> Reading:
        result = await env.guest.run(sh("id", "-nG", env.user))
        member = "docker" in result.stdout.split()
        observed = "member of docker" if member else "not in docker"
        return Reading(observed, member, member)

    async def apply(self, env: TuningEnv) -> bool:
        if (await self.check(env)).good:
            return False
        await _sudo(env, sh("usermod", "-aG", "docker", env.user))
        return True


class TunedSysfs(TuningStep):
    """A sysfs choice file (THP) set at run time and persisted through our tuned profile."""

    stage = 2

    def __init__(self, step_id: str, path: str, value: str, option: str, *, title: str) -> None:
        self.id, self.path, self.value, self.option, self.title = step_id, path, value, option, title
        self.expected = value
        self.reason = ("transparent huge page defragmentation causes latency spikes during memory allocation, "
                       "and VAST's keepalive fibers cannot afford them")
        self.evidence = f"{REPORT}, fix 4: echo never > {path}, persisted via a tuned profile"
        self.persisted_by = f"tuned profile {TUNED_PROFILE} ({TUNED_FILE})"

    async def check(self, env: TuningEnv) -> Reading:
        values, files = await _probe(
            env,
            {"runtime": sh("cat", self.path), "profile": sh("cat", TUNED_ACTIVE),
             "tuned": sh("systemctl", "is-enabled", "tuned")},
            {"profile": TUNED_FILE})
        observed = bracketed(values.get("runtime", "")) or "unreadable"
        profile_value = ini_value(files.get("profile", ""), "vm", self.option)
        problems = []
        if profile_value != self.value:
            problems.append(f"{TUNED_FILE} does not set [vm] {self.option}={self.value}")
        if values.get("profile", "").split() != [TUNED_PROFILE]:
            problems.append(f"the active tuned profile is '{values.get('profile', '')}', not {TUNED_PROFILE}")
        if values.get("tuned") not in ENABLED_STATES:
            problems.append("tuned does not start at boot")
        return Reading(observed, observed == self.value, not problems, "; ".join(problems))

    async def apply(self, env: TuningEnv) -> bool:
        if (await self.check(env)).good:
            return False
        await _sudo(env, f"rpm -q tuned >/dev/null 2>&1 || {install_command('tuned')}", timeout=1800)
        await _sudo(env, write_root_file(TUNED_FILE, tuned_profile()))
        await _sudo(env, sh("systemctl", "enable", "--now", "tuned"))
        await _sudo(env, sh("tuned-adm", "profile", TUNED_PROFILE))
        await _sudo(env, write_sysfs(self.path, self.value))
        return True


def tuned_profile() -> str:
    """Our tuned profile: tuned's vm plugin sets THP at every boot (tuned 2.22 of Rocky 8.10 knows
    both options). No `include=`: virtual-guest would set swappiness and dirty ratios of its own."""
    return (
        HEADER.format(why="transparent huge pages off")
        + "[main]\n"
        + "summary=VAST loopback: transparent huge pages never (enabled and defrag)\n\n"
        + "[vm]\n"
        + f"{THP_OPTIONS['enabled']}=never\n"
        + f"{THP_OPTIONS['defrag']}=never\n"
    )


class IoScheduler(TuningStep):
    id = "io_scheduler"
    title = "I/O scheduler mq-deadline on the OS disk"
    reason = "the default scheduler is not the best for virtualised storage; mq-deadline bounds latency"
    evidence = f"{REPORT}, fix 5: echo mq-deadline > /sys/block/sda/queue/scheduler"
    expected = "mq-deadline"
    stage = 2
    persisted_by = UDEV_RULE

    async def check(self, env: TuningEnv) -> Reading:
        disk = await env.os_disk()
        path = f"/sys/block/{disk}/queue/scheduler"
        values, files = await _probe(env, {"runtime": sh("cat", path)}, globs=["/etc/udev/rules.d/*.rules"])
        observed = bracketed(values.get("runtime", "")) or "unreadable"
        persisted = any(udev_sets_scheduler(text, disk, self.expected) for text in files.values())
        return Reading(observed, observed == self.expected, persisted,
                       "" if persisted else f"no udev rule sets {self.expected} for {disk}")

    async def apply(self, env: TuningEnv) -> bool:
        if (await self.check(env)).good:
            return False
        disk = await env.os_disk()
        await _sudo(env, write_root_file(UDEV_RULE, udev_rule(disk, self.expected)))
        await env.guest.run(sh("udevadm", "control", "--reload-rules"), sudo=True)
        await _sudo(env, write_sysfs(f"/sys/block/{disk}/queue/scheduler", self.expected))
        return True


def udev_rule(disk: str, scheduler: str) -> str:
    if not DISK_NAME.match(disk):
        raise ValueError(f"not a disk name: {disk!r}")
    return (HEADER.format(why=f"{scheduler} for the OS disk")
            + f'ACTION=="add|change", SUBSYSTEM=="block", KERNEL=="{disk}", '
            + f'ATTR{{queue/scheduler}}="{scheduler}"\n')


class Sysctl(TuningStep):
    """A kernel parameter set now (`sysctl -w`) and in /etc/sysctl.d (read again at every boot)."""

    stage = 2

    def __init__(self, name: str, value: int, *, reason: str, evidence: str = "", at_least: bool = False,
                 prefix: str = "sysctl") -> None:
        self.name, self.value, self.at_least = name, value, at_least
        self.id = f"{prefix}:{name}"
        self.title = f"{name} {'>=' if at_least else '='} {value}"
        self.expected = f">= {value}" if at_least else str(value)
        self.reason = reason
        self.evidence = evidence or f"{REPORT}, fix 6: {name} = {value}"
        self.persisted_by = SYSCTL_FILE

    def _good(self, text: str | None) -> bool:
        try:
            number = int(str(text).split()[0])
        except (ValueError, IndexError):
            return False
        return number >= self.value if self.at_least else number == self.value

    async def check(self, env: TuningEnv) -> Reading:
        values, files = await _probe(env, {"runtime": sh("cat", sysctl_path(self.name))},
                                     globs=[f"{d}/*.conf" for d in SYSCTL_DIRS])
        observed = values.get("runtime") or "unreadable"
        at_boot = effective_sysctl(files).get(self.name)
        persisted = self._good(at_boot)
        ok = self._good(observed)
        detail = "" if persisted else (
            f"/etc/sysctl.d sets {self.name} = {at_boot}" if at_boot is not None
            else f"no file in /etc/sysctl.d sets {self.name}" + (" (set at run time only)" if ok else ""))
        return Reading(observed, ok, persisted, detail)

    async def apply(self, env: TuningEnv) -> bool:
        before = await self.check(env)
        if before.good:
            return False
        current = await env.guest.run(sh("cat", SYSCTL_FILE))
        text = current.stdout if current.ok else HEADER.format(why="kernel parameters")
        wanted = self.value
        if self.at_least and self._good(before.observed):
            wanted = int(before.observed.split()[0])  # never lower a limit that is already higher
        updated = set_assignment(text, self.name, str(wanted))
        if updated != text:
            await _sudo(env, write_root_file(SYSCTL_FILE, updated))
        if not before.ok:
            await _sudo(env, sh("sysctl", "-w", f"{self.name}={wanted}"))
        return True


class ServiceLimit(TuningStep):
    id = "limits:nofile"
    title = f"Open files >= {NOFILE} for docker and containerd"
    reason = "VAST containers open many files; the services' limits are what the containers inherit"
    evidence = "VAST loopback notes: raise file-descriptor limits for the VAST containers"
    expected = f">= {NOFILE}"
    stage = 2
    persisted_by = ", ".join(LIMITS_DROPINS.values())

    @staticmethod
    def _enough(value: str | None) -> bool:
        if value == "infinity":
            return True
        try:
            return int(str(value)) >= NOFILE
        except ValueError:
            return False

    async def check(self, env: TuningEnv) -> Reading:
        values, files = await _probe(
            env, {unit: sh("systemctl", "show", "-p", "LimitNOFILE", "--value", unit) for unit in LIMITS_DROPINS},
            dict(LIMITS_DROPINS))
        configured = {unit: ini_value(files.get(unit, ""), "Service", "LimitNOFILE") for unit in LIMITS_DROPINS}
        # A systemctl that does not know the property prints nothing; then the drop-in is all we can read.
        running = {unit: values.get(unit) or configured[unit] for unit in LIMITS_DROPINS}
        observed = running["docker"] or "unknown"
        ok = all(self._enough(value) for value in running.values())
        persisted = all(self._enough(value) for value in configured.values())
        return Reading(observed, ok, persisted, "" if persisted else "no drop-in raises LimitNOFILE")

    async def apply(self, env: TuningEnv) -> bool:
        if (await self.check(env)).good:
            return False
        text = HEADER.format(why="open files for the VAST containers") + f"[Service]\nLimitNOFILE={NOFILE}\n"
        for path in LIMITS_DROPINS.values():
            await _sudo(env, write_root_file(path, text))
        await _sudo(env, sh("systemctl", "daemon-reload"))
        await env.guest.run(sh("systemctl", "try-restart", "containerd", "docker"), sudo=True, timeout=600)
        return True


def catalog(*, limits: bool = True) -> list[TuningStep]:
    """Every tuning, in the order it is applied."""
    steps: list[TuningStep] = [
        ServiceRunning(
            "qemu-guest-agent", "qemu-guest-agent", ("qemu-guest-agent",), stage=1,
            title="QEMU guest agent installed, enabled and running",
            reason="Proxmox reads the guest's address and shuts it down cleanly through the guest agent",
            evidence=f"{REPORT}, fix 2: dnf install -y qemu-guest-agent; systemctl enable --now qemu-guest-agent"),
        ServiceOff(
            "vmtoolsd", "vmtoolsd", stage=1, title="VMware tools (vmtoolsd) stopped and disabled",
            reason="vmtoolsd does not work on KVM and only wastes cycles",
            evidence=f"{REPORT}, fix 2: systemctl stop vmtoolsd; systemctl disable vmtoolsd"),
        InitramfsDrivers(),
        ServiceRunning(
            "docker", "docker", ("docker-ce", "docker-ce-cli", "containerd.io"), stage=2,
            title="Docker CE installed, enabled and running",
            reason="the OVA's Docker is not usable after the import into Proxmox; VAST runs in containers",
            evidence=f"{REPORT}, fix 1: dnf install -y docker-ce docker-ce-cli containerd.io; "
                     "systemctl enable --now docker",
            before_install=(f"test -f {sh(DOCKER_REPO_FILE)} || {sh('dnf', 'config-manager', '--add-repo', DOCKER_REPO)}",)),
        DockerGroup(),
        TunedSysfs("thp-enabled", f"{THP_DIR}/enabled", "never", THP_OPTIONS["enabled"],
                   title="Transparent huge pages: never"),
        TunedSysfs("thp-defrag", f"{THP_DIR}/defrag", "never", THP_OPTIONS["defrag"],
                   title="Transparent huge page defrag: never"),
        IoScheduler(),
        Sysctl("vm.swappiness", 1, reason="keep VAST's memory in RAM; swap only to avoid the OOM killer"),
        Sysctl("vm.dirty_ratio", 10, reason="smaller bursts of dirty page writeback, steadier I/O latency"),
        Sysctl("vm.dirty_background_ratio", 5, reason="start background writeback early"),
        Sysctl("kernel.sched_migration_cost_ns", 5000000,
               reason="fewer task migrations between CPUs: steadier scheduling for VAST's fibers"),
        Sysctl("kernel.sched_autogroup_enabled", 0,
               reason="no per-session autogrouping: the containers' threads are scheduled as one workload"),
    ]
    if limits:
        steps += [
            Sysctl("fs.inotify.max_user_watches", 1048576, at_least=True, prefix="limits",
                   reason="the VAST containers watch many files", evidence="answers tuning.limits (on by default)"),
            Sysctl("fs.inotify.max_user_instances", 8192, at_least=True, prefix="limits",
                   reason="the VAST containers use many inotify instances",
                   evidence="answers tuning.limits (on by default)"),
            ServiceLimit(),
        ]
    return steps


def stage(steps: list[TuningStep], number: int) -> list[TuningStep]:
    return [step for step in steps if step.stage == number]


async def ensure(step: TuningStep, env: TuningEnv, bus: EventBus | None) -> Reading:
    """Check; apply when needed; verify. Emits TuningApplied and TuningChecked."""
    changed = await step.apply(env)
    if bus is not None:
        bus.emit(TuningApplied(id=step.id, changed=changed,
                               detail=f"{step.title}: {'applied' if changed else 'already in place'}"))
    return await step.verify(env, bus)


async def verify_all(steps: list[TuningStep], env: TuningEnv, bus: EventBus | None, *,
                     after_reboot: bool) -> dict[str, Reading]:
    readings = {step.id: await step.verify(env, bus, after_reboot=after_reboot) for step in steps}
    failing(readings, after_reboot=after_reboot)
    return readings


def failing(readings: dict[str, Reading], *, after_reboot: bool) -> None:
    bad = {step_id: r for step_id, r in readings.items() if not r.good}
    if not bad:
        return
    listed = "; ".join(f"{step_id}: observed {r.observed}" + (f" ({r.detail})" if r.detail else "")
                       for step_id, r in bad.items())
    when = "after the reboot" if after_reboot else "after applying it"
    raise RunFailed(f"{len(bad)} tuning(s) not in place {when}: {listed}",
                    hint="a setting made at run time only is lost at reboot; see the tuning table")
