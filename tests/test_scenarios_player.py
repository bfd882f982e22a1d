"""The guest-side VAST stand-ins: argument checks as the real tools do them, one run at a time, the
world events and containers they produce, and the two failure scenarios' end states."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from backend.clients.installlog import clean_lines, parse_line
from backend.lab.scenarios import VastBehaviour
from backend.lab.vast import HERE, timeline
from tests.vast_lab_helpers import BUILD, CREATE_ARGS, IP, VMS_PASSWORD, hardware, make_guest, serve_vms

REPO = Path(__file__).resolve().parent.parent


def test_scripts_pass_shellcheck():
    scripts = [str(HERE / "vast_bootstrap.sh"), str(HERE / "vman.sh")]
    result = subprocess.run([str(REPO / ".venv/bin/shellcheck"), *scripts], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout


def test_player_runs_on_the_guests_python_36():
    result = subprocess.run([str(REPO / ".venv/bin/vermin"), "-t=3.6-", "--no-tips", "--violations",
                             str(HERE / "player.py")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_bootstrap_starts_the_vms_containers_and_brings_vms_up(tmp_path):
    guest = make_guest(tmp_path)
    result = guest.bootstrap()
    assert result.returncode == 0, result.stderr
    world = guest.world()
    assert world.vms_up and world.cluster is None
    calls = guest.docker_calls()
    assert calls[0] == "info"
    started = [c.split("--name ")[1].split()[0] for c in calls if c.startswith("run")]
    assert started == ["registry", "vast_vms", "mcvms"]


def test_cluster_create_makes_an_online_cluster_with_four_containers(tmp_path):
    guest = make_guest(tmp_path)
    assert guest.bootstrap().returncode == 0
    result = guest.create()
    assert result.returncode == 0, result.stderr
    world = guest.world()
    assert world.cluster["state"] == "ONLINE" and world.cluster["name"] == "lb-vast54"
    assert world.tasks[2]["state"] == "COMPLETED" and world.tasks[2]["runtime"] == 1064.11
    assert [h["install_state"] for h in world.hosts] == ["INSTALLED"] * 4
    assert {n["state"] for n in world.nodes.values()} == {"ACTIVE"}
    assert world.license["state"] == "ACTIVE"
    platform = [c for c in guest.docker_calls() if "--name vast_platform_11.0.0.1-" in c]
    assert len(platform) == 4
    assert "vcli -u admin -c cluster create" in result.stdout.decode()  # echoed, as in the field log (no -p)


@pytest.mark.parametrize(("args", "code", "message"), [
    ((), 2, "usage: vast_bootstrap.sh"),
    (("--interface", "10.9.9.9", "--skip-prompt"), 1, "no interface with address 10.9.9.9"),
    (("--interface", IP, "--bogus"), 2, "unknown argument: --bogus"),
])
def test_bootstrap_refuses_bad_arguments(tmp_path, args, code, message):
    guest = make_guest(tmp_path)
    result = guest.run("/vast/bundles/vast_bootstrap.sh", *args)
    assert result.returncode == code
    assert message in result.stderr.decode()
    assert guest.events() == []


def test_bootstrap_asks_before_it_starts_without_skip_prompt(tmp_path):
    guest = make_guest(tmp_path)
    result = guest.run("/vast/bundles/vast_bootstrap.sh", "--interface", IP, stdin="n\n")
    assert result.returncode == 1 and "aborted" in result.stderr.decode()


def test_bootstrap_needs_docker_and_the_release_bundle(tmp_path):
    guest = make_guest(tmp_path)
    (tmp_path / "docker-down").touch()
    result = guest.bootstrap()
    assert result.returncode == 1 and "docker is not running" in result.stderr.decode()
    (tmp_path / "docker-down").unlink()
    for package in (tmp_path / "vast/bundles").glob("vastdata_release_*"):
        package.unlink()
    result = guest.bootstrap()
    assert result.returncode == 1 and "no package found" in result.stderr.decode()


@pytest.mark.parametrize(("change", "message"), [
    ({"build": "release-5-4-0-9999999"}, "Build release-5-4-0-9999999 not found"),
    ({"pem": "/vast/deploy/missing.pem"}, "ssh key /vast/deploy/missing.pem not found"),
    ({"password": "wrong"}, "401 Unauthorized"),
    ({"loopback": False}, "use --loopback"),
])
def test_vman_refuses_what_the_real_vcli_refuses(tmp_path, change, message):
    guest = make_guest(tmp_path / "guest")
    assert guest.bootstrap().returncode == 0
    build = change.get("build", BUILD)
    args = [build, change.get("pem", "/vast/deploy/ssh_key.pem"), "vcli", "-u", "admin", "-c", "cluster", "create",
            "--build", build, "--name", "lb"]
    if change.get("loopback", True):
        args.append("--loopback")
    server = serve_vms(guest, tmp_path / "vms")
    try:
        result = guest.run("/vast/deploy/vman.sh", *args, env={"VMS_PASSWORD": change.get("password", VMS_PASSWORD)})
    finally:
        server.stop()
    assert result.returncode == 1
    assert message in result.stderr.decode()
    assert guest.world().cluster is None


def test_vman_needs_the_bootstrapped_vms_and_creates_one_cluster_only(tmp_path):
    guest = make_guest(tmp_path)
    result = guest.create()
    assert result.returncode == 1 and "run vast_bootstrap.sh first" in result.stderr.decode()
    assert guest.bootstrap().returncode == 0
    assert guest.create().returncode == 0
    again = guest.create()
    assert again.returncode == 1 and "Cluster lb-vast54 already exists" in again.stderr.decode()


def test_a_tool_never_runs_twice_at_once(tmp_path):
    guest = make_guest(tmp_path, speed=50.0)  # bootstrap lasts ~18 s of wall time at this speed
    first = guest.start("/vast/bundles/vast_bootstrap.sh", "--interface", IP, "--skip-prompt")
    try:
        deadline = time.monotonic() + 10
        while not guest.events() and time.monotonic() < deadline:
            time.sleep(0.02)
        second = guest.bootstrap()
        assert second.returncode == 1
        assert "bootstrap is already running" in second.stderr.decode()
    finally:
        first.terminate()
        first.wait(timeout=10)
    assert first.returncode == 143
    assert guest.world().tools["bootstrap"].exit == 143  # the world knows the tool ended


def test_the_world_moves_on_whatever_the_lab_clock_speed_is_changed_to(tmp_path):
    guest = make_guest(tmp_path, speed=1.0)
    running = guest.start("/vast/bundles/vast_bootstrap.sh", "--interface", IP, "--skip-prompt")
    try:
        deadline = time.monotonic() + 60
        while "bootstrap" not in guest.world().tools and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running.poll() is None  # at speed 1 bootstrap would take 15 minutes
        guest.write_clock(20000.0, origin_target=guest.world().tools["bootstrap"].started + 1)  # a faster lab
        assert running.wait(timeout=10) == 0
    finally:
        if running.poll() is None:
            running.kill()
    assert guest.world().vms_up


def _failed_run(tmp_path, hw):
    guest = make_guest(tmp_path, hw)
    assert guest.bootstrap().returncode == 0
    result = guest.create()
    facts = [f for f in map(parse_line, clean_lines(result.stdout.decode())) if f]
    return guest, result, facts


def test_oom_kills_during_activation_and_the_deploy_fails_in_init(tmp_path):
    guest, result, facts = _failed_run(tmp_path, hardware(memory_gib=100))  # attempt 1: its guest saw 97 GB
    assert guest.scenario["name"] == "oom"
    assert result.returncode == 1
    states = [f.value for f in facts if f.kind == "cluster_state"]
    assert states[:2] == ["INIT", "ACTIVATING"] and states[-1] == "INIT" and "ONLINE" not in states
    assert ("task", "FAILED") in [(f.kind, f.value) for f in facts]
    kmsg = (tmp_path / "dev/kmsg").read_text().splitlines()
    assert any("invoked oom-killer" in line for line in kmsg)
    killed = [line for line in kmsg if "Out of memory: Killed process" in line]
    assert len(killed) == 2 and killed[0].startswith("3,")  # /dev/kmsg records: prio,seq,usec,flags;text
    world = guest.world()
    assert world.cluster["state"] == "INIT" and world.tasks[2]["state"] == "FAILED"
    assert len(world.ooms) == 2
    activating = next(t for t, s in world.state_changes if s == "ACTIVATING")
    assert 0 < world.ooms[0] - activating < 120  # during activation


def test_overcommit_panics_in_the_keepalive_fiber_and_falls_back_to_init(tmp_path):
    guest, result, facts = _failed_run(tmp_path, hardware(vcpus=24, memory_gib=112))  # attempt 2, its 109Gi guest
    assert guest.scenario["name"] == "overcommit"
    assert result.returncode == 1
    world = guest.world()
    states = [s for _, s in world.state_changes]
    assert states[:4] == ["INSTALLING", "INIT", "ACTIVATING", "UNKNOWN"] and states[-1] == "INIT"
    assert "ONLINE" not in states
    activating = next(t for t, s in world.state_changes if s == "ACTIVATING")
    unknown = next(t for t, s in world.state_changes if s == "UNKNOWN")
    assert unknown - activating == pytest.approx(117, abs=0.01)  # the support case's 10:39:56 -> 10:41:53
    assert world.tasks[2]["state"] == "FAILED"
    workers = (tmp_path / "vast/vman/vms/log/workers.log").read_text()
    panicked = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(activating + timeline.PANIC_AFTER))
    assert workers.startswith(f'PANIC[P653:E9:S255:F28d time="{panicked}.')  # lab time: the world's, not the wall's
    assert "vmsg_keepalive_fiber" in workers and "test_if_stuck" in workers
    panic = next(f for f in map(parse_line, workers.splitlines()) if f)
    assert (panic.kind, panic.value) == ("panic", "P653")
    assert "Failed to connect to address=11.0.0.1:6001 after 3 attempts." in (
        tmp_path / "vast/vman/vms/log/vms.log").read_text()
    assert [f.value for f in facts if f.kind == "task"] == ["FAILED"]


def test_a_guest_below_the_fields_later_peak_meets_the_oom_killer_after_the_deploy(tmp_path):
    """A 118 GiB VM's guest (115.5 GiB) holds the deploy; the field's demand kept growing after it and
    crosses 115.5 GiB 111 s later: the tool has exited with success, the kills come without it."""
    guest = make_guest(tmp_path, hardware(memory_gib=118))
    assert guest.bootstrap().returncode == 0
    result = guest.create()
    assert result.returncode == 0, result.stderr
    assert guest.world().tasks[2]["state"] == "COMPLETED"
    deadline = time.monotonic() + 30  # 206 lab s after the exit: ~10 ms at this speed, if the host is idle
    while len(guest.world().ooms) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    world = guest.world()
    assert len(world.ooms) == 2 and world.cluster["state"] == "UNKNOWN"
    assert world.ooms[0] - world.tasks[2]["end_time"] == pytest.approx(111, abs=2)  # after cluster_deploy succeeded
    assert any("Out of memory: Killed process" in line for line in (tmp_path / "dev/kmsg").read_text().splitlines())
    again = guest.create()  # the detached kills hold no lock of the tool's
    assert "already running" not in again.stderr.decode() and "already exists" in again.stderr.decode()


def test_start_after_a_reboot_brings_a_deployed_cluster_back(tmp_path):
    guest = make_guest(tmp_path)
    assert guest.bootstrap().returncode == 0 and guest.create().returncode == 0
    installed_at = guest.world().vms_up_since
    result = guest.run("/vast/deploy/vman.sh", BUILD, "/vast/deploy/ssh_key.pem", "start")
    assert result.returncode == 0, result.stderr
    world = guest.world()
    assert world.tools["start"].exit == 0 and world.cluster["state"] == "ONLINE" and world.vms_up
    assert world.vms_up_since > installed_at  # a VMS started again: the lab's VMS listens from then on
    states = [state for _, state in world.state_changes]
    assert states[-2:] == ["ACTIVATING", "ONLINE"]  # never the ONLINE of before the reboot first


def _bringup(guest):
    """What start_vms.sh's `docker exec ... /vast/bin/vms-bringup start` hands over to."""
    return subprocess.run([guest.env()["LAB_PYTHON"], str(guest.root / "opt/lab/vast/player.py"), "bringup", "start"],
                          env=guest.env(), capture_output=True, timeout=30, check=False)


