"""Memory end to end on the lab, headless: the field's demand meets a VM too small for it at the
moment the data say, and the product names the cause and a VM size that passes.

`vast-loopback --auto --force` (a subprocess, as a user runs it) on the seed host:
- 12 vCPUs and a 112 GiB VM (its guest sees 109.6 GiB): the field run's demand crosses that about
  53 s into ACTIVATING (its ramp to 112 GiB at 18:49:33); the OOM killer strikes, the install fails,
  the diagnosis is memory with the field's 120 GiB VM as its remedy, which the sizing passes;
- 24 vCPUs and a 112 GiB VM in the lab's "field-ramp" reading of the overcommitted world (where the
  sources leave attempt 1's vCPUs open): the OOM comes first, the collapse names the overcommit, and
  the one retry's remedy fixes both. (The "support-case" reading, attempt 2's PANIC without OOM, is
  the demo's overcommit scenario: tests/test_tui_demo.py.)
The 120 GiB VM reaching ONLINE is every success run's (tests/test_faults_survived.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backend.lab.vast.vaststate import VastWorld, fold, read_events
from backend.model.sizing import Proposal, evaluate
from tests.conftest import SEED
from tests.lab_fixtures import require_lab_guest

pytestmark = [pytest.mark.slow, pytest.mark.lab]

SPEED = "120"  # as the other lab runs: the engine's own wall-bound work counts speed-fold in lab time


def _run(tmp_path: Path, vm: str, lab: str = "") -> tuple[int, list[dict], VastWorld]:
    require_lab_guest()
    answers = tmp_path / "answers.yaml"
    answers.write_text(f"proxmox: {{url: lab}}\nvm: {{name: vast-lb, {vm}, disk_gib: 1000}}\n{lab}")
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "tui.cli", "--auto", str(answers), "--force", "--speed", SPEED,
                             "--run-dir", str(run_dir), "--json"], capture_output=True, text=True, timeout=900,
                            check=False)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    worlds = list((run_dir / "lab" / "guests").glob("*/disk/var/lib/lab/vast/events.jsonl"))
    assert events and worlds, (result.stdout[-1500:], result.stderr[-1500:])
    world = fold(read_events(worlds[0]))
    return result.returncode, events, world  # the product's view, and the lab's own on the lab clock


def _diagnoses(events: list[dict]) -> dict[str, dict]:
    return {item["id"]: item for e in events if e["type"] == "DiagnosisMade" for item in e["items"]}


def test_a_112_gib_vm_meets_the_oom_killer_during_activation_and_is_diagnosed_as_memory(tmp_path):
    code, events, world = _run(tmp_path, "vcpus: 12, memory_gib: 112")
    assert code == 1
    activating = next(t for t, state in world.state_changes if state == "ACTIVATING")
    assert world.ooms and world.ooms[0] - activating == pytest.approx(52.6, abs=1.5)  # the field's ramp crosses 109.6 GiB
    assert any(e["type"] == "KernelMessageSeen" and "Out of memory: Killed" in e["text"] for e in events)
    oom = _diagnoses(events)["oom"]
    assert oom["severity"] == "critical" and oom["changes"] == {"memory_gib": 120}
    assert "120 GiB (the guest sees ≈117.5 GiB)" in oom["remedy"]
    assert evaluate(SEED, Proposal(12, oom["changes"]["memory_gib"], 1000, "local-lvm")).ok  # a size that passes


def test_an_oom_on_24_vcpus_in_the_field_ramp_world_is_diagnosed_as_both(tmp_path):
    code, events, world = _run(tmp_path, "vcpus: 24, memory_gib: 112", "lab: {overcommit_memory: field-ramp}\n")
    assert code == 1 and world.ooms and not world.panics
    diagnoses = _diagnoses(events)
    assert {"oom", "overcommit"} <= set(diagnoses)
    assert diagnoses["oom"]["changes"] == {"memory_gib": 120, "vcpus": 12}
