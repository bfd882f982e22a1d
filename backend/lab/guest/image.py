"""The image a lab VM's disk is imported from (the OVA): its kernel, its initramfs, its disk layout
and what its kernel keeps of the VM's RAM. `guest_image(ova)` reads the lab's answers' `lab.ova`:

- a variant of the lab's own OVA ("host-only", "generic"): the Rocky 8.10 kernel of the field run
  (`backend.lab.facts`, kernel section), the variant's initramfs, the field guest's disk layout on
  the OVA's 600 GiB disk, and MemTotal as `facts.guest_memtotal_kib` leaves it;
- `file:/PATH` of a guest recording (`vast-loopback probe --guest`): the recorded guest's image.
  * Kernel drivers: its kernel has the storage drivers the recording lists (as modules, loaded, in
    its initramfs, built in); a storage driver of the lab's Rocky kernel it lacks is found by no
    modprobe, modinfo or dracut, and a VM on that driver's controller does not boot. A recording
    without a list of modules has the lab's Rocky kernel's. `lsmod` shows the drivers it had
    loaded, its own SCSI HBA driver replaced by the replaying VM's (facts.HBA_MODULES).
  * Initramfs: the recorded drivers.
  * Disk: the recorded partitions, sizes and filesystem types (blockdev.from_disks), fitted to the
    VM's disk (blockdev.Layout.fit).
  * Memory: MemTotal is the VM's memory less the recorded overhead (the recorded VM's memory less
    its MemTotal, both in KiB: /proc/meminfo's "kB" are KiB), which changes with the VM's RAM as
    the kernel's does (facts.guest_memtotal_kib: the memmap is 1/64 of RAM, crashkernel=auto steps):
    a VM of the recorded memory shows the recorded MemTotal exactly.
  The lab keeps its own kernel release, UUIDs and everything else of the guest.

The kernel is on the VM's disk (`/var/lib/lab/kernel.env`, beside the layout in disk.env), as a real
VM's /lib/modules and boot command line are: it survives reboots and comes back with a snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.lab import facts
from backend.lab.guest import rocky
from backend.lab.guest.blockdev import LAYOUT, Layout, from_disks, ova_layout
from backend.lab.guest.fsutil import read_beneath
from backend.lab.guest.rootfs import initramfs_text, read_table
from backend.model import recording

KERNEL = "var/lib/lab/kernel.env"
KIB = 1024


@dataclass(frozen=True)
class GuestKernel:
    """The storage drivers the guest's kernel has (as modules, built in), those it loads at every boot
    besides its disk controller's, and the (VM memory MiB, MemTotal KiB) of a recording (0, 0: the
    lab's kernel, facts.guest_memtotal_kib)."""

    modules: frozenset[str] = facts.KERNEL_STORAGE_MODULES
    builtin: frozenset[str] = facts.KERNEL_BUILTIN
    loaded: tuple[str, ...] = facts.LOADED_AT_BOOT
    recorded_memory: tuple[int, int] = (0, 0)

    def has(self, module: str) -> bool:
        return module in self.modules or module in self.builtin

    @property
    def missing(self) -> frozenset[str]:
        """The storage drivers of the lab's Rocky kernel this kernel does not have."""
        return frozenset(m for m in facts.KERNEL_STORAGE_MODULES if not self.has(m))

    def memtotal_kib(self, memory_mib: int) -> int:
        """MemTotal of a VM with `memory_mib` of RAM (see the module's docstring)."""
        vm_mib, total_kib = self.recorded_memory
        model = facts.guest_memtotal_kib(memory_mib)
        if not vm_mib or not total_kib:
            return model
        return max(64 * KIB, model + total_kib - facts.guest_memtotal_kib(vm_mib))

    def env(self) -> str:
        values = {"KERNEL_MODULES": " ".join(sorted(self.modules)), "KERNEL_BUILTIN": " ".join(sorted(self.builtin)),
                  "LOADED_AT_BOOT": " ".join(self.loaded), "RECORDED_VM_MIB": self.recorded_memory[0],
                  "RECORDED_MEMTOTAL_KIB": self.recorded_memory[1]}
        return "# the lab guest's kernel: its storage drivers and memory overhead (what is on its disk)\n" + \
            "".join(f"{key}='{value}'\n" for key, value in values.items())

    @classmethod
    def parse(cls, text: str) -> GuestKernel:
        values = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip().strip("'")
        words = {key: tuple(values[key].split()) for key in ("KERNEL_MODULES", "KERNEL_BUILTIN", "LOADED_AT_BOOT")}
        memory = tuple(int(values.get(key, "0") or 0) for key in ("RECORDED_VM_MIB", "RECORDED_MEMTOTAL_KIB"))
        return cls(frozenset(words["KERNEL_MODULES"]), frozenset(words["KERNEL_BUILTIN"]), words["LOADED_AT_BOOT"],
                   (memory[0], memory[1]))