def test_vms_bringup_starts_vms_again_and_the_cluster_comes_online(tmp_path):
    guest = make_guest(tmp_path)
    assert guest.bootstrap().returncode == 0 and guest.create().returncode == 0
    installed_at = guest.world().vms_up_since
    result = _bringup(guest)
    assert result.returncode == 0, result.stderr
    world = guest.world()
    assert world.tools["bringup"].exit == 0 and world.cluster["state"] == "ONLINE"
    assert world.vms_up_since > installed_at
    assert world.tools["bringup"].finished - world.tools["bringup"].started == pytest.approx(240, abs=0.01)
    assert any(c.startswith("run -d --name vast_vms --rm") for c in guest.docker_calls())
    assert "cluster lb-vast54 is ONLINE" in result.stdout.decode()


def test_vms_bringup_needs_a_cluster(tmp_path):
    guest = make_guest(tmp_path)
    assert guest.bootstrap().returncode == 0
    result = _bringup(guest)
    assert result.returncode == 1 and "no cluster is configured" in result.stderr.decode()
    assert "bringup" not in guest.world().tools


@pytest.mark.parametrize(("answer", "policy"), [("works", "--restart=unless-stopped"), ("fails", None)])
def test_the_node_containers_restart_policy_is_the_labs_answer_to_start_vms(tmp_path, answer, policy):
    guest = make_guest(tmp_path, behaviour=VastBehaviour(start_vms_after_reboot=answer))
    assert guest.bootstrap().returncode == 0 and guest.create().returncode == 0
    platform = [c for c in guest.docker_calls() if c.startswith("run") and "--name vast_platform_" in c]
    assert len(platform) == 4
    assert all((policy in c) if policy else ("--restart" not in c) for c in platform), platform


