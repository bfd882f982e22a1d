"""Detached jobs on the lab guest over real SSH: the connection is cut under a running job (the
guest's sshd hangs up the session, as sshd does); the job carries on, and `follow` re-attaches by
byte offset without losing or repeating a line."""
# ruff: noqa: F811  (pytest fixtures imported from tests.lab_fixtures are parameters by design)

from __future__ import annotations

from backend.events import GuestDisconnected, GuestReconnected
from tests.guest_lab_support import client, recording_bus
from tests.lab_fixtures import guest_lab, running_guest  # noqa: F401

JOB = 'for i in $(seq 1 40); do echo "bootstrap line $i"; sleep 0.02; done; exit 3'


async def test_a_job_survives_cut_connections_and_follow_loses_no_line(running_guest):
    bus = recording_bus(running_guest)
    guest = await client(running_guest, bus)
    try:
        job = await guest.run_detached("lab-follow", JOB, sudo=True)
        seen: list[str] = []
        cuts = 0
        async for lines, _ in guest.follow(job, poll_s=5):
            seen.extend(lines)
            if cuts < 3 and guest.connected:
                guest._conn.abort()  # the network goes away under us
                cuts += 1
        assert cuts == 3
        assert seen == [f"bootstrap line {i}" for i in range(1, 41)]
        assert await guest.job_exit_status(job) == 3
        assert sum(isinstance(e, GuestDisconnected) for e in bus.seen) == 3
        assert sum(isinstance(e, GuestReconnected) for e in bus.seen) == 3
    finally:
        await guest.close()


async def test_the_job_outlives_the_client_and_is_not_started_twice(running_guest):
    guest = await client(running_guest)
    job = await guest.run_detached("lab-once", "echo ran >> /tmp/lab-once.count; sleep 0.3; echo done")
    await guest.close()

    again = await client(running_guest)
    try:
        same = await again.run_detached("lab-once", "echo ran >> /tmp/lab-once.count")
        lines = [line async for batch, _ in again.follow(same, poll_s=5) for line in batch]
        assert same == job and lines == ["done"]
        assert (await again.run("cat /tmp/lab-once.count")).stdout == "ran\n"
    finally:
        await again.close()
