"""One table of every performance figure, measured side by side in the same run (`bench/run`).

    bench/run [--quick] [--only NAME[,NAME]] [--repeat N] [--calm LOAD [--calm-wait S]] [--json FILE]

Each bench runs in its own subprocess (a failing one becomes a row that says why, the others go
on), its JSON is read back and reduced to rows: measured, goal (or reference), margin, verdict.
Noisy figures are measured several times and reported as medians (the JSON keeps every run):

  agent      the monitoring agent's CPU as a user runs it (no arguments, as root) against the field
             run's monitor set, together, 5 runs (bench/agent_outside.py): goal every run >= 5x
             cheaper, aim 10x
  stall      the stall detector on SIGSTOP/SIGCONT stalls of 50/100/300/1000 ms
             (bench/stall_accuracy.py): every one seen, length within 10 % or 10 ms; cgroup-freezer
             stalls (no signal) with the guest busy (within 10 ms) and as it is (within what the
             agent states: 20 ms on an idle guest)
  startup    cold start to the first frame (bench/tui_startup.py): goal < 1 s
  findings   findings recompute per keystroke on the Sizing screen (bench/findings_keystroke.py):
             goal < 5 ms
  dashboard  the dashboard's CPU at 1 Hz with all panes (bench/dashboard_cpu.py's cases, run by
             this module's worker): goal < 3 % of one core
  report     `report` on the imported field traces (goal < 1 s) and on a synthetic 24-hour run
             (bench/report_speed.py)
  e2e        the success scenario end to end at --speed 60: wall time against lab time / 60
             (bench/e2e_overhead.py)

`--quick` shortens everything for a smoke run (its figures are not the evidence).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# --- rows --------------------------------------------------------------------------------------


def row(bench: str, figure: str, measured: float | None, unit: str, *, goal: float | None = None,
        better: str = "lower", kind: str = "goal", note: str = "", verdict: str | None = None) -> dict:
    """A table row. `kind`: "goal" (or "aim") is a target the figure must beat; "reference" is a
    figure to compare with (the margin is then measured / reference); None: no comparison."""
    factor = None
    if measured is not None and goal:
        if kind == "reference":
            factor = measured / goal
        elif better == "lower":
            factor = goal / measured if measured > 0 else math.inf
        else:
            factor = measured / goal
    if verdict is None:
        if kind in ("goal", "aim") and factor is not None:
            verdict = "met" if factor >= 1 else ("MISSED" if kind == "goal" else "missed (aim)")
        else:
            verdict = "info"
    return {"bench": bench, "figure": figure, "measured": measured, "unit": unit, "goal": goal, "kind": kind,
            "better": better, "factor": None if factor is None or math.isinf(factor) else round(factor, 3),
            "verdict": verdict, "note": note}


def failed_row(bench: str, title: str, why: str, verdict: str = "failed") -> dict:
    return row(bench, title, None, "", kind="none", verdict=verdict, note=why)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _spread(values: list[float], fmt: str) -> str:
    return "" if len(values) < 2 else f"runs {', '.join(format(v, fmt) for v in values)}"


# --- the benches -------------------------------------------------------------------------------


@dataclass
class Options:
    quick: bool
    repeat: int | None  # None: each bench's default for the mode
    calm: float | None = None  # wait before each run until the 1-minute load average is below this
    calm_wait_s: float = 300.0  # ... but no longer than this


@dataclass
class Bench:
    name: str
    title: str
    runs: Callable[[Options], list[tuple[str, list[str], float]]]  # (label, argv after python, timeout s)
    rows: Callable[[list[tuple[str, dict]], Options], list[dict]]


def _repeat(options: Options, full: int) -> int:
    if options.repeat is not None:
        return options.repeat
    return 1 if options.quick else full


def agent_runs(o: Options) -> list[tuple[str, list[str], float]]:
    """The agent as a user runs it (bench/agent_outside.py: `python3.6 agent.py`, no arguments, as
    root with /dev/kmsg, a 300 ms stop at 10 s), one run per process so --calm applies to each."""
    seconds, warmup, stop_at = (10, 2, 4) if o.quick else (30, 5, 10)
    argv = [str(BENCH / "agent_outside.py"), "--runs", "1", "--seconds", str(seconds), "--warmup", str(warmup),
            "--stop-at", str(stop_at)]
    timeout = seconds + warmup + 60
    runs = [("default", argv, timeout)] * _repeat(o, 5)
    if not o.quick:  # the trade-off, once: no tick at all (only exact stops)
        runs.append(("tick0", [*argv, "--agent-arg=--tick", "--agent-arg=0"], timeout))
    return runs


def agent_rows(results: list[tuple[str, dict]], o: Options) -> list[dict]:
    default = [run for label, data in results if label == "default" for run in data["runs"]]
    if not default:
        return [failed_row("agent", "agent CPU vs the field monitor set", "no run finished")]
    first = next(data for label, data in results if label == "default")
    per_min = 60.0 / first["seconds"]
    fields = [r["field_cpu_s"] * per_min for r in default]
    agents = [r["agent_cpu_s"] * per_min for r in default]
    ratios = [r["ratio"] for r in default]
    loads = [r["load1_start"] for r in default]
    python = first.get("python", "?").rsplit(" ", 1)[-1].strip("()")
    root = "as root, /dev/kmsg read" if first.get("as_root") else "NOT as root"
    parts = sorted({p for r in default for p in r["self_parts_s"]})
    split = ", ".join(f"{p} {_median([r['self_parts_s'].get(p, 0.0) * per_min for r in default]):.3f}"
                      for p in parts)
    stops = [r["stop"] for r in default if r.get("stop")]
    idle = ", ".join("-" if r.get("idle_share") is None else f"{r['idle_share']:.0%}" for r in default)
    rows = [
        row("agent", "field run's monitor set: vmstat, iostat -xzt, mpstat -P ALL, pidstat -urd at 1 s, dmesg -wT + "
            "shell loops (CPU-s per minute)", _median(fields), "CPU-s/min", kind="none",
            note=f"{_median(fields) / 60 * 100:.2f} % of one core; {_spread(fields, '.3f')}".strip("; ")),
        row("agent", f"monitoring agent, `{first['invocation']}` (the default; CPU-s per minute)", _median(agents),
            "CPU-s/min", kind="none",
            note=f"{_median(agents) / 60 * 100:.3f} % of one core; Python {python}, {root}; at its idle tick "
                 f"(idle guest) {idle} of each run; {_spread(agents, '.3f')}".strip("; ")),
        row("agent", "its stall detector's ticks, 50 wake-ups a second (CPU-s per minute, median)",
            _median([r["self_parts_s"].get("tick", 0.0) * per_min for r in default]) if "tick" in parts else None,
            "CPU-s/min", kind="none", note=f"the agent's own split (its sample lines' agent_cpu): {split}; "
                                           "the rest is the main thread's wake-ups"),
        row("agent", "field set / agent, same window: the worst run", min(ratios), "x", goal=5.0, better="higher",
            note=f"{len(ratios)} x {first['seconds']:g} s side by side ({first['method']}); "
                 f"{_spread(ratios, '.1f')}; load1 at start {', '.join(f'{v:.1f}' for v in loads)}".strip("; ")),
        row("agent", "field set / agent (aim), median", _median(ratios), "x", goal=10.0, better="higher", kind="aim",
            note="the stall detector's 20 ms tick: 50 wake-ups a second, each dearer when the CPUs are idle "
                 "(README: Performance)"),
    ]
    if stops:
        worst = max(abs(s["seen_ms"] - s["real_ms"]) if s["seen_ms"] is not None else math.inf for s in stops)
        rows.append(row("agent", "300 ms SIGSTOP of the agent inside the window: worst abs. error", worst, "ms",
                        goal=10.0, note=f"seen {sum(s['seen_ms'] is not None for s in stops)}/{len(stops)}: "
                                        f"{', '.join(str(s['seen_ms']) for s in stops)} ms"))
    for label, data in results:
        if label == "tick0":
            run = data["runs"][0]
            rows.append(row("agent", "field set / agent with --tick 0 (exact stops only, no tick)", run["ratio"],
                            "x", goal=10.0, better="higher", kind="aim", verdict="info (trade-off)",
                            note=f"agent {run['agent_cpu_s'] * per_min:.3f} CPU-s/min; stalls that are not stops "
                                 "are then not bounded to 10 ms, so not the default"))
    return rows


def stall_runs(o: Options) -> list[tuple[str, list[str], float]]:
    modes = "stop" if o.quick else "stop,freeze-busy,freeze"
    return [("stall", [str(BENCH / "stall_accuracy.py"), "--lengths", "50,100,300,1000", "--modes", modes,
                       "--repeat", str(_repeat(o, 3))], 300)]


def stall_rows(results: list[tuple[str, dict]], o: Options) -> list[dict]:
    measured = [r for _, data in results for r in data["rows"] if "skipped" not in r]
    rows = []
    for length in (50.0, 100.0, 300.0, 1000.0):
        stops = [r for r in measured if r["mode"] == "stop" and r["injected_ms"] == length]
        if not stops:
            rows.append(failed_row("stall", f"SIGSTOP/SIGCONT stall of {length:g} ms", "not injected"))
            continue
        seen = [r for r in stops if r["seen_ms"] is not None]
        bound = max(10.0, 0.1 * length)
        if len(seen) < len(stops):
            rows.append(row("stall", f"SIGSTOP/SIGCONT stall of {length:g} ms: worst abs. error", None, "ms",
                            goal=bound, verdict="MISSED", note=f"seen {len(seen)}/{len(stops)}"))
            continue
        worst = max(abs(r["error_ms"]) for r in seen)
        rows.append(row("stall", f"SIGSTOP/SIGCONT stall of {length:g} ms: worst abs. error", worst, "ms", goal=bound,
                        note=f"seen {len(seen)}/{len(stops)}; real {_median([r['real_ms'] for r in seen]):.1f} ms, "
                             f"seen {_median([r['seen_ms'] for r in seen]):.1f} ms (medians){_invocation(stops)}"))
    for mode, title in (("freeze-busy", "cgroup-freezer stalls at the busy guest's 20 ms tick (no signal: tick "
                                        "lateness only): worst abs. error"),
                        ("freeze", "cgroup-freezer stalls, machine as it is (an idle guest ticks at 40 ms): "
                                   "worst abs. error")):
        freezes = [r for r in measured if r["mode"] == mode]
        if not freezes:
            continue
        seen = [r for r in freezes if r["seen_ms"] is not None]
        worst = max((abs(r["error_ms"]) for r in seen), default=None)
        bounds = sorted({r["err_bound_ms"] for r in seen if r.get("err_bound_ms") is not None})
        within = sum(abs(r["error_ms"]) <= r["err_bound_ms"] + 1.0 for r in seen)
        goal = 10.0 if mode == "freeze-busy" else max(bounds, default=10.0)
        rows.append(row("stall", title, worst, "ms", goal=goal,
                        note=f"seen {len(seen)}/{len(freezes)} of 50-1000 ms, {within} within the +-"
                             f"{'/'.join(f'{b:g}' for b in bounds)} ms their gap lines state{_invocation(freezes)}"))
    return rows


def _invocation(rows: list[dict]) -> str:
    """How the stall bench ran the agent (newer results say it)."""
    return f"; `{rows[0]['agent']}`" if rows and rows[0].get("agent") else ""


def startup_runs(o: Options) -> list[tuple[str, list[str], float]]:
    return [("startup", [str(BENCH / "tui_startup.py"), "--runs", str(2 if o.quick else 7)], 300)]


def startup_rows(results: list[tuple[str, dict]], o: Options) -> list[dict]:
    data = results[0][1]
    rows = []
    for case in sorted(data["rows"], key=lambda r: r["goal_ms"] is None):
        if case["goal_ms"]:
            rows.append(row("startup", f"cold start to first frame: {case['case']}", case["median_ms"], "ms",
                            goal=case["goal_ms"], note=f"median of {case['runs']}, max {case['max_ms']:.0f} ms"))
        elif case["case"].startswith("minimal Textual app"):
            rows.append(row("startup", "for comparison: a one-line Textual app's first frame", case["median_ms"],
                            "ms", kind="none", note=f"median of {case['runs']}"))
    return rows


def findings_runs(o: Options) -> list[tuple[str, list[str], float]]:
    return [("findings", [str(BENCH / "findings_keystroke.py"), "--keys", str(18 if o.quick else 90)], 300)]


def findings_rows(results: list[tuple[str, dict]], o: Options) -> list[dict]:
    data = results[0][1]
    rows = []
    for what, title in (("screen handler", "findings recompute per keystroke (Sizing screen handler), p95"),
                        ("evaluate()", "sizing rules alone (evaluate()), p95")):
        cases = [r for r in data["rows"] if r["what"] == what]
        worst = max(cases, key=lambda r: r["p95_ms"])
        rows.append(row("findings", title + ", worst host", worst["p95_ms"], "ms", goal=worst["goal_ms"],
                        note=f"{worst['host']}; median {worst['median_ms']:.3f} ms, {worst['n']} keystrokes"
                        if what == "screen handler" else f"{worst['host']}; median {worst['median_ms']:.4f} ms"))
    return rows


def dashboard_runs(o: Options) -> list[tuple[str, list[str], float]]:
    seconds = 4 if o.quick else 20
    argv = [str(Path(__file__).resolve()), "--worker", "dashboard", "--seconds", str(seconds)]
    if o.quick:
        argv.append("--no-pty")
    return [("dashboard", argv, 4 * (seconds + 10) + 60)] * _repeat(o, 3)


def dashboard_rows(results: list[tuple[str, dict]], o: Options) -> list[dict]:
    by_case: dict[str, list[dict]] = {}
    for _, data in results:
        for case in data["rows"]:
            by_case.setdefault(case["case"], []).append(case)
    rows = []
    for name, cases in by_case.items():
        values = [c["cpu_pct"] for c in cases]
        lag = [c["loop_lag_ms"] for c in cases if c.get("loop_lag_ms") is not None]
        note = f"{cases[0]['size']}, {cases[0]['wall_s']:.0f} s measured"
        if lag:
            note += f", worst loop lag {max(lag):.0f} ms"
        if len(values) > 1:
            note += f"; {_spread(values, '.2f')}"
        goal = cases[0].get("goal_pct")
        rows.append(row("dashboard", name + " (% of one core)", _median(values), "%", goal=goal,
                        kind="goal" if goal else "none", note=note))
    return rows


def report_runs(o: Options) -> list[tuple[str, list[str], float]]:
    hours = 1 if o.quick else 24
    return [("report", [str(BENCH / "report_speed.py"), "--repeat", str(1 if o.quick else 3), "--hours",
                        str(hours)], 600)] * (1 if o.quick else _repeat(o, 3))


def report_rows(results: list[tuple[str, dict]], o: Options) -> list[dict]:
    by_case: dict[str, list[dict]] = {}
    for _, data in results:
        for case in data["rows"]:
            by_case.setdefault(case["case"], []).append(case)
    rows = []
    for name, cases in by_case.items():
        if "skipped" in cases[0]:
            rows.append(failed_row("report", f"`report` on the {name}", cases[0]["skipped"] +
                                   " (put the shared traces beside the checkout or set VLB_SHARED)", "skipped"))
            continue
        field = name.startswith("field")
        wall = [c["cli_wall_s"] for c in cases]
        inside = [c["report_s"] for c in cases]
        size = f"{cases[0]['samples']:,} samples, {cases[0]['size_mib']:.1f} MiB"
        rows.append(row("report", f"`vast-loopback report` on the {name}, whole CLI process", _median(wall), "s",
                        goal=1.0 if field else None, kind="goal" if field else "none",
                        note=f"{size}; peak RSS {cases[0]['peak_rss_mib']:.0f} MiB; {_spread(wall, '.2f')}".strip("; ")))
        rows.append(row("report", f"analysis + report.md on the {name}, in process", _median(inside), "s",
                        kind="none", note=(f"import-traces took {cases[0]['import_s']:.2f} s" if "import_s" in cases[0]
                                           else f"generating the run took {cases[0].get('generate_s', 0):.1f} s")))
    return rows


def e2e_runs(o: Options) -> list[tuple[str, list[str], float]]:
    speed = 240 if o.quick else 60
    runs = [("e2e", [str(BENCH / "e2e_overhead.py"), "--speed", str(speed), "--repeat", str(_repeat(o, 3))],
             _repeat(o, 3) * (7000 / speed + 120))]
    if not o.quick:  # the same run 4x faster: what grows with the speed is our own wall-bound work
        runs.append(("e2e-fast", [str(BENCH / "e2e_overhead.py"), "--speed", str(4 * speed), "--repeat", "1"],
                     7000 / (4 * speed) + 120))
    return runs


def _fit(slow: dict, fast: dict, key: str) -> tuple[float, float]:
    """Lab time = scripted + speed x overhead: two speeds give both (overhead in wall s)."""
    a, b = slow["median"], fast["median"]
    overhead = (b[key] - a[key]) / (fast["speed"] - slow["speed"])
    return overhead, a[key] - slow["speed"] * overhead


def e2e_rows(results: list[tuple[str, dict]], o: Options) -> list[dict]:
    data = next(d for label, d in results if label == "e2e")
    m, speed, n = data["median"], data["speed"], data["repeat"]
    runs = data["runs"]
    fast = next((d for label, d in results if label == "e2e-fast"), None)
    fitted = []
    if fast is not None:
        for key, what in (("run_lab_s", "whole run"), ("install_total_s", "install")):
            overhead, scripted = _fit(data, fast, key)
            fitted.append(row("e2e", f"{what}: our own wall-bound work, from lab time at --speed {speed:g} and "
                                     f"{fast['speed']:g} (s)", overhead, "s", kind="none",
                              note=f"lab time = {scripted:.0f} s scripted + speed x {overhead:.2f} s; at "
                                   f"{speed:g}x that is {overhead * speed:.0f} lab s of the "
                                   f"{m[key]:.0f}" + (f"; the lab's scripts say {data['scripted_install_s']:.0f} s"
                                                      if key == "install_total_s" else "")))
    return [
        row("e2e", f"success scenario, whole run at --speed {speed:g}: wall (s)", m["wall_s"], "s",
            goal=m["run_lab_over_speed_s"], kind="reference",
            note=f"lab time {m['run_lab_s']:.0f} s / {speed:g} = {m['run_lab_over_speed_s']:.2f} s; overhead "
                 f"{m['run_overhead_s']:+.2f} s (start-up {m['startup_s']:.2f} s, shut-down {m['shutdown_s']:.2f} s); "
                 f"median of {n}; {_spread([r['wall_s'] for r in runs], '.1f')}".strip("; ")),
        row("e2e", "install (first install phase to cluster_deploy done): wall (s)", m["install_wall_s"], "s",
            goal=m["install_lab_over_speed_s"], kind="reference",
            note=f"report timeline.total_s {m['install_total_s']:.0f} lab s / {speed:g} = "
                 f"{m['install_lab_over_speed_s']:.2f} s; overhead {m['install_overhead_s']:+.2f} s"),
        row("e2e", "install in lab time (timeline.total_s) against the lab's own scripts", m["install_total_s"], "s",
            goal=data["scripted_install_s"], kind="reference",
            note=f"scripts: bootstrap 887 s + cluster create to deploy done 1068 s = {data['scripted_install_s']:.0f} s "
                 f"(field 32 min 41 s); ours {m['install_extra_lab_s']:+.0f} lab s = "
                 f"{m['install_extra_wall_s']:+.2f} s wall at {speed:g}x"),
        *fitted,
    ]


BENCHES = [
    Bench("agent", "monitoring agent CPU vs the field monitor set", agent_runs, agent_rows),
    Bench("stall", "stall detector accuracy", stall_runs, stall_rows),
    Bench("startup", "cold start to the first frame", startup_runs, startup_rows),
    Bench("findings", "findings recompute per keystroke", findings_runs, findings_rows),
    Bench("dashboard", "dashboard CPU at 1 Hz", dashboard_runs, dashboard_rows),
    Bench("report", "report speed", report_runs, report_rows),
    Bench("e2e", "success scenario end to end", e2e_runs, e2e_rows),
]


# --- running -----------------------------------------------------------------------------------


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def wait_for_calm(options: Options) -> float:
    """With --calm: wait until the 1-minute load average is below the limit (others share the
    machine); returns the seconds waited."""
    if options.calm is None:
        return 0.0
    started = time.monotonic()
    while os.getloadavg()[0] >= options.calm and time.monotonic() - started < options.calm_wait_s:
        time.sleep(5)
    return time.monotonic() - started


def _run_one(argv: list[str], timeout: float) -> tuple[int | None, str]:
    """(exit status or None on time-out, stderr or else stdout). A bench that overruns gets SIGINT
    first, so its own clean-up runs (the agent bench's monitor processes live in sessions of their
    own), then its process group is killed."""
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except KeyboardInterrupt:  # Ctrl+C on bench/run: the bench (in its own session) cleans up too
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
        raise
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        return None, ""
    return process.returncode, stderr.strip() or stdout


def run_bench(bench: Bench, options: Options) -> tuple[list[dict], dict]:
    """Every run of one bench in its own subprocess; its rows and what happened."""
    started = time.monotonic()
    results: list[tuple[str, dict]] = []
    errors: list[str] = []
    load = os.getloadavg()[0]
    waited = 0.0
    loads: list[list] = []  # the 1-minute load average as each run started
    for label, argv, timeout in bench.runs(options):
        waited += wait_for_calm(options)
        loads.append([label, round(os.getloadavg()[0], 2)])
        with tempfile.TemporaryDirectory(prefix="vlb-bench-run-") as tmp:
            out = Path(tmp) / "result.json"
            code, output = _run_one([sys.executable, *argv, "--json", str(out)], timeout)
            if code is None:
                errors.append(f"{label}: timed out after {timeout:.0f} s")
            elif out.exists():
                results.append((label, json.loads(out.read_text())))
            else:
                errors.append(f"{label}: exit {code}: {_last_line(output)}")
        print(f"  {bench.name}: {label} done ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    status = {"seconds": round(time.monotonic() - started, 1), "waited_for_calm_s": round(waited, 1), "load1_per_run": loads,
              "load1_before": round(load, 2),
              "load1_after": round(os.getloadavg()[0], 2), "errors": errors, "runs": results}
    return bench_rows(bench, status, options), status


def bench_rows(bench: Bench, status: dict, options: Options) -> list[dict]:
    """The rows of one bench from its runs' results (fresh, or read back from a saved JSON)."""
    results = [(label, data) for label, data in status["runs"]]
    errors = status["errors"]
    if not results:
        return [failed_row(bench.name, bench.title, "; ".join(errors) or "no run")]
    try:
        rows = bench.rows(results, options)
    except Exception as error:  # a bench whose JSON changed shape: say so in its row
        rows = [failed_row(bench.name, bench.title, f"could not read its result: {type(error).__name__}: {error}")]
    if errors:
        for item in rows:
            item["note"] = (item["note"] + "; " if item["note"] else "") + f"{len(errors)} run(s) failed: {errors[0]}"
    return rows


