"""Diagnosis on hand-made event sequences: the field report's failures, early warnings, stuck phases,
and no failure on the field run that worked."""

from __future__ import annotations

import pytest

from backend import events as ev
from backend.analysis.diagnose import Watcher, classify_line, diagnose
from tests.conftest import SEED

GIB = 1024**3
T = 1_800_000_000.0


def sample(t: float, *, steal: float = 0.5, available_gib: float | None = None, total_gib: float = 117.5,
           ncpu: int | None = None, oom_kill: int | None = None) -> ev.SampleTaken:
    data: dict = {"t": t, "cpu": {"user": 50.0, "sys": 10.0, "steal": steal}}
    if ncpu:
        data["cpu"]["ncpu"] = ncpu
    if available_gib is not None:
        total = int(total_gib * GIB)
        available = int(available_gib * GIB)
        data["mem"] = {"total": total, "available": available, "used": total - available}
    if oom_kill is not None:
        data["oom_kill"] = oom_kill
    return ev.SampleTaken(ts=t, sample=data)


def by_id(items: list[dict]) -> dict[str, dict]:
    return {item["id"]: item for item in items}


def test_oom_during_activation_means_ram_too_small_with_the_ram_the_host_can_give():
    events = [
        ev.HostFactsGathered(ts=T, node="pve", facts=SEED.to_dict()),
        ev.VmCreated(ts=T + 1, vmid=100, node="pve", name="vast", config={"cores": 12, "sockets": 1, "memory": 99328}),
        ev.ClusterStateChanged(ts=T + 100, state="INIT"),
        ev.ClusterStateChanged(ts=T + 109, state="ACTIVATING", previous="INIT"),
        *[sample(T + 110 + i, available_gib=max(0.3, 40 - i * 0.5), total_gib=97.0) for i in range(100)],
        ev.KernelMessageSeen(ts=T + 210, source="kmsg", text="Out of memory: Killed process 4242 (vast_platform)",
                             match="oom"),
    ]
    items = by_id(diagnose(events))
    oom = items["oom"]
    assert oom["severity"] == "critical" and oom["kind"] == "diagnosis"
    assert "during ACTIVATING" in oom["cause"]
    # the guest must see the field run's peak use (116.3 GiB): the field's 120 GiB VM, which the seed host
    # (125.8 GiB) can give; a VM whose guest sees the report's 128 GB+ (131 GiB) it cannot
    assert oom["changes"] == {"memory_gib": 120}
    assert "120 GiB (the guest sees ≈117.5 GiB)" in oom["remedy"] and "116.3 GiB" in oom["remedy"]
    assert oom["evidence"][0]["text"].startswith("Out of memory") and oom["evidence"][0]["t"] == T + 210
    assert "memory_tight" not in items  # the OOM explains it already


def test_oom_without_host_facts_asks_for_the_recommended_ram():
    events = [sample(T + i, available_gib=50 - i, total_gib=97.0, oom_kill=0) for i in range(49)]
    events.append(sample(T + 50, available_gib=0.2, total_gib=97.0, oom_kill=1))  # /proc/vmstat's counter
    oom = by_id(diagnose(events))["oom"]
    assert oom["changes"] == {"memory_gib": 131} and oom["evidence"][0]["source"] == "samples"  # guest: 128.3 GiB


def test_p653_panic_means_vcpu_overcommit_with_the_hosts_cores():
    panic = 'PANIC[P653:E4:S17:F3c1 time="2026-03-01 10:20:44.120000000"] fiber stuck in vmsg_keepalive_fiber'
    events = [
        ev.HostFactsGathered(ts=T, node="pve", facts=SEED.to_dict()),
        ev.VmCreated(ts=T + 1, vmid=100, node="pve", name="vast", config={"cores": 12, "sockets": 2}),
        ev.ClusterStateChanged(ts=T + 100, state="ACTIVATING"),
        ev.KernelMessageSeen(ts=T + 345, source="/vast/vman/vms/log/workers.log", text=panic, match="panic"),
        ev.ClusterStateChanged(ts=T + 350, state="UNKNOWN", previous="ACTIVATING"),
        ev.ClusterStateChanged(ts=T + 380, state="INIT", previous="UNKNOWN"),
        ev.VtaskChanged(ts=T + 400, name="cluster_deploy", task_id=2, state="FAILED"),
    ]
    items = by_id(diagnose(events))
    overcommit = items["overcommit"]
    assert overcommit["severity"] == "critical" and overcommit["changes"] == {"vcpus": 12}
    assert "P653" in overcommit["cause"] and "12 physical cores" in overcommit["remedy"]
    texts = [e["text"] for e in overcommit["evidence"]]
    assert any("PANIC[P653" in t for t in texts) and "24 vCPUs on 12 physical cores" in texts
    collapsed = items["activation_collapsed"]
    assert "ACTIVATING -> UNKNOWN -> INIT" in collapsed["cause"]
    assert collapsed["changes"] == {"vcpus": 12}  # the root cause's remedy, to roll back and retry with
    assert items["deploy_failed"]["severity"] == "critical"


