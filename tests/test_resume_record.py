"""A diagnosis that does not depend on having watched, proven on the lab: the OOM killer strikes
while `vast-loopback` is dead (SIGKILL), and the resumed run reads it from the guest's own record,
diagnoses RAM too small with the memory remedy and retries to ONLINE. The negatives: a retry that
fails for another reason is not diagnosed with the first attempt's OOM (the rollback booted the
guest again: its record starts afresh), and an overcommit failure, whose record holds no OOM, is
not diagnosed as one.

Waits are on the lab's world (its events file, written on the lab's clock while no process of ours
runs), never on wall time; the wall-clock limits only stop a test whose lab never gets there."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab_fixtures import require_lab_guest
from tests.resume_harness import (
    ANSWERS,
    Chain,
    end_state,
    in_step,
    read_jsonl,
    step_finished,
    step_started,
    stop_guests,
    wait_for_no_leftovers,
)

pytestmark = [pytest.mark.slow, pytest.mark.lab]

SPEED = 120
WORLD_LIMIT_S = 120.0  # wall seconds a lab may take to reach a world event before the test gives up


def answers(**vm: int) -> str:
    """The harness's answers with some VM sizes changed (97 GiB: the field's OOM; 24 vCPUs: overcommit)."""
    text = ANSWERS
    for key, value in vm.items():
        text, count = re.subn(rf"{key}: \d+", f"{key}: {value}", text)
        assert count == 1, (key, ANSWERS)
    return text


@pytest.fixture
def chain_at(tmp_path: Path) -> Iterator:
    require_lab_guest()
    made: list[Chain] = []

    def new(name: str, text: str) -> Chain:
        made.append(Chain(tmp_path / name, SPEED, answers=text))
        return made[-1]

    try:
        yield new
    finally:
        for chain in made:
            stop_guests(chain.run_dir)


def world_events(run_dir: Path) -> list[dict]:
    return [row for path in sorted(run_dir.glob("lab/guests/*/disk/var/lib/lab/vast/events.jsonl"))
            for row in read_jsonl(path)]


def wait_for_world(run_dir: Path, kind: str) -> None:
    """Until the lab's VAST world has an event of `kind` (its clock runs on while we are dead)."""
    deadline = time.monotonic() + WORLD_LIMIT_S
    while not any(row.get("kind") == kind for row in world_events(run_dir)):
        assert time.monotonic() < deadline, f"the lab's world never had a {kind!r} event"
        time.sleep(0.05)


def split_at_rollback(events: list[dict]) -> tuple[list[dict], list[dict]]:
    at = next(i for i, e in enumerate(events) if e["type"] == "SnapshotRolledBack")
    return events[:at], events[at:]


def diagnosed(events: list[dict]) -> dict[str, dict]:
    return {item["id"]: item for e in events if e["type"] == "DiagnosisMade" for item in e["items"]}


def kernel_lines(events: list[dict], match: str = "") -> list[dict]:
    return [e for e in events if e["type"] == "KernelMessageSeen" and (not match or e["match"] == match)]


