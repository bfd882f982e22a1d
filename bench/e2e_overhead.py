"""The success scenario end to end on the lab, wall time against lab time: our own overhead.

    .venv/bin/python bench/e2e_overhead.py [--speed 60] [--repeat 1] [--json FILE]

Runs `vast-loopback --auto A.yaml --run-dir D --speed N --json` (12 vCPUs / 120 GiB on the seed
host: the field run's success) in a fresh process, stamps every JSON line with the wall time it
arrives, then reads `vast-loopback report D --json`. Side by side:
- the whole run: wall time from spawn to exit against the run's lab-time span (RunStarted to
  RunFinished) / N; what is left is start-up and shut-down;
- the install (first install phase to `cluster_deploy` completed, the report's `timeline.total_s`):
  wall time between the two events' arrival against total_s / N;
- the install in lab time against what the lab's scripts take (bootstrap 887 s + cluster create
  to `cluster_deploy` done 1068.11 s = 1955.11 s, the field run's timeline): the difference is our
  own overhead (phases before the bootstrap, SSH round trips, polling), in lab seconds.
The run directory is deleted at the end, which ends the lab's guests (they stop by themselves
within ~2 s once their state is gone).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.lab.vast.timeline import BOOTSTRAP_S, DEPLOY_DONE_AT  # noqa: E402

ANSWERS = "proxmox: {url: lab}\nvm: {name: vast-lb, vcpus: 12, memory_gib: 120, disk_gib: 1000}\n"
SCRIPTED_INSTALL_S = BOOTSTRAP_S + DEPLOY_DONE_AT  # the lab's own schedule, first bootstrap line to deploy done
GUEST_STOP_S = 3.0  # guests whose state directory is gone stop within ~2 s


def _cli() -> list[str]:
    return [sys.executable, "-m", "tui.cli"]


def one_run(speed: float, timeout: float) -> dict:
    """One whole success run; the figures of both the wall and the lab clock."""
    tmp = Path(tempfile.mkdtemp(prefix="vlb-bench-e2e-"))
    try:
        answers = tmp / "answers.yaml"
        answers.write_text(ANSWERS)
        run_dir = tmp / "run"
        env = {**os.environ, "XDG_DATA_HOME": str(tmp / "data"), "PYTHONPATH": str(REPO)}
        usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        spawned = time.monotonic()
        with (tmp / "stderr.txt").open("w") as errors:
            process = subprocess.Popen([*_cli(), "--auto", str(answers), "--run-dir", str(run_dir), "--speed",
                                        f"{speed:g}", "--json"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                       stderr=errors, text=True)
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        arrived: list[tuple[float, dict]] = []
        for raw in process.stdout:
            if raw.strip().startswith("{"):
                arrived.append((time.monotonic() - spawned, json.loads(raw)))
        code = process.wait()
        wall = time.monotonic() - spawned
        watchdog.cancel()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        stderr = (tmp / "stderr.txt").read_text()
        cpu_s = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
        events = [event for _, event in arrived]
        finished = [event for event in events if event.get("type") == "RunFinished"]
        if code != 0 or not finished or finished[-1].get("outcome") != "online":
            last = (finished[-1].get("message") if finished else "") or stderr.strip().splitlines()[-1:] or ["?"]
            raise RuntimeError(f"the success run did not end online (exit {code}): {last}")
        report = subprocess.run([*_cli(), "report", str(run_dir), "--json"], cwd=REPO, env=env,
                                capture_output=True, text=True, check=True)
        timeline = json.loads(report.stdout)["timeline"]
        return _figures(speed, arrived, wall, cpu_s, timeline)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        time.sleep(GUEST_STOP_S)


def _arrival(arrived: list[tuple[float, dict]], test) -> tuple[float, dict]:  # noqa: ANN001
    for at, event in arrived:
        if test(event):
            return at, event
    raise RuntimeError("an expected event is missing from the run's output")


def _figures(speed: float, arrived: list[tuple[float, dict]], wall: float, cpu_s: float, timeline: dict) -> dict:
    started_at, started = _arrival(arrived, lambda e: e.get("type") == "RunStarted")
    finished_at, finished = _arrival(arrived, lambda e: e.get("type") == "RunFinished")
    lab_span = finished["ts"] - started["ts"]
    start_ts = timeline["start"]
    steps = [(at, e) for at, e in arrived if e.get("type") == "StepStarted"]
    install_at, _ = min(steps, key=lambda pair: abs(pair[1]["ts"] - start_ts))
    deploy_at, _ = _arrival(arrived, lambda e: e.get("type") == "VtaskChanged" and e.get("name") == "cluster_deploy"
                            and e.get("state") == "COMPLETED")
    total_s = timeline["total_s"]
    install_wall = deploy_at - install_at
    return {
        "speed": speed, "wall_s": round(wall, 3), "cpu_s": round(cpu_s, 2),
        "startup_s": round(started_at, 3), "shutdown_s": round(wall - finished_at, 3),
        "run_lab_s": round(lab_span, 1), "run_lab_over_speed_s": round(lab_span / speed, 3),
        "run_overhead_s": round(wall - lab_span / speed, 3), "run_ratio": round(wall / (lab_span / speed), 4),
        "install_total_s": total_s, "install_wall_s": round(install_wall, 3),
        "install_lab_over_speed_s": round(total_s / speed, 3),
        "install_overhead_s": round(install_wall - total_s / speed, 3),
        "install_ratio": round(install_wall / (total_s / speed), 4),
        "scripted_install_s": SCRIPTED_INSTALL_S, "install_extra_lab_s": round(total_s - SCRIPTED_INSTALL_S, 1),
        "install_extra_wall_s": round(install_wall - SCRIPTED_INSTALL_S / speed, 3),
        "install_ratio_vs_scripted": round(install_wall / (SCRIPTED_INSTALL_S / speed), 4),
        "bootstrap_s": timeline.get("bootstrap_s"), "activation_s": timeline.get("activation_s"),
    }


def measure(speed: float = 60.0, repeat: int = 1, timeout: float = 900.0) -> dict:
    runs = [one_run(speed, timeout) for _ in range(repeat)]
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and v is not None]
    median = {k: statistics.median(r[k] for r in runs) for k in keys}
    return {"bench": "e2e_overhead", "speed": speed, "repeat": repeat, "median": median, "runs": runs,
            "scripted_install_s": SCRIPTED_INSTALL_S}


def table(result: dict) -> str:
    m = result["median"]
    speed = result["speed"]
    return "\n".join([
        f"success scenario at --speed {speed:g}, median of {result['repeat']}",
        "what | lab time | lab time / speed | wall | overhead | wall / (lab / speed)",
        "--- | --- | --- | --- | --- | ---",
        f"whole run | {m['run_lab_s']:.0f} s | {m['run_lab_over_speed_s']:.2f} s | {m['wall_s']:.2f} s | "
        f"{m['run_overhead_s']:+.2f} s | {m['run_ratio']:.3f}",
        f"install (timeline.total_s) | {m['install_total_s']:.0f} s | {m['install_lab_over_speed_s']:.2f} s | "
        f"{m['install_wall_s']:.2f} s | {m['install_overhead_s']:+.2f} s | {m['install_ratio']:.3f}",
        f"install vs the lab's scripts | {SCRIPTED_INSTALL_S:.0f} s | {SCRIPTED_INSTALL_S / speed:.2f} s | "
        f"{m['install_wall_s']:.2f} s | {m['install_extra_wall_s']:+.2f} s ({m['install_extra_lab_s']:+.0f} lab s) | "
        f"{m['install_ratio_vs_scripted']:.3f}",
        f"start-up {m['startup_s']:.2f} s, shut-down {m['shutdown_s']:.2f} s, CPU {m['cpu_s']:.1f} s of the CLI process",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speed", type=float, default=60.0, help="lab time compression (default 60)")
    parser.add_argument("--repeat", type=int, default=1, help="whole runs (median)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on a run after this many s")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = measure(args.speed, args.repeat, args.timeout)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