def test_vman_adds_extra_volume_mounts_as_the_field_log_shows_only_when_exported(tmp_path):
    guest = make_guest(tmp_path)
    assert guest.bootstrap().returncode == 0
    exported = guest.run("/vast/deploy/vman.sh", BUILD, "/vast/deploy/ssh_key.pem", "start",
                         env={"EXTRA_VOLUME_MOUNTS": "-v /file_server:/file_server"}).stdout.decode()
    plain = guest.run("/vast/deploy/vman.sh", BUILD, "/vast/deploy/ssh_key.pem", "start").stdout.decode()
    warning = "WARNING! - added extra volume mounts to common params: -v /file_server:/file_server\n"
    assert warning in exported and "docker.sock -v /file_server:/file_server\n" in exported
    assert "WARNING!" not in plain and "/file_server" not in plain


def test_vcli_refuses_a_password_on_its_command_line_and_takes_it_from_the_environment(tmp_path):
    """The password in argv sits in /proc/<pid>/cmdline for every guest user to read: the lab's vcli
    refuses it there (facts.VCLI_PASSWORD) and logs in with VMS_PASSWORD, checked by the VMS."""
    from backend.lab import facts
    from backend.lab.vast import player

    assert f"env:{player.PASSWORD_ENV}" == facts.VCLI_PASSWORD
    guest = make_guest(tmp_path / "guest")
    assert guest.bootstrap().returncode == 0
    args = [BUILD, "/vast/deploy/ssh_key.pem", "vcli", "-u", "admin", "-p", VMS_PASSWORD, "-c", "cluster", "create",
            "--build", BUILD, "--name", "lb", "--loopback"]
    server = serve_vms(guest, tmp_path / "vms")
    try:
        in_argv = guest.run("/vast/deploy/vman.sh", *args, env={"VMS_PASSWORD": VMS_PASSWORD})
        assert in_argv.returncode == 2
        assert "a password on the command line is refused" in in_argv.stderr.decode()
        missing = guest.run("/vast/deploy/vman.sh", *[a for a in args if a not in ("-p", VMS_PASSWORD)])
        assert missing.returncode == 2 and "no password" in missing.stderr.decode()
        assert guest.world().cluster is None
        assert not (tmp_path / "vms" / "vms-requests.jsonl").exists()  # neither got as far as the VMS
    finally:
        server.stop()
    assert guest.create().returncode == 0  # VMS_PASSWORD, right: the VMS said yes


