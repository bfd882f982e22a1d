"""The lab's one fault plan, from the answers to each part of the lab: scheduled and armed faults
count opportunities per part, random ones replay with their seed, and an `ssh_drop` cuts every SSH
connection to the guest a moment after a session opened (the client sees a real drop, reconnects,
and the cut is recorded in faults.jsonl)."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys

import pytest
import requests

from backend.errors import BadInput
from backend.events import GuestDisconnected, GuestReconnected
from backend.lab import faults as faults_mod
from backend.lab.faults import FaultPlan, ScheduledFault, plan_from_answers
from backend.lab.guest import lab as guest_lab_mod
from backend.lab.options import FaultAnswers
from backend.model import answers as answers_mod
from tests.conftest import REPO, ctrl_c_reaches_it
from tests.guest_lab_support import client, recording_bus
from tests.lab_fixtures import boot, hardware, open_lab

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def _recorded(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_every_nth_and_armed_faults_count_their_own_part():
    plan = FaultPlan(schedule=[ScheduledFault("ssh_drop", nth=2, every=3)])
    struck = [plan.decide("ssh", "session") is not None for _ in range(9)]
    assert struck == [False, True, False, False, True, False, False, True, False]
    assert plan.decide("pve", "GET", "/version") is None  # another part's opportunities are its own

    plan.arm("pve_503")
    assert plan.decide("ssh", "session") is None  # not the armed part
    assert plan.decide("pve", "GET", "/nodes").kind == "pve_503"
    assert plan.decide("pve", "GET", "/nodes") is None  # armed once, struck once
    with pytest.raises(ValueError):
        plan.arm("pve_418")


def test_the_answers_schedule_reaches_the_plan_and_bad_rules_are_refused():
    answers = answers_mod.parse(
        "proxmox: {url: lab}\n"
        "lab:\n  faults:\n    seed: 4\n    schedule:\n"
        "      - {kind: pve_reset, method: POST, path: '/qemu$', after: true}\n"
        "      - {kind: ssh_drop, every: 5}\n")
    plan = plan_from_answers(answers.section("lab").faults, None)
    assert plan.active and plan.rate == 0 and plan.seed == 4
    assert [(r.kind, r.method, r.after, r.every) for r in plan.schedule] == [
        ("pve_reset", "POST", True, 0), ("ssh_drop", None, False, 5)]
    assert plan.decide("pve", "POST", "/nodes/pve/qemu").after
    with pytest.raises(BadInput, match="not a regular expression"):
        answers_mod.parse("proxmox: {url: lab}\nlab: {faults: {schedule: [{kind: pve_500, path: '(unclosed'}]}}\n")
    with pytest.raises(BadInput):
        answers_mod.parse("proxmox: {url: lab}\nlab: {faults: {schedule: [{kind: disk_full}]}}\n")


def test_random_decisions_replay_with_the_seed_per_part():
    def decisions(seed: int) -> list[str | None]:
        plan = plan_from_answers(FaultAnswers(rate=0.2, seed=seed), None)
        out = []
        for i in range(200):
            source = ("pve", "ssh", "vms")[i % 3]
            fault = plan.decide(source, "GET" if source != "ssh" else "session", "/x")
            out.append(fault.kind if fault else None)
        return out

    first = decisions(11)
    assert first == decisions(11) and first != decisions(12)
    kinds = {k for k in first if k}
    assert {"ssh_drop", "vms_restart"} <= kinds and any(k.startswith("pve_") for k in kinds)
    assert "pve_ticket" not in kinds  # not among the answers' default kinds (API tokens do not expire)


async def test_an_ssh_drop_cuts_the_connection_and_the_client_comes_back(tmp_path, monkeypatch):
    monkeypatch.setattr(guest_lab_mod, "DROP_WITHIN_LAB_S", 0.0)  # cut at once: mid-command for sure
    record = tmp_path / "lab" / "faults.jsonl"
    plan = FaultPlan(schedule=[ScheduledFault("ssh_drop", nth=3)], record=record)
    lab = open_lab(tmp_path / "lab", faults=plan)
    plan.clock_now = lab.clock.now
    try:
        guest = boot(lab, hardware(100))
        bus = recording_bus(guest)
        ssh = await client(guest, bus)
        try:
            for i in range(4):  # the third session is cut under its command; it is run again
                result = await ssh.run(f"sleep 0.05; echo {i}")
                assert result.stdout == f"{i}\n"
            kinds = [type(e) for e in bus.seen if type(e) in (GuestDisconnected, GuestReconnected)]
            assert kinds == [GuestDisconnected, GuestReconnected]
        finally:
            await ssh.close()
        [cut] = _recorded(record)
        assert (cut["source"], cut["kind"], cut["vmid"]) == ("ssh", "ssh_drop", 100)
        assert cut["connections"] == 1 and cut["t"] > 0
    finally:
        lab.shutdown()


def test_a_drop_while_the_guest_is_down_is_not_recorded(tmp_path):
    """A cut scheduled for a guest that went down meanwhile cuts nothing and is no fault."""
    record = tmp_path / "lab" / "faults.jsonl"
    plan = FaultPlan(record=record)
    lab = open_lab(tmp_path / "lab", faults=plan)
    try:
        guest = boot(lab, hardware(100))
        lab_guest = lab.guest(guest.vmid)
        lab.power_off(guest.vmid, graceful=False)
        lab._drop_for_fault(lab_guest, faults_mod.Fault("ssh_drop"), 0.0)
        assert _recorded(record) == []
    finally:
        lab.shutdown()


def test_the_lab_command_injects_faults_when_asked(tmp_path):
    """`vast-loopback lab --fault-rate P --fault-seed N`: the served lab's requests meet faults, recorded."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "lab", "--speed", "60", "--state-dir", str(tmp_path / "lab"),
         "--fault-rate", "1", "--fault-seed", "3"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_reaches_it)
    try:
        lines = []
        while True:
            line = process.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        text = "".join(lines)
        assert "faults         rate 1 per request / SSH session, seed 3" in text
        url = re.search(r"Proxmox API\s+(\S+)", text).group(1)
        for _ in range(3):  # each reaches the lab (connected and sent, however busy the machine); a hung
            # answer (pve_timeout) is given up after half a second: its fault was recorded on arrival
            with contextlib.suppress(requests.RequestException):
                requests.get(url + "/version", verify=False, timeout=(60, 0.5))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0  # a generous bound on the lab's orderly stop, not a timing
    finally:
        if process.poll() is None:
            process.kill()
    recorded = _recorded(tmp_path / "lab" / "faults.jsonl")
    assert len(recorded) == 3 and {f["source"] for f in recorded} == {"pve"}
    refused = subprocess.run([sys.executable, "-m", "tui.cli", "lab", "--fault-rate", "2"], cwd=REPO,
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and "must be between 0 and 1" in refused.stderr
