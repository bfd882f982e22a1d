"""The monitoring agent's CPU measured from outside, as a user runs it, beside the field run's monitors.

    .venv/bin/python bench/agent_outside.py [--runs 5] [--seconds 30] [--warmup 5] [--stop-at 10]
        [--stop-ms 300] [--agent-arg=--tick --agent-arg=0] [--agent FILE] [--python P] [--json FILE]

Each run (the method of issue 16):
1. `vast-loopback agent --print > agent.py`: the file shipped to the guest;
2. `python3.6 agent.py` with no arguments (the default invocation; as root, so /dev/kmsg is read)
   in an accounting group of its own, started together with the field run's monitor set
   (bench/agent_common.py: vmstat, iostat -xzt, mpstat -P ALL, pidstat -urd at 1 s, dmesg -wT and
   the field's shell loops), each tool in a group of its own; cgroup v1 `cpuacct.usage` where it is
   mounted (v2 `cpu.stat`, else a process-tree walk), so every forked child counts;
3. both measured over the same window, `warmup` to `warmup + seconds` after the start (start-up
   excluded);
4. at `stop-at` seconds the agent is stopped (SIGSTOP) for `stop-ms` and continued: its `gap` line
   must give the stop's length (within 10 ms).
Prints one row per run with the 1-minute load average at its start (the machine's state matters:
on idle CPUs every wake-up costs more), the ratio field / agent, the share of the window the agent
ticked at its idle tick (an idle guest), and the agent's own CPU split by part (its `agent_cpu`
sample field, over the same window); then the spread of the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.agent_common import Accounting, agent_python, python_version, spawn_field_set  # noqa: E402

CLI = REPO / ".venv" / "bin" / "vast-loopback"
GOAL, AIM = 5.0, 10.0


def export_agent(directory: Path) -> Path:
    """`vast-loopback agent --print > agent.py`, as a user gets the agent."""
    path = directory / "agent.py"
    with path.open("w") as handle:
        subprocess.run([str(CLI), "agent", "--print"], stdout=handle, stderr=subprocess.DEVNULL, check=True)
    return path


def _sleep_until(deadline: float) -> None:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.5) if left > 0.003 else 0)


def _stop_for(pid: int, seconds: float) -> tuple[float, float]:
    """SIGSTOP ... SIGCONT; (start, end) in epoch seconds, each the midpoint around its kill()."""
    offset = time.time() - time.monotonic()
    a = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    start = (a + time.monotonic()) / 2
    while time.monotonic() < start + seconds - 0.003:
        time.sleep(0.001)
    while time.monotonic() < start + seconds:
        pass
    c = time.monotonic()
    os.kill(pid, signal.SIGCONT)
    return start + offset, (c + time.monotonic()) / 2 + offset


def _gap_for(lines: list[dict], start: float, end: float) -> dict | None:
    best, overlap_best = None, 0.0
    for gap in (line for line in lines if line.get("type") == "gap"):
        overlap = min(gap["start"] + gap["length_ms"] / 1000, end) - max(gap["start"], start)
        if overlap > overlap_best:
            best, overlap_best = gap, overlap
    return best


def _parts(samples: list[dict], t0: float, t1: float) -> dict[str, float]:
    """The agent's own CPU by part (seconds) between the samples nearest t0 and t1 (epoch)."""
    inside = [s for s in samples if "agent_cpu" in s]
    if len(inside) < 2:
        return {}
    first = min(inside, key=lambda s: abs(s["t"] - t0))
    last = min(inside, key=lambda s: abs(s["t"] - t1))
    if last["t"] <= first["t"]:
        return {}
    scale = (t1 - t0) / (last["t"] - first["t"])
    return {part: max(0.0, (last["agent_cpu"][part] - first["agent_cpu"].get(part, 0.0)) * scale)
            for part in last["agent_cpu"]}


def _idle_share(samples: list[dict], hello: dict, t0: float, t1: float) -> float | None:
    """The share of the window's samples that ended on the idle tick (the guest was idle)."""
    ticks = [s["hb"].get("tick_ms") for s in samples if t0 <= s["t"] <= t1 and "hb" in s]
    if not ticks or None in ticks or hello.get("tick") is None:
        return None
    return sum(t > hello["tick"] * 1000 + 0.05 for t in ticks) / len(ticks)


