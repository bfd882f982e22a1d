"""Guest-side stand-ins for the VAST tools of the lab, and what the host side knows about them.

Inside the lab guest, `/vast/bundles/vast_bootstrap.sh` and `/vast/deploy/vman.sh` are small bash
scripts that hand over to `player.py` (Python 3.6, standard library only, run with the guest's
`/usr/libexec/platform-python`). The player plays the guest's scenario timeline (written by the lab
at power-on, see `backend/lab/scenarios.py`) on the lab clock: it prints the install log, starts
containers through the guest's `docker`, and appends world events to an events file that the
lab's VMS (backend/lab/vms) and load model read. Because the player runs detached inside the guest,
the world keeps moving while the lab process is dead, and a restarted lab reads where it is.

Paths inside the guest (`GuestPaths` maps them to the host: /run and /dev/kmsg live in the boot's
runtime directory, the rest on the guest's disk):
    /run/lab/clock.json                the lab clock {scale, origin_wall, origin_target, holds} (lab writes)
    /run/lab/vast/scenario.json        the scenario timeline for this boot (lab writes at power-on)
    /run/lab/vast/vms.json             where this guest's VMS listens {host, port}, for vcli's login
                                       (lab writes whenever it gives the guest its VMS)
    /var/lib/lab/vast/events.jsonl     world events, one JSON object a line (the player appends)
    /var/lib/lab/vast/<tool>.lock      held while a tool runs (a second run is refused)
    /vast/vman/vms/log/workers.log     VAST's worker log (PANIC lines)
    /vast/vman/vms/log/vms.log         VMS log (leader connection errors)
    /dev/kmsg                          kernel messages (only appended when it is a regular file)
    /opt/lab/vast/player.py            the player (/usr/lib is this machine's, read-only, in the guest)
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent

CLOCK_PATH = "/run/lab/clock.json"
SCENARIO_PATH = "/run/lab/vast/scenario.json"
VMS_ADDRESS_PATH = "/run/lab/vast/vms.json"
EVENTS_PATH = "/var/lib/lab/vast/events.jsonl"
PLAYER_PATH = "/opt/lab/vast/player.py"
BOOTSTRAP_PATH = "/vast/bundles/vast_bootstrap.sh"
VMAN_PATH = "/vast/deploy/vman.sh"
BUILD = "release-5-4-0-2043819"
BUILD_NUMBER = BUILD.rsplit("-", 1)[1]
PACKAGE_PATH = f"/vast/bundles/vastdata_release_{BUILD_NUMBER}.vast.tar.gz"


class GuestPaths:
    """Where a guest path lives on this machine: the boot's runtime directory for /run and /dev/kmsg
    (recreated at every boot), the guest's disk for everything else. With no runtime directory,
    everything is under `disk` (a plain guest root, as the tests use)."""

    def __init__(self, disk: Path, runtime: Path | None = None) -> None:
        self.disk = Path(disk)
        self.runtime = Path(runtime) if runtime is not None else None

    def host(self, guest_path: str) -> Path:
        rel = guest_path.lstrip("/")
        if self.runtime is not None and (rel.startswith("run/") or rel == "dev/kmsg"):
            return self.runtime / rel
        return self.disk / rel

    def __repr__(self) -> str:
        return f"GuestPaths(disk={self.disk}, runtime={self.runtime})"


def as_paths(guest: GuestPaths | Path) -> GuestPaths:
    return guest if isinstance(guest, GuestPaths) else GuestPaths(Path(guest))


def guest_files(with_package: bool = False) -> dict[str, tuple[bytes, int]]:
    """Files to install on the lab guest's disk: guest path -> (content, mode).

    The release bundle placeholder (whose presence the tools and the preflight check) comes with
    the guest's disk; `with_package` adds a small one for a bare guest root (tests)."""
    files = {
        BOOTSTRAP_PATH: ((HERE / "vast_bootstrap.sh").read_bytes(), 0o755),
        VMAN_PATH: ((HERE / "vman.sh").read_bytes(), 0o755),
        PLAYER_PATH: ((HERE / "player.py").read_bytes(), 0o644),
    }
    if with_package:
        files[PACKAGE_PATH] = (b"lab placeholder of the VAST 5.4 release bundle\n", 0o644)
    return files


def install_guest_files(disk: Path, with_package: bool = False) -> None:
    """Write `guest_files()` on the guest's disk (idempotent; call it when the disk is seeded and at
    every boot, so a guest always has the current tools)."""
    for guest_path, (data, mode) in guest_files(with_package).items():
        target = Path(disk) / guest_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
        target.chmod(mode)


def _write_json(guest: GuestPaths | Path, guest_path: str, data: dict) -> None:
    target = as_paths(guest).host(guest_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, target)


def write_guest_clock(guest: GuestPaths | Path, clock_dict: dict) -> None:
    """Write the lab clock (`WorldClock.snapshot()`: {scale, origin_wall, origin_target, holds}) where
    the guest's tools read it; at every boot and whenever the lab's clock changes (a hold, a release,
    a new speed)."""
    _write_json(guest, CLOCK_PATH, clock_dict)


def write_guest_vms_address(guest: GuestPaths | Path, host: str, port: int) -> None:
    """Tell the guest's vcli stand-in where its VMS listens (the VMS checks its login)."""
    _write_json(guest, VMS_ADDRESS_PATH, {"host": host, "port": port})
