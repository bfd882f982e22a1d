"""`vast-loopback lab`: serve the lab in the foreground and print how to reach it.

Prints the Proxmox API's URL, the token id and secret (the lab's own, or $VLB_LAB_TOKEN_SECRET),
the root@pam password for ticket auth, the TLS fingerprint to pin, the faults it injects
(`--fault-rate`, `--fault-seed`: the answers' default kinds) and a curl example, then runs
until Ctrl-C (or SIGTERM) and exits 0. The world stays in the state directory for the next start.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from backend.lab.assembly import vast_guest_factory
from backend.lab.faults import plan_from_answers
from backend.lab.guest.support import guest_unavailable_reason
from backend.lab.options import FaultAnswers
from backend.lab.world import LabWorld


def serve_foreground(profile: str = "seed", speed: float = 1.0, state_dir: str | os.PathLike | None = None,
                     port: int = 0, fault_rate: float = 0.0, fault_seed: int = 1) -> int:
    directory = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="vlb-lab-"))
    reason = guest_unavailable_reason()
    faults = (plan_from_answers(FaultAnswers(rate=fault_rate, seed=fault_seed), directory / "faults.jsonl")
              if fault_rate > 0 else None)
    world = LabWorld(directory, profile, speed, token_secret=os.environ.get("VLB_LAB_TOKEN_SECRET") or None,
                     port=port, faults=faults,
                     guest_factory=None if reason else vast_guest_factory(faults=faults)).start()
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        pve = world.pve
        assert pve is not None
        p = world.profile
        lines = [
            f"vast-loopback lab: host profile '{p.name}' (Proxmox VE {p.pve_version}, "
            f"nodes {', '.join(n.node for n in p.nodes)}), lab time x{world.speed:g}",
            f"  Proxmox API    {pve.url}/api2/json",
            f"  TLS SHA-256    {pve.fingerprint}",
            f"  API token      {pve.token_id}",
            f"  token secret   {pve.token_secret}",
            f"  ticket login   {pve.user} / {pve.password}",
            f"  state dir      {directory}",
            f"  schema         {pve.endpoints()['schema']}",
            (f"  faults         rate {fault_rate:g} per request / SSH session, seed {fault_seed}: "
             f"{', '.join(faults.kinds)} (recorded in {directory / 'faults.jsonl'})" if faults else
             "  faults         none (--fault-rate P to inject some)"),
            (f"  guests         none: {reason}" if reason else
             f"  guests         ssh centos@127.0.0.1 -p <port> (password centos), host key "
             f"{world.guest.host_key_fingerprint()}; printed here as each VM boots"),
            "",
            "try:",
            f"  curl -k -H 'Authorization: PVEAPIToken={pve.token_id}={pve.token_secret}' {pve.url}/api2/json/nodes",
            "",
            "Ctrl-C stops the lab.",
        ]
        shown: set[tuple[int, int]] = set()
        try:  # Ctrl-C from the moment the lab says how to stop it (a busy machine may deliver it at once)
            print("\n".join(lines), flush=True)
            while not stop.wait(0.5):
                for line in _guest_lines(world, shown):
                    print(line, flush=True)
        except KeyboardInterrupt:
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        world.stop()
    print("lab stopped", file=sys.stderr)
    return 0


def _guest_lines(world: LabWorld, shown: set[tuple[int, int]]) -> list[str]:
    """A line for each guest that came up (or moved) since the last look: where its SSH and VMS are."""
    listing = getattr(world.guest, "guests", None)
    lines = []
    for guest in (listing() if callable(listing) else []):
        vmid = guest.vmid
        if guest.state != "up" or (vmid, guest.ssh_port) in shown:
            continue
        shown.add((vmid, guest.ssh_port))
        vms = getattr(world.guest, "vms", {}).get(vmid)
        where = f", VMS https://127.0.0.1:{vms.port} once bootstrapped" if vms is not None else ""
        lines.append(f"  guest {vmid} up: ssh centos@127.0.0.1 -p {guest.ssh_port} ({guest.hw.ip} in the lab){where}")
    return lines
