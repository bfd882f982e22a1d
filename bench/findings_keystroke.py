"""Findings recompute per keystroke on the Sizing screen.

Measured side by side on the seed host (1 node), the small host and a big node:
  - evaluate():         backend.model.sizing.evaluate alone (the pure rules);
  - screen handler:     SizingScreen.recompute, what one keystroke costs the screen (read the three
                        inputs, evaluate, update the findings/recommendation/Next, post SizingChanged);
  - findings render:    FindingsList.render, the text the findings pane repaints.
The keystrokes are real (Pilot presses digits and backspace in the vCPUs input); Pilot's own waits
between presses are not counted.

    .venv/bin/python bench/findings_keystroke.py [--keys N] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backend.model.hostfacts import GIB, HostInventory, NodeFacts, StorageFacts  # noqa: E402
from backend.model.sizing import Proposal, evaluate  # noqa: E402

GOAL_MS = 5.0
FINGERPRINT = ":".join(["5A"] * 32)


def make_node(name: str, cores: int, threads: int, mem_gib: float, sockets: int = 1) -> NodeFacts:
    return NodeFacts(
        node=name, online=True, cpu_model="bench cpu", sockets=sockets, cores=cores, threads=threads,
        mem_total=int(mem_gib * GIB), mem_used=int(3 * GIB), hvm=True, pve_version="9.1.3",
        storages=(StorageFacts("local", "dir", ("iso", "import"), 100 * GIB, 80 * GIB),
                  StorageFacts("local-lvm", "lvmthin", ("images", "rootdir"), 1800 * GIB, 1800 * GIB)),
        bridges=("vmbr0",),
    )


HOSTS = {
    "seed (12c/24t, 128 GB)": make_node("pve", 12, 24, 125.8),
    "small (8c/16t, 64 GB)": make_node("pve", 8, 16, 62.8),
    "big (2x16c, 512 GB)": make_node("pve", 32, 64, 503.8, sockets=2),
}


def time_evaluate(node: NodeFacts, n: int) -> list[float]:
    proposals = [Proposal(v, 120, 1000, storage="local-lvm") for v in (1, 12, 24, 2, 24, 12)]
    times = []
    for i in range(n):
        started = time.perf_counter()
        evaluate(node, proposals[i % len(proposals)])
        times.append((time.perf_counter() - started) * 1000)
    return times


async def time_screen(node: NodeFacts, keys: int) -> dict[str, list[float]]:
    from textual.widgets import Input

    from backend.run.service import Probe
    from tui.app import WizardApp
    from tui.widgets.wizard.findings import FindingsList
    from tui.wizardstate import WizardState

    class FixedProbe(Probe):
        label, url, fingerprint = "bench", "https://192.0.2.1:8006", FINGERPRINT

        async def inventory(self) -> HostInventory:
            return HostInventory("9.1.3", (node,), FINGERPRINT)

    async def opener(answers):  # noqa: ANN001, ANN202
        return FixedProbe()

    app = WizardApp(WizardState(), probe_opener=opener, first_step="connect", blink=False)
    handler, render = [], []
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+t")
        for _ in range(200):
            if type(app.screen).__name__ == "FingerprintDialog":
                break
            await pilot.pause(0.01)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "SizingScreen", screen
        original = screen.recompute

        def timed() -> None:
            started = time.perf_counter()
            original()
            handler.append((time.perf_counter() - started) * 1000)

        screen.recompute = timed  # type: ignore[method-assign]
        field = screen.query_one("#vcpus", Input)
        field.focus()
        findings = screen.query_one(FindingsList)
        sequence = ["end", "backspace", "backspace", "2", "4", "backspace", "backspace", "1", "2"]
        for i in range(keys):
            key = sequence[i % len(sequence)]
            await pilot.press(key)
            started = time.perf_counter()
            findings.render()
            render.append((time.perf_counter() - started) * 1000)
    return {"handler": handler, "render": render}


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"median_ms": statistics.median(ordered), "p95_ms": ordered[int(0.95 * (len(ordered) - 1))],
            "max_ms": ordered[-1], "n": len(ordered)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=90, help="keystrokes per host on the screen")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    rows = []
    for host, node in HOSTS.items():
        rows.append({"host": host, "what": "evaluate()", "goal_ms": GOAL_MS, **summary(time_evaluate(node, 2000))})
        measured = asyncio.run(time_screen(node, args.keys))
        rows.append({"host": host, "what": "screen handler", "goal_ms": GOAL_MS, **summary(measured["handler"])})
        rows.append({"host": host, "what": "findings render", "goal_ms": None, **summary(measured["render"])})
    print(f"{'host':<24} {'what':<18} {'median':>9} {'p95':>9} {'max':>9} {'n':>5}  {'goal':>6} {'goal/median':>11}")
    for row in rows:
        goal = f"{row['goal_ms']:.0f}ms" if row["goal_ms"] else "-"
        ratio = f"{row['goal_ms'] / row['median_ms']:.0f}x" if row["goal_ms"] else ""
        print(f"{row['host']:<24} {row['what']:<18} {row['median_ms']:>7.3f}ms {row['p95_ms']:>7.3f}ms "
              f"{row['max_ms']:>7.3f}ms {row['n']:>5}  {goal:>6} {ratio:>11}")
    if args.json:
        Path(args.json).write_text(json.dumps({"bench": "findings_keystroke", "unit": "ms", "rows": rows}, indent=2))
    return 0 if all(r["p95_ms"] < r["goal_ms"] for r in rows if r["goal_ms"]) else 1


if __name__ == "__main__":
    sys.exit(main())
