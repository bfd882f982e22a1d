"""The guest's load follows the field run's memory, load and steal curves; failures bend them.

The keypoints are checked against the raw field traces (memory.log, loadavg.log, iostat.log) when
../shared is present; the world is built from events the way the guest-side player writes them."""

from __future__ import annotations

import re
import statistics
from datetime import datetime, timezone

import pytest

from backend.lab import scenarios
from backend.lab.vast.curves import GIB, VastLoad, interp
from backend.lab.vast.curves import USED as USED_POINTS
from backend.lab.vast.vaststate import fold
from tests.conftest import shared_path
from tests.vast_lab_helpers import hardware

T0 = 1_000_000.0  # lab time the bootstrap starts at
FIELD_T0 = datetime(2025, 12, 29, 18, 32, 13, tzinfo=timezone.utc).timestamp()


def _world(scenario: dict, *, create_at: float | None = None, create_end: float | None = None):
    """The world as the player leaves it: bootstrap 0..887 s, cluster create from `create_at`."""
    events = [{"t": T0, "kind": "tool", "tool": "bootstrap", "phase": "started"},
              {"t": T0 + 887, "kind": "tool", "tool": "bootstrap", "phase": "finished", "exit": 0}]
    if create_at is not None:
        events.append({"t": T0 + create_at, "kind": "tool", "tool": "cluster_create", "phase": "started"})
    if create_end is not None:
        events.append({"t": T0 + create_end, "kind": "tool", "tool": "cluster_create", "phase": "finished",
                       "exit": 0 if scenario["name"] == "success" else 1})
    return fold(events)


def _load(hw) -> tuple[dict, VastLoad]:
    scenario = scenarios.build(hw, boot_t=T0 - 60)
    return scenario, VastLoad(scenario)


def _field_memory():
    """(seconds since the field install started, MemTotal - MemAvailable in GiB) from memory.log."""
    text = shared_path("traces", "seed-run-2025-12-29", "monitoring", "memory.log").read_text()
    points = []
    for block in text.split("=== ")[1:]:
        stamp = block[:23]
        total = re.search(r"MemTotal:\s+(\d+)", block)
        available = re.search(r"MemAvailable:\s+(\d+)", block)
        if total and available:
            t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()
            points.append((t - FIELD_T0, (int(total[1]) - int(available[1])) / 2**20))
    return points


def test_memory_keypoints_follow_the_field_trace():
    points = _field_memory()
    errors = [abs(interp(USED_POINTS, t) - used) for t, used in points]
    assert len(points) == 634
    assert max(errors) < 0.4 and statistics.mean(errors) < 0.15  # GiB: the demand the OOM killer is judged on
    peak_t, peak = max(points, key=lambda p: p[1])
    assert max(y for _, y in USED_POINTS) == pytest.approx(peak, abs=0.005)  # 116.30 GiB at 19:21:37, kept
    assert peak_t == pytest.approx(2965, abs=1)


def test_load_and_steal_peaks_are_the_fields():
    loadavg = shared_path("traces", "seed-run-2025-12-29", "monitoring", "loadavg.log").read_text().split("\n")
    field_peak = max(float(line.split()[2]) for line in loadavg if line.strip())
    scenario, load = _load(hardware())
    world = _world(scenario, create_at=887, create_end=1961)
    samples = [load.sample(world, T0 + t) for t in range(0, 1961)]
    assert max(s.load1 for s in samples) == pytest.approx(field_peak, rel=0.1)  # ~80 during activation
    bootstrap_steal = max(s.steal for s in samples[:887])
    assert 15 < bootstrap_steal <= 26.7  # the field's worst second: 26.7 % during bootstrap
    assert statistics.mean(s.steal for s in samples[1000:1600]) < 3  # activation: a little
    activation = samples[990:1620]  # ACTIVATING -> ONLINE: the field's MemAvailable stayed above 4 GiB
    assert min(s.mem_available for s in activation) / GIB == pytest.approx(4.3, abs=0.6)
    assert min(s.mem_available for s in samples) / GIB == pytest.approx(2.2, abs=0.5)  # after ONLINE


def test_success_follows_the_field_axis_and_holds_after_the_install():
    scenario, load = _load(hardware())
    world = _world(scenario, create_at=900, create_end=900 + 1074)  # 13 s between the tools
    assert load.sample(world, T0 - 10).phase == "idle"
    assert load.sample(world, T0 + 10).field_t == pytest.approx(10)
    assert load.sample(world, T0 + 895).phase == "between"
    activation = load.sample(world, T0 + 900 + 200)
    assert activation.field_t == pytest.approx(887 + 200) and activation.phase == "cluster_create"
    assert activation.mem_used / GIB > 105 and activation.load1 > 60
    after = load.sample(world, T0 + 900 + 1074 + 3000)
    assert after.phase == "after" and after.mem_available / GIB == pytest.approx(1.45, abs=0.15)  # the last sample
    containers = after.containers
    assert 37 < containers["vast_platform_11.0.0.1-4100"] / GIB < 40
    assert 47 < containers["vast_platform_11.0.0.1-4200"] / GIB < 50
    assert 7.5 < containers["vast_platform_11.0.0.1-4300"] / GIB < 8.5
    assert 6.5 < containers["vast_vms"] / GIB < 7.5


def test_oom_pins_memory_at_the_limit_then_the_cluster_sits_idle():
    scenario, load = _load(hardware(memory_gib=97))
    oom, failed = scenario["times"]["oom"], scenario["times"]["deploy_failed"]
    world = _world(scenario, create_at=887, create_end=887 + failed + 6)
    pinned = load.sample(world, T0 + 887 + oom + 30)
    assert pinned.mem_total - pinned.mem_used < 0.1 * GIB
    assert pinned.containers["vast_platform_11.0.0.1-4200"] < 4 * GIB  # the killed cnode restarts small
    before = load.sample(world, T0 + 887 + oom - 60)
    assert before.mem_used < pinned.mem_used
    stuck = load.sample(world, T0 + 887 + failed + 600)
    assert stuck.mem_used < 60 * GIB and stuck.load1 < 10


def test_overcommit_steal_grows_under_the_activation_load():
    scenario, load = _load(hardware(vcpus=24))
    _, good = _load(hardware())
    world = _world(scenario, create_at=887)
    activating = scenario["times"]["activating"]
    early = statistics.mean(load.sample(world, T0 + 887 + activating + s).steal for s in range(0, 30))
    late = statistics.mean(load.sample(world, T0 + 887 + activating + s).steal for s in range(150, 300))
    field = statistics.mean(good.sample(world, T0 + 887 + activating + s).steal for s in range(150, 300))
    assert late > early and late > 20 and field < 3
    assert load.sample(world, T0 + 887 + activating + 200).load1 > good.sample(world, T0 + 887 + activating + 200).load1
    after_unknown = load.sample(world, T0 + 887 + scenario["times"]["unknown"] + 10)
    assert after_unknown.containers["vast_platform_11.0.0.1-4200"] < 4 * GIB  # cnode-2 fell out
