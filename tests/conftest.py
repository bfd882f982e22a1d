"""Shared fixtures: where ../shared is, host facts of the lab's profiles, a fresh answers file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend.hostfacts import GIB, NodeFacts, StorageFacts

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VLB_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A file in ../shared, or skip the test with a clear reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the shared ground truth is not beside this checkout)")
    return path


def node(cores: int, threads: int, mem_gib: float, *, sockets: int = 1, name: str = "pve",
         storage_gib: float = 1800, used_gib: float = 3, hvm: bool = True, version: str = "9.1.3") -> NodeFacts:
    return NodeFacts(
        node=name, online=True, cpu_model="test cpu", sockets=sockets, cores=cores, threads=threads,
        mem_total=int(mem_gib * GIB), mem_used=int(used_gib * GIB), hvm=hvm, pve_version=version,
        storages=(
            StorageFacts("local", "dir", ("iso", "vztmpl", "backup", "import"), int(100 * GIB), int(80 * GIB)),
            StorageFacts("local-lvm", "lvmthin", ("images", "rootdir"), int(storage_gib * GIB),
                         int(storage_gib * GIB)),
        ),
        bridges=("vmbr0",),
    )


# A 128 GiB machine shows about 125.8 GiB to the OS; the lab's profiles use the same figures.
SEED = node(12, 24, 125.8)
SMALL = node(8, 16, 62.8)
BIG = node(32, 64, 503.8, sockets=2, storage_gib=7000)


@pytest.fixture
def seed_node() -> NodeFacts:
    return SEED
