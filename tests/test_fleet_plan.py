"""`fleet plan`: members placed by the sizing rules, counting the VMs already running; spread first."""

from __future__ import annotations

import json

import pytest

from backend.model.hostfacts import GIB, NodeFacts, StorageFacts
from backend.model.placement import Member, NodeLoad, place
from tui.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

MEMBER = Member(vcpus=12, memory_gib=120, disk_gib=1000, storage="local-lvm")
LVM = StorageFacts("local-lvm", "lvmthin", ("images",), 7000 * GIB, 6500 * GIB)


def node(name: str, cores: int = 32, mem_gib: float = 504, used_gib: float = 6, **kw) -> NodeFacts:
    return NodeFacts(node=name, online=True, cpu_model="x", sockets=2, cores=cores, threads=2 * cores,
                     mem_total=int(mem_gib * GIB), mem_used=int(used_gib * GIB), hvm=True,
                     storages=kw.pop("storages", (LVM,)), **kw)


def load(name: str, running_vcpus: int = 0, running_gib: float = 0, **kw) -> NodeLoad:
    return NodeLoad(node(name, used_gib=6 + running_gib * 0.62), running_vcpus=running_vcpus,
                    running_maxmem=int(running_gib * GIB), running_mem=int(running_gib * 0.62 * GIB), **kw)


def test_running_vcpus_count_against_the_cores():
    plan = place([load("a", 8), load("b", 9)], MEMBER, 4)
    assert plan.nodes_of == ["a", "b", "a"] and not plan.ok  # b: 9 + 24 > 32, so only one there
    assert plan.limits == ["cores"] and "only 3 of 4 fit (cores are the limit)" in plan.summary()


def test_spread_before_stacking():
    plan = place([load("a"), load("b"), load("c")], MEMBER, 3)
    assert sorted(plan.nodes_of) == ["a", "b", "c"]


def test_running_vms_memory_counts_at_their_maximum_not_their_use():
    # 504 GiB - 6 own - 300 that the running VM may grow to: one 120 GiB member, not two
    plan = place([load("a", 0, 300)], MEMBER, 2)
    assert plan.fits == 1 and plan.limits == ["memory"]
    assert "memory:" in plan.refusals["a"][0][1]


def test_the_ova_and_the_storage_must_be_there():
    missing = load("a", ova_missing="OVA: The OVA local:import/x.ova is not on node a.")
    nodisk = NodeLoad(node("b", storages=()))
    plan = place([missing, nodisk], MEMBER, 1)
    assert plan.fits == 0 and set(plan.limits) == {"ova", "storage"}
    assert "not on node a" in plan.summary() and "storage 'local-lvm' is not on b" in plan.summary()


def test_a_shared_storage_is_filled_by_every_node():
    nas = StorageFacts("nas", "nfs", ("images",), 3000 * GIB, 2500 * GIB, shared=True)
    member = Member(12, 120, 1000, "nas")
    plan = place([NodeLoad(node("a", storages=(nas,))), NodeLoad(node("b", storages=(nas,)))], member, 3)
    assert plan.fits == 2 and plan.limits == ["storage"]


ANSWERS = "proxmox: {url: lab}\nvm: {name: class, vcpus: 12, memory_gib: 120, disk_gib: 1000}\nlab: {host_profile: big}\n"


def test_big_takes_six_members_two_per_node_and_refuses_a_seventh_for_cores(tmp_path, capsys):
    answers = tmp_path / "a.yaml"
    answers.write_text(ANSWERS)
    assert main(["fleet", "plan", str(answers), "--count", "6", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] == 6 and {n["node"]: n["members"] for n in data["nodes"]} == {"pve1": 2, "pve2": 2, "pve3": 2}
    assert {m["name"] for m in data["members"]} == {f"class-{i}" for i in range(1, 7)}
    assert {(n["node"], n["vcpus_used"]) for n in data["nodes"]} == {("pve1", 30), ("pve2", 28), ("pve3", 32)}
    assert main(["fleet", "plan", str(answers), "--count", "7"]) == 3
    out = capsys.readouterr().out
    assert "only 6 of 7 fit (cores are the limit)" in out and "pve3: cores: 32 of 32 in use (8 by running VMs)" in out


def test_bad_input_exits_2_with_a_message(tmp_path, capsys):
    answers = tmp_path / "a.yaml"
    answers.write_text(ANSWERS.replace("name: class", "name: " + "x" * 62))
    assert main(["fleet", "plan", str(answers), "--count", "12"]) == 2
    assert "longer than Proxmox's 63 characters" in capsys.readouterr().err
    assert main(["fleet", "plan", str(answers), "--count", "0"]) == 2
    assert main(["fleet", "status", str(tmp_path)]) == 2
    assert "not a fleet directory" in capsys.readouterr().err
