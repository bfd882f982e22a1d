"""The guest's own record, read after the fact: what a Rocky 8 guest prints for it, what is new to
the journal (nothing the monitor delivered comes twice, nothing of an earlier boot comes at all),
what the diagnosis concludes from it, and a guest that cannot answer (said, never waited on)."""

from __future__ import annotations

import asyncio
import time

import pytest

from backend import events as ev
from backend.analysis import evidence
from backend.analysis.diagnose import Watcher, diagnose
from backend.clock import Clock
from backend.errors import TargetUnreachable
from backend.model.answers import Answers
from backend.run.bus import EventBus
from backend.run.engine import RunContext
from backend.run.journal import RunDir
from backend.secrets import Secret
from backend.steps.prepare import GUEST
from backend.target import Target
from tests.conftest import SEED

T = 1_800_000_000.0
BOOT = T - 3600.0  # the guest booted an hour before T (its own clock)
WORKERS = "/vast/vman/vms/log/workers.log"
HANDLER = "2027-01-15 10:57:30 panic handler installed"  # a candidate for grep, nothing that matters
PANIC = 'PANIC[P653:E9:S255:F28d time="{day} 10:57:34.250000000"] fiber stuck in vmsg_keepalive_fiber'
OOM_LINES = [
    ".env invoked oom-killer: gfp_mask=0x6280ca(GFP_HIGHUSER_MOVABLE|__GFP_ZERO), order=0, oom_score_adj=0",
    "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
    "task_memcg=/docker/4200,task=.env,pid=41873,uid=0",
    "Out of memory: Killed process 41873 (.env) total-vm:61204112kB, anon-rss:44871300kB, file-rss:0kB",
]


def output(*, kmsg: bool = True, oom: bool = True, oom_killed: str = "false", panic_day: str = "2027-01-15",
           boot_epoch: float = BOOT, now: float = T) -> bytes:
    """What `record_command` prints on a guest (the layout of /dev/kmsg records, `docker inspect`
    and `grep -b` as Rocky 8's tools print them)."""
    lines = [f"@@vlb-record boot 6d1c0a3e-5b1f-4c55-9d0e-2f1f5c3b7a11 {now - boot_epoch:.2f} {now:.9f}",
             "@@vlb-record vmstat", f"oom_kill {2 if oom else 0}"]
    if kmsg:
        lines += ["@@vlb-record kmsg", "5,0,0,-;Linux version 4.18.0-553.56.1.el8_10.x86_64",
                  " SUBSYSTEM=cpu", "6,1,1200,-;smp: Brought up 1 node, 12 CPUs"]
        if oom:
            lines += [f"4,{40 + i},3000000000,-;{text}" for i, text in enumerate(OOM_LINES)]
        lines.append("6,50,3100000000,-;dummy0: speed is unknown, defaulting to 1000")
    else:
        lines += ["@@vlb-record dmesg", "[    0.000000] Linux version 4.18.0-553.56.1.el8_10.x86_64"]
        if oom:
            lines += [f"[ 3000.000000] {text}" for text in OOM_LINES]
    finished = time.strftime("%Y-%m-%dT%H:%M:%S.123456789Z", time.gmtime(now - 120))
    lines += ["@@vlb-record docker", "/registry|running|false|0|0001-01-01T00:00:00Z",
              f"/vast_platform_11.0.0.1-4200|exited|{oom_killed}|137|{finished}",
              "/old_container|exited|false|137|2020-01-01T00:00:00.000000000Z"]
    panic = PANIC.format(day=panic_day)
    lines += [f"@@vlb-record log {len(HANDLER) + len(panic) + 2} {WORKERS}", f"0:{HANDLER}",
              f"{len(HANDLER) + 1}:{panic}"]  # grep -b: the byte offset where each line starts
    return ("\n".join(lines) + "\n").encode()


def ctx_for(tmp_path, guest: object = None, *, scale: float = 1.0) -> tuple[RunContext, list[ev.Event]]:
    clock = Clock.wall() if scale == 1.0 else Clock.scaled(scale)
    target = Target(label="t", proxmox_url="https://x", token_id="a@b!c", token_secret=Secret("tok-en-1"),
                    clock=clock)
    ctx = RunContext(answers=Answers.model_validate({"proxmox": {"url": "lab"}}), target=target, bus=EventBus(clock), run=RunDir.create(tmp_path / "run"))
    seen: list[ev.Event] = []
    ctx.bus.subscribe(seen.append)
    if guest is not None:
        ctx.services[GUEST] = guest
    return ctx, seen


class Guest:
    """The part of GuestClient the record read uses."""

    def __init__(self, answer: bytes | None = None, error: Exception | None = None) -> None:
        self.answer, self.error, self.commands = answer, error, []

    async def run_bytes(self, command: str, *, sudo: bool = False, timeout: float | None = None) -> bytes:
        self.commands.append((command, sudo))
        if self.error is not None:
            raise self.error
        if self.answer is None:
            await asyncio.sleep(3600)
        return self.answer or b""


