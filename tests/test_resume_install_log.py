"""A resumed run follows a detached job's log from where the journal stopped and shows no line twice:
not even the line a spinner was repainting when the process died (seen by killing runs during
cluster create: `Cluster lb-vast54 state: ACTIVATING` journaled twice)."""

from __future__ import annotations

import asyncio

import pytest

from backend import events as ev
from backend.clients import guestjobs, installlog
from backend.clients.guestssh import DetachedJob
from backend.clock import Clock
from backend.model.answers import Answers
from backend.run.bus import EventBus
from backend.run.engine import RunContext
from backend.run.journal import Journal, RunDir
from backend.secrets import Secret
from backend.steps.install import follow_job
from backend.steps.prepare import GUEST
from backend.target import Target

# What vman.sh writes: a state line repainted by its spinner, each repaint ended by a carriage return.
LOG = (b"[2025-12-29 18:49:01] Cluster lb-vast54 state: INIT\n"
       + b"".join(b"[2025-12-29 18:49:10] Cluster lb-vast54 state: ACTIVATING ... " + spinner + b"\r"
                for spinner in (b"|", b"/", b"-", b"\\", b"|", b"/"))
       + b"\n[2025-12-29 18:59:51] Cluster lb-vast54 state: ONLINE\n")


class _Guest:
    """The part of GuestClient `follow_job` uses, over an in-memory log; `die_after` chunks, the process
    following it dies (a SIGKILL as seen from inside)."""

    connected = True

    def __init__(self, chunk: int, die_after: int | None = None) -> None:
        self.chunk, self.die_after = chunk, die_after

    async def follow(self, job: DetachedJob, offset: int = 0, *, poll_s: float = 1.0):
        served = 0
        while offset < len(LOG):
            data = LOG[offset:offset + self.chunk]
            final = offset + len(data) >= len(LOG)
            lines, used = guestjobs.complete_lines(data, final=final)
            if not used:
                self.chunk *= 2
                continue
            if self.die_after is not None and served == self.die_after:
                raise asyncio.CancelledError
            offset += used
            served += 1
            yield lines, offset

    async def job_exit_status(self, job: DetachedJob) -> int:
        return 0


async def _pass(run: RunDir, guest: _Guest) -> None:
    bus = EventBus()
    journal = Journal(run)
    bus.subscribe(journal)
    target = Target(label="t", proxmox_url="https://x", token_id="a@b!c", token_secret=Secret("tok-en-1"),
                    clock=Clock.wall())
    ctx = RunContext(answers=Answers.model_validate({"proxmox": {"url": "lab"}}), target=target, bus=bus, run=run)
    ctx.services[GUEST] = guest
    job = DetachedJob("cluster_create", "/home/centos/.vast-loopback/jobs/cluster_create/log",
                      "/home/centos/.vast-loopback/jobs/cluster_create/status")
    try:
        await follow_job(ctx, job, "cluster_create")
    finally:
        journal.close()


@pytest.mark.parametrize("die_after", [1, 2, 3, 5])
async def test_a_resumed_follower_repeats_no_line_not_even_a_repainted_one(tmp_path, die_after):
    run = RunDir.create(tmp_path / "run")
    with pytest.raises(asyncio.CancelledError):
        await _pass(run, _Guest(chunk=70, die_after=die_after))
    await _pass(run, _Guest(chunk=70))
    journaled = [line for e in run.events() if isinstance(e, ev.InstallLogAppended) for line in e.lines]
    assert journaled == installlog.clean_lines(LOG.decode())
    assert [line.rsplit(": ", 1)[-1] for line in journaled] == ["INIT", "ACTIVATING", "ONLINE"]
