"""The guest's address from sources a real host has (backend/steps/guestaddr.py), against the lab over real
sockets and real network namespaces: the neighbour table of a jump host on vmbr0's layer 2, Proxmox's
IPAM on an SDN VNet, the guest agent once installed; and the refusal, up front, when none can work
from where vast-loopback runs (`check` and `--auto` exit 3 naming the remedy)."""

from __future__ import annotations

import ipaddress
import json

import asyncssh
import pytest

from backend.clients.proxmox import ProxmoxClient, VmRef
from backend.lab import facts
from backend.lab.guest.support import guest_unavailable_reason
from backend.run.engine import Engine, RunContext, RunOptions
from backend.run.journal import Journal, RunDir
from backend.steps import guestaddr, hostcheck, provision
from backend.target import TargetOptions, open_target
from tests.proxmox_lab_support import SPEED, Recorder, lab_answers, requests_to

pytestmark = pytest.mark.skipif(guest_unavailable_reason() is not None,
                                reason=guest_unavailable_reason() or "")

ELSEWHERE = {"host_profile": "seed", "network": {"jump_host": "elsewhere"}}
WITH_VNET = {"host_profile": "seed", "network": {"sdn_vnet": True}}
LAN = f"{facts.LAN_PREFIX}.0/{facts.LAN_PREFIXLEN}"


async def _target(tmp_path, answers, speed: float = SPEED):
    return await open_target(answers, TargetOptions(speed=speed, state_dir=tmp_path / "lab"))


async def _provision(tmp_path, target, answers, *, force=False):
    run = RunDir.create(tmp_path / "run", answers.vm.name)
    rec = Recorder(target.clock)
    journal = Journal(run)
    rec.bus.subscribe(journal)
    ctx = RunContext(answers=answers, target=target, bus=rec.bus, run=run, options=RunOptions(force=force))
    code = await Engine(ctx, provision.steps()).run()
    journal.close()
    return code, rec, ctx


def _answers_file(tmp_path, lab: dict, **sections) -> str:
    path = tmp_path / "answers.yaml"
    path.write_text(json.dumps({"proxmox": {"url": "lab"}, "lab": lab, **sections}))
    return str(path)


# --- refused up front -------------------------------------------------------------------------------


def test_dhcp_on_a_bridge_this_machine_cannot_see_is_refused_by_check(tmp_path, capsys):
    from tui.cli import main

    assert main(["check", _answers_file(tmp_path, ELSEWHERE), "--json"]) == 3
    result = json.loads(capsys.readouterr().out)
    blocker = next(f for f in result["findings"] if f["id"] == guestaddr.FINDING_BLOCKED)
    assert blocker["severity"] == "blocker" and "no interface on vmbr0's subnet " + LAN in blocker["message"]
    assert blocker["remedy"].startswith("Set guest.address") and "SDN VNet" in blocker["remedy"]
    assert result["host"]["local_networks"]["interfaces"][0]["address"] == facts.JUMP_HOST_ELSEWHERE.split("/")[0]

    assert main(["check", _answers_file(tmp_path, ELSEWHERE, guest={"address": "192.168.30.109"})]) == 0
    assert "ok" in capsys.readouterr().out.splitlines()[-1]


