"""The memory a Rocky 8.10 guest sees (MemTotal) for a Proxmox VM's `memory` setting, and back.

Proxmox's `memory` is what the VM has; the field report's "97 / 109 / 117 GB" and every figure of
its traces are what the guest saw (`free -h`, /proc/meminfo's MemTotal). The EL8 kernel keeps part
of the VM's RAM for itself, so the two differ by about 2.5 GiB on a 120 GiB VM.

Source: ../shared/research/ground-truth.md §2, from the field guest's boot log (dmesg_live.log).
The field VM had `memory: 122880` (120 GiB); its guest's MemTotal was 123223064 kB (117.51 GiB) in
all 634 samples of memory.log. The kernel's share decomposes as: 572 kB of e820 holes, the
struct-page memmap (exactly 1/64 of RAM), crashkernel=auto's reserve (512 MB above 64 GB of RAM,
256 MB from 4 to 64 GB, per RHEL 8's kdump memory requirements), about 147.6 MB of kernel image,
initrd, SWIOTLB and per-CPU areas, less 32452 kB of init memory freed after boot. Hence, for a VM
of M MiB:

    MemTotal_kB ~= 1008 * M - 640000            (M > 64 GiB; 1008 = 1024 * (1 - 1/64))
    MemTotal_kB ~= 1008 * M - 640000 + 262144   (4 GiB < M <= 64 GiB: crashkernel is 256 MB)

ground-truth.md's 640000 is used here as the decomposition's exact 639976, so that M = 122880 gives
the field's 123223064 kB; it reproduces M = 114688 (jv 04-First-Boot.md's tmpfs, sized at
MemTotal/2) to within 1 MB. The constants assume q35 with SeaBIOS and 12 vCPUs; OVMF, other
machine types and other vCPU counts shift them by a few MB.
"""

from __future__ import annotations

import math

KIB_KEPT_PER_MIB = 1008  # 1024 KiB less the struct-page memmap's 1/64
FIXED_OVERHEAD_KIB = 639_976  # 572 + 524288 + 147568 - 32452 kB (ground-truth rounds it to 640000)
SMALL_CRASHKERNEL_RELIEF_KIB = 262_144  # crashkernel=auto takes 256 MB, not 512 MB, up to 64 GB
CRASHKERNEL_TIER_MIB = 65_536  # 64 GiB
KIB_PER_GIB = 1024 * 1024


def guest_memtotal_kib(vm_mib: int) -> int:
    """MemTotal (kB) of the Rocky 8.10 guest of a VM with `memory: vm_mib`."""
    kib = KIB_KEPT_PER_MIB * vm_mib - FIXED_OVERHEAD_KIB
    if vm_mib <= CRASHKERNEL_TIER_MIB:
        kib += SMALL_CRASHKERNEL_RELIEF_KIB
    return max(0, kib)


def vm_mib_for(memtotal_kib: float) -> int:
    """The smallest `memory` (MiB) whose guest sees at least `memtotal_kib`."""
    small = math.ceil((memtotal_kib + FIXED_OVERHEAD_KIB - SMALL_CRASHKERNEL_RELIEF_KIB) / KIB_KEPT_PER_MIB)
    if small <= CRASHKERNEL_TIER_MIB:  # up to 64 GiB the smaller crashkernel leaves more
        return max(0, small)
    return max(CRASHKERNEL_TIER_MIB + 1, math.ceil((memtotal_kib + FIXED_OVERHEAD_KIB) / KIB_KEPT_PER_MIB))


def guest_gib(vm_gib: float) -> float:
    """GiB the guest sees (MemTotal) for a VM of `vm_gib` GiB."""
    return guest_memtotal_kib(round(vm_gib * 1024)) / KIB_PER_GIB


def vm_gib_for_guest(guest_gib_wanted: float) -> int:
    """The smallest whole-GiB VM whose guest sees at least `guest_gib_wanted` GiB."""
    return math.ceil(vm_mib_for(guest_gib_wanted * KIB_PER_GIB) / 1024)


def both(vm_gib: float) -> str:
    """Both units, as every memory figure is shown: 'VM 120 GiB, the guest sees ≈117.5 GiB'."""
    return f"VM {vm_gib:g} GiB, the guest sees ≈{guest_gib(vm_gib):.1f} GiB"


def sized(vm_gib: float) -> str:
    """A VM size in a sentence, with what its guest sees: '120 GiB (the guest sees ≈117.5 GiB)'."""
    return f"{vm_gib:g} GiB (the guest sees ≈{guest_gib(vm_gib):.1f} GiB)"
