"""Preflight: the field report's pre-installation checklist, on the host and in the guest, read
back just before the install (nothing is changed here).

Host side (the VM's configuration through the Proxmox API): vCPUs <= physical cores, ballooning
off, VirtIO SCSI single with an IO thread, cpu type host, memory, the guest agent answering.
Guest side (over SSH): KVM detected, THP, I/O scheduler, sysctls, memory and disk as the guest sees
them, the VAST bundle (`/vast/bundles/vast_bootstrap.sh` and the release tarball).

Each item is {"id", "title", "expected", "observed", "ok", "severity"}; severity is "blocker",
"warning" or "info". A failing blocker stops the run before anything expensive starts, except the
sizing blockers (vCPUs, memory, disk) when the user overrode them on purpose with --force: those
are reported with "overridden": true, as the sizing step does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from backend.clients.commands import sh
from backend.clients.guestssh import GuestClient
from backend.clients.proxmox import ProxmoxClient, VmRef
from backend.errors import RunFailed
from backend.events import PreflightChecked
from backend.model import sizing, vmconfig
from backend.model.guestmemory import guest_memtotal_kib, sized
from backend.run.bus import EventBus
from backend.steps import tuning

GIB = 1024**3
BUNDLE_DIR = "/vast/bundles"
BOOTSTRAP = f"{BUNDLE_DIR}/vast_bootstrap.sh"


@dataclass
class Item:
    id: str
    title: str
    expected: str
    observed: str
    ok: bool
    severity: str = "blocker"
    forceable: bool = False  # a sizing blocker that --force may override
    overridden: bool = False

    def to_dict(self) -> dict:
        data = {"id": self.id, "title": self.title, "expected": self.expected, "observed": self.observed,
                "ok": self.ok, "severity": self.severity}
        if self.overridden:
            data["overridden"] = True
        return data


def release_tarball(build: str) -> str:
    """'release-5-4-0-2043819' -> 'vastdata_release_2043819.vast.tar.gz' (as the bootstrap names it)."""
    number = build.rsplit("-", 1)[-1]
    return f"vastdata_release_{number}.vast.tar.gz"


def _flag(value: object) -> bool:
    return str(value).strip().lower() in ("1", "on", "yes", "true")


def host_items(config: dict, host_cores: int, agent_answers: bool) -> list[Item]:
    """Checks of the VM's configuration (GET .../config) against the host."""
    sockets = int(config.get("sockets", 1) or 1)
    cores = int(config.get("cores", 1) or 1)
    vcpus = vmconfig.vcpus_of(config) or 1
    memory_mib = int(str(config.get("memory", 0)).split(",")[0] or 0)
    balloon = config.get("balloon")
    drive = config.get(vmconfig.OS_DISK, "")
    _, options = vmconfig.parse_drive(drive) if drive else ("", {})
    cpu = str(config.get("cpu", "kvm64")).split(",")[0]
    if cpu.startswith("cputype="):
        cpu = cpu.split("=", 1)[1]
    controller = config.get("scsihw", "lsi")
    return [
        Item("vcpus_le_cores", "vCPUs not above the host's physical cores", f"<= {host_cores}",
             f"{vcpus} ({sockets} socket x {cores} cores)", vcpus <= host_cores, forceable=True),
        Item("ballooning_off", "Memory ballooning disabled", "balloon=0",
             f"balloon={balloon}" if balloon is not None else "balloon not set (ballooning on)",
             str(balloon) == "0"),
        Item("iothread", "VirtIO SCSI single with an IO thread on the OS disk",
             "virtio-scsi-single, iothread=1",
             f"{controller}, iothread={options.get('iothread', '0')}",
             controller == vmconfig.FINAL_CONTROLLER and _flag(options.get("iothread", "0"))),
        Item("cpu_host", "CPU type host", "host", cpu, cpu == "host"),
        Item("memory_vm", "VM memory", f">= {sized(sizing.MEMORY_MIN_GIB)}", sized(memory_mib / 1024),
             guest_memtotal_kib(memory_mib) >= sizing.GUEST_MIN_GIB * 1024**2, forceable=True),
        Item("guest_agent", "QEMU guest agent answering", "answers", "answers" if agent_answers else "no answer",
             agent_answers),
    ]


GUEST_PROBE = {
    "virt": sh("systemd-detect-virt"),
    "memtotal": "grep '^MemTotal:' /proc/meminfo",
    "memavailable": "grep '^MemAvailable:' /proc/meminfo",
    "nproc": sh("nproc"),
    "rootfs": "df -P -B1 / | tail -n 1",
}