def machine() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except (OSError, IndexError, ValueError):
        mem_gib = None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    from bench.agent_common import agent_python, python_version

    agent = agent_python()
    return {"cores": os.cpu_count(), "cpu_model": model, "mem_gib": round(mem_gib, 1) if mem_gib else None,
            "python": platform.python_version(), "agent_python": f"{agent} ({python_version(agent)})",
            "kernel": platform.release(), "platform": platform.platform(), "hostname": platform.node(),
            "commit": commit.stdout.strip() or None, "load1_start": round(os.getloadavg()[0], 2)}


# --- the table ---------------------------------------------------------------------------------

UNITS = {"ms": "{:.1f} ms", "s": "{:.2f} s", "%": "{:.2f} %", "x": "{:.1f}x", "CPU-s/min": "{:.3f}"}


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms" and value < 10:
        return f"{value:.3f} ms" if value < 0.1 else f"{value:.2f} ms"
    return UNITS.get(unit, "{:g}").format(value) + (" CPU-s/min" if unit == "CPU-s/min" else "")


def _goal(item: dict) -> str:
    if item["goal"] is None or item["kind"] == "none":
        return "-"
    value = _value(item["goal"], item["unit"])
    if item["kind"] == "reference":
        return f"ref {value}"
    sign = "<" if item["better"] == "lower" else ">="
    if item["bench"] == "stall":
        sign = "<="
    return ("aim " if item["kind"] == "aim" else "") + f"{sign} {value}"