def test_vcli_cannot_log_in_while_its_vms_is_away(tmp_path):
    guest = make_guest(tmp_path / "guest")
    assert guest.bootstrap().returncode == 0
    result = guest.run("/vast/deploy/vman.sh", *CREATE_ARGS, "--name", "lb", "--loopback",
                       env={"VMS_PASSWORD": VMS_PASSWORD, "LAB_VMS_LOGIN_WAIT": "0.5"})  # no VMS serves it
    assert result.returncode == 1 and "Failed to connect to VMS" in result.stderr.decode()
    assert guest.world().cluster is None


def test_the_vms_checks_the_login_in_memory_and_writes_no_password_or_hash(tmp_path):
    secret = "vms-in-memory-only-4242"
    guest = make_guest(tmp_path / "guest")
    assert guest.bootstrap().returncode == 0
    server = serve_vms(guest, tmp_path / "vms", password=secret)
    try:
        wrong = guest.run("/vast/deploy/vman.sh", *CREATE_ARGS, "--name", "lb", "--loopback",
                          env={"VMS_PASSWORD": VMS_PASSWORD})
        assert wrong.returncode == 1 and "401 Unauthorized" in wrong.stderr.decode()
        right = guest.run("/vast/deploy/vman.sh", *CREATE_ARGS, "--name", "lb", "--loopback",
                          env={"VMS_PASSWORD": secret})
        assert right.returncode == 0, right.stderr
        logins = [json.loads(line) for line in (tmp_path / "vms" / "vms-requests.jsonl").read_text().splitlines()]
        assert [(e["path"], e["status"], e.get("auth")) for e in logins] == [
            ("/api/token/", 401, None), ("/api/token/", 200, "login:admin")]
    finally:
        server.stop()
    digests = {hashlib.sha256(secret.encode()).hexdigest(), hashlib.md5(secret.encode()).hexdigest()}  # noqa: S324
    for root in (guest.root, tmp_path / "vms"):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                assert secret.encode() not in data, path
                assert not any(d.encode() in data.lower() for d in digests), path


def test_vcli_waits_for_a_vms_that_comes_back_and_logs_in_then(tmp_path):
    """The lab's VMS lives in the lab's process: killed and resumed, it comes back on another port."""
    guest = make_guest(tmp_path / "guest")
    assert guest.bootstrap().returncode == 0
    running = guest.start("/vast/deploy/vman.sh", *CREATE_ARGS, "--name", "lb", "--loopback",
                          env={"VMS_PASSWORD": VMS_PASSWORD, "LAB_VMS_LOGIN_WAIT": "20"})
    time.sleep(0.5)
    assert running.poll() is None  # waiting for its VMS
    server = serve_vms(guest, tmp_path / "vms")
    try:
        assert running.wait(timeout=30) == 0
    finally:
        server.stop()
    assert guest.world().cluster["state"] == "ONLINE"
