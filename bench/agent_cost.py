"""The monitoring agent's CPU against the field run's monitor set, side by side, same window.

    .venv/bin/python bench/agent_cost.py [--seconds 60] [--warmup 5] [--ticks 0.02,0.05,0] [--json FILE]

Started together and measured over the same steady-state window (the warm-up is excluded):
- the field run's monitor set, reconstructed from its logs (../shared/traces/seed-run-2025-12-29/
  monitoring/SOURCES.txt): `vmstat -t 1`, `iostat -x -t 1`, `mpstat -P ALL 1`, `pidstat -urd 1`,
  `dmesg -T -w`, and bash loops that fork `date`+`cat /proc/loadavg` and `date`+`ss` every second,
  `date` for the heartbeat every second, `free -h`+`grep /proc/meminfo` and the docker check every 5 s
  (no docker here: the cheap "Docker not running" branch runs, which favours the field set; no
  tcpdump either);
- the agent (`backend/monitor/agent.py`, with the guest's Python 3.6 when this machine has it), in
  one pass per `--ticks` value of its stall detector (the first is the default), each pass with a
  fresh field set beside it.
Each runs in its own accounting group (cgroup v2 cpu.stat, v1 cpuacct, else a /proc tree walk), so
the CPU of every forked child counts. Prints CPU-s per minute, % of one core and the ratio field/agent.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.agent_common import AGENT, Accounting, agent_python, python_version  # noqa: E402

LOOPS = r"""
D=$1
ts() { date '+%Y-%m-%d %H:%M:%S.%3N'; }
while :; do date '+%Y-%m-%d %H:%M:%S.%3N' >> "$D/heartbeat.log"; sleep 1; done &
while :; do echo "$(ts) $(cat /proc/loadavg)" >> "$D/loadavg.log"; sleep 1; done &
while :; do { echo "=== $(ts) ==="; ss -tan 'sport = :6001 or dport = :6001'; echo; } >> "$D/ss_6001.log"; sleep 1; done &
while :; do { echo "=== $(ts) ==="; free -h
  grep -E '^(MemTotal|MemFree|MemAvailable|Buffers|Cached|SwapCached|SwapTotal|SwapFree|Dirty|Writeback|AnonPages|WritebackTmp):' /proc/meminfo
  echo; } >> "$D/memory.log"; sleep 5; done &
while :; do { echo "=== $(ts) ==="
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then docker stats --no-stream; else echo "Docker not running"; fi
  echo; } >> "$D/docker_stats.log"; sleep 5; done &