def _factor(item: dict) -> str:
    if item["factor"] is None:
        return "inf" if item["kind"] in ("goal", "aim") and item["measured"] == 0 else "-"
    return f"{item['factor']:.2f}x" if item["factor"] < 10 else f"{item['factor']:.0f}x"


def table(rows: list[dict]) -> str:
    lines = ["| bench | figure | measured | goal / reference | factor | verdict | note |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for item in rows:
        cells = [item["bench"], item["figure"], _value(item["measured"], item["unit"]), _goal(item), _factor(item),
                 item["verdict"], item["note"]]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def _header(what: str, started: datetime.datetime, facts: dict) -> str:
    """When, on which machine (and its load), with which Pythons and at which commit."""
    return (f"{what} {started:%Y-%m-%d %H:%M} UTC on {facts['cores']} cores ({facts['cpu_model']}), Linux "
            f"{facts['kernel']}, Python {facts['python']}, agent on Python "
            f"{facts['agent_python'].rsplit(' ', 1)[-1].strip('()')}, load {facts['load1_start']} -> "
            f"{facts['load1_end']}, commit {facts['commit']}")


LEGEND = ("factor: for a goal, how many times it is beaten (>= 1 met: goal / measured, or measured / goal for "
          "'>='); for a reference, measured / reference.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short durations: a smoke run, not evidence")
    parser.add_argument("--only", metavar="NAME", help="comma-separated: " + ", ".join(b.name for b in BENCHES))
    parser.add_argument("--repeat", type=int, help="runs of each noisy bench (default 3, 1 with --quick)")
    parser.add_argument("--json", metavar="FILE", help="also write the table, machine facts and raw results")
    parser.add_argument("--calm", type=float, metavar="LOAD",
                        help="before each run, wait until the 1-minute load average is below LOAD")
    parser.add_argument("--calm-wait", type=float, default=300.0, metavar="S",
                        help="... but at most S seconds per run (default 300)")
    parser.add_argument("--from", dest="saved", metavar="FILE",
                        help="measure nothing: rebuild the table from the raw results of a saved --json FILE")
    parser.add_argument("--into", metavar="FILE",
                        help="measure the benches of --only and replace them in a saved --json FILE, the others "
                             "kept as measured (the header then says which were measured again, when, on what)")
    parser.add_argument("--worker", choices=["dashboard"], help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--no-pty", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return dashboard_worker(args.seconds, not args.no_pty, args.json)
    names = [b.name for b in BENCHES]
    only = [n.strip() for n in args.only.split(",")] if args.only else names
    unknown = [n for n in only if n not in names]
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)} (choose from {', '.join(names)})")
    options = Options(quick=args.quick, repeat=args.repeat, calm=args.calm, calm_wait_s=args.calm_wait)
    rows: list[dict] = []
    benches: dict[str, dict] = {}
    if args.saved and args.into:
        parser.error("--from and --into exclude each other")
    if args.into and (json.loads(Path(args.into).read_text())["mode"] == "quick") != args.quick:
        parser.error("--into: measure the same way as the saved run (with --quick for a quick run, else without)")
    updates: list[dict] = []
    if args.saved:
        saved = json.loads(Path(args.saved).read_text())
        updates = saved.get("updates", [])
        facts, started, seconds = saved["machine"], datetime.datetime.fromisoformat(saved["started"]), saved["seconds"]
        options.quick = args.quick = saved["mode"] == "quick"
        for bench in BENCHES:
            if bench.name in only and bench.name in saved["benches"]:
                benches[bench.name] = saved["benches"][bench.name]
                rows += bench_rows(bench, benches[bench.name], options)
    else:
        facts = machine()
        started = datetime.datetime.now(datetime.timezone.utc)
        if facts["load1_start"] > 0.5 * (facts["cores"] or 1):
            print(f"note: load average {facts['load1_start']} on {facts['cores']} cores: figures will be noisy",
                  file=sys.stderr)
        for bench in BENCHES:
            if bench.name in only:
                print(f"{bench.name}: {bench.title} ...", file=sys.stderr)
                more, benches[bench.name] = run_bench(bench, options)
                rows += more
        facts["load1_end"] = round(os.getloadavg()[0], 2)
        seconds = round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1)
    header = _header("quick smoke run" if args.quick else "full run", started, facts)
    result = {"bench": "run", "mode": "quick" if args.quick else "full", "started": started.isoformat(),
              "seconds": seconds, "machine": facts, "header": header, "updates": updates, "benches": benches}
    if args.into:  # these benches measured now, the others as they were
        result = json.loads(Path(args.into).read_text())
        again = [b.name for b in BENCHES if b.name in only]
        result["updates"] = [dict(u, benches=[b for b in u["benches"] if b not in again])
                             for u in result.get("updates", []) if set(u["benches"]) - set(again)]
        result["updates"].append({"benches": again, "header": _header("measured again", started, facts)})
        result["benches"].update(benches)
        rows = []
        for bench in BENCHES:
            if bench.name in result["benches"]:
                rows += bench_rows(bench, result["benches"][bench.name], options)
        header, updates = result["header"], result["updates"]
    text = table(rows)
    print(header)
    for update in updates:
        print(f"{', '.join(update['benches'])}: {update['header']}")
    print()
    print(text)
    print()
    print(LEGEND)
    result.update(rows=rows, table=text)
    for path in {args.json, args.into} - {None}:
        Path(path).write_text(json.dumps(result, indent=2))
    return 0 if all(r["verdict"] not in ("failed", "MISSED") for r in rows) else 1