def test_an_oom_while_vast_loopback_was_dead_is_diagnosed_from_the_guests_record_and_retried(chain_at):
    chain = chain_at("oom", answers(memory_gib=97))
    # Killed once vman.sh writes its log: vcli has logged in to the guest's VMS by then. The lab's VMS
    # lives in the lab's process and dies with ours (a real one would not): a vcli still waiting for
    # its login would hold the lab's world until the resume.
    logging = in_step("wait_online", "create log",
                      lambda e, s: e["type"] == "InstallLogAppended" and e.get("source") == "cluster_create")
    killed, _ = chain.run_points([logging], extra=["--force", "--retry-on-failure"])
    assert killed == ["mid:wait_online:create log"]
    assert kernel_lines(read_jsonl(chain.run_dir / "events.jsonl"), "oom") == [], "killed after the OOM, not before"
    wait_for_world(chain.run_dir, "oom")  # the OOM killer strikes while no process of ours runs

    final = chain.run()
    assert final.exit_code == 0, f"{chain.describe()}\n{final.output()[-3000:]}"
    events = read_jsonl(chain.run_dir / "events.jsonl")
    attempt_1, attempt_2 = split_at_rollback(events)
    oom = diagnosed(attempt_1)["oom"]
    assert oom["severity"] == "critical" and oom["changes"] == {"memory_gib": 120} and "the guest sees" in oom["remedy"]
    assert "during ACTIVATING" in oom["cause"]  # dated by the kernel's record, not by when it was read
    assert any(e["source"] == "record:kmsg" for e in oom["evidence"]), oom["evidence"]
    assert [e["changes"] for e in events if e["type"] == "RemedyApplied"] == [oom["changes"]]
    # Read from the guest, each kernel record journaled once (the monitor went on after the read)
    records = [(e["seq"], e["text"]) for e in kernel_lines(attempt_1) if e["source"] in ("kmsg", "record:kmsg")]
    assert len(records) == len(set(records)), records
    assert any("Out of memory: Killed process" in e["text"] for e in kernel_lines(attempt_1, "oom")
               if e["source"] == "record:kmsg")
    reads = [e for e in attempt_1 if e["type"] == "GuestRecordRead"]  # at the resume (unless cut short), at the failure
    assert reads and all(r["reachable"] and r["oom_kills"] >= 1 for r in reads), reads
    assert kernel_lines(attempt_2, "oom") == []  # the retried guest booted again: no OOM in its record
    state = end_state(chain.run_dir)
    assert (state.cluster_state, state.deploy_state, state.outcome) == ("ONLINE", "COMPLETED", "online")
    assert state.completed_twice == []
    assert wait_for_no_leftovers(chain.run_dir) == []


def test_a_retry_failing_for_another_reason_is_not_diagnosed_with_the_first_attempts_oom(chain_at):
    chain = chain_at("other", answers(memory_gib=97))
    killed, _ = chain.run_points([step_finished("preflight@2")], extra=["--force", "--retry-on-failure"])
    assert killed == ["finish:preflight@2"]
    script = next(chain.run_dir.glob("lab/guests/*/disk/vast/bundles/vast_bootstrap.sh"))
    script.rename(script.with_name("vast_bootstrap.sh.moved"))  # somebody moved the bootstrap script away

    failed = chain.run()
    assert failed.exit_code == 1 and "vast_bootstrap.sh" in failed.output(), failed.output()[-3000:]
    attempt_1, attempt_2 = split_at_rollback(read_jsonl(chain.run_dir / "events.jsonl"))
    assert "oom" in diagnosed(attempt_1)
    assert "oom" not in diagnosed(attempt_2), diagnosed(attempt_2)
    assert kernel_lines(attempt_2, "oom") == []
    first = next(e for e in attempt_1 if e["type"] == "GuestRecordRead")
    reads = [e for e in attempt_2 if e["type"] == "GuestRecordRead"]
    assert [(r["reason"], r["reachable"], r["oom_kills"]) for r in reads] == [("failure", True, 0)]
    assert reads[0]["boot_id"] != first["boot_id"]  # the rollback booted the guest again


def test_an_overcommit_failure_with_no_oom_in_the_record_is_not_diagnosed_as_one(chain_at):
    chain = chain_at("overcommit", answers(vcpus=24))  # 24 vCPUs on the seed host's 12 cores
    killed, _ = chain.run_points([step_started("wait_online")], extra=["--force"])
    assert killed == ["start:wait_online"]

    failed = chain.run()
    assert failed.exit_code == 1, failed.output()[-3000:]
    events = read_jsonl(chain.run_dir / "events.jsonl")
    items = diagnosed(events)
    assert "overcommit" in items and "oom" not in items, items
    assert items["overcommit"]["changes"] == {"vcpus": 12}
    reads = [(e["reason"], e["reachable"], e["oom_kills"]) for e in events if e["type"] == "GuestRecordRead"]
    assert ("failure", True, 0) in reads and set(reads) <= {("resume", True, 0), ("failure", True, 0)}, reads
    assert kernel_lines(events, "oom") == []
