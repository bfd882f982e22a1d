"""`vast-loopback probe` against the lab: a host recorded read-only (no POST/PUT/DELETE reaches the
lab's Proxmox), holding none of the answers' secrets; the recording loaded back as the lab's host
gives the same `check` host facts, field by field; the built-in hosts are recordings; bad
recordings are bad input (exit 2), never a traceback."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from backend.lab.profiles import BUILT_IN, HOSTS_DIR, PROFILES, from_recording, load_profile
from backend.model import recording
from backend.run import probe
from backend.steps import hostcheck
from tests.proxmox_lab_support import lab_answers, open_lab, requests_log
from tui.cli import main

SECRETS = {"VLB_PROBE_TOKEN": "0f6e2a9c-probe-token-secret", "VLB_PROBE_GUEST": "guest-pw-never-written",
           "VLB_PROBE_VMS": "vms-pw-never-written"}


def _secret_answers(profile: str = "big"):
    return lab_answers(profile, proxmox={"url": "lab", "token_id": "root@pam!probe",
                                         "token_secret": "env:VLB_PROBE_TOKEN"},
                       guest={"password": "env:VLB_PROBE_GUEST"}, vast={"admin_password": "env:VLB_PROBE_VMS"})


async def _record(tmp_path: Path, answers, **options) -> recording.HostRecording:
    target = await open_lab(tmp_path / "lab", answers.section("lab").host_profile)
    try:
        return await probe.record_host(answers, target, **options)
    finally:
        await target.close()


async def test_a_probe_only_reads_and_writes_no_secret(tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    answers = _secret_answers()
    lab = tmp_path / "lab"
    target = await open_lab(lab, "big")
    try:
        before = len(requests_log(lab))
        host = await probe.record_host(answers, target)
        during = requests_log(lab)[before:]
        lab_secret = target.token_secret.reveal()
    finally:
        await target.close()
    assert during and {r["method"] for r in during} == {"GET"}
    out = tmp_path / "host.json"
    recording.write(out, host)
    text = out.read_text()
    assert out.stat().st_mode & 0o777 == 0o600
    for secret in [*SECRETS.values(), lab_secret]:
        assert secret not in text
    assert "PRIVATE KEY" not in text and "token" not in text.lower()
    data = json.loads(text)
    assert (data["format"], data["schema"], data["kind"]) == (recording.FORMAT, recording.SCHEMA_VERSION, "host")
    assert [n["node"] for n in data["nodes"]] == ["pve1", "pve2", "pve3"]
    node = data["nodes"][0]
    assert node["cpu"]["cores"] == 32 and node["cpu"]["threads"] == 64 and node["kernel"] == "6.8.12-9-pve"
    assert node["pveversion"].startswith("pve-manager/8.4.1/")
    assert {s["storage"]: s["type"] for s in node["storages"]} == {"local": "dir", "local-lvm": "lvmthin"}
    assert data["ova"]["nodes"] == ["pve1", "pve2", "pve3"] and data["ova"]["metadata"]["disks"]


async def test_the_sdn_vnet_is_recorded_with_its_zones_ipam_and_dhcp(tmp_path):
    answers = lab_answers("seed", lab={"host_profile": "seed", "network": {"sdn_vnet": True}})
    target = await open_lab_with(tmp_path / "lab", answers)
    try:
        host = await probe.record_host(answers, target)
    finally:
        await target.close()
    vnet = next(b for b in host.nodes[0].bridges if b.kind == "vnet")
    assert (vnet.zone, vnet.ipam, vnet.dhcp) == ("lab", "pve", "dnsmasq")
    assert from_recording(host).sdn_vnet


async def open_lab_with(state_dir: Path, answers):
    from backend.target import TargetOptions, open_target

    return await open_target(answers, TargetOptions(speed=600.0, state_dir=state_dir))


@pytest.mark.parametrize("node", ["pve1", "pve2", "pve3"])
async def test_recording_big_and_loading_it_gives_the_same_check_host_facts(tmp_path, node):
    host = await _record(tmp_path / "probe", lab_answers("big"))
    path = tmp_path / "big.json"
    recording.write(path, host)
    results = {}
    for profile in ("big", f"file:{path}"):
        answers = lab_answers(profile, proxmox={"url": "lab", "node": node})
        target = await open_lab_with(tmp_path / profile.replace("/", "_"), answers)
        try:
            results[profile] = await hostcheck.check_host(answers, target)
        finally:
            await target.close()
    original, replayed = results["big"]["host"], results[f"file:{path}"]["host"]
    assert set(original) == set(replayed)
    for field in original:
        if field == "fingerprint":  # each lab has its own certificate
            assert replayed[field] and replayed[field] != original[field]
            continue
        assert replayed[field] == original[field], field
    assert results["big"]["recommendation"] == results[f"file:{path}"]["recommendation"]


def test_the_built_in_hosts_are_recordings_shipped_with_the_lab():
    for name in BUILT_IN:
        data = json.loads((HOSTS_DIR / f"{name}.json").read_text())
        assert (data["format"], data["schema"], data["kind"], data["name"]) == (
            recording.FORMAT, recording.SCHEMA_VERSION, "host", name)
        loaded = load_profile(f"file:{HOSTS_DIR / name}.json")
        assert loaded.summary.startswith("the host recorded in ")
        assert dataclasses.replace(loaded, summary=PROFILES[name].summary) == PROFILES[name]
    seed = PROFILES["seed"].nodes[0]
    assert (seed.cores, seed.threads, seed.mem_total) == (12, 24, 131_907_216 * 1024)
    big = PROFILES["big"]
    # the host's own use; the recorded use also holds the running VMs of others, which the lab adds back
    assert [n.mem_used for n in big.nodes] == [6 * 1024**3, 5 * 1024**3, 6 * 1024**3]
    assert [sum(vm.cores for vm in n.vms if vm.status == "running") for n in big.nodes] == [6, 4, 8]


def test_anonymising_replaces_the_names_of_vms_nodes_and_cluster():
    host = recording.HostRecording(
        name="prod-cluster", pve_version="8.4.1", cluster_name="prod-cluster",
        nodes=(recording.NodeRecord(node="pve-finance", online=False),),
        vms=(recording.VmRecord(vmid=101, node="pve-finance", name="payroll-db", cores=8, memory_mib=32768,
                                status="running", tags=("prod",)),),
        ova=recording.OvaRecord(volid="local:import/x.ova", nodes=("pve-finance",)))
    anon = probe.anonymised(host)
    text = recording.to_json(anon)
    assert "payroll" not in text and "finance" not in text and "prod-cluster" not in text
    assert anon.vms[0] == dataclasses.replace(host.vms[0], name="vm-1", node="node1")
    assert anon.ova.nodes == ("node1",) and anon.anonymised
    assert recording.parse(json.loads(text)) == anon


def test_cli_probe_writes_the_recording(tmp_path, capsys):
    answers = tmp_path / "answers.yaml"
    answers.write_text("proxmox: {url: lab}\nlab: {host_profile: small}\n")
    out = tmp_path / "small.json"
    assert main(["probe", str(answers), "--record", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert from_recording(recording.load(out)) == dataclasses.replace(PROFILES["small"], name="pve-small", notes="",
                                                                      summary="")


def _bad(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("content", "said"), [
    (None, "no such recording"),
    ("{", "malformed JSON"),
    ('{"format": "vast-loopback-recording", "schema": 99, "kind": "host"}', "schema 99"),
    ('{"format": "vast-loopback-recording", "schema": 1, "kind": "host", "name": "x"}', "'pve_version' is missing"),
    ('{"format": "vast-loopback-recording", "schema": 1, "kind": "host", "name": "x", "pve_version": 9}',
     "expected str"),
    ('[1, 2]', "not a vast-loopback recording"),
])
def test_a_bad_recording_is_bad_input_for_the_lab_and_for_check(tmp_path, capsys, content, said):
    path = tmp_path / "host.json" if content is None else _bad(tmp_path, "host.json", content)
    assert main(["lab", "--host-profile", str(path), "--state-dir", str(tmp_path / "state")]) == 2
    assert said in capsys.readouterr().err
    answers = _bad(tmp_path, "answers.yaml", f"proxmox: {{url: lab}}\nlab: {{host_profile: 'file:{path}'}}\n")
    assert main(["check", str(answers)]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_an_unknown_node_and_bad_probe_arguments_are_bad_input(tmp_path, capsys):
    path = HOSTS_DIR / "big.json"
    answers = _bad(tmp_path, "answers.yaml",
                   f"proxmox: {{url: lab, node: pve9}}\nlab: {{host_profile: 'file:{path}'}}\n")
    assert main(["check", str(answers)]) == 2
    assert "no node 'pve9'" in capsys.readouterr().err
    assert main(["probe", "--record", str(tmp_path / "x.json")]) == 2
    assert main(["probe", str(answers), "--record", str(tmp_path / "nowhere" / "x.json")]) == 2
    assert main(["probe", "--guest", str(tmp_path / "no-run"), "--record", str(tmp_path / "g.json")]) == 2
    relative = _bad(tmp_path, "rel.yaml", "proxmox: {url: lab}\nlab: {host_profile: 'file:host.json'}\n")
    assert main(["check", str(relative)]) == 2
    assert "file:/ABSOLUTE/PATH" in capsys.readouterr().err
