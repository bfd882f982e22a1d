"""End to end on the lab: `vast-loopback --auto ANSWERS --until pre-install --speed 120` provisions
the VM (first boot on PVSCSI), grows the root filesystem to the disk, tunes the guest over real SSH,
switches the controller to VirtIO SCSI with one cold boot that is also the reboot proving the tuning
persists, verifies every tuning after it, passes the preflight and takes exactly one `pre-install`
snapshot; the report shows the root filesystem's size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.events import (
    PreflightChecked,
    RootFilesystemVerified,
    SnapshotCreated,
    StepFinished,
    TuningChecked,
    VmPowerChanged,
)
from backend.run.journal import RunDir
from backend.steps import tuning
from backend.steps.prepare import steps as prepare_steps
from tests.lab_fixtures import require_lab_guest

pytestmark = pytest.mark.slow


@pytest.fixture
def lab_with_guest(monkeypatch):
    """The lab world with the real guest side (`backend.lab.guest.lab.guest_factory`) while the world
    still defaults to its in-memory stand-in; a no-op once the lab wires the guest in itself."""
    require_lab_guest()
    from backend.lab import world
    from backend.lab.guest.lab import guest_factory

    if "stand-in" in (world.standin_guest_factory.__doc__ or ""):
        monkeypatch.setattr(world, "standin_guest_factory", guest_factory())


def test_auto_until_pre_install_ends_green_with_one_snapshot(tmp_path: Path, lab_with_guest, capsys):
    from tui import cli

    answers = tmp_path / "answers.yaml"
    answers.write_text("version: 1\nproxmox:\n  url: lab\n")
    run_dir = tmp_path / "run"
    code = cli.main(["--auto", str(answers), "--until", "pre-install", "--speed", "120", "--run-dir", str(run_dir)])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]

    events = list(RunDir.open(run_dir).events())
    finished = {e.step for e in events if isinstance(e, StepFinished) and e.ok}
    assert {s.id for s in prepare_steps()} <= finished

    after = {e.id: e for e in events if isinstance(e, TuningChecked) and e.after_reboot}
    assert set(after) == {s.id for s in tuning.catalog()}
    assert all(e.ok and e.persisted for e in after.values()), [e for e in after.values() if not e.ok]
    assert after["thp-enabled"].observed == "never" and after["io_scheduler"].observed == "mq-deadline"

    preflight = [e for e in events if isinstance(e, PreflightChecked)]
    assert len(preflight) == 1 and preflight[0].ok
    assert {"vcpus_le_cores", "ballooning_off", "iothread", "cpu_host", "guest_agent", "kvm",
            "bundle_bootstrap", "bundle_tarball"} <= {i["id"] for i in preflight[0].items}

    assert [e.name for e in events if isinstance(e, SnapshotCreated)] == ["pre-install"]
    requests = [json.loads(line) for line in (run_dir / "lab" / "pve-requests.jsonl").read_text().splitlines()]
    posts = [r for r in requests if r["method"] == "POST" and r["path"].endswith("/snapshot")]
    assert len(posts) == 1 and posts[0]["params"]["snapname"] == "pre-install"
    controller = [r for r in requests if r["method"] == "POST" and r["path"].endswith("/config")
                  and r["params"].get("scsihw") == "virtio-scsi-single"]
    assert len(controller) == 1 and "iothread=1" in controller[0]["params"]["scsi0"]

    # two boots: the first (PVSCSI) and the controller switch's, which proves the tuning persists
    assert [e.action for e in events if isinstance(e, VmPowerChanged)] == ["start", "shutdown", "start"]
    assert not [r for r in requests if r["path"].endswith("/status/reboot")]

    [root] = [e for e in events if isinstance(e, RootFilesystemVerified)]
    assert (root.device, root.fstype, root.grown, root.size_gib) == ("/dev/sda3", "xfs", True, 998.2)
    assert root.before_gib < 600
    assert cli.main(["report", str(run_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["root_filesystem"]["size_gib"] == 998.2
    rows = {r["parameter"]: r["value"] for r in report["config"]}
    assert rows["Root filesystem"].startswith("998 GiB (/dev/sda3, xfs;")
    assert rows["First-boot controller"] == "pvscsi"
    assert "| Root filesystem | 998 GiB" in (run_dir / "report.md").read_text()
