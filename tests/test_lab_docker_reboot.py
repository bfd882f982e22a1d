"""The lab guest's Docker across a reboot, as real Docker behaves: a container run with --rm is gone, one
with a restart policy comes back, one without stays stopped; `docker exec` into a stopped container
fails as the daemon says, and `docker cp` checks both of its ends. These are what start_vms.sh meets
after a reboot (backend/lab/facts.py)."""

from __future__ import annotations

# ruff: noqa: F811  (fixtures are parameters by design)
from tests.lab_fixtures import connect, fresh_guest, reboot_over_ssh  # noqa: F401

SETUP = (
    "sudo dnf config-manager --add-repo https://download.docker.com/linux/centos/docker-ce.repo"
    " && sudo dnf install -y docker-ce docker-ce-cli containerd.io"
    " && sudo systemctl enable --now docker"
)
RUNS = (
    "sudo docker run -d --rm --name vms registry:2 vms",
    "sudo docker run -d --restart=unless-stopped --name platform registry:2 platform",
    "sudo docker run -d --name plain registry:2 plain",
    "sudo docker run -d --restart=always --name registry registry:2",
)
PS = "sudo docker ps -a --format '{{.Names}} {{.State}}' | sort"


async def test_after_a_reboot_rm_containers_are_gone_and_only_restart_policies_come_back(fresh_guest):
    async with connect(fresh_guest) as conn:
        await conn.run(SETUP, check=True)
        for command in RUNS:
            await conn.run(command, check=True)
        conflict = await conn.run("sudo docker run -d --rm --restart=always --name both registry:2")
        inspect = await conn.run("sudo docker inspect -f '{{.HostConfig.RestartPolicy.Name}} "
                                 "{{.HostConfig.AutoRemove}}' vms platform", check=True)
        before = (await conn.run(PS, check=True)).stdout.split("\n")
    assert conflict.exit_status == 125 and "Conflicting options: --restart and --rm" in conflict.stderr
    assert inspect.stdout.split("\n")[:2] == ["no true", "unless-stopped false"]
    assert before[:4] == ["plain running", "platform running", "registry running", "vms running"]

    assert await reboot_over_ssh(fresh_guest) == "up"
    async with connect(fresh_guest) as conn:
        after = (await conn.run(PS, check=True)).stdout.split("\n")
        stopped = await conn.run("sudo docker exec plain bash -c 'true'")
        missing = await conn.run("sudo docker exec vms true")
        unknown = await conn.run("sudo docker exec platform bash -c 'sudo X=1 /vast/bin/nothing start'")
        cp_missing_file = await conn.run("sudo docker cp /vast/data/vms_image platform:/vast/data/vms_image")
        cp_missing_container = await conn.run("sudo docker cp /etc/hosts vms:/etc/hosts")
        cp_ok = await conn.run("sudo docker cp /etc/hosts platform:/etc/hosts")
    assert after[:3] == ["plain exited", "platform running", "registry running"]  # vms (--rm) is gone
    assert stopped.exit_status == 1 and "Error response from daemon: container" in stopped.stderr
    assert "is not running" in stopped.stderr
    assert missing.exit_status == 1 and "No such container: vms" in missing.stderr
    assert unknown.exit_status == 127 and "/vast/bin/nothing: command not found" in unknown.stderr
    assert cp_missing_file.exit_status == 1 and "lstat /vast/data/vms_image: no such file" in cp_missing_file.stderr
    assert cp_missing_container.exit_status == 1 and "No such container: vms" in cp_missing_container.stderr
    assert cp_ok.exit_status == 0 and "Successfully copied" in cp_ok.stderr


async def test_stopping_an_rm_container_removes_it(fresh_guest):
    async with connect(fresh_guest) as conn:
        await conn.run(SETUP, check=True)
        await conn.run("sudo docker run -d --rm --name vms registry:2 vms", check=True)
        await conn.run("sudo docker stop vms", check=True)
        left = (await conn.run("sudo docker ps -a --format '{{.Names}}'", check=True)).stdout
    assert "vms" not in left.split()
