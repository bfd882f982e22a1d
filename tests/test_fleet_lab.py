"""`fleet up` / `status` / `down` / `report` and `destroy` end to end on the lab's big cluster.

Heavy (two whole runs at once): one test for the fleet, one cheap one for destroy. Everything is
waited for through the runs themselves (the CLI returns when they end), never on wall time.
"""

from __future__ import annotations

import json

import pytest

from tui.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.lab,
              pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]

ANSWERS = "proxmox: {url: lab}\nvm: {name: class, vcpus: 12, memory_gib: 120, disk_gib: 1000}\nlab: {host_profile: big}\n"
OTHERS = {"201", "202", "203", "211", "221"}  # the VMs already on big's nodes (not ours)


def _lab_vms(state_dir) -> set[str]:
    return set(json.loads((state_dir / "pve" / "state.json").read_text())["vms"])


def test_two_members_come_up_in_parallel_and_go_down_leaving_others_vms(tmp_path, capsys):
    answers = tmp_path / "a.yaml"
    answers.write_text(ANSWERS)
    fleet = tmp_path / "class"
    assert main(["fleet", "up", str(answers), "--count", "2", "--run-dir", str(fleet), "--speed", "120"]) == 0
    out = capsys.readouterr().out
    assert "class-1              | " in out and "class-2              | " in out and "all members ONLINE" in out
    journal = [json.loads(line) for line in (fleet / "fleet.jsonl").read_text().splitlines()]
    assert [(e["member"], e["event"]) for e in journal if e["event"] == "finished"] and all(
        e["outcome"] == "online" for e in journal if e["event"] == "finished")
    for name in ("class-1", "class-2"):  # ordinary run directories, each naming the fleet's shared target
        meta = json.loads((fleet / name / "run.json").read_text())
        assert meta["outcome"] == "online" and meta["target_state"] == str((fleet / "target").resolve())
    assert main(["fleet", "status", str(fleet), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert sorted((m["name"], m["state"]) for m in status["members"]) == [("class-1", "ONLINE"), ("class-2", "ONLINE")]
    assert len({m["node"] for m in status["members"]}) == 2  # spread before stacking
    assert main(["fleet", "up", "--resume", str(fleet)]) == 0  # nothing left to do: no member runs again
    assert (fleet / "fleet.jsonl").read_text().count('"already-finished"') == 2
    assert main(["report", str(fleet)]) == 0
    report = (fleet / "report.md").read_text()
    assert "2 of 2 member cluster(s) ONLINE" in report and "(class-1/report.md)" in report
    assert main(["fleet", "down", str(fleet), "--yes"]) == 0
    assert capsys.readouterr().out.count("deleted VM") == 2
    assert main(["fleet", "status", str(fleet), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["members"] == []
    assert _lab_vms(fleet / "target") == OTHERS  # only our claimed VMs went


def test_destroy_removes_the_vm_of_a_stopped_single_run_and_only_it(tmp_path, capsys, monkeypatch):
    answers = tmp_path / "a.yaml"
    answers.write_text(ANSWERS)
    run = tmp_path / "run"
    assert main(["--auto", str(answers), "--run-dir", str(run), "--until", "create_vm", "--speed", "600"]) == 0
    assert len(_lab_vms(run / "lab") - OTHERS) == 1
    assert main(["report", str(run)]) == 0
    assert "**Left behind on the host:**" in (run / "report.md").read_text()  # the run stopped: its VM is debris
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["destroy", str(run)]) == 2  # headless without --yes: nothing deleted
    assert "add --yes" in capsys.readouterr().err
    assert main(["destroy", str(run), "--yes"]) == 0
    assert "deleted VM" in capsys.readouterr().out
    assert _lab_vms(run / "lab") == OTHERS
    assert json.loads((run / "run.json").read_text())["cleanup"]["left"] == []
    assert main(["report", str(run)]) == 0
    assert "Left behind" not in (run / "report.md").read_text()
    assert main(["destroy", str(run), "--yes"]) == 0
    assert "no VM claimed by these runs" in capsys.readouterr().out


def test_a_failed_member_does_not_stop_the_others(tmp_path, capsys):
    """Every create on pve1 fails (the lab's scheduled 500s): that member fails at create_vm, is
    diagnosed, and the other comes up all the same; the fleet exits 1."""
    answers = tmp_path / "a.yaml"
    answers.write_text(ANSWERS.replace("lab: {host_profile: big}", "lab: {host_profile: big, faults: {schedule: [\n"
                                       "  {kind: pve_500, method: POST, path: '^/nodes/pve1/qemu$', count: 1000}]}}"))
    fleet = tmp_path / "class"
    assert main(["fleet", "up", str(answers), "--count", "2", "--run-dir", str(fleet), "--speed", "120"]) == 1
    out = capsys.readouterr().out
    plan = json.loads((fleet / "fleet.json").read_text())
    on_pve1 = next(m["name"] for m in plan["members"] if m["node"] == "pve1")
    other = next(m["name"] for m in plan["members"] if m["node"] != "pve1")
    assert f"{on_pve1:<20} | " in out and "FAILED: create_vm" in out
    outcomes = {name: json.loads((fleet / name / "run.json").read_text())["outcome"] for name in (on_pve1, other)}
    assert outcomes == {on_pve1: "failed", other: "online"}
    assert plan["status"] == "failed"