def test_stalls_of_seconds_with_rising_steal_mean_overcommit_before_any_panic():
    watcher = Watcher()
    raised = []
    for i in range(300):  # five quiet minutes, then steal climbs
        raised += watcher.feed(sample(T + i, steal=0.4, ncpu=24))
    for i in range(300, 390):
        raised += watcher.feed(sample(T + i, steal=14.0 + (i - 300) * 0.05, ncpu=24))
    ids = [item.id for item in raised]
    assert ids == ["steal_sustained"]  # an early warning, nothing more yet
    raised += watcher.feed(ev.StallDetected(ts=T + 391, start=T + 388.5, length_ms=2500.0))
    ids = [item.id for item in raised]
    assert ids == ["steal_sustained", "stall_over_1s", "overcommit"]
    overcommit = watcher.items["overcommit"]
    assert overcommit.changes == {"vcpus": 12}  # the validated size when the host's cores are unknown
    steal = next(e for e in overcommit.evidence if "over the last minute" in e.text)
    assert steal.value > 14 and "(was 2." in steal.text  # the four minutes before: mostly quiet
    assert watcher.items["stall_over_1s"].severity == "critical"
    # each item is raised once
    assert watcher.feed(ev.StallDetected(ts=T + 400, start=T + 398, length_ms=3000.0)) == []


def test_a_stall_without_steal_is_a_warning_not_overcommit():
    events = [sample(T + i, steal=0.2) for i in range(120)]
    events.append(ev.StallDetected(ts=T + 121, start=T + 119.8, length_ms=1200.0))
    items = by_id(diagnose(events))
    assert set(items) == {"stall_over_1s"} and items["stall_over_1s"]["severity"] == "warning"


def test_a_phase_stuck_far_beyond_the_field_run():
    watcher = Watcher()
    assert watcher.feed(ev.StepStarted(ts=T, step="bootstrap", title="Bootstrap", group="install")) == []
    assert watcher.feed(sample(T + 2000)) == []  # slow, not yet stuck (field: 887 s; stuck after 2661 s)
    raised = watcher.feed(sample(T + 2700))
    assert [i.id for i in raised] == ["stuck:bootstrap"]
    assert "14 min 47 s" in raised[0].cause and raised[0].severity == "critical"


def test_a_phase_that_finishes_in_time_is_not_stuck_and_activation_can_be_stuck():
    events = [
        ev.StepStarted(ts=T, step="bootstrap", title="Bootstrap", group="install"),
        ev.StepFinished(ts=T + 900, step="bootstrap", ok=True),
        ev.ClusterStateChanged(ts=T + 1000, state="ACTIVATING"),
        sample(T + 1000 + 1900),
    ]
    assert [i["id"] for i in diagnose(events)] == []
    events.append(sample(T + 1000 + 2000))  # ACTIVATING took 641 s in the field; 3x is 1923 s
    assert [i["id"] for i in diagnose(events)] == ["stuck:ACTIVATING"]


def test_low_memory_warns_and_turns_critical_before_online():
    events = [ev.ClusterStateChanged(ts=T, state="ACTIVATING"),
              sample(T + 1, available_gib=3.5), sample(T + 2, available_gib=1.5)]
    items = diagnose(events)
    alerts = {i["id"]: i for i in items if i["kind"] == "alert"}
    assert alerts["memory_low"]["severity"] == "warning" and alerts["memory_critical"]["severity"] == "critical"
    tight = by_id(items)["memory_tight"]
    assert tight["severity"] == "warning" and tight["changes"] == {"memory_gib": 131}


def test_items_become_events_for_the_bus():
    watcher = Watcher()
    watcher.feed(ev.ClusterStateChanged(ts=T, state="ACTIVATING"))
    alert = watcher.feed(sample(T + 1, available_gib=1.0))[0]
    event = alert.to_event()
    assert isinstance(event, ev.AlertRaised) and event.id == "memory_low" and "1.0 GiB" in event.evidence
    diagnosis = watcher.feed(ev.VtaskChanged(ts=T + 5, name="cluster_deploy", task_id=2, state="FAILED"))[0]
    made = diagnosis.to_event()
    assert isinstance(made, ev.DiagnosisMade) and made.items[0]["id"] == "deploy_failed"
    assert set(made.items[0]) >= {"id", "cause", "remedy", "evidence", "changes", "severity"}


