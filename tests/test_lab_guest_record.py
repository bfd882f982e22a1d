"""The lab guest keeps the record a Rocky 8.10 guest keeps of an OOM kill, read over real SSH with
the product's own command: the kernel's messages since this boot (/dev/kmsg, `dmesg`, `journalctl -k`),
gone after a reboot; Docker's view of a container whose main process was killed (exit 137, and
State.OOMKilled as the lab's facts say Docker reports a global OOM)."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

import pytest

from backend.analysis import evidence
from backend.clients.commands import sh
from backend.lab import facts
from tests.lab_fixtures import connect, fresh_guest, reboot_over_ssh  # noqa: F401

pytestmark = [pytest.mark.lab]

OOM = "Out of memory: Killed process 41873 (.env) total-vm:61204112kB, anon-rss:44871300kB, file-rss:0kB"
DOCKER = ("sudo dnf config-manager --add-repo https://download.docker.com/linux/centos/docker-ce.repo"
          " && sudo dnf install -y docker-ce docker-ce-cli containerd.io && sudo systemctl start docker")


async def _record(conn) -> evidence.Record:  # noqa: ANN001 - an asyncssh connection
    result = await conn.run(sh("sudo", "-n", "--", "sh", "-c", evidence.record_command([])), encoding=None)
    return evidence.parse_record(result.stdout)


async def test_the_record_of_an_oom_holds_until_the_next_boot(fresh_guest):
    async with connect(fresh_guest) as conn:
        await conn.run(DOCKER, check=True)
        await conn.run("sudo docker run -d --name node registry:2 && sudo docker run -d --name other registry:2"
                       " && sudo docker run -d --name idle registry:2", check=True)
        fresh_guest.lab.kmsg(fresh_guest.vmid, OOM, level=3)  # the kernel's OOM killer strikes ...
        await conn.run("sudo docker lab-oom-killed node 137 false && sudo docker kill other", check=True)
        before = await _record(conn)
        shown = (await conn.run("dmesg | tail -n 1; journalctl -k -q -o short-monotonic | tail -n 1; "
                                "sudo docker ps -aq | wc -l; sudo docker ps -a --format '{{.Names}} {{.Status}}'")).stdout
        boot_id = (await conn.run("cat /proc/sys/kernel/random/boot_id")).stdout.strip()

    assert before.kernel_source == "kmsg" and before.boot_id == boot_id
    oom = [line for line in before.kernel if line.text == OOM]
    assert len(oom) == 1 and oom[0].seq == before.last_seq and oom[0].level == "err"
    assert before.oom_kills == 0  # the lab's counter follows the VAST world, not a message appended by hand
    by_name = {c["name"]: c for c in before.containers}
    assert (by_name["node"]["exit_code"], by_name["node"]["oom_killed"]) == (137, False)
    assert (by_name["other"]["exit_code"], by_name["idle"]["status"], by_name["idle"]["finished"]) == (137, "running", None)
    assert before.boot_epoch is not None and by_name["node"]["finished"] > before.boot_epoch
    dmesg, journal, count, *statuses = shown.splitlines()
    assert dmesg.startswith("[") and dmesg.endswith(f"] {OOM}")
    assert journal.endswith(f" kernel: {OOM}") and journal.startswith("[")
    assert count.strip() == "3"  # `-aq`: every container, quietly
    assert "node Exited (137)" in " ".join(statuses) and "idle Up " in " ".join(statuses)

    assert await reboot_over_ssh(fresh_guest) == "up"
    async with connect(fresh_guest) as conn:
        await conn.run("sudo systemctl start docker", check=True)
        after = await _record(conn)
    assert after.boot_id != before.boot_id
    assert OOM not in [line.text for line in after.kernel]  # the ring buffer starts again at a boot
    assert after.last_seq is not None and after.last_seq < before.last_seq
    # Docker keeps its containers' last runs on disk, as the real daemon does (the record leaves out
    # those that finished before this boot, by their FinishedAt: see test_evidence)
    assert (after.containers[0]["name"], after.containers[0]["exit_code"]) == ("node", 137)


def test_the_lab_says_what_docker_reports_of_a_global_oom():
    from backend.lab.vast.timeline import create_oom

    steps = [step for step in create_oom(150.0) if step.get("docker", [""])[0] == "lab-oom-killed"]
    flag = "true" if facts.DOCKER_OOMKILLED_ON_GLOBAL_OOM else "false"
    assert [step["docker"][1:] for step in steps] == [["vast_platform_11.0.0.1-4200", "137", flag],
                                                      ["vast_platform_11.0.0.1-4100", "137", flag]]