@dataclass(frozen=True)
class GuestImage:
    """What a VM imported from the OVA finds on its disk at its first boot."""

    kernel: GuestKernel
    initramfs: tuple[str, ...]  # the drivers dracut put in it
    dracut_arguments: str
    layout: Layout  # on the OVA's own disk; `Layout.fit` places it on the VM's

    def disk_files(self, disk_gib: int) -> dict[str, tuple[str, int]]:
        """The image's files on a VM disk of `disk_gib` (path under the disk: text, mode)."""
        return {rocky.INITRAMFS.lstrip("/"): (initramfs_text(self.initramfs, self.dracut_arguments), 0o600),
                LAYOUT: (self.layout.fit(disk_gib * 1024**3 // facts.SECTOR_BYTES).env(), 0o644),
                KERNEL: (self.kernel.env(), 0o644)}


def guest_image(ova: str) -> GuestImage:
    """The image `lab.ova` names: a variant of facts.OVA_INITRAMFS or `file:PATH` of a guest recording
    (RecordingError when it cannot be used, ValueError for an unknown variant)."""
    kver = "--kver " + rocky.KERNEL_RELEASE
    if ova.startswith("file:"):
        path = ova[len("file:"):]
        recorded = recording.load(path, kind="guest")
        assert isinstance(recorded, recording.GuestRecording)
        return from_recording(recorded, path)
    if ova not in facts.OVA_INITRAMFS:
        raise ValueError(f"unknown OVA variant {ova!r} (known: {', '.join(facts.OVA_VARIANTS)})")
    return GuestImage(GuestKernel(), facts.OVA_INITRAMFS[ova], kver + (" --no-hostonly" if ova == "generic" else ""),
                      ova_layout())


def _with_needs(modules: set[str]) -> set[str]:
    """The modules and those they need (modules.dep: a module comes with its dependencies), as the
    guest's module table (stubs/lib/kmods.tsv) lists them."""
    needs = {row[0]: [n for n in row[2].split(",") if n and n != "-"] for row in read_table("kmods.tsv")}
    found, queue = set(), list(modules)
    while queue:
        module = queue.pop()
        if module not in found:
            found.add(module)
            queue += needs.get(module, [])
    return found


def from_recording(recorded: recording.GuestRecording, source: str = "recording") -> GuestImage:
    """The image of a recorded guest (see the module's docstring)."""
    loaded = set(recorded.kernel_storage_modules)
    builtin = frozenset(recorded.kernel_builtin_modules) or facts.KERNEL_BUILTIN
    listed = set(recorded.kernel_modules) or facts.KERNEL_STORAGE_MODULES
    modules = frozenset(_with_needs(listed | loaded | set(recorded.initramfs_modules))) - builtin
    at_boot = tuple(m for m in facts.LOADED_AT_BOOT if m in loaded) + \
        tuple(sorted(loaded - set(facts.LOADED_AT_BOOT) - facts.HBA_MODULES - builtin))
    memory = (recorded.vm_memory_mib, recorded.mem_total_kib) if recorded.memory_overhead_kib > 0 else (0, 0)
    kernel = GuestKernel(modules, builtin, at_boot if loaded else facts.LOADED_AT_BOOT, memory)
    return GuestImage(kernel, recorded.initramfs_modules, "--kver " + rocky.KERNEL_RELEASE,
                      from_disks(recorded.disks, source) if recorded.disks else ova_layout())


def read_kernel(disk: Path) -> GuestKernel:
    """The kernel on a guest's disk (the lab's Rocky kernel for a disk seeded before kernels were kept)."""
    text = read_beneath(disk, KERNEL, "")
    try:
        return GuestKernel.parse(text) if text else GuestKernel()
    except (KeyError, ValueError):
        return GuestKernel()