@pytest.mark.parametrize("line, match", [
    ("[Sun Mar  1 10:20:00 2026] python invoked oom-killer: gfp_mask=0x6200ca", "oom"),
    ("Memory cgroup out of memory: Killed process 4242 (vast)", "oom"),
    ('PANIC[P653:E4:S17:F3c1 time="2026-03-01 10:20:44.120000000"]', "panic"),
    ("INFO: task kworker/3:1:123 blocked for more than 120 seconds.", "hung_task"),
    ("watchdog: BUG: soft lockup - CPU#3 stuck for 22s!", "soft_lockup"),
    ("rcu: INFO: rcu_sched detected stalls on CPUs/tasks:", "rcu_stall"),
    ("softdog: initialized. soft_noboot=1 soft_margin=60 sec soft_panic=0 (nowayout=0)", ""),
    ("dummy0 speed is unknown, defaulting to 1000", ""),
])
def test_kernel_line_signatures(line, match):
    assert classify_line(line) == match


def test_a_collapse_on_an_overcommitted_vm_names_overcommit_from_the_config():
    from backend import events as ev
    from backend.analysis.diagnose import Watcher

    watcher = Watcher()
    facts = {"node": "pve", "online": True, "cpu_model": "x", "sockets": 1, "cores": 12, "threads": 24,
             "mem_total": 135 * 1024**3, "mem_used": 3 * 1024**3, "hvm": True}
    watcher.feed(ev.HostFactsGathered(ts=1.0, node="pve", facts=facts))
    watcher.feed(ev.VmCreated(ts=2.0, vmid=100, node="pve", name="v", config={"cores": 24, "sockets": 1}))
    for ts, state in ((10.0, "INIT"), (19.0, "ACTIVATING"), (150.0, "UNKNOWN"), (210.0, "INIT")):
        watcher.feed(ev.ClusterStateChanged(ts=ts, state=state, source="api"))
    items = {item.id: item for item in watcher.diagnoses()}
    assert items["overcommit"].changes == {"vcpus": 12}
    assert "24 vCPUs" in items["overcommit"].cause and "12 physical cores" in items["overcommit"].cause


def test_a_lagging_source_is_not_a_collapse():
    from backend import events as ev
    from backend.analysis.diagnose import Watcher

    watcher = Watcher()
    watcher.feed(ev.ClusterStateChanged(ts=19.0, state="ACTIVATING", source="api"))
    watcher.feed(ev.ClusterStateChanged(ts=10.0, state="INIT", source="log"))  # read late, stamped early
    watcher.feed(ev.ClusterStateChanged(ts=19.0, state="ACTIVATING", source="log"))
    assert "activation_collapsed" not in {item.id for item in watcher.diagnoses()}


@pytest.mark.parametrize(("memory_mib", "changes"), [
    (114688, {"vcpus": 12, "memory_gib": 120}),  # attempt 2's VM: its 109.6 GiB guest would meet the OOM killer next
    (122880, {"vcpus": 12}),  # the field's 120 GiB VM holds the peak: only the vCPUs change
])
def test_an_overcommit_remedy_also_fixes_a_vm_too_small_for_the_fields_peak(memory_mib, changes):
    panic = 'PANIC[P653:E9:S255:F28d time="2025-12-29 10:57:34.832443472"] vmsg_keepalive_fiber'
    events = [
        ev.HostFactsGathered(ts=T, node="pve", facts=SEED.to_dict()),
        ev.VmCreated(ts=T + 1, vmid=100, node="pve", name="vast",
                     config={"cores": 24, "sockets": 1, "memory": memory_mib}),
        ev.ClusterStateChanged(ts=T + 100, state="ACTIVATING"),
        ev.KernelMessageSeen(ts=T + 345, source="/vast/vman/vms/log/workers.log", text=panic, match="panic"),
        ev.VtaskChanged(ts=T + 400, name="cluster_deploy", task_id=2, state="FAILED"),
    ]
    overcommit = by_id(diagnose(events))["overcommit"]
    assert overcommit["changes"] == changes
    assert ("120 GiB (the guest sees ≈117.5 GiB)" in overcommit["remedy"]) == ("memory_gib" in changes)