def one_run(python: str, agent_args: list[str], seconds: float, warmup: float, stop_at: float,
            stop_ms: float, notes: list[str], agent_source: Path | None = None) -> dict:
    acct = Accounting("vlb-bench-outside", prefer_v1=True)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vlb-bench-outside-") as tmp:
        out = Path(tmp)
        if agent_source is None:
            agent_file = export_agent(out)
        else:  # another version of the agent, to compare (the file as given, copied beside the logs)
            agent_file = out / "agent.py"
            shutil.copyfile(agent_source, agent_file)
        try:
            with (out / "agent.jsonl").open("w") as log, (out / "agent.stderr").open("w") as err:
                agent = acct.spawn("agent", [python, str(agent_file), *agent_args], stdout=log, stderr=err, cwd=out)
            field = spawn_field_set(acct, out, notes)
            t0 = time.monotonic()
            to_epoch = time.time() - t0
            _sleep_until(t0 + warmup)
            names = ["agent", *field]
            before = {name: acct.cpu_s(name) for name in names}
            w0 = time.monotonic()
            stop = None
            if stop_ms > 0 and warmup <= stop_at < warmup + seconds:
                _sleep_until(t0 + stop_at)
                stop = _stop_for(agent.pid, stop_ms / 1000)
            _sleep_until(w0 + seconds)
            after = {name: acct.cpu_s(name) for name in names}
            w1 = time.monotonic()
            time.sleep(1.2)  # the sample after the window, for the agent's own split
        finally:
            acct.stop_all()
        lines = [json.loads(line) for line in (out / "agent.jsonl").read_text().splitlines() if line.strip()]
        stderr = (out / "agent.stderr").read_text()[-500:]
    if not lines or lines[0].get("type") != "hello":
        raise RuntimeError(f"the agent said no hello: {stderr}")
    hello = lines[0]
    used = {name: after[name] - before[name] for name in names}
    field_total = sum(used[name] for name in field)
    result = {"load1_start": round(load_start, 2), "load1_end": round(os.getloadavg()[0], 2),
              "window_s": round(w1 - w0, 2), "method": acct.method,
              "agent_cpu_s": used["agent"], "field_cpu_s": field_total,
              "field": {name[len("field-"):]: used[name] for name in field},
              "ratio": field_total / used["agent"] if used["agent"] > 0 else None,
              "agent_warnings": [w["part"] for w in hello.get("warnings", [])] +
                                [w["part"] for w in lines if w.get("type") == "warn"],
              "tick": hello.get("tick"), "idle_tick": hello.get("idle_tick"), "interval": hello.get("interval"),
              "idle_share": _idle_share([s for s in lines if s.get("type") == "sample"], hello,
                                        w0 + to_epoch, w1 + to_epoch),
              "self_parts_s": _parts([s for s in lines if s.get("type") == "sample"],
                                     w0 + to_epoch, w1 + to_epoch)}
    if stop is not None:
        gap = _gap_for(lines, *stop)
        real = (stop[1] - stop[0]) * 1000
        result["stop"] = {"real_ms": round(real, 1), "seen_ms": gap["length_ms"] if gap else None,
                          "how": gap.get("how") if gap else None,
                          "ok": gap is not None and abs(gap["length_ms"] - real) <= max(10.0, 0.1 * real)}
    return result


def table(result: dict) -> str:
    runs = result["runs"]
    parts = sorted({p for r in runs for p in r["self_parts_s"]})
    window = result["seconds"]
    head = ["run", "load1", f"field CPU-s/{window:g}s", f"agent CPU-s/{window:g}s", "field / agent", "stop seen",
            "idle tick"]
    head += [f"agent: {p}" for p in parts]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for number, run in enumerate(runs, 1):
        stop = run.get("stop")
        seen = "-" if stop is None else (f"{stop['seen_ms']} ms of {stop['real_ms']} ({stop['how']})"
                                         if stop["seen_ms"] is not None else "NOT SEEN")
        idle = run.get("idle_share")
        cells = [str(number), f"{run['load1_start']:.2f}", f"{run['field_cpu_s']:.3f}", f"{run['agent_cpu_s']:.4f}",
                 f"{run['ratio']:.1f}x" if run["ratio"] else "-", seen, "-" if idle is None else f"{idle:.0%}"]
        cells += [f"{run['self_parts_s'].get(p, 0.0):.4f}" for p in parts]
        lines.append(" | ".join(cells))
    ratios = [r["ratio"] for r in runs if r["ratio"]]
    if ratios:
        lines.append(f"ratios {', '.join(f'{r:.1f}x' for r in ratios)}; min {min(ratios):.1f}x, median "
                     f"{statistics.median(ratios):.1f}x (goal every run >= {GOAL:g}x, aim {AIM:g}x)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="start of the window after the start (default 5)")
    parser.add_argument("--stop-at", type=float, default=10.0, help="when the agent is stopped (default 10 s)")
    parser.add_argument("--stop-ms", type=float, default=300.0, help="how long (default 300 ms; 0: no stop)")
    parser.add_argument("--agent-arg", action="append", default=[], help="an argument for the agent (default none)")
    parser.add_argument("--agent", type=Path, help="run this agent file instead of `vast-loopback agent --print`")
    parser.add_argument("--python", help="interpreter for the agent (default: a Python 3.6 if present)")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    args = parser.parse_args(argv)
    python = agent_python(args.python)
    notes: list[str] = []
    if os.geteuid() != 0:
        notes.append("not root: /dev/kmsg may be unreadable to the agent, unlike on the guest (sudo)")
    runs = []
    for number in range(args.runs):
        runs.append(one_run(python, args.agent_arg, args.seconds, args.warmup, args.stop_at, args.stop_ms, notes,
                            args.agent))
        print(f"run {number + 1}: ratio {runs[-1]['ratio']:.2f}x", file=sys.stderr)
    ratios = [r["ratio"] for r in runs if r["ratio"]]
    result = {"bench": "agent_outside", "python": f"{python} ({python_version(python)})",
              "agent": str(args.agent) if args.agent else "vast-loopback agent --print",
              "invocation": " ".join(["python3.6", "agent.py", *args.agent_arg]),
              "machine": f"{platform.node()} {platform.release()}, {os.cpu_count()} cores",
              "as_root": os.geteuid() == 0, "method": runs[0]["method"], "seconds": args.seconds,
              "warmup_s": args.warmup, "stop_ms": args.stop_ms, "runs": runs,
              "ratio_min": min(ratios) if ratios else None,
              "ratio_median": statistics.median(ratios) if ratios else None, "notes": notes}
    print(f"agent: `{result['invocation']}` on {result['python']}, {result['method']}, "
          f"{'as root' if result['as_root'] else 'NOT as root'}; {result['machine']}")
    print(table(result))
    for note in notes:
        print(f"note: {note}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