wait
"""

FIELD_TOOLS = (
    ("vmstat", ["vmstat", "-t", "1"]),
    ("iostat", ["iostat", "-x", "-t", "1"]),
    ("mpstat", ["mpstat", "-P", "ALL", "1"]),
    ("pidstat", ["pidstat", "-urd", "1"]),
    ("dmesg", ["dmesg", "-T", "-w"]),
)


def _pass(seconds: float, warmup: float, tick: float, python: str, notes: list[str]) -> dict:
    """The field set and one agent, started together, measured over the same window."""
    acct = Accounting("vlb-bench-agent")
    processes = []
    field_parts = []
    agent = f"agent-tick-{tick:g}"
    with tempfile.TemporaryDirectory(prefix="vlb-bench-agent-") as tmp:
        out = Path(tmp)
        try:
            for name, argv in FIELD_TOOLS:
                if shutil.which(argv[0]) is None:
                    if f"{argv[0]} is not installed" not in " ".join(notes):
                        notes.append(f"{argv[0]} is not installed: left out of the field set")
                    continue
                log = (out / f"{name}.log").open("w")
                processes.append(acct.spawn(f"field-{name}", argv, stdout=log, stderr=log))
                field_parts.append(name)
            processes.append(acct.spawn("field-loops", ["bash", "-c", LOOPS, "loops", str(out)]))
            field_parts.append("loops")
            with (out / "agent.jsonl").open("w") as log, (out / "agent.stderr").open("w") as err:
                processes.append(acct.spawn(agent, [python, str(AGENT), "--tick", str(tick)], stdout=log, stderr=err))
            time.sleep(warmup)
            names = [f"field-{part}" for part in field_parts] + [agent]
            before = {name: acct.cpu_s(name) for name in names}
            started = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - started
            after = {name: acct.cpu_s(name) for name in names}
        finally:
            acct.stop_all(processes)
        per_min = {name: (after[name] - before[name]) / elapsed * 60 for name in names}
        lines = [json.loads(line) for line in (out / "agent.jsonl").read_text().splitlines() if line.strip()]
    samples = [s for s in lines if s.get("type") == "sample" and s["t"] >= lines[0]["t"] + warmup]
    self_reported = None
    if len(samples) >= 2 and samples[-1]["t"] > samples[0]["t"]:
        self_reported = (samples[-1]["agent_cpu_s"] - samples[0]["agent_cpu_s"]) / (samples[-1]["t"] - samples[0]["t"]) * 60
    field_total = sum(per_min[f"field-{part}"] for part in field_parts)
    cost = per_min[agent]
    return {"tick_s": tick, "seconds": round(elapsed, 1), "method": acct.method,
            "field": {part: per_min[f"field-{part}"] for part in field_parts}, "field_total": field_total,
            "agent": cost, "agent_self_reported": self_reported,
            "ratio": field_total / cost if cost > 0 else None}


def measure(seconds: float, warmup: float, ticks: list[float], python: str) -> dict:
    notes: list[str] = []
    passes = [_pass(seconds, warmup, tick, python, notes) for tick in ticks]
    rows = []
    for number, result in enumerate(passes):
        label = f"tick {result['tick_s']:g} s" + (" (default)" if number == 0 else "")
        for part, cost in result["field"].items():
            rows.append({"pass": label, "what": f"field: {part}", "cpu_s_per_min": cost})
        rows.append({"pass": label, "what": "field monitor set (total)", "cpu_s_per_min": result["field_total"]})
        rows.append({"pass": label, "what": f"agent, {label}", "tick_s": result["tick_s"],
                     "cpu_s_per_min": result["agent"], "self_reported_cpu_s_per_min": result["agent_self_reported"],
                     "ratio_field_over_agent": result["ratio"]})
    return {"bench": "agent_cost", "method": passes[0]["method"], "seconds": passes[0]["seconds"], "warmup_s": warmup,
            "python": f"{python} ({python_version(python)})", "machine": f"{platform.node()} {platform.release()}",
            "goal": "agent >= 5x cheaper than the field set (aim 10x)", "rows": rows, "notes": notes}


def table(result: dict) -> str:
    lines = [f"CPU per minute of steady state ({result['seconds']} s measured after {result['warmup_s']} s warm-up, "
             f"{result['method']}; agent on {result['python']}; one pass per tick, field set and agent together)",
             "", "pass | what | CPU-s/min | % of one core | field / agent", "--- | --- | --- | --- | ---"]
    for row in result["rows"]:
        ratio = row.get("ratio_field_over_agent")
        own = row.get("self_reported_cpu_s_per_min")
        lines.append(f"{row['pass']} | {row['what']} | {row['cpu_s_per_min']:.4f}"
                     + (f" (self-reported {own:.4f})" if own is not None else "")
                     + f" | {row['cpu_s_per_min'] / 60 * 100:.3f} | " + (f"{ratio:.1f}x" if ratio else "-"))
    lines += [f"note: {note}" for note in result["notes"]]
    lines.append(f"goal: {result['goal']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="excluded start (default 5)")
    parser.add_argument("--ticks", default="0.02", help="detector ticks to run, comma-separated (first = default)")
    parser.add_argument("--python", help="interpreter for the agent (default: a Python 3.6 if present)")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    args = parser.parse_args(argv)
    ticks = [float(t) for t in args.ticks.split(",") if t.strip()]
    result = measure(args.seconds, args.warmup, ticks, agent_python(args.python))
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