def test_the_record_of_a_rocky_guest_after_an_oom():
    record = evidence.parse_record(output())
    assert record.boot_id.startswith("6d1c0a3e") and record.boot_epoch == pytest.approx(BOOT)
    assert record.kernel_source == "kmsg" and record.oom_kills == 2
    assert [line.seq for line in record.kernel] == [0, 1, 40, 41, 42, 50]  # continuation lines are not records
    assert record.kernel[2].text == OOM_LINES[0] and record.kernel[2].usec == 3_000_000_000
    assert record.last_seq == 50
    killed = next(c for c in record.containers if c["name"] == "vast_platform_11.0.0.1-4200")
    assert (killed["status"], killed["oom_killed"], killed["exit_code"]) == ("exited", False, 137)
    assert killed["finished"] == pytest.approx(T - 120 + 0.123456789)
    assert record.containers[0]["finished"] is None  # Docker's zero time: never finished
    panic = PANIC.format(day="2027-01-15")
    assert record.logs == [evidence.LogLine(WORKERS, len(HANDLER) + 1, HANDLER),  # offsets after each line
                           evidence.LogLine(WORKERS, len(HANDLER) + len(panic) + 2, panic)]
    assert record.log_sizes == {WORKERS: len(HANDLER) + len(panic) + 2}


def test_dmesg_when_dev_kmsg_cannot_be_read():
    record = evidence.parse_record(output(kmsg=False))
    assert record.kernel_source == "dmesg" and record.last_seq is None
    assert [(line.usec, line.text) for line in record.kernel][1] == (3_000_000_000, OOM_LINES[0])


def test_only_what_the_journal_does_not_hold_and_only_this_boots(tmp_path):
    ctx, _ = ctx_for(tmp_path)
    record = evidence.parse_record(output(panic_day="2020-06-01"))  # a PANIC of an install years ago
    delivered = [ev.KernelMessageSeen(source="kmsg", text=OOM_LINES[0], match="oom", seq=40),
                 ev.KernelMessageSeen(source="kmsg", text=OOM_LINES[1], match="oom", seq=7)]  # another boot's 7
    lines = evidence.new_lines(record, delivered, ctx)
    assert [(e.source, e.seq, e.text) for e in lines] == [("record:kmsg", 41, OOM_LINES[1]),
                                                          ("record:kmsg", 42, OOM_LINES[2])]
    assert lines[0].ts == pytest.approx(BOOT + 3000) and lines[0].match == "oom" and lines[0].level == "warning"
    # what this read emitted is not emitted by the next one; a log line by its offset
    fresh = evidence.parse_record(output())
    again = evidence.new_lines(fresh, delivered + lines, ctx)
    assert [(e.source, e.text[:9]) for e in again] == [(f"record:{WORKERS}", "PANIC[P65")]
    assert evidence.new_lines(fresh, delivered + lines + again, ctx) == []
    # text only (dmesg): known texts are not repeated
    assert evidence.new_lines(evidence.parse_record(output(kmsg=False)), delivered + lines + again, ctx) == []


def test_a_container_that_finished_before_this_boot_is_not_this_boots(tmp_path):
    ctx, _ = ctx_for(tmp_path)
    names = [c["name"] for c in evidence.this_boots(evidence.parse_record(output()), ctx)]
    assert names == ["registry", "vast_platform_11.0.0.1-4200"]


async def test_a_read_emits_the_new_lines_then_what_it_read(tmp_path):
    guest = Guest(output())
    ctx, seen = ctx_for(tmp_path, guest)
    record = await evidence.read_guest_record(ctx, "failure", logs=[WORKERS], seen=[])
    assert record is not None and record.oom_kills == 2
    command, sudo = guest.commands[0]
    assert sudo and "/dev/kmsg" in command and WORKERS in command
    read = seen[-1]
    assert isinstance(read, ev.GuestRecordRead) and read.reachable and read.reason == "failure"
    assert (read.oom_kills, read.kernel_records, read.new_lines, read.error) == (2, 6, 4, "")
    assert [e.source for e in seen[:-1]] == ["record:kmsg"] * 3 + [f"record:{WORKERS}"]


async def test_an_unreachable_guest_is_said_and_the_read_goes_no_further(tmp_path):
    ctx, seen = ctx_for(tmp_path, Guest(error=TargetUnreachable("cannot reach the guest centos@10.0.0.5 over SSH")))
    assert await evidence.read_guest_record(ctx, "failure", logs=[WORKERS], seen=[]) is None
    assert seen == [ev.GuestRecordRead(ts=seen[0].ts, reason="failure", reachable=False,
                                       error="cannot reach the guest centos@10.0.0.5 over SSH")]


async def test_a_guest_that_never_answers_is_given_up_on_within_the_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(evidence, "MIN_READ_WALL_S", 0.2)
    ctx, seen = ctx_for(tmp_path, Guest(answer=None), scale=600.0)  # 60 target s: 0.1 wall s, at least 0.2
    started = time.monotonic()
    assert await evidence.read_guest_record(ctx, "resume", logs=[], seen=[]) is None
    assert time.monotonic() - started < 5
    assert not seen[0].reachable and "did not answer within 60 s" in seen[0].error


