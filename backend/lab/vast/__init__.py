"""Guest-side stand-ins for the VAST tools of the lab, and what the host side knows about them.

Inside the lab guest, `/vast/bundles/vast_bootstrap.sh` and `/vast/deploy/vman.sh` are small bash
scripts that hand over to `player.py` (Python 3.6, standard library only, run with the guest's
`/usr/libexec/platform-python`). The player plays the guest's scenario timeline (written by the lab
at power-on, see `backend/lab/scenarios.py`) on the lab clock: it prints the install log, starts
containers through the guest's `docker`, and appends world events to an events file that the
lab's VMS (backend/lab/vms) and load model read. Because the player runs detached inside the guest,
the world keeps moving while the lab process is dead, and a restarted lab reads where it is.

Paths inside the guest (all relative to the guest's root):
    /run/lab/clock.json                the lab clock {scale, origin_wall, origin_target} (lab writes)
    /run/lab/vast/scenario.json        the scenario timeline for this boot (lab writes at power-on)
    /var/lib/lab/vast/events.jsonl     world events, one JSON object a line (the player appends)
    /var/lib/lab/vast/<tool>.lock      held while a tool runs (a second run is refused)
    /vast/vman/vms/log/workers.log     VAST's worker log (PANIC lines)
    /vast/vman/vms/log/vms.log         VMS log (leader connection errors)
    /dev/kmsg                          kernel messages (only appended when it is a regular file)
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

CLOCK_PATH = "/run/lab/clock.json"
SCENARIO_PATH = "/run/lab/vast/scenario.json"
EVENTS_PATH = "/var/lib/lab/vast/events.jsonl"
PLAYER_PATH = "/usr/lib/lab/vast/player.py"
BOOTSTRAP_PATH = "/vast/bundles/vast_bootstrap.sh"
VMAN_PATH = "/vast/deploy/vman.sh"
WORKERS_LOG = "/vast/vman/vms/log/workers.log"
VMS_LOG = "/vast/vman/vms/log/vms.log"
BUILD = "release-5-4-0-2043819"
BUILD_NUMBER = BUILD.rsplit("-", 1)[1]
PACKAGE_PATH = f"/vast/bundles/vastdata_release_{BUILD_NUMBER}.vast.tar.gz"


def in_guest(guest_root: Path, guest_path: str) -> Path:
    """A guest path (absolute, as the guest sees it) under the guest's root directory on the host."""
    return guest_root / guest_path.lstrip("/")


def guest_files() -> dict[str, tuple[bytes, int]]:
    """Files to install in the lab guest's root filesystem: guest path -> (content, mode).

    The release tarball is a placeholder of the OVA's bundle (its presence is what the tools and
    the preflight check); the scenario and clock files are written by the lab, not listed here."""
    return {
        BOOTSTRAP_PATH: ((HERE / "vast_bootstrap.sh").read_bytes(), 0o755),
        VMAN_PATH: ((HERE / "vman.sh").read_bytes(), 0o755),
        PLAYER_PATH: ((HERE / "player.py").read_bytes(), 0o644),
        PACKAGE_PATH: (b"lab placeholder of the VAST 5.4 release bundle\n", 0o644),
    }


def install_guest_files(guest_root: Path) -> None:
    """Write `guest_files()` under `guest_root` (idempotent)."""
    for guest_path, (data, mode) in guest_files().items():
        target = in_guest(guest_root, guest_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
        target.chmod(mode)