def _kib(line: str) -> int:
    match = re.search(r"(\d+)\s*kB", line)
    return int(match.group(1)) * 1024 if match else 0


async def guest_items(guest: GuestClient, env: tuning.TuningEnv, build: str, vm_memory_mib: int,
                      vcpus: int) -> list[Item]:
    tarball = f"{BUNDLE_DIR}/{release_tarball(build)}"
    probe = dict(GUEST_PROBE)
    probe["bootstrap"] = f"test -x {sh(BOOTSTRAP)} && echo yes || echo no"
    probe["tarball"] = f"test -s {sh(tarball)} && echo yes || echo no"
    disk = await env.os_disk()
    probe["disk"] = sh("cat", f"/sys/block/{disk}/size")
    values, _ = tuning.parse_probe((await guest.run(tuning.probe_command(probe))).stdout)

    memtotal = _kib(values.get("memtotal", ""))
    available = _kib(values.get("memavailable", ""))
    root = values.get("rootfs", "").split()
    root_size = int(root[1]) if len(root) > 2 and root[1].isdigit() else 0
    root_free = int(root[3]) if len(root) > 3 and root[3].isdigit() else 0
    disk_bytes = int(values["disk"]) * 512 if values.get("disk", "").isdigit() else 0
    virt = values.get("virt") or "unknown"
    items = [
        Item("kvm", "Running under KVM", "kvm", virt, virt == "kvm"),
        Item("memory_guest", "Memory the guest sees (MemTotal)",
             f">= {sizing.GUEST_MIN_GIB:.1f} GiB (the field run's peak use; VM {vm_memory_mib / 1024:g} GiB)",
             f"{memtotal / GIB:.1f} GiB total, {available / GIB:.1f} GiB available",
             memtotal >= sizing.GUEST_MIN_GIB * GIB, forceable=True),
        Item("cpus_guest", "CPUs the guest sees", str(vcpus), values.get("nproc") or "unknown",
             values.get("nproc") == str(vcpus), severity="warning"),
        Item("disk", "OS disk", f">= {sizing.DISK_MIN_GIB} GiB",
             f"{disk} {disk_bytes / GIB:.0f} GiB; / {root_size / GIB:.0f} GiB, {root_free / GIB:.0f} GiB free",
             disk_bytes >= sizing.DISK_MIN_GIB * GIB * 0.98, forceable=True),
        Item("bundle_bootstrap", "VAST bootstrap script", BOOTSTRAP,
             "present" if values.get("bootstrap") == "yes" else "missing", values.get("bootstrap") == "yes"),
        Item("bundle_tarball", "VAST release tarball", tarball,
             "present" if values.get("tarball") == "yes" else "missing", values.get("tarball") == "yes"),
    ]
    wanted = [s for s in tuning.catalog(limits=False)
              if isinstance(s, tuning.TunedSysfs | tuning.IoScheduler | tuning.Sysctl)]
    for step in wanted:
        reading = await step.check(env)
        items.append(Item(step.id, step.title, step.expected, reading.observed, reading.good, severity="warning"))
    return items


async def run_preflight(*, proxmox: ProxmoxClient, vm: VmRef, guest: GuestClient, env: tuning.TuningEnv,
                        build: str, bus: EventBus | None, force: bool = False) -> list[dict]:
    """Every check, one PreflightChecked event; RunFailed when a blocker fails (see module doc)."""
    config = await proxmox.vm_config(vm)
    facts = await proxmox.node_facts(vm.node)
    agent = await proxmox.agent_ping(vm)
    items = host_items(config, facts.cores, agent)
    memory_mib = int(str(config.get("memory", 0)).split(",")[0] or 0)
    vcpus = vmconfig.vcpus_of(config) or 1
    items += await guest_items(guest, env, build, memory_mib, vcpus)
    blockers = judge(items, force)
    dicts = [i.to_dict() for i in items]
    if bus is not None:
        bus.emit(PreflightChecked(items=dicts, ok=not blockers))
    if blockers:
        listed = "; ".join(f"{i.title}: expected {i.expected}, observed {i.observed}" for i in blockers)
        raise RunFailed(f"preflight found {len(blockers)} blocker(s), nothing was installed: {listed}",
                        hint="fix them (or, for a sizing blocker, rerun with --force on purpose)")
    return dicts


def judge(items: list[Item], force: bool) -> list[Item]:
    """The failing blockers that stop the run; with --force the sizing ones are marked overridden."""
    for item in items:
        if not item.ok and item.severity == "blocker" and item.forceable and force:
            item.overridden = True
    return [i for i in items if not i.ok and i.severity == "blocker" and not i.overridden]
