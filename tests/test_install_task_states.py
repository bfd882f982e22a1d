"""The cluster_deploy task's states and messages as the install waits for them, against the lab's VMS
over HTTPS (the real vastpy): PARTIALLY_COMPLETED and TIMEOUT end the wait at once with the task's
messages, UNKNOWN is waited through for a while and then is a failure, and the messages are read
whether the VMS sends them as a list (what clients read) or as an object (what the 5.4 OpenAPI says).
"""

from __future__ import annotations

import asyncio

import pytest

from backend import events as ev
from backend import install
from backend.answers import Answers
from backend.bus import EventBus
from backend.clock import Clock
from backend.engine import RunContext
from backend.errors import RunFailed
from backend.journal import Journal, RunDir
from backend.lab.facts import VMS_CERT_PATH
from backend.lab.scenarios import VastBehaviour
from backend.lab.vast import EVENTS_PATH
from backend.lab.vast.state import append_event
from backend.lab.vms.server import VmsServer
from backend.secrets import Secret
from backend.target import Target
from backend.vms import VmsClient
from backend.vmstrust import VmsTrust
from backend.vtask import UNKNOWN_TASK_GRACE_S, task_messages
from tests.vast_lab_helpers import FIELD_START, IP, make_guest

SPEED = 600.0  # the 10-minute grace for UNKNOWN lasts a wall second
MESSAGES = ["Cluster lb-vast54 created", "post deploy actions: setting the S3 certificates failed"]


class _World:
    """A bootstrapped lab guest whose VMS answers over HTTPS, and a run context whose VMS client is the
    engine's own (`install.vms_client`, reached through the target's route)."""

    def __init__(self, tmp_path, shape: str) -> None:
        self.guest = make_guest(tmp_path / "guest", behaviour=VastBehaviour(vtask_messages=shape))
        assert self.guest.bootstrap().returncode == 0
        self.clock = Clock.scaled(SPEED, origin_target=FIELD_START + 3600)
        self.server = VmsServer(tmp_path / "lab", self.clock, self.guest.root).start()
        assert self.server.wait_listening(True)
        self.run = RunDir.create(tmp_path / "run")
        self.bus = EventBus(self.clock)
        self.journal = Journal(self.run)
        self.bus.subscribe(self.journal)
        self.seen: list[ev.Event] = []
        self.bus.subscribe(self.seen.append)
        target = Target(label="lab", proxmox_url="https://x", token_id="a@b!c", token_secret=Secret("tok-en-1"),
                        clock=self.clock, route=lambda host, port: ("127.0.0.1", self.server.port))
        self.ctx = RunContext(answers=Answers(), target=target, bus=self.bus, run=self.run)
        self.ctx.facts["guest_address"] = IP
        # the VMS's certificate is vouched for by its own file, as a CA (the run pins it from the guest
        # over SSH, which this world has not): the client is the engine's own, with that trust
        trust = VmsTrust(source="the lab VMS's own certificate", ca_file=str(self.guest.root / VMS_CERT_PATH.lstrip("/")),
                         server_name=IP)
        self.ctx.services[install.VMS] = VmsClient.for_run(self.ctx, IP, trust=trust)
        # the install log follower runs on (as while vman.sh works): only the VMS decides here
        self.ctx.services[install.LOG_FOLLOWER] = install._TaskService(asyncio.ensure_future(asyncio.sleep(3600)))

    def world(self, kind: str, **fields: object) -> None:
        append_event(self.guest.root / EVENTS_PATH.lstrip("/"), self.clock.now(), kind, **fields)

    def deploy(self, state: str, **fields: object) -> None:
        self.world("vtask", id=2, name="cluster_deploy", state=state, **fields)

    def task_polls(self) -> int:
        return sum("/vtasks/" in line for line in self.server.requests_log.read_text().splitlines())

    def tasks(self) -> list[ev.VtaskChanged]:
        return [e for e in self.seen if isinstance(e, ev.VtaskChanged)]

    async def close(self) -> None:
        await self.ctx.close()
        self.server.stop()
        self.journal.close()


@pytest.fixture
async def lab_world(tmp_path, request):
    world = _World(tmp_path, getattr(request, "param", "list"))
    world.world("cluster", state="ONLINE", name="lb-vast54", leader_state="UP")
    try:
        yield world
    finally:
        await world.close()


@pytest.mark.parametrize("lab_world", ["list", "object"], indirect=True)
@pytest.mark.parametrize("state", ["PARTIALLY_COMPLETED", "TIMEOUT"])
async def test_a_task_that_ended_without_doing_its_work_fails_the_wait_at_once_with_its_messages(lab_world, state):
    lab_world.deploy("RUNNING")
    lab_world.deploy(state, messages=MESSAGES)
    with pytest.raises(RunFailed) as failed:
        await install.run_wait_deploy(lab_world.ctx)
    assert f"the cluster_deploy task ended {state}" in failed.value.message
    assert all(text in failed.value.message for text in MESSAGES)
    assert lab_world.tasks()[-1].message == "; ".join(MESSAGES)  # the texts, never the object's keys
    assert lab_world.task_polls() == 1  # the first poll ends it, not the 20 minutes of DEPLOY_TIMEOUT_S


async def test_a_task_the_vms_lost_track_of_is_waited_through_then_it_fails(lab_world):
    lab_world.deploy("UNKNOWN")
    with pytest.raises(RunFailed) as failed:
        await install.run_wait_deploy(lab_world.ctx)
    assert f"UNKNOWN for {UNKNOWN_TASK_GRACE_S // 60} min" in failed.value.message
    unknown = lab_world.tasks()[-1]
    assert unknown.state == "UNKNOWN" and lab_world.clock.now() - unknown.ts >= UNKNOWN_TASK_GRACE_S


async def test_a_task_back_from_unknown_completes_the_wait(lab_world):
    lab_world.deploy("UNKNOWN")

    def recovered(event: ev.Event) -> None:  # the VMS knows its task again, right after UNKNOWN was seen
        if isinstance(event, ev.VtaskChanged) and event.state == "UNKNOWN":
            lab_world.deploy("COMPLETED", runtime=1064.11, messages=["Task cluster_deploy (2) succeeded"])

    lab_world.bus.subscribe(recovered)
    result = await install.run_wait_deploy(lab_world.ctx)
    assert result == {"cluster_deploy": "COMPLETED"}
    assert [(t.state, t.message) for t in lab_world.tasks()] == [
        ("UNKNOWN", ""), ("COMPLETED", "Task cluster_deploy (2) succeeded")]


@pytest.mark.parametrize(("value", "texts"), [
    (None, []), ("", []), ([], []), ({}, []),
    (["a", "b"], ["a", "b"]),
    ({"1": "a", "2": "b"}, ["a", "b"]),
    ({"error": "PANIC[P653] on dnode-2"}, ["PANIC[P653] on dnode-2"]),
    ({"messages": ["a", "b"]}, ["a", "b"]),
    ("one message", ["one message"]),
    ([{"1": "a"}, "b", None], ["a", "b"]),
])
def test_messages_read_in_any_shape_never_yield_an_objects_keys(value, texts):
    assert task_messages(value) == texts
