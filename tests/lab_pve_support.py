"""Helpers for the lab Proxmox API tests: a started lab world and a real proxmoxer client for it."""

from __future__ import annotations

import time
from pathlib import Path

from proxmoxer import ProxmoxAPI

from backend.lab.world import LabWorld

SECRET = "lab-test-token-0123456789"
OVA_DISK = "local:import/vast-5.4.0-loopback.ova/vast-5.4.0-loopback-disk1.vmdk"


def start_world(state_dir: Path, profile: str = "seed", speed: float = 600, **kwargs) -> LabWorld:
    return LabWorld(state_dir, profile, speed, token_secret=SECRET, **kwargs).start()


def client(world: LabWorld, secret: str = SECRET, **kwargs) -> ProxmoxAPI:
    assert world.pve is not None
    return ProxmoxAPI(f"127.0.0.1:{world.pve.port}", user="root@pam", token_name="vlb", token_value=secret,
                      verify_ssl=False, timeout=10, **kwargs)


def wait_task(api: ProxmoxAPI, node: str, upid: str, timeout: float = 20.0) -> dict:
    """Poll a task until it stops (wall seconds); returns its status."""
    deadline = time.monotonic() + timeout
    while True:
        status = api.nodes(node).tasks(upid).status.get()
        if status["status"] == "stopped" or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def create_args(vmid: int = 100, **extra: object) -> dict:
    """The VM the tool creates for the OVA's first boot (q35, LSI, cpu host, no balloon, agent)."""
    args = {
        "vmid": vmid, "name": "vast-loopback", "memory": 119808, "balloon": 0, "sockets": 1, "cores": 12,
        "cpu": "host", "machine": "q35", "scsihw": "lsi", "ostype": "l26", "agent": 1, "tags": "vlb",
        "scsi0": f"local-lvm:0,import-from={OVA_DISK},discard=on",
        "net0": "virtio,bridge=vmbr0", "import-working-storage": "local",
    }
    args.update(extra)
    return args


def allow_images_on_local(api: ProxmoxAPI) -> None:
    """`local` must carry 'images' to be the OVA's extraction (working) storage."""
    api.storage("local").put(content="iso,vztmpl,backup,import,images")
