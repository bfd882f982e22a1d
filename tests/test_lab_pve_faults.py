"""The lab's fault plan: errors, resets, hangs and expired tickets, scheduled or seeded, and recorded."""

from __future__ import annotations

import json

import pytest
import requests
from proxmoxer import ProxmoxAPI, ResourceException

from backend.lab.faults import Fault, FaultPlan, ScheduledFault
from tests.lab_pve_support import SECRET, client, start_world, wait_task

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def _faults(state_dir) -> list[dict]:
    path = state_dir / "faults.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_scheduled_503_then_a_reset(tmp_path):
    state = tmp_path / "lab"
    plan = FaultPlan(record=state / "faults.jsonl", schedule=[
        ScheduledFault("pve_503", method="GET", path=r"^/version$", nth=1),
        ScheduledFault("pve_reset", method="GET", path=r"^/version$", nth=2),
    ])
    world = start_world(state, faults=plan)
    try:
        api = client(world)
        with pytest.raises(ResourceException) as info:
            api.version.get()
        assert info.value.status_code == 503
        with pytest.raises(requests.exceptions.ConnectionError):
            api.version.get()
        assert api.version.get()["version"] == "9.1.3"  # the third call is served
        recorded = _faults(state)
        assert [(f["kind"], f["when"], f["path"]) for f in recorded] == [
            ("pve_503", "before", "/version"), ("pve_reset", "before", "/version")]
    finally:
        world.stop()


def test_a_create_whose_answer_is_lost_still_happened(tmp_path):
    state = tmp_path / "lab"
    plan = FaultPlan(record=state / "faults.jsonl", schedule=[
        ScheduledFault("pve_reset", method="POST", path=r"^/nodes/[^/]+/qemu$", after=True)])
    world = start_world(state, faults=plan)
    try:
        api = client(world)
        with pytest.raises(requests.exceptions.ConnectionError):
            api.nodes("pve").qemu.post(vmid=100, name="a", memory=1024)
        assert api.nodes("pve").qemu(100).config.get()["name"] == "a"  # check before retrying
        task = api.nodes("pve").tasks.get(vmid=100, source="all")[0]
        assert task["type"] == "qmcreate"
        assert _faults(state)[0]["when"] == "after"
    finally:
        world.stop()


def test_a_hang_lasts_until_the_client_gives_up(tmp_path):
    plan = FaultPlan(schedule=[ScheduledFault("pve_timeout", path=r"^/nodes$")])
    world = start_world(tmp_path / "lab", faults=plan)
    try:
        api = ProxmoxAPI(f"127.0.0.1:{world.pve.port}", user="root@pam", token_name="vlb", token_value=SECRET,
                         verify_ssl=False, timeout=0.5)
        with pytest.raises(requests.exceptions.Timeout):
            api.nodes.get()
        assert api.nodes.get()[0]["node"] == "pve"
    finally:
        world.stop()


def test_an_expired_ticket_fault_forces_a_new_login(tmp_path):
    plan = FaultPlan(schedule=[ScheduledFault("pve_ticket", path=r"^/cluster/nextid$")])
    world = start_world(tmp_path / "lab", faults=plan)
    try:
        url = world.pve.url + "/api2/json"
        login = {"username": "root@pam", "password": world.pve.password}
        ticket = requests.post(url + "/access/ticket", data=login, verify=False, timeout=5).json()["data"]["ticket"]
        expired = requests.get(url + "/cluster/nextid", cookies={"PVEAuthCookie": ticket}, verify=False, timeout=5)
        assert (expired.status_code, expired.reason) == (401, "permission denied - invalid PVE ticket")
        fresh = requests.post(url + "/access/ticket", data=login, verify=False, timeout=5).json()["data"]["ticket"]
        assert requests.get(url + "/cluster/nextid", cookies={"PVEAuthCookie": fresh}, verify=False, timeout=5).ok
    finally:
        world.stop()


def test_seeded_random_faults_are_reproducible_and_off_by_default():
    def run(seed: int) -> list[Fault | None]:
        plan = FaultPlan(rate=0.3, seed=seed, kinds=["pve_500", "pve_503", "pve_reset", "ssh_drop"])
        return [plan.decide("pve", "POST" if i % 2 else "GET", "/x") for i in range(60)]

    first, again, other = run(7), run(7), run(8)
    assert first == again and first != other
    assert {f.kind for f in first if f} <= {"pve_500", "pve_503", "pve_reset"}
    assert 5 < sum(1 for f in first if f) < 35
    assert all(not f.after for i, f in enumerate(first) if f and i % 2 == 0)  # GETs change nothing
    off = FaultPlan.off()
    assert not off.active and off.decide("pve", "GET", "/version") is None


def test_tasks_keep_running_through_faults(tmp_path):
    plan = FaultPlan(rate=0.4, seed=3, kinds=["pve_503"])
    world = start_world(tmp_path / "lab", faults=plan)
    try:
        api = client(world)
        upid = None
        while upid is None:
            try:
                upid = api.nodes("pve").qemu.post(vmid=100, name="a", memory=1024)
            except ResourceException:
                continue
        status = None
        while status is None or status["status"] == "running":
            try:
                status = wait_task(api, "pve", upid)
            except ResourceException:
                continue
        assert status["exitstatus"] == "OK"
    finally:
        world.stop()