@pytest.mark.parametrize(("memory_mib", "total_gib", "changes"), [
    (102400, 97.8, {"memory_gib": 120}),  # attempt 1 in VM units: the field's peak use says what is enough
    (114688, 109.6, {"memory_gib": 120}),  # 112 GiB: the same; not "this run's cut-short peak + 8"
    (122880, 117.5, {"memory_gib": 123}),  # a world that wants more than the field's: the most the host gives
])
def test_an_oom_remedy_is_sized_in_the_guests_units_and_capped_by_the_host(memory_mib, total_gib, changes):
    events = [
        ev.HostFactsGathered(ts=T, node="pve", facts=SEED.to_dict()),
        ev.VmCreated(ts=T + 1, vmid=100, node="pve", name="vast",
                     config={"cores": 12, "sockets": 1, "memory": memory_mib}),
        ev.ClusterStateChanged(ts=T + 109, state="ACTIVATING"),
        *[sample(T + 110 + i, available_gib=max(0.1, 40 - i), total_gib=total_gib) for i in range(60)],
        ev.KernelMessageSeen(ts=T + 200, source="kmsg", text="Out of memory: Killed process 41873 (.env)",
                             match="oom"),
    ]
    oom = by_id(diagnose(events))["oom"]
    assert oom["changes"] == changes
    from backend.model.sizing import Proposal, evaluate

    assert evaluate(SEED, Proposal(12, changes["memory_gib"], 1000, "local-lvm")).ok  # a size that passes


def test_an_oom_on_an_overcommitted_vm_is_diagnosed_as_both_and_one_retry_fixes_both():
    """The lab's "field-ramp" reading of attempt 1 (24 vCPUs, its ramp crossing a 109.6 GiB guest):
    the OOM comes first, the collapse on 24 vCPUs names the overcommit; the retry's remedy has both."""
    events = [
        ev.HostFactsGathered(ts=T, node="pve", facts=SEED.to_dict()),
        ev.VmCreated(ts=T + 1, vmid=100, node="pve", name="vast", config={"cores": 24, "sockets": 1, "memory": 114688}),
        ev.ClusterStateChanged(ts=T + 100, state="INIT"),
        ev.ClusterStateChanged(ts=T + 109, state="ACTIVATING", previous="INIT"),
        *[sample(T + 110 + i, available_gib=max(0.1, 40 - i), total_gib=109.6) for i in range(60)],
        ev.KernelMessageSeen(ts=T + 160, source="kmsg", text="Out of memory: Killed process 41873 (.env)", match="oom"),
        ev.ClusterStateChanged(ts=T + 200, state="INIT", previous="ACTIVATING"),
        ev.VtaskChanged(ts=T + 460, name="cluster_deploy", task_id=2, state="FAILED"),
    ]
    items = by_id(diagnose(events))
    assert {"oom", "overcommit"} <= set(items)
    assert items["oom"]["changes"] == {"memory_gib": 120, "vcpus": 12}  # the root: what a retry applies
    assert "Also (overcommit)" in items["oom"]["remedy"]


ALTERNATIVE = "cd /vast/deploy && ./vman.sh release-5-4-0-2043819 /vast/deploy/ssh_key.pem start"


def test_vast_not_back_after_a_reboot_is_diagnosed_with_its_evidence_and_the_other_restart():
    failed = ev.VastRestarted(
        ts=T + 100, how="start_vms.sh", ok=False, exit_status=1,
        problem="start_vms.sh ended with exit 1: Error response from daemon: container 3f2a is not running",
        output=["start_vms.sh: vms-bringup start in vast_platform_11.0.0.1-4100",
                "Error response from daemon: container 3f2a is not running"],
        containers=[{"name": "registry", "state": "running"},
                    {"name": "vast_platform_11.0.0.1-4100", "state": "exited"}],
        alternative=ALTERNATIVE)
    items = by_id(diagnose([failed]))
    item = items["restart_failed"]
    assert item["severity"] == "critical" and item["changes"] == {}  # no VM change would help: no retry
    assert "is not running" in item["cause"] and "vast-online snapshot was not taken" in item["cause"]
    assert "did not come back with Docker" in item["remedy"] and ALTERNATIVE in item["remedy"]
    texts = [e["text"] for e in item["evidence"]]
    assert "vast_platform_11.0.0.1-4100 exited" in texts and "no vast_vms container (it runs with --rm)" in texts
    assert "VMS did not answer" in texts


def test_vast_back_after_a_reboot_is_no_diagnosis():
    passed = ev.VastRestarted(ts=T, how="start_vms.sh", ok=True, cluster_state="ONLINE", online_after_s=306.0,
                              containers=[{"name": "vast_vms", "state": "running"}], alternative=ALTERNATIVE)
    assert diagnose([passed]) == []