def test_auto_is_refused_with_exit_3_before_anything_is_created(tmp_path, capsys):
    from tui.cli import main

    code = main(["--auto", _answers_file(tmp_path, ELSEWHERE), "--run-dir", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 3
    assert "guest.address is 'dhcp'" in out + err and "Set guest.address" in out + err
    assert "Traceback" not in out + err


async def test_check_says_where_the_address_comes_from_when_it_can(tmp_path):
    target = await _target(tmp_path, lab_answers(lab=WITH_VNET))
    try:
        on_lan = await hostcheck.check_host(lab_answers(lab=WITH_VNET), target)
        on_vnet = await hostcheck.check_host(lab_answers(lab=WITH_VNET, vm={"bridge": facts.SDN_VNET}), target)
    finally:
        await target.close()
    assert on_lan["ok"] and on_vnet["ok"]
    lan_source = next(f for f in on_lan["findings"] if f["id"] == guestaddr.FINDING_SOURCE)
    assert "neighbour table" in lan_source["message"] and "layer 2" in lan_source["message"]
    vnet_source = next(f for f in on_vnet["findings"] if f["id"] == guestaddr.FINDING_SOURCE)
    assert "IPAM" in vnet_source["message"] and facts.SDN_ZONE in vnet_source["message"]


# --- the sources, over the lab ----------------------------------------------------------------------


async def test_the_neighbour_path_finds_the_guests_real_address_by_its_mac(tmp_path):
    answers = lab_answers()
    target = await _target(tmp_path, answers)
    try:
        code, rec, ctx = await _provision(tmp_path, target, answers)
        client = await ProxmoxClient.connect(target)
        try:
            net0 = (await client.vm_config(VmRef("pve", ctx.facts.vmid))).get("net0")
            ipam = await client.ipam_entries()
        finally:
            await client.close()
    finally:
        await target.close()
    assert code == 0
    resolved = rec.of("GuestAddressResolved")[0]
    mac = net0.split(",")[0].split("=")[1].upper()
    assert resolved.source == guestaddr.SOURCE_NEIGHBOURS
    assert ipaddress.ip_address(resolved.address) in ipaddress.ip_network(LAN)
    assert f"MAC {mac} on lan0" in resolved.detail and LAN in resolved.detail
    assert ipam == []  # vmbr0 is a plain bridge: Proxmox never had a lease to show
    said = [e.message for e in rec.of("StepProgressed") if e.step == "first_boot"]
    assert any("works only if this machine shares the bridge's layer 2" in m for m in said)


async def test_the_ipam_path_gives_the_address_on_a_vnet_even_from_elsewhere(tmp_path):
    lab = {**WITH_VNET, "network": {"sdn_vnet": True, "jump_host": "elsewhere"}}
    answers = lab_answers(lab=lab, vm={"bridge": facts.SDN_VNET})
    target = await _target(tmp_path, answers)
    try:
        code, rec, ctx = await _provision(tmp_path, target, answers)
        client = await ProxmoxClient.connect(target)
        try:
            ipam = await client.ipam_entries()
        finally:
            await client.close()
    finally:
        await target.close()
    assert code == 0, rec.of("RunFinished")[0].message
    resolved = rec.of("GuestAddressResolved")[0]
    assert (resolved.source, resolved.address) == (guestaddr.SOURCE_IPAM, facts.SDN_DHCP_RANGE[0])
    assert [(e["ip"], e["vmid"]) for e in ipam if "mac" in e] == [(resolved.address, str(ctx.facts.vmid))]


async def test_nothing_to_see_fails_in_bounded_time_then_the_agent_gives_the_address_once_installed(tmp_path):
    answers = lab_answers(lab=ELSEWHERE)
    target = await _target(tmp_path, answers, speed=60)  # slower: each probe round's wall time weighs less
    try:
        code, rec, ctx = await _provision(tmp_path, target, answers, force=True)  # past the blocker, on purpose
        failed = rec.of("StepFinished")[-1]
        started = next(e for e in rec.of("StepStarted") if e.step == "first_boot")
        assert (code, failed.step, failed.ok) == (1, "first_boot", False)
        assert "no address vast-loopback can see" in rec.of("RunFinished")[0].message
        waited = failed.ts - started.ts  # lab seconds: one bounded boot wait, not one per controller
        assert provision.BOOT_WAIT_S <= waited < provision.BOOT_WAIT_S + 60, f"waited {waited:.0f} lab s"
        assert not rec.of("BootAttemptFailed")  # nothing could have seen it: no other controller is tried
        assert not [r for r in requests_to(tmp_path / "lab", "GET", "/cluster/sdn/ipams/pve/status")]

        vm = VmRef("pve", ctx.facts.vmid, answers.vm.name)
        address = f"{facts.LAN_PREFIX}.{facts.LAN_DHCP_FIRST}"  # the LAN's lease, as the guest's console shows
        host, port = target.route(address, 22)
        async with asyncssh.connect(host, port, username="centos", password="centos",
                                    known_hosts=str(target.known_hosts)) as conn:
            done = await conn.run("sudo dnf install -y qemu-guest-agent && sudo systemctl enable --now qemu-guest-agent")
            assert done.exit_status == 0, done.stderr
        client = await ProxmoxClient.connect(target)
        try:
            ctx.current_step = "first_boot"
            resolved = await provision.resolve_address(ctx, client, vm, timeout_s=60)
        finally:
            await client.close()
    finally:
        await target.close()
    assert (resolved.source, resolved.address) == (guestaddr.SOURCE_AGENT, address)
