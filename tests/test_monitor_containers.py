"""Per-container memory as `docker stats` shows it, read from hand-made cgroup v1 and v2 trees
(cgroupfs and systemd drivers), with container names from docker's config.v2.json or, failing
that, from `docker ps` run at most once a minute."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from backend.monitor import agent
from tests.monitor_support import AgentProcess, fake_root, write

HOST = 123223064 * 1024
VMS = "a" * 64
MCDB = "b" * 64
TRIAL = "c" * 64


def v1_tree(cgroup: Path) -> None:
    memory = cgroup / "memory"
    write(memory / "memory.usage_in_bytes", "99999999\n")  # the root group
    vms = memory / "docker" / VMS  # cgroupfs driver
    write(vms / "memory.usage_in_bytes", "1000000\n")
    write(vms / "memory.limit_in_bytes", "9223372036854771712\n")  # unlimited: capped at the host's memory
    write(vms / "memory.stat", "cache 500000\ninactive_file 100000\ntotal_cache 500000\ntotal_inactive_file 300000\n")
    mcdb = memory / "system.slice" / f"docker-{MCDB}.scope"  # systemd driver
    write(mcdb / "memory.usage_in_bytes", "2000000\n")
    write(mcdb / "memory.limit_in_bytes", "4294967296\n")
    # total_inactive_file not smaller than usage: docker falls through to inactive_file
    write(mcdb / "memory.stat", "inactive_file 500000\ntotal_inactive_file 2000000\n")
    write(memory / "system.slice" / "sshd.service" / "memory.usage_in_bytes", "1\n")  # not a container


def v2_tree(cgroup: Path) -> None:
    write(cgroup / "cgroup.controllers", "cpuset cpu io memory pids\n")
    vms = cgroup / "system.slice" / f"docker-{VMS}.scope"
    write(vms / "memory.current", "5000000\n")
    write(vms / "memory.max", "max\n")
    write(vms / "memory.stat", "anon 3000000\nfile 2000000\nactive_file 1000000\ninactive_file 1000000\n")
    trial = cgroup / "docker" / TRIAL
    write(trial / "memory.current", "3000\n")
    write(trial / "memory.max", "2147483648\n")
    write(trial / "memory.stat", "inactive_file 9000\n")  # larger than usage: usage as is


def names(docker: Path, **named: str) -> None:
    for cid, name in named.items():
        write(docker / "containers" / cid / "config.v2.json", json.dumps({"ID": cid, "Name": "/" + name}))


def test_cgroup_v1_usage_minus_total_inactive_file(tmp_path):
    v1_tree(tmp_path / "cgroup")
    names(tmp_path / "docker", **{VMS: "vast_vms", MCDB: "vast_mcdb"})
    containers = agent.Containers(str(tmp_path / "cgroup"), str(tmp_path / "docker"), allow_docker_ps=False)
    assert containers.version == 1
    assert containers.sample(0.0, HOST) == {
        "vast_vms": {"mem": 1000000 - 300000, "limit": HOST},
        "vast_mcdb": {"mem": 2000000 - 500000, "limit": 4294967296},
    }


def test_cgroup_v2_usage_minus_inactive_file(tmp_path):
    v2_tree(tmp_path / "cgroup")
    names(tmp_path / "docker", **{VMS: "vast_vms"})
    containers = agent.Containers(str(tmp_path / "cgroup"), str(tmp_path / "docker"), allow_docker_ps=False)
    assert containers.version == 2
    assert containers.sample(0.0, HOST) == {
        "vast_vms": {"mem": 4000000, "limit": HOST},
        TRIAL[:12]: {"mem": 3000, "limit": 2147483648},  # no name known: the short id
    }


def test_names_from_docker_ps_at_most_once_a_minute(tmp_path, monkeypatch):
    v2_tree(tmp_path / "cgroup")
    calls = tmp_path / "calls"
    fake = write(tmp_path / "bin" / "docker",
                 f"#!/bin/sh\necho x >> {calls}\necho '{VMS} vast_vms'\necho '{TRIAL} vast_trial,alias'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    containers = agent.Containers(str(tmp_path / "cgroup"), str(tmp_path / "no-docker-dir"))
    assert set(containers.sample(100.0, HOST)) == {"vast_vms", "vast_trial"}
    new = "d" * 64  # a container that appears later, unknown to the last `docker ps`
    write(tmp_path / "cgroup" / "docker" / new / "memory.current", "10\n")
    write(tmp_path / "cgroup" / "docker" / new / "memory.max", "max\n")
    write(tmp_path / "cgroup" / "docker" / new / "memory.stat", "inactive_file 0\n")
    assert new[:12] in containers.sample(110.0, HOST)  # listed again after 5 s; docker ps not yet
    assert calls.read_text().count("x") == 1
    containers.sample(161.0, HOST)
    assert calls.read_text().count("x") == 2


def test_a_container_that_went_away_is_dropped(tmp_path):
    v2_tree(tmp_path / "cgroup")
    containers = agent.Containers(str(tmp_path / "cgroup"), str(tmp_path / "docker"), allow_docker_ps=False)
    assert len(containers.sample(0.0, HOST)) == 2
    trial = tmp_path / "cgroup" / "docker" / TRIAL
    for child in trial.iterdir():
        child.unlink()
    trial.rmdir()
    assert set(containers.sample(1.0, HOST)) == {VMS[:12]}
    assert set(containers.sample(2.0, HOST)) == {VMS[:12]}


def test_the_agent_samples_containers_under_its_root(tmp_path):
    root = fake_root(tmp_path)
    v2_tree(root / "sys" / "fs" / "cgroup")
    names(root / "var" / "lib" / "docker", **{VMS: "vast_vms", TRIAL: "vast_trial"})
    with AgentProcess("--root", str(root), "--interval", "0.2", "--count", "1", "--no-docker-ps") as run:
        hello = run.line("hello")
        sample = run.line("sample")
    assert "containers" not in [w["part"] for w in hello["warnings"]]
    assert sample["containers"] == {"vast_trial": {"mem": 3000, "limit": 2147483648},
                                    "vast_vms": {"mem": 4000000, "limit": HOST}}
