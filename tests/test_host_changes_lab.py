"""Host-wide changes are shown and undone: the seed host's `local` holds the OVA but not 'images',
so the run adds 'images' to it for Proxmox to extract the disk (a change to storage.cfg for every
user of the host). `check` and Review warn about it; the run records it (HostChanged), removes
'images' again once the import is done (HostChangeReverted), lists it in the report, keeps it only
with `proxmox.keep_host_changes`; a run interrupted between the change and its revert leaves it in
the journal, and its resume reverts it."""

from __future__ import annotations

import asyncio

import pytest

from backend.analysis.report import save_report
from backend.clients.proxmox import ProxmoxClient
from backend.events import HostChanged
from backend.run.journal import RunDir
from backend.steps import hostchanges
from tests.proxmox_lab_support import lab_answers, open_lab, requests_to, run_provision

pytestmark = pytest.mark.slow


@pytest.fixture
async def seed(tmp_path):
    target = await open_lab(tmp_path / "lab", "seed")
    yield target
    await target.close()


async def local_content(target) -> list[str]:  # noqa: ANN001 - a Target
    client = await ProxmoxClient.connect(target)
    try:
        return str((await client.storage_config("local")).get("content", "")).split(",")
    finally:
        await client.close()


def content_puts(tmp_path) -> list[list[str]]:  # noqa: ANN001
    return [r["params"]["content"].split(",") for r in requests_to(tmp_path / "lab", "PUT", "/storage/local")]


async def test_the_storage_change_is_recorded_reverted_after_the_import_and_reported(tmp_path, seed):
    before = await local_content(seed)
    assert "images" not in before
    code, rec, ctx = await _provision_ok(tmp_path, seed, lab_answers("seed"))
    kinds = [e.kind for e in rec.events]
    changed, reverted = rec.of("HostChanged")[0], rec.of("HostChangeReverted")[0]
    assert changed.change == reverted.change == "storage-content:local:images" and not changed.kept
    assert "added 'images' to storage local's content" in changed.what and reverted.note == ""
    # made just before the create (the import), undone as soon as it ended, before the first boot
    assert kinds.index("HostChanged") < kinds.index("HostChangeReverted") < kinds.index("VmCreated")
    assert kinds.index("HostChangeReverted") < kinds.index("GuestAddressResolved")
    puts = content_puts(tmp_path)
    assert len(puts) == 2 and "images" in puts[0] and "images" not in puts[1]
    assert sorted(await local_content(seed)) == sorted(before)
    assert hostchanges.pending(ctx.run.events()) == {}
    report = save_report(ctx.run.path)[1].read_text()
    assert "### Changes to the host beyond the VM" in report
    assert "added 'images' to storage local's content" in report and "removed 'images'" in report


async def test_keep_host_changes_keeps_it_and_says_so(tmp_path, seed):
    code, rec, ctx = await _provision_ok(tmp_path, seed, lab_answers("seed", proxmox={"keep_host_changes": True}))
    assert rec.of("HostChanged")[0].kept and not rec.of("HostChangeReverted")
    assert len(content_puts(tmp_path)) == 1 and "images" in await local_content(seed)
    assert "kept (proxmox.keep_host_changes)" in save_report(ctx.run.path)[1].read_text()


async def test_a_run_interrupted_after_the_change_is_reverted_by_its_resume(tmp_path, seed):
    """Interrupted the moment the change is recorded (the import may still be running on the host,
    so the run leaves it): the journal holds it unreverted; the resume adopts the VM and reverts it."""
    answers = lab_answers("seed")
    task = asyncio.current_task()
    interrupted: list[HostChanged] = []

    def interrupt(event) -> None:  # noqa: ANN001 - an Event
        if isinstance(event, HostChanged) and not interrupted:
            interrupted.append(event)
            asyncio.get_running_loop().call_soon(task.cancel)

    with pytest.raises(asyncio.CancelledError):
        await run_provision(tmp_path, seed, answers, on_event=interrupt)
    assert interrupted
    run_dir = tmp_path / "run"
    assert list(hostchanges.pending(RunDir.open(run_dir).events())) == ["storage-content:local:images"]
    assert "images" in await local_content(seed)
    code, rec, ctx = await run_provision(tmp_path, seed, answers, resume_dir=run_dir)
    assert code == 0, [e.to_dict() for e in rec.of("RunFinished")]
    assert rec.of("HostChangeReverted") and not rec.of("HostChanged")
    assert "images" not in await local_content(seed)
    assert hostchanges.pending(ctx.run.events()) == {}
    assert len(requests_to(tmp_path / "lab", "POST", "/nodes/pve/qemu")) == 1


async def _provision_ok(tmp_path, target, answers):  # noqa: ANN001
    code, rec, ctx = await run_provision(tmp_path, target, answers)
    assert code == 0, [e.to_dict() for e in rec.of("RunFinished")]
    return code, rec, ctx