# --- the dashboard's goal cases (a worker process of this module) -------------------------------


def dashboard_worker(seconds: float, with_pty: bool, json_path: str | None) -> int:
    """The idle floor, the dashboard at 1 Hz with all panes (headless) and, unless told not to, the
    same in a real pseudo-terminal: bench/dashboard_cpu.py's goal cases."""
    from bench import dashboard_cpu as dash

    with tempfile.TemporaryDirectory(prefix="vlb-bench-dash-") as tmp:
        run = dash.write_recorded_run(Path(tmp) / "run", "success", k=1.0)
        rows = []
        floor = asyncio.run(dash.measure(dash.Idle(), dash.BIG, seconds, None))
        rows.append({"case": "Textual idle app (the floor)", "size": "200x60", "goal_pct": None, **floor})
        session, _ = dash.prepared(run.path, 1.0)
        live = asyncio.run(dash.measure(dash.Dashboard(session), dash.BIG, seconds, session))
        rows.append({"case": "dashboard at 1 Hz, all panes, headless driver", "size": "200x60",
                     "goal_pct": dash.GOAL_PCT, **live})
        if with_pty:
            in_pty = dash.in_pty(run.path, seconds, dash.BIG)
            in_pty["case"] = "dashboard at 1 Hz, all panes, real terminal (pty)"
            rows.append(in_pty)
    if json_path:
        Path(json_path).write_text(json.dumps({"bench": "dashboard_goal", "seconds": seconds, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
