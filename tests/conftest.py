"""Shared fixtures: where ../shared is, host facts of the lab's profiles, a fresh answers file."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import backend.lab  # noqa: F401  - registers the built-in target (proxmox.url: lab), as the entry point does
from backend.model.hostfacts import GIB, NodeFacts, StorageFacts

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


def ctrl_c_reaches_it() -> None:
    """`preexec_fn` of a child a test stops with Ctrl-C (SIGINT): it starts as from a terminal, with
    SIGINT's default action. A suite started in the background (`cmd &` in a script, as a CI runner
    or a nohup'd run may start it) has SIGINT ignored, a child inherits that, and Python then sets
    up no KeyboardInterrupt: the test's Ctrl-C would never reach it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failing test's report survives CPython 3.11's `ast` bookkeeping: pytest parses the failing
    source with `ast` while a lab thread may be formatting a traceback (3.11's carets parse too), and
    the two share one recursion counter (gh-106905), which ends the whole session in an INTERNALERROR
    that hides the failure. The report is built again once the other parse is done."""
    try:
        return (yield)
    except SystemError as exc:
        if "AST constructor recursion depth mismatch" not in str(exc):
            raise
        for _ in range(20):
            time.sleep(0.05)
            try:
                return pytest.TestReport.from_item_and_call(item, call)
            except SystemError:
                continue
        raise


@pytest.fixture(scope="session", autouse=True)
def no_lab_guest_outlives_the_tests(tmp_path_factory: pytest.TempPathFactory):
    """Every lab guest a test boots is ended by the test (a finished run ends its own). One that
    is still running at the end is ended here and named, so a leaking test shows in the output
    instead of leaving processes on the CI machine."""
    yield
    from tests.tui_lab_helpers import ended_by_world

    root = tmp_path_factory.getbasetemp()
    leaked = [str(world.relative_to(root)) for world in ended_by_world(root)]
    if leaked:
        import warnings

        warnings.warn(f"lab guests left running by tests (ended now): {', '.join(leaked)}", stacklevel=1)
