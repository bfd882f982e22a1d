"""`vast-loopback probe`: record a host (`probe ANSWERS --record FILE`) or a run's guest (`probe --guest
RUN_DIR --record FILE`) as a recording (backend/recording.py), read-only, and say what was recorded.

Never imports Textual. The file is written with the private writer (0600); it holds no secret.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from backend.errors import BadInput
from backend.model import answers as answers_mod
from backend.model import recording
from backend.run import probe, service
from backend.target import TargetOptions, default_speed, open_target


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr)


def _output(path: str) -> Path:
    out = Path(path)
    if out.is_dir():
        raise BadInput(f"--record {out}: is a directory; name the file to write")
    if not out.parent.is_dir():
        raise BadInput(f"--record {out}: no such directory {out.parent}")
    return out


def run_probe(answers_path: str, record: str, *, anonymise: bool, strict: bool, speed: float | None) -> int:
    from tui.headless import check_secrets

    out = _output(record)
    answers = answers_mod.load(answers_path)
    check_secrets(answers, strict)
    host = asyncio.run(_probe(answers, speed or default_speed(answers.proxmox.url), anonymise))
    recording.write(out, host)
    online = [n for n in host.nodes if n.online]
    ova = host.ova
    where = (f"on {', '.join(ova.nodes)}" if ova and ova.nodes else "not found") if ova else "not looked for"
    print(f"recorded Proxmox VE {host.pve_version}: {len(online)} of {len(host.nodes)} node(s) online, "
          f"{sum(len(n.storages) for n in online)} storage(s), {len(host.vms)} VM(s), OVA {where}"
          + (" (anonymised)" if host.anonymised else "") + f"\nwrote {out}")
    return 0


async def _probe(answers: answers_mod.Answers, speed: float, anonymise: bool) -> recording.HostRecording:
    with tempfile.TemporaryDirectory(prefix="vlb-probe-") as state:
        target = await open_target(answers, TargetOptions(speed=speed, state_dir=Path(state)))
        try:
            return await probe.record_host(answers, target, anonymise=anonymise, progress=_say)
        finally:
            await target.close()


def run_guest_probe(run_dir: str, record: str, *, strict: bool, speed: float | None) -> int:
    """The run's guest; the run must not be driven by another process meanwhile (its lock)."""
    out = _output(record)
    guest = asyncio.run(service.record_guest(run_dir, speed=speed, strict=strict, progress=_say))
    recording.write(out, guest)
    print(f"recorded the guest of VM {guest.vmid}: kernel {guest.kernel_release}, "
          f"{len(guest.initramfs_modules)} storage driver(s) in its initramfs, MemTotal "
          f"{guest.mem_total_kib} kB of a {guest.vm_memory_mib} MiB VM\nwrote {out}")
    return 0