# --- what the diagnosis concludes from the record --------------------------------------------------


def _attempt(t: float) -> list[ev.Event]:
    return [ev.HostFactsGathered(ts=t, node="pve", facts=SEED.to_dict()),
            ev.VmCreated(ts=t + 1, vmid=100, node="pve", name="vast", config={"cores": 12, "memory": 99328}),
            ev.ClusterStateChanged(ts=t + 100, state="INIT", source="log"),
            ev.ClusterStateChanged(ts=t + 109, state="ACTIVATING", previous="INIT", source="log"),
            ev.ClusterStateChanged(ts=t + 200, state="INIT", previous="ACTIVATING", source="log")]


def test_an_oom_read_from_the_record_is_ram_too_small_dated_by_the_kernel():
    watcher = Watcher()
    for event in _attempt(T):
        watcher.feed(event)
    watcher.feed(ev.KernelMessageSeen(ts=T + 150, source="record:kmsg", text=OOM_LINES[2], match="oom", seq=42))
    watcher.feed(ev.GuestRecordRead(ts=T + 400, reason="failure", oom_kills=2, containers=[
        {"name": "vast_platform_11.0.0.1-4200", "status": "exited", "oom_killed": False, "exit_code": 137,
         "finished": T + 150}]))
    watcher.finish()
    oom = next(i for i in watcher.diagnoses() if i.id == "oom")
    assert "during ACTIVATING" in oom.cause  # when the kernel logged it, not INIT when it was read
    assert oom.changes == {"memory_gib": 120} and "the guest sees" in oom.remedy  # the field's working VM
    sources = [e.source for e in oom.evidence]
    assert sources[0] == "record:kmsg" and "guest record" in sources and "docker" in sources


def test_an_oom_read_before_the_install_log_caught_up_is_dated_once_it_has():
    """A resumed run reads the record first; the install log's states (with their own times) come
    after: the diagnosis still says when the OOM killer ran."""
    watcher = Watcher()
    history = _attempt(T)
    for event in history[:2]:
        watcher.feed(event)
    watcher.feed(ev.KernelMessageSeen(ts=T + 150, source="record:kmsg", text=OOM_LINES[2], match="oom", seq=42))
    for event in history[2:]:
        watcher.feed(event)
    watcher.finish()
    assert "during ACTIVATING" in watcher.items["oom"].cause


@pytest.mark.parametrize("oom_killed", [True, False])
def test_the_counter_or_dockers_oomkilled_alone_say_oom(oom_killed):
    watcher = Watcher()
    for event in _attempt(T):
        watcher.feed(event)
    containers = [{"name": "vast_platform_11.0.0.1-4200", "status": "exited", "oom_killed": oom_killed,
                   "exit_code": 137, "finished": T + 150}]
    watcher.feed(ev.GuestRecordRead(ts=T + 400, reason="failure", oom_kills=0 if oom_killed else 1,
                                    containers=containers))
    oom = next(i for i in watcher.diagnoses() if i.id == "oom")
    assert oom.evidence[0].source == ("docker" if oom_killed else "guest record")


def test_a_container_killed_without_an_oom_in_the_record_is_not_an_oom():
    watcher = Watcher()
    for event in _attempt(T):
        watcher.feed(event)
    watcher.feed(ev.GuestRecordRead(ts=T + 400, reason="failure", oom_kills=0, containers=[
        {"name": "vast_platform_11.0.0.1-4200", "status": "exited", "oom_killed": False, "exit_code": 137,
         "finished": T + 150}]))
    watcher.finish()
    assert "oom" not in {i.id for i in watcher.diagnoses()}


def test_attempt_1s_oom_is_not_attempt_2s_diagnosis_but_stays_in_the_report():
    attempt_1 = [*_attempt(T), ev.KernelMessageSeen(ts=T + 150, source="kmsg", text=OOM_LINES[2], match="oom")]
    rollback = ev.SnapshotRolledBack(ts=T + 600, vmid=100, name="pre-install")
    panic = PANIC.format(day="2027-01-15")
    attempt_2 = [ev.VmConfigured(ts=T + 601, vmid=100, changes={"memory": 119808}),
                 ev.ClusterStateChanged(ts=T + 700, state="ACTIVATING", source="log"),
                 ev.KernelMessageSeen(ts=T + 800, source=WORKERS, text=panic, match="panic"),
                 ev.GuestRecordRead(ts=T + 900, reason="failure", oom_kills=0)]
    watcher = Watcher()
    for event in [*attempt_1, rollback, *attempt_2]:
        watcher.feed(event)
    watcher.finish()
    assert [i.id for i in watcher.diagnoses()] == ["overcommit"]
    report = [i["id"] for i in diagnose([*attempt_1, rollback, *attempt_2]) if i["kind"] == "diagnosis"]
    assert "oom" in report and "overcommit" in report
